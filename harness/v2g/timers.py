"""The V2G timers, one table per protocol, and how a rig scales them.

Values are the standards' (seconds). Where a number could only be taken from public
implementations that quote the standard rather than from its text, the table says so.

- ISO 15118-2: Table 109 (V2G_EVCC_Msg_Timeout per message, V2G_SECC_Sequence_Timeout 60 s,
  V2G_EVCC_Sequence_Performance_Time 40 s, V2G_EVCC_Ongoing_Timeout 60 s,
  V2G_SECC_Ongoing_Performance_Time 55 s) and Table 111 (communication setup, CableCheck and
  PreCharge); handling in 8.7.2 / 8.7.3.
- DIN 70121: Tables 75-78 (not confirmed from the text: default message timeout 2 s,
  CurrentDemand 0.5 s, CableCheck 38 s, PreCharge 7 s, as public implementations quote them).
- ISO 15118-20: Table 215 (common: the same four sequence/ongoing values as -2), Table 216 (AC:
  AC_ChargeLoopReq message timeout 0.5 s, SECC sequence timeout after AC_ChargeLoopRes 0.5 s),
  Table 217 (DC: DC_CableCheckReq/DC_PreChargeReq/DC_WeldingDetectionReq 2 s, DC_ChargeLoopReq
  0.5 s, sequence timeout after DC_ChargeLoopRes 0.5 s); [V2G20-1499] .. [V2G20-1502].
- SDP (ISO 15118-20 7.10.1.7, [V2G20-159] .. [V2G20-161]; -2 [V2G2-159] and the same limit): the
  EVCC waits at least 250 ms for a valid response, repeats the request, and stops after 50.

A lab rig uses the values as they are. An emulated rig multiplies them by its time scale
(:class:`Timing`), but a timeout never drops below :attr:`Timing.min_timeout`: a timeout that
a loaded CI host cannot meet would only test the host. Waits the harness chooses itself (the
pause between charge-loop requests) scale without a floor, so a scale of zero means no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

DEFAULT = "*"


def _table(values: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(values)


@dataclass(frozen=True)
class ProtocolTimers:
    """The timers of one application protocol, in the standard's seconds."""

    protocol: str
    #: V2G_EVCC_Msg_Timeout: how long the EVCC waits for the response to a request
    msg_timeout: Mapping[str, float]
    #: V2G_SECC_Sequence_Timeout: how long the SECC waits for the next request after a response
    sequence_timeout: Mapping[str, float]
    #: V2G_EVCC_Sequence_Performance_Time: how soon the EVCC sends its next request
    sequence_performance: Mapping[str, float]
    #: V2G_SECC_Msg_Performance_Time: how soon the SECC answers
    msg_performance: Mapping[str, float]
    #: V2G_EVCC_Ongoing_Timeout: how long the EVCC repeats a request answered "Ongoing"
    ongoing_timeout: float
    #: V2G_SECC_Ongoing_Performance_Time: the SECC finishes an Ongoing process in time
    ongoing_performance: float
    #: V2G_EVCC_CommunicationSetup_Timeout: TCP connect to SessionSetupRes (EVCC)
    communication_setup_timeout: float
    #: V2G_EVCC_CableCheck_Timeout / V2G_EVCC_PreCharge_Timeout: DC protocols only (None: the
    #: protocol has no such step)
    cable_check_timeout: float | None = None
    pre_charge_timeout: float | None = None

    def lookup(self, table: Mapping[str, float], name: str) -> float:
        return table.get(name, table[DEFAULT])

    def msg(self, request: str) -> float:
        return self.lookup(self.msg_timeout, request)

    def sequence(self, response: str) -> float:
        return self.lookup(self.sequence_timeout, response)

    def cable_check(self) -> float:
        """V2G_EVCC_CableCheck_Timeout: how long the EVCC repeats CableCheckReq."""
        return self._dc("cable_check_timeout", self.cable_check_timeout)

    def pre_charge(self) -> float:
        """V2G_EVCC_PreCharge_Timeout: how long the EVCC repeats PreChargeReq."""
        return self._dc("pre_charge_timeout", self.pre_charge_timeout)

    def _dc(self, name: str, value: float | None) -> float:
        if value is None:  # a table without it was asked for it: a harness bug, not a default
            raise LookupError(f"the {self.protocol} timer table has no {name}")
        return value


# Every value of every table is written out, each with where it comes from; the rules read the
# timers from here only (no fallbacks elsewhere).

SAP = ProtocolTimers(
    "sap",
    # the handshake is timed like any -2 message pair: -2 Table 109 (supportedAppProtocolReq 2 s)
    msg_timeout=_table({DEFAULT: 2.0}),
    sequence_timeout=_table({DEFAULT: 60.0}),           # -2 Table 109, V2G_SECC_Sequence_Timeout
    sequence_performance=_table({DEFAULT: 40.0}),       # -2 Table 109
    msg_performance=_table({DEFAULT: 1.5}),             # -2 Table 109, V2G_SECC_Msg_Performance_Time
    ongoing_timeout=60.0,                               # -2 Table 109 (no Ongoing in the handshake)
    ongoing_performance=55.0,                           # -2 Table 109
    communication_setup_timeout=20.0,                   # -2 Table 111, V2G_EVCC_CommunicationSetup_Timeout
)

ISO2 = ProtocolTimers(
    "iso2",
    # -2 Table 109: V2G_EVCC_Msg_Timeout per request
    msg_timeout=_table({
        DEFAULT: 2.0,
        "supportedAppProtocolReq": 2.0, "SessionSetupReq": 2.0, "ServiceDiscoveryReq": 2.0,
        "ServiceDetailReq": 5.0, "PaymentServiceSelectionReq": 2.0, "PaymentDetailsReq": 5.0,
        "AuthorizationReq": 2.0, "ChargeParameterDiscoveryReq": 2.0, "ChargingStatusReq": 2.0,
        "MeteringReceiptReq": 2.0, "PowerDeliveryReq": 5.0, "CableCheckReq": 2.0,
        "PreChargeReq": 2.0, "CurrentDemandReq": 0.25, "WeldingDetectionReq": 2.0,
        "SessionStopReq": 2.0, "CertificateInstallationReq": 5.0, "CertificateUpdateReq": 5.0,
    }),
    sequence_timeout=_table({DEFAULT: 60.0}),           # -2 Table 109, V2G_SECC_Sequence_Timeout
    sequence_performance=_table({DEFAULT: 40.0}),       # -2 Table 109, V2G_EVCC_Sequence_Performance_Time
    # -2 Table 109, V2G_SECC_Msg_Performance_Time (CurrentDemandRes 25 ms)
    msg_performance=_table({DEFAULT: 1.5, "CurrentDemandReq": 0.025}),
    ongoing_timeout=60.0,                               # -2 Table 109, V2G_EVCC_Ongoing_Timeout
    ongoing_performance=55.0,                           # -2 Table 109, V2G_SECC_Ongoing_Performance_Time
    communication_setup_timeout=20.0,                   # -2 Table 111
    cable_check_timeout=40.0,                           # -2 Table 111, V2G_EVCC_CableCheck_Timeout
    pre_charge_timeout=7.0,                             # -2 Table 111, V2G_EVCC_PreCharge_Timeout
)

DIN = ProtocolTimers(
    "din",
    # DIN 70121 Tables 75-78 (as public implementations quote them, not confirmed from the text)
    msg_timeout=_table({DEFAULT: 2.0, "CurrentDemandReq": 0.5}),
    sequence_timeout=_table({DEFAULT: 60.0}),
    sequence_performance=_table({DEFAULT: 40.0}),
    msg_performance=_table({DEFAULT: 1.5, "CurrentDemandReq": 0.025}),
    ongoing_timeout=60.0,                               # V2G_EVCC_Ongoing_Timeout
    ongoing_performance=55.0,                           # V2G_SECC_Ongoing_Performance_Time
    communication_setup_timeout=20.0,                   # V2G_EVCC_CommunicationSetup_Timeout
    cable_check_timeout=38.0,                           # V2G_EVCC_CableCheck_Timeout (DIN: 38 s, -2: 40 s)
    pre_charge_timeout=7.0,                             # V2G_EVCC_PreCharge_Timeout
)

ISO20 = ProtocolTimers(
    "iso20",
    # -20 Table 215 (common, 2 s), Table 216 (AC_ChargeLoopReq 0.5 s), Table 217 (DC)
    msg_timeout=_table({
        DEFAULT: 2.0,
        "AC_ChargeLoopReq": 0.5, "DC_ChargeLoopReq": 0.5,
        "DC_CableCheckReq": 2.0, "DC_PreChargeReq": 2.0, "DC_WeldingDetectionReq": 2.0,
    }),
    # -20 Tables 215-217: 60 s, 0.5 s after a charge loop response; [V2G20-1499] .. [V2G20-1502]
    sequence_timeout=_table({DEFAULT: 60.0, "AC_ChargeLoopRes": 0.5, "DC_ChargeLoopRes": 0.5}),
    sequence_performance=_table({DEFAULT: 40.0, "AC_ChargeLoopReq": 0.25, "DC_ChargeLoopReq": 0.25}),
    msg_performance=_table({DEFAULT: 1.5, "AC_ChargeLoopReq": 0.25, "DC_ChargeLoopReq": 0.25}),
    ongoing_timeout=60.0,                               # -20 Table 215, V2G_EVCC_Ongoing_Timeout
    ongoing_performance=55.0,                           # -20 Table 215
    # the -2 values (Table 111); not confirmed from the -20 text
    communication_setup_timeout=20.0,                   # V2G_EVCC_CommunicationSetup_Timeout
    cable_check_timeout=40.0,                           # V2G_EVCC_CableCheck_Timeout
    pre_charge_timeout=7.0,                             # V2G_EVCC_PreCharge_Timeout
)

PROTOCOL_TIMERS: Mapping[str, ProtocolTimers] = MappingProxyType({
    "sap": SAP, "din": DIN, "iso2": ISO2, "iso20": ISO20,
})


@dataclass(frozen=True)
class SdpTimers:
    #: how long the SDP client waits for a response before repeating the request
    response_timeout: float = 0.25
    #: how many requests it sends at most
    attempts: int = 50


SDP = SdpTimers()


@dataclass(frozen=True)
class Timing:
    """How a rig runs the standards' durations: ``scale`` 1 on lab rigs; an emulated rig's
    time scale below 1 shrinks every duration, timeouts no further than ``min_timeout``
    (real seconds)."""

    scale: float = 1.0
    min_timeout: float = 0.5
    protocols: Mapping[str, ProtocolTimers] = field(default_factory=lambda: PROTOCOL_TIMERS)
    sdp: SdpTimers = SDP

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError("time scale must not be negative")

    def timeout(self, seconds: float) -> float:
        """A timeout the standard sets, as this rig waits it."""
        if self.scale == 1.0:
            return seconds
        return max(seconds * self.scale, min(seconds, self.min_timeout))

    def wait(self, seconds: float) -> float:
        """A pause the harness chooses (not a peer's deadline), as this rig waits it."""
        return seconds * self.scale

    def of(self, protocol: str) -> ProtocolTimers:
        return self.protocols["iso20" if protocol.startswith("iso20") else protocol]

    def with_sequence_timeout(self, seconds: float) -> "Timing":
        """These timers, but V2G_SECC_Sequence_Timeout ``seconds`` (the standard's seconds) after
        every response: how a non-conforming charger is played."""
        return self._with_table("sequence_timeout", seconds)

    def with_msg_timeout(self, seconds: float) -> "Timing":
        """These timers, but V2G_EVCC_Msg_Timeout ``seconds`` (the standard's seconds) for every
        request: how a non-conforming EV is played (one that waits far longer than it may)."""
        return self._with_table("msg_timeout", seconds)

    def _with_table(self, table: str, seconds: float) -> "Timing":
        changed: dict[str, ProtocolTimers] = {}
        for name, timers in self.protocols.items():
            values: dict[str, Any] = {table: _table({entry: seconds for entry in getattr(timers, table)})}
            changed[name] = replace(timers, **values)
        return replace(self, protocols=MappingProxyType(changed))


STANDARD = Timing()
