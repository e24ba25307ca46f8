"""Correlation keys of OCPP messages: what ties a frame to a transaction, a token, an EVSE.

Every OCPP event on the timeline carries these keys, so "the OCPP messages of transaction X" is
one query whatever the version: 2.x carries ``transactionInfo.transactionId`` in
TransactionEvent and ``transactionId`` in RequestStopTransaction; 1.6 carries an integer
``transactionId`` that the CSMS hands out in its StartTransaction.conf.
"""

from __future__ import annotations

from typing import Any, Mapping


def message_keys(action: str, payload: Mapping[str, Any] | None) -> dict[str, str]:
    """Keys found in one payload (request or response) of ``action``."""
    if not isinstance(payload, Mapping):
        return {}
    keys: dict[str, str] = {}
    transaction_id = _get(payload, "transactionInfo", "transactionId")
    if transaction_id is None:
        transaction_id = payload.get("transactionId")
    if isinstance(transaction_id, (str, int)) and not isinstance(transaction_id, bool):
        keys["transaction_id"] = str(transaction_id)
    token = _get(payload, "idToken", "idToken")
    if token is None:
        token = payload.get("idTag")
    if isinstance(token, str):
        keys["id_token"] = token
    evse_id = _get(payload, "evse", "id")
    if evse_id is None:
        evse_id = payload.get("evseId", payload.get("connectorId"))
    if isinstance(evse_id, int) and not isinstance(evse_id, bool):
        keys["evse_id"] = str(evse_id)
    remote_start_id = payload.get("remoteStartId", _get(payload, "transactionInfo", "remoteStartId"))
    if isinstance(remote_start_id, int) and not isinstance(remote_start_id, bool):
        keys["remote_start_id"] = str(remote_start_id)
    return keys


def _get(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
