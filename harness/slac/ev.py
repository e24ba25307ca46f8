"""The EV side of SLAC (ISO 15118-3 clause 9) as a sans-IO state machine.

The machine never touches a socket or a clock: frames and the current time go in
(:meth:`EvSlac.start`, :meth:`EvSlac.receive`, :meth:`EvSlac.poll`), and what to do comes out as a
list of :class:`Send`, :class:`Note`, :class:`Matched` and :class:`Failed`. The adapter
(harness.slac.io) moves frames and calls :meth:`poll` at :attr:`EvSlac.next_deadline`.

One matching attempt::

    PARM       CM_SLAC_PARM.REQ (broadcast) until a CM_SLAC_PARM.CNF with our RunID
               (TT_match_response each, C_EV_match_retry retries)
    SOUNDING   C_EV_start_atten_char_inds x CM_START_ATTEN_CHAR.IND, then C_EV_match_MNBC x
               CM_MNBC_SOUND.IND, TP_EV_batch_msg_interval apart; every CM_ATTEN_CHAR.IND with our
               RunID is answered by CM_ATTEN_CHAR.RSP; the window is TT_EV_atten_results from the
               first CM_START_ATTEN_CHAR.IND ([V2G3-A09-30], [V2G3-A09-31])
    (choice)   the EVSE with the lowest average attenuation, if not above the limit
    MATCHING   CM_SLAC_MATCH.REQ to it until CM_SLAC_MATCH.CNF (TT_match_response, C_EV_match_retry)
    JOINING    CM_SET_KEY.REQ with the EVSE's NID/NMK to the EV's own modem until CM_SET_KEY.CNF
    MATCHED

A failed attempt starts again with a new RunID after TT_matching_rate, at most C_conn_max_match
attempts within TT_matching_repetition ([V2G3-A09-124], [V2G3-A09-125]); then FAILED.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from harness.slac import frames as f
from harness.slac.timing import STANDARD, SlacTimers

#: not a value of ISO 15118-3 (the criterion is the EV maker's): above this average attenuation
#: the EV does not consider an EVSE to be the one it is plugged into
DEFAULT_ATTENUATION_LIMIT_DB = 40.0


class EvState(enum.StrEnum):
    IDLE = "idle"
    PARM = "parm"
    SOUNDING = "sounding"
    MATCHING = "matching"
    JOINING = "joining"
    MATCHED = "matched"
    FAILED = "failed"


# -- outputs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    """Put this frame on the wire."""

    frame: bytes
    name: str
    dst: str
    run_id: bytes | None = None


@dataclass(frozen=True)
class Note:
    """Something the machine decided that belongs on the timeline (an ignored frame, a choice)."""

    name: str
    summary: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matched:
    run_id: bytes
    evse_mac: str
    nid: bytes
    nmk: bytes
    attenuation_db: float
    #: average attenuation of every EVSE that answered, by MAC
    candidates: dict[str, float]
    attempts: int


@dataclass(frozen=True)
class Failed:
    reason: str
    attempts: int
    #: why each attempt failed, first to last
    reasons: tuple[str, ...] = ()
    #: the last attempt ended waiting for an answer that did not come (not on a refusal or a measurement)
    unanswered: bool = False


Output = Union[Send, Note, Matched, Failed]


@dataclass(frozen=True)
class EvFaults:
    """Deliberate deviations, for testing how an EVSE copes (all off by default)."""

    #: these messages carry a RunID other than the one of CM_SLAC_PARM.REQ
    wrong_run_id_in: frozenset[str] = frozenset()
    #: seconds to wait between the choice of EVSE and CM_SLAC_MATCH.REQ
    match_delay: float = 0.0
    #: send no M-Sounds
    no_sounds: bool = False


# -- the table -----------------------------------------------------------------------------------

#: which message each state acts on, and the handler; anything else is ignored (with a Note)
ACCEPTS: dict[EvState, dict[str, str]] = {
    EvState.PARM: {"CM_SLAC_PARM.CNF": "_on_parm_cnf"},
    EvState.SOUNDING: {"CM_SLAC_PARM.CNF": "_on_parm_cnf", "CM_ATTEN_CHAR.IND": "_on_atten_char"},
    EvState.MATCHING: {"CM_ATTEN_CHAR.IND": "_on_atten_char", "CM_SLAC_MATCH.CNF": "_on_match_cnf"},
    EvState.JOINING: {"CM_SET_KEY.CNF": "_on_set_key_cnf"},
}

#: the timer bounding each state and the handler of its expiry
DEADLINES: dict[EvState, tuple[str, str]] = {
    EvState.PARM: ("TT_match_response", "_parm_unanswered"),
    EvState.SOUNDING: ("TT_EV_atten_results", "_atten_results_due"),
    EvState.MATCHING: ("TT_match_response", "_match_unanswered"),
    EvState.JOINING: ("set_key_response", "_set_key_unanswered"),
}


class EvSlac:
    def __init__(self, mac: str, *, timers: SlacTimers = STANDARD, modem_mac: str = f.QCA_LOCAL_MAC,
                 attenuation_limit_db: float = DEFAULT_ATTENUATION_LIMIT_DB, join: bool = True,
                 faults: EvFaults = EvFaults(), random: Callable[[int], bytes] = os.urandom) -> None:
        self.mac = mac.lower()
        self.timers = timers
        self.modem_mac = modem_mac
        self.attenuation_limit_db = attenuation_limit_db
        self.join = join
        self.faults = faults
        self._random = random
        self.state = EvState.IDLE
        self.run_id = b""
        self.attempts = 0
        self.result: Matched | Failed | None = None
        self._first_attempt_at = 0.0
        self._reasons: list[str] = []
        self._deadline: float | None = None
        self._retries = 0
        self._queue: list[tuple[float, Send]] = []  # batch messages (START_ATTEN_CHAR, sounds) not yet due
        self._candidates: dict[str, dict[str, Any]] = {}
        self._chosen: str | None = None
        self._restart_at: float | None = None
        self._match_at: float | None = None
        self._nid = self._nmk = b""

    # -- inputs -----------------------------------------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Begin matching (the EV saw CP state B with 5 % duty)."""
        if self.state not in (EvState.IDLE, EvState.FAILED, EvState.MATCHED):
            return [Note("SlacAlreadyRunning", f"matching already in {self.state}")]
        self.attempts = 0
        self.result = None
        self._reasons = []
        self._first_attempt_at = now
        return self._attempt(now)

    def receive(self, data: bytes, now: float) -> list[Output]:
        try:
            mme = f.parse(data)
        except f.FrameError as exc:
            return [Note("MalformedFrame", str(exc), {"frame": data.hex()})]
        if mme is None:
            return []
        if mme.dst not in (self.mac, f.BROADCAST):
            return []
        handler = ACCEPTS.get(self.state, {}).get(mme.name)
        if handler is None:
            return [Note("FrameIgnored", f"{mme.name} from {mme.src} ignored in state {self.state}",
                         {"mmtype": mme.mmtype, "src": mme.src})]
        return getattr(self, handler)(mme, now)

    def poll(self, now: float) -> list[Output]:
        """Everything due at ``now``: batch messages, expired timers, a pending restart."""
        out: list[Output] = []
        if self._restart_at is not None and now >= self._restart_at:
            self._restart_at = None
            out += self._attempt(now)
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.pop(0)[1])
        if self._match_at is not None and now >= self._match_at:
            self._match_at = None
            out += self._send_match(now)
        if self._deadline is not None and now >= self._deadline and self.state in DEADLINES:
            self._deadline = None
            out += getattr(self, DEADLINES[self.state][1])(now)
        return out

    def abort(self, reason: str) -> list[Output]:
        """Stop matching at once (CP left state B/C/D, the EV was unplugged), also between two
        attempts (a failed one, the next one waiting for TT_matching_rate)."""
        if self.state is EvState.IDLE and self._restart_at is not None:
            return self._fail(reason, final=True)
        if self.state in (EvState.IDLE, EvState.MATCHED, EvState.FAILED):
            self.state = EvState.IDLE
            return []
        return self._fail(reason, final=True)

    def leave(self) -> list[Output]:
        """Leave the logical network: a fresh random key on the EV's own modem ([V2G3-M09-17])."""
        nmk = self._random(16)
        self.state = EvState.IDLE
        self._reset_attempt()
        return [self._frame(f.set_key_req(f.nid_from_nmk(nmk), nmk), self.modem_mac)]

    @property
    def next_deadline(self) -> float | None:
        times = [t for t in (self._deadline, self._restart_at, self._match_at) if t is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    @property
    def done(self) -> bool:
        return self.state in (EvState.MATCHED, EvState.FAILED)

    # -- PARM ---------------------------------------------------------------------------------

    def _attempt(self, now: float) -> list[Output]:
        self._reset_attempt()
        self.attempts += 1
        self.run_id = self._random(8)
        self.state = EvState.PARM
        return [Note("MatchingStarted", f"attempt {self.attempts}, RunID {self.run_id.hex().upper()}",
                     {"attempt": self.attempts, "run_id": self.run_id}), self._send_parm(now)]

    def _send_parm(self, now: float) -> Send:
        self._deadline = now + self.timers.TT_match_response
        return self._frame(f.slac_parm_req(self.run_id), f.BROADCAST)

    def _on_parm_cnf(self, mme: f.Mme, now: float) -> list[Output]:
        problem = self._check_common(mme) or _differs("ForwardingSTA", mme.field("ForwardingSTA"), self.mac)
        if problem:
            return [Note("FrameIgnored", f"CM_SLAC_PARM.CNF from {mme.src} ignored: {problem}", {"src": mme.src})]
        first = not self._candidates
        self._candidates.setdefault(mme.src, {"profile": None})
        out: list[Output] = [Note("EvseAnswered", f"{mme.src} answered CM_SLAC_PARM.REQ",
                                  {"evse_mac": mme.src, "sounds": mme.field("NumberMSounds"),
                                   "timeout_field": mme.field("TimeOut")})]
        if first and self.state is EvState.PARM:
            out += self._start_sounding(now)
        return out

    def _parm_unanswered(self, now: float) -> list[Output]:
        if self._retries < self.timers.C_EV_match_retry:
            self._retries += 1
            return [Note("Retry", f"no CM_SLAC_PARM.CNF within TT_match_response, retry {self._retries}"),
                    self._send_parm(now)]
        return self._fail(f"no CM_SLAC_PARM.CNF after {self._retries + 1} CM_SLAC_PARM.REQ", now=now, unanswered=True)

    # -- SOUNDING -------------------------------------------------------------------------------

    def _start_sounding(self, now: float) -> list[Output]:
        self.state = EvState.SOUNDING
        self._retries = 0
        timers = self.timers
        self._deadline = now + timers.TT_EV_atten_results  # from the first CM_START_ATTEN_CHAR.IND
        gap = timers.TP_EV_batch_msg_interval
        start = f.start_atten_char_ind(self._run_id_for("CM_START_ATTEN_CHAR.IND"), self.mac,
                                       sounds=timers.C_EV_match_MNBC, timeout_field=timers.mnbc_timeout_field)
        at = now
        first = self._frame(start, f.BROADCAST)
        for _ in range(timers.C_EV_start_atten_char_inds - 1):
            at += gap
            self._queue.append((at, first))
        if not self.faults.no_sounds:
            for remaining in range(timers.C_EV_match_MNBC - 1, -1, -1):
                at += gap
                sound = f.mnbc_sound_ind(self._run_id_for("CM_MNBC_SOUND.IND"), remaining, self._random(16))
                self._queue.append((at, self._frame(sound, f.BROADCAST)))
        return [first]

    def _on_atten_char(self, mme: f.Mme, now: float) -> list[Output]:
        problem = self._check_common(mme) or _differs("SourceAdress", mme.field("SourceAdress"), self.mac)
        groups = f.groups_of(mme)
        if not problem and not groups:
            problem = "no attenuation groups"
        if problem:
            return [Note("FrameIgnored", f"CM_ATTEN_CHAR.IND from {mme.src} ignored: {problem}", {"src": mme.src})]
        attenuation = f.average_attenuation(groups)
        candidate = self._candidates.setdefault(mme.src, {"profile": None})
        candidate.update(profile=groups, attenuation=attenuation, sounds=mme.field("NumberOfSounds"))
        rsp = self._frame(f.atten_char_rsp(self.run_id, self.mac), mme.src)
        return [Note("Attenuation", f"{mme.src}: {attenuation:.1f} dB average over {len(groups)} groups, "
                                    f"{mme.field('NumberOfSounds')} sounds",
                     {"evse_mac": mme.src, "attenuation_db": attenuation, "sounds": mme.field("NumberOfSounds")}),
                rsp]

    def _atten_results_due(self, now: float) -> list[Output]:
        self._queue.clear()
        measured = {mac: c["attenuation"] for mac, c in self._candidates.items() if c.get("profile")}
        if not measured:
            return self._fail("no CM_ATTEN_CHAR.IND within TT_EV_atten_results", now=now, unanswered=True)
        mac = min(measured, key=measured.__getitem__)
        if measured[mac] > self.attenuation_limit_db:
            return self._fail(f"lowest attenuation {measured[mac]:.1f} dB (from {mac}) is above the limit of "
                              f"{self.attenuation_limit_db:g} dB", now=now)
        self._chosen = mac
        self.state = EvState.MATCHING
        out: list[Output] = [Note("EvseChosen", f"{mac} chosen at {measured[mac]:.1f} dB",
                                  {"evse_mac": mac, "candidates": measured})]
        if self.faults.match_delay > 0:
            self._match_at = now + self.faults.match_delay
            return out
        return out + self._send_match(now)

    # -- MATCHING -------------------------------------------------------------------------------

    def _send_match(self, now: float) -> list[Output]:
        assert self._chosen is not None
        self._deadline = now + self.timers.TT_match_response
        body = f.slac_match_req(self._run_id_for("CM_SLAC_MATCH.REQ"), self.mac, self._chosen)
        return [self._frame(body, self._chosen)]

    def _on_match_cnf(self, mme: f.Mme, now: float) -> list[Output]:
        var = mme.body.VariableField
        problem = (self._check_common(mme)
                   or (f"from {mme.src}, not the chosen EVSE {self._chosen}" if mme.src != self._chosen else "")
                   or _differs("EVMAC", var.EVMAC, self.mac) or _differs("EVSEMAC", var.EVSEMAC, self._chosen)
                   or ("NID has its two top bits set" if bytes(var.NetworkID)[6] & 0xC0 else ""))
        if problem:
            return [Note("FrameIgnored", f"CM_SLAC_MATCH.CNF from {mme.src} ignored: {problem}", {"src": mme.src})]
        self._nid, self._nmk = bytes(var.NetworkID), bytes(var.NMK)
        if not self.join:
            return self._matched()
        self.state = EvState.JOINING
        self._retries = 0
        self._deadline = now + self.timers.set_key_response
        return [Note("Joining", f"NID {self._nid.hex().upper()} from {mme.src}", {"nid": self._nid}),
                self._frame(f.set_key_req(self._nid, self._nmk), self.modem_mac)]

    def _match_unanswered(self, now: float) -> list[Output]:
        if self._retries < self.timers.C_EV_match_retry:
            self._retries += 1
            return [Note("Retry", f"no CM_SLAC_MATCH.CNF within TT_match_response, retry {self._retries}"),
                    *self._send_match(now)]
        return self._fail(f"no CM_SLAC_MATCH.CNF from {self._chosen} after {self._retries + 1} requests", now=now,
                          unanswered=True)

    # -- JOINING --------------------------------------------------------------------------------

    def _on_set_key_cnf(self, mme: f.Mme, now: float) -> list[Output]:
        if mme.field("Result") not in f.SET_KEY_SUCCESS:  # 0x00 by the HomePlug text, 0x01 from QCA firmware
            return self._fail(f"the EV's modem refused the key (CM_SET_KEY.CNF result {mme.field('Result')})",
                              final=True)
        return self._matched()

    def _set_key_unanswered(self, now: float) -> list[Output]:
        return self._fail(f"no CM_SET_KEY.CNF from the EV's modem within {self.timers.set_key_response:g} s",
                          final=True, unanswered=True)

    def _matched(self) -> list[Output]:
        assert self._chosen is not None
        measured = {mac: c["attenuation"] for mac, c in self._candidates.items() if c.get("profile")}
        self.state = EvState.MATCHED
        self._deadline = None
        self.result = Matched(run_id=self.run_id, evse_mac=self._chosen, nid=self._nid, nmk=self._nmk,
                              attenuation_db=measured[self._chosen], candidates=measured, attempts=self.attempts)
        return [self.result]

    # -- helpers --------------------------------------------------------------------------------

    def _fail(self, reason: str, *, now: float | None = None, final: bool = False,
              unanswered: bool = False) -> list[Output]:
        """End this attempt; start another after TT_matching_rate while attempts remain."""
        self._reset_attempt()
        self._reasons.append(reason)
        timers = self.timers
        if (not final and now is not None and self.attempts < timers.C_conn_max_match
                and now + timers.TT_matching_rate - self._first_attempt_at <= timers.TT_matching_repetition):
            self.state = EvState.IDLE
            self._restart_at = now + timers.TT_matching_rate
            return [Note("AttemptFailed", f"attempt {self.attempts}: {reason}; again in TT_matching_rate",
                         {"attempt": self.attempts, "reason": reason})]
        self.state = EvState.FAILED
        self.result = Failed(reason, self.attempts, tuple(self._reasons), unanswered=unanswered)
        return [self.result]

    def _reset_attempt(self) -> None:
        self._deadline = None
        self._restart_at = None
        self._match_at = None
        self._queue.clear()
        self._candidates = {}
        self._chosen = None
        self._retries = 0

    def _check_common(self, mme: f.Mme) -> str:
        if mme.field("ApplicationType") != 0 or mme.field("SecurityType") != 0:
            return "APPLICATION_TYPE/SECURITY_TYPE not 0x00"
        if mme.run_id != self.run_id:
            return f"RunID {mme.run_id.hex().upper() if mme.run_id else '-'} is not ours ({self.run_id.hex().upper()})"
        return ""

    def _run_id_for(self, message: str) -> bytes:
        if message in self.faults.wrong_run_id_in:
            return bytes(b ^ 0xFF for b in self.run_id)
        return self.run_id

    def _frame(self, body, dst: str) -> Send:
        name = f.MESSAGES[_code_of(body)][0]
        run_id = getattr(body, "RunID", None) if name != "CM_SLAC_MATCH.REQ" else body.VariableField.RunID
        return Send(f.build(body, dst=dst, src=self.mac), name, dst, bytes(run_id) if run_id else None)


def _code_of(body) -> int:
    for code, (_, layer) in f.MESSAGES.items():
        if type(body) is layer:
            return code
    raise KeyError(type(body).__name__)


def _differs(field_name: str, value: str, expected: str | None) -> str:
    return "" if str(value).lower() == str(expected).lower() else f"{field_name} {value} is not {expected}"
