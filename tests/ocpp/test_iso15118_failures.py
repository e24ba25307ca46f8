"""The error-mapping table (harness.ocpp.iso15118_failures): every row has a trigger in the suite
and no trigger names a row the table lacks; every value a row expects is one the OCPP schemas the
ocpp package ships allow; the SECC's end reasons find their rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import ocpp
import pytest

from harness.ocpp.iso15118_failures import BY_ID, TABLE, classify

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(ocpp.__file__).parent


def _suite():
    spec = importlib.util.spec_from_file_location("error_mapping_suite", ROOT / "testcases" / "test_error_mapping.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_has_a_test_and_every_test_a_row():
    triggers = set(_suite().TRIGGERS)
    assert triggers == set(BY_ID), (f"rows without a trigger: {sorted(set(BY_ID) - triggers)}; triggers without a "
                                    f"row: {sorted(triggers - set(BY_ID))}")
    assert len(BY_ID) == len(TABLE), "two rows share an id"


def _enum(version: str, schema: str, definition: str) -> list[str]:
    document = json.loads((SCHEMAS / version / "schemas" / schema).read_text())
    if version == "v16":
        return document["properties"][definition]["enum"]
    return document["definitions"][definition]["enum"]


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_what_a_row_expects_is_allowed_by_the_ocpp_schemas(row):
    for version in ("v201", "v21"):
        assert row.ocpp2.message == "TransactionEvent"
        assert row.ocpp2.fields["triggerReason"] in _enum(version, "TransactionEventRequest.json",
                                                          "TriggerReasonEnumType")
        assert row.ocpp2.fields["transactionInfo.chargingState"] in _enum(version, "TransactionEventRequest.json",
                                                                          "ChargingStateEnumType")
    assert row.ocpp16.message == "StatusNotification"
    assert row.ocpp16.fields["status"] in _enum("v16", "StatusNotification.json", "status")
    assert row.ocpp16.fields["errorCode"] in _enum("v16", "StatusNotification.json", "errorCode")
    assert row.state == row.ocpp16.fields["status"]


@pytest.mark.parametrize("reason, row", [
    ("V2G_SECC_Sequence_Timeout after ChargingStatusRes", "ev-silent"),
    ("connection lost", "ev-connection-closed"),
    ("SLAC matching failed: no match within 6 s of the EV's plug-in", "slac-failed"),
    ("TLS handshake failed: [SSL: TLSV1_ALERT_UNKNOWN_CA] connection lost", "tls-handshake-failed"),
    ("ChargingStatusRes FAILED_UnknownSession: the request's SessionID is not the session's", "secc-failed-response"),
    ("Terminate", None), ("Pause", None)])
def test_the_seccs_end_reasons_find_their_rows(reason, row):
    found = classify(reason)
    assert (found.id if found else None) == row
