"""OCPP-J (1.6J, 2.0.1, 2.1): frames checked against the OCA schemas, the endpoint that pairs calls
with results, the mock CSMS and the station client, and their per-version dialects."""
