"""How a charging station reports through OCPP what happened on its ISO 15118 side: one table,
read by the reference EVSE (which reports this way), by the suites (which expect it of a charger
under test, ERR-MAP-001) and by the reports (which print it).

Each row is one thing that ends or suspends an ISO 15118 session while a transaction runs (or keeps
one from beginning: SLAC, TLS), how the harness recognizes it at the SECC or the EVSE's SLAC (the
reason a session ended or failed with), and what the station sends:
on 2.x a TransactionEvent with a triggerReason and chargingState, on 1.6 a StatusNotification with a
status and errorCode. The texts the rows rest on:

- OCPP 1.6 §7.6 ChargePointErrorCode EVCommunicationError: "Communication failure with the vehicle,
  might be Mode 3 or other communication protocol problem. This is not a real error in the sense
  that the Charge Point doesn't need to go to the faulted state. Instead, it should go to the
  SuspendedEVSE state."
- OCPP 2.0.1 TriggerReasonEnumType EVCommunicationLost ("Communication with EV lost, for example:
  cable disconnected") and AbnormalCondition ("An Abnormal Error or Fault Condition has occurred");
  ChargingStateEnumType SuspendedEVSE (the EV is connected, the EVSE does not offer energy) and
  SuspendedEV (the EV is connected and draws no energy).

Chosen where those texts leave it open: a session the SECC ends with a FAILED response code, and a
SLAC match or TLS handshake that fails before any session, are reported on 2.x as AbnormalCondition (the EV is
still there and talking, so not EVCommunicationLost); the chargingState on 2.x is SuspendedEVSE,
as 1.6 says for EVCommunicationError, also when the charge loop was never reached.

The other direction, the CSMS's refusal of a contract turned into an ISO 15118 response code, is
:data:`harness.v2g.pnc.BACKEND_REFUSALS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Report:
    """One OCPP message and the fields that say it (dotted paths into the payload)."""

    message: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.message} " + ", ".join(f"{k} {v}" for k, v in self.fields.items())


@dataclass(frozen=True)
class Failure:
    id: str
    #: what happened, in ISO 15118's words
    iso15118: str
    #: how the SECC's session ended: substrings of the reason it ended with
    causes: tuple[str, ...]
    ocpp2: Report
    ocpp16: Report
    references: tuple[str, ...]
    #: the connector's state afterwards (1.6 ChargePointStatus; 2.x chargingState follows it)
    state: str = "SuspendedEVSE"
    #: it happens before an ISO 15118 session begins (the charge loop is never reached)
    before_session: bool = False

    def report(self, version: str) -> Report:
        """The report this row asks of a station speaking OCPP ``version`` ("1.6", "2.0.1", "2.1")."""
        return self.ocpp16 if version == "1.6" else self.ocpp2


TABLE: tuple[Failure, ...] = (
    Failure(
        "slac-failed",
        "SLAC matching fails, so the EV never joins the charger's power-line network and no ISO 15118 "
        "session begins (here the EV's CM_SLAC_MATCH.REQ comes after TT_EVSE_match_session)",
        ("SLAC matching failed",),
        Report("TransactionEvent", {"triggerReason": "AbnormalCondition",
                                    "transactionInfo.chargingState": "SuspendedEVSE"}),
        Report("StatusNotification", {"status": "SuspendedEVSE", "errorCode": "EVCommunicationError"}),
        ("OCPP 1.6 §7.6 EVCommunicationError (\"might be Mode 3 or other communication protocol problem\")",
         "OCPP 2.0.1 TriggerReasonEnumType AbnormalCondition",
         "ISO 15118-3 TT_EVSE_SLAC_init [V2G3-M06-07], TT_matching_repetition"),
        before_session=True,
    ),
    # before the session rows: the reason a handshake failed with may itself say "connection lost"
    Failure(
        "tls-handshake-failed",
        "the TLS handshake with the EV fails, so no ISO 15118 session begins (here the EV does not "
        "accept the charger's SECC certificate)",
        ("TLS handshake failed",),
        Report("TransactionEvent", {"triggerReason": "AbnormalCondition",
                                    "transactionInfo.chargingState": "SuspendedEVSE"}),
        Report("StatusNotification", {"status": "SuspendedEVSE", "errorCode": "EVCommunicationError"}),
        ("OCPP 2.0.1 TriggerReasonEnumType AbnormalCondition", "OCPP 1.6 §7.6 EVCommunicationError",
         "ISO 15118-2 TLS: the EVCC validates the SECC certificate chain against its V2G roots"),
        before_session=True,
    ),
    Failure(
        "ev-silent",
        "the EV stops sending during the charge loop; the SECC's sequence timer runs out "
        "(V2G_SECC_Sequence_Timeout)",
        ("V2G_SECC_Sequence_Timeout",),
        Report("TransactionEvent", {"triggerReason": "EVCommunicationLost",
                                    "transactionInfo.chargingState": "SuspendedEVSE"}),
        Report("StatusNotification", {"status": "SuspendedEVSE", "errorCode": "EVCommunicationError"}),
        ("OCPP 2.0.1 TriggerReasonEnumType EVCommunicationLost", "OCPP 1.6 §7.6 EVCommunicationError",
         "ISO 15118-2 V2G_SECC_Sequence_Timeout"),
    ),
    Failure(
        "ev-connection-closed",
        "the EV closes the TCP connection in the middle of the session, without SessionStopReq",
        ("connection lost",),
        Report("TransactionEvent", {"triggerReason": "EVCommunicationLost",
                                    "transactionInfo.chargingState": "SuspendedEVSE"}),
        Report("StatusNotification", {"status": "SuspendedEVSE", "errorCode": "EVCommunicationError"}),
        ("OCPP 2.0.1 TriggerReasonEnumType EVCommunicationLost", "OCPP 1.6 §7.6 EVCommunicationError"),
    ),
    Failure(
        "secc-failed-response",
        "the SECC ends the session with a FAILED response code (here FAILED_UnknownSession for a "
        "request with another SessionID)",
        ("FAILED_",),
        Report("TransactionEvent", {"triggerReason": "AbnormalCondition",
                                    "transactionInfo.chargingState": "SuspendedEVSE"}),
        Report("StatusNotification", {"status": "SuspendedEVSE", "errorCode": "EVCommunicationError"}),
        ("OCPP 2.0.1 TriggerReasonEnumType AbnormalCondition", "OCPP 1.6 §7.6 EVCommunicationError",
         "ISO 15118-2 FAILED_UnknownSession"),
    ),
)

BY_ID: Mapping[str, Failure] = {row.id: row for row in TABLE}


def classify(reason: str) -> Failure | None:
    """The row for the reason an ISO 15118 session ended with (None: an ordinary end, such as
    SessionStopReq Terminate or Pause)."""
    return next((row for row in TABLE if any(cause in reason for cause in row.causes)), None)
