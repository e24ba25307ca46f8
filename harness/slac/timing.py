"""Every timer and counter of ISO 15118-3 SLAC in one table.

Values are ISO 15118-3:2015 Table A.1 (timers) and Table A.2 (constants), as also used by the
ISO 15118-4/-5 conformance test parameters. A rig may shrink the timers with one factor
(:meth:`SlacTimers.scaled`); counters are never scaled, and a timeout (TT_*: how long one side
waits for the other) never below ``min_timeout`` or its standard value, whichever is lower: the
short response timers (200 ms for CM_SLAC_PARM.CNF) stay what the standard says, because below
that a loaded host, not the peer, decides whether an answer is in time. Where the standard gives a
range, the value used is named in the comment. Everything in harness.slac reads its timing from
here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: an emulated rig's floor for SLAC timeouts: everything up to 1.5 s runs at the standard's value
RIG_MIN_TIMEOUT = 1.5


def scale_timer(name: str, seconds: float, factor: float, min_timeout: float) -> float:
    """One timer of the standard on a rig scaled by ``factor``: a pause (TP_*, T_*) scales freely,
    a timeout (TT_*, and the wait for one's own modem) not below min(standard, min_timeout)."""
    scaled = seconds * factor
    if name.startswith("TT_") or name.endswith("_response"):
        return max(scaled, min(seconds, min_timeout))
    return scaled


@dataclass(frozen=True)
class SlacTimers:
    # -- timers, seconds --------------------------------------------------------------------
    #: EVSE: from CP state B (5 %) to the first CM_SLAC_PARM.REQ, 20..50 s ([V2G3-M06-07]); 50 s used
    TT_EVSE_SLAC_init: float = 50.0
    #: a requester waits this long for the confirmation of a request (CM_SLAC_PARM, CM_VALIDATE,
    #: CM_SLAC_MATCH, CM_ATTEN_CHAR.IND -> .RSP)
    TT_match_response: float = 0.2
    #: longest gap between two messages of one sequence (e.g. CM_SLAC_PARM.CNF -> CM_START_ATTEN_CHAR)
    TT_match_sequence: float = 0.4
    #: EV: from the first CM_START_ATTEN_CHAR.IND to the end of collecting CM_ATTEN_CHAR.IND ([V2G3-A09-30])
    TT_EV_atten_results: float = 1.2
    #: EVSE: from CM_START_ATTEN_CHAR.IND to CM_ATTEN_CHAR.IND (sent to the EV in 100 ms units)
    TT_EVSE_match_MNBC: float = 0.6
    #: EVSE: from CM_ATTEN_CHAR.RSP to CM_VALIDATE.REQ or CM_SLAC_MATCH.REQ
    TT_EVSE_match_session: float = 10.0
    #: after CM_SLAC_MATCH.CNF: time to join the logical network (link detected)
    TT_match_join: float = 12.0
    #: whole matching process including retries
    TT_matching_repetition: float = 10.0
    #: pause before a failed matching process is started again ([V2G3-A09-124])
    TT_matching_rate: float = 0.4
    #: pause between two M-Sounds / two CM_START_ATTEN_CHAR.IND, 20..50 ms; 20 ms used
    TP_EV_batch_msg_interval: float = 0.02
    #: a sender pauses this long before answering (minimum processing time)
    TP_match_response: float = 0.1
    #: waiting for a link status confirmation from the local modem
    TT_link_status_response: float = 5.0
    #: CM_AMP_MAP request to confirmation
    TT_amp_map_exchange: float = 0.2
    #: EV: duration of one CP state during the validation toggles, 200..400 ms; 300 ms used
    TP_EV_vald_state_duration: float = 0.3
    #: EV: whole toggle sequence of a validation
    TP_EV_vald_toggle: float = 2.0
    #: EVSE: time in state E/F before 5 % again ([V2G3-M06-09]), at least 4 s
    T_step_EF: float = 4.0
    #: not a timer of the standard: how long a host waits for CM_SET_KEY.CNF from its own modem
    #: (the conformance tests use 3 s for this)
    set_key_response: float = 3.0
    # -- counters (never scaled) ------------------------------------------------------------
    #: EV: retries of a request left unanswered (CM_SLAC_PARM.REQ, CM_SLAC_MATCH.REQ, CM_VALIDATE.REQ)
    C_EV_match_retry: int = 2
    #: EV: M-Sounds per attenuation characterization (also CM_SLAC_PARM.CNF NUM_SOUNDS)
    C_EV_match_MNBC: int = 10
    #: EV: number of CM_START_ATTEN_CHAR.IND sent back to back
    C_EV_start_atten_char_inds: int = 3
    #: matching attempts within TT_matching_repetition
    C_conn_max_match: int = 3
    #: EVSE: E/F -> 5 % retries when no SLAC request comes ([V2G3-M06-07])
    C_sequ_retry: int = 2
    # -- the rig's factor -------------------------------------------------------------------
    scale: float = 1.0
    #: no timeout is scaled below this (or its standard value, if lower); seconds
    min_timeout: float = 0.0

    def scaled(self, factor: float, *, min_timeout: float = 0.0) -> "SlacTimers":
        """These timers multiplied by ``factor`` (0 < factor <= 1), timeouts no further than
        ``min_timeout`` (nor below their standard value when that is lower); counters unchanged."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"time scale must be in (0, 1], not {factor}")
        # field names chosen at run time: mypy cannot match them to SlacTimers' fields (all the
        # chosen ones are float fields, so each value fits its field)
        changes: dict[str, Any] = {
            f.name: scale_timer(f.name, getattr(self, f.name), factor, min_timeout)
            for f in dataclasses.fields(self) if f.type in ("float", float) and f.name not in
            ("scale", "min_timeout")}
        return dataclasses.replace(self, **changes, scale=self.scale * factor, min_timeout=min_timeout)

    @property
    def mnbc_timeout_field(self) -> int:
        """TT_EVSE_match_MNBC as carried in CM_SLAC_PARM.CNF / CM_START_ATTEN_CHAR.IND: units of
        100 ms (0x06 unscaled), at least 1."""
        return max(1, round(self.TT_EVSE_match_MNBC / 0.1))


STANDARD = SlacTimers()


def for_scale(scale: float) -> SlacTimers:
    """The SLAC timers at a rig's time scale: the standard's at 1, else scaled with timeouts no
    shorter than :data:`RIG_MIN_TIMEOUT`."""
    return STANDARD.scaled(scale, min_timeout=RIG_MIN_TIMEOUT) if scale != 1.0 else STANDARD
