"""The EVSE side of SLAC, played by pyslac (an independent implementation of ISO 15118-3).

pyslac's ``SlacEvseSession`` runs the EVSE's part of the matching and ``SlacSessionController``
starts it on CP state B/C/D and cancels it on A/E/F. :class:`PyslacEvse` wraps both so a rig uses
them like any other part of the reference EVSE:

- sockets are opened by the harness, inside the EVSE's network namespace (pyslac opens its
  AF_PACKET socket, ETH_P_ALL with a BPF filter for 0x88E1, in its constructor and again before
  each CM_SLAC_PARM.REQ; both go through :meth:`_HarnessSession.reset_socket` here);
- the pilot drives it: CP state changes go to the controller, and the EVSE applies 5 % duty on
  state B, as ISO 15118-3 asks of an EVSE offering high-level communication;
- timers follow the rig's scale: pyslac reads its ``Timers`` enum and the CM_SET_KEY settle time
  from module globals, which :func:`_scale_pyslac` replaces for the process (pyslac has no
  per-session setting for them);
- each step (and its result) goes on the timeline as layer ``slac`` with observer ``evse``;
- a running match is cancelled until it has ended (:func:`cancel_until_done`, which also replaces
  pyslac's ``cancel_task``): pyslac reads every frame through ``asyncio.wait_for``, which on
  Python 3.11 drops a cancellation that arrives together with a frame (CPython gh-86296, fixed in
  3.12). A single cancel during the sounds was then lost, the unplug never finished and the EVSE
  ignored every later plug-in.

pyslac needs environs<10 and so marshmallow<4 (pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import logging
import types
from dataclasses import dataclass
from typing import Any, Callable

from harness.iec61851.pilot import DIGITAL_COMMUNICATION, NO_PWM, CpState, PilotLine
from harness.netns import ETH_P_ALL, packet_socket
from harness.slac import frames as f
from harness.slac.timing import STANDARD, SlacTimers, scale_timer
from harness.trace import Layer, Recorder

# pyslac calls logging.basicConfig(level=DEBUG) at import, which would make every library in the
# process log at DEBUG; the root logger is put back as it was, and pyslac's own loggers keep only
# errors (the timeline is the record of what it does).
_root = logging.getLogger()
_root_state = (_root.level, list(_root.handlers))
from pyslac import enums as _pyslac_enums  # noqa: E402
from pyslac import session as _pyslac_session  # noqa: E402
from pyslac.environment import Config as _PyslacConfig  # noqa: E402

_root.setLevel(_root_state[0])
for _handler in [h for h in _root.handlers if h not in _root_state[1]]:
    _root.removeHandler(_handler)
for _name in ("slac_session", "async_linux_socket", "slac_utils", "pyslac"):
    logging.getLogger(_name).setLevel(logging.ERROR)

async def cancel_until_done(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait for its end, cancelling again while it runs on (a cancellation
    swallowed by ``asyncio.wait_for`` on Python 3.11 is followed by another)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    if not task.cancelled():
        task.exception()  # retrieved: an error of the ended match is not reported as never retrieved


_pyslac_session.cancel_task = cancel_until_done

_STANDARD_PYSLAC_TIMERS = {member.name: float(member.value) for member in _pyslac_enums.Timers}


def _scale_pyslac(timers: SlacTimers) -> None:
    """pyslac's timers for this process: the enum replaced by scaled plain values (its timers
    are all timeouts: they keep the floor of :func:`harness.slac.timing.scale_timer`)."""
    values = {name: scale_timer(f"TT_{name}", value, timers.scale, timers.min_timeout)
              for name, value in _STANDARD_PYSLAC_TIMERS.items()}
    _pyslac_session.Timers = types.SimpleNamespace(**values)
    # the pause after CM_SET_KEY.CNF is a QCA habit of 10 s, not ISO 15118-3: keep it short
    _pyslac_session.SLAC_SETTLE_TIME = min(_pyslac_enums.SLAC_SETTLE_TIME, 2.0) * timers.scale


@dataclass(frozen=True)
class EvseMatch:
    ev_mac: str
    nid: bytes
    nmk: bytes
    run_id: bytes


class _HarnessSession(_pyslac_session.SlacEvseSession):
    """pyslac's EVSE session with the socket opened by the harness (namespace-aware)."""

    def __init__(self, owner: "PyslacEvse") -> None:  # noqa: D401 - replaces pyslac's constructor
        self.owner = owner
        self.iface = owner.endpoint.iface
        self.evse_id = owner.evse_id
        self.config = owner.config
        self.socket, mac = packet_socket(self.iface, ETH_P_ALL, netns=owner.endpoint.netns)
        self.socket.close()  # pyslac attaches its own filter: reopen through reset_socket
        self.evse_plc_mac = bytes.fromhex(f.QCA_LOCAL_MAC.replace(":", ""))
        _pyslac_session.SlacSession.__init__(self, state=_pyslac_enums.STATE_UNMATCHED,
                                             evse_mac=bytes.fromhex(mac.replace(":", "")))
        self.socket = self._open()

    def _open(self):
        namespace = self.owner.endpoint.netns
        if namespace is None:
            return _pyslac_session.create_socket(iface=self.iface, port=0)
        return namespace.call(_pyslac_session.create_socket, self.iface, 0)

    def reset_socket(self) -> None:
        self.socket.close()
        self.socket = self._open()

    async def evse_set_key(self) -> bytes:
        confirmation = await super().evse_set_key()
        # pyslac does not read RESULT; a modem's 0x00 (HomePlug text) and 0x01 (QCA firmware) both
        # mean the key is set, anything else is a refusal
        # RESULT is the first octet after the MME header
        result = confirmation[f.HEADER_LENGTH] if len(confirmation) > f.HEADER_LENGTH else None
        if result not in f.SET_KEY_SUCCESS:
            self.owner.record("KeyRefused", f"the EVSE's modem refused the key (CM_SET_KEY.CNF RESULT "
                               f"{'missing' if result is None else f'0x{result:02X}'})", result=result)
            raise ValueError(f"the EVSE's modem refused CM_SET_KEY.REQ (RESULT {result})")
        self.owner.record("KeySet", f"EVSE network NID {self.nid.hex().upper()} (CM_SET_KEY.CNF RESULT "
                           f"0x{result:02X})", nid=self.nid, result=result)
        return confirmation

    async def evse_slac_parm(self) -> None:
        await super().evse_slac_parm()
        self.owner.record("CM_SLAC_PARM.REQ", f"matching requested by {_mac(self.pev_mac)}, "
                           f"RunID {self.run_id.hex().upper()}", ev_mac=_mac(self.pev_mac), run_id=self.run_id)

    async def cm_atten_char(self) -> None:
        await super().cm_atten_char()
        self.owner.record("Attenuation", f"{self.num_total_sounds} sounds from {_mac(self.pev_mac)}, "
                           f"{sum(self.aag) / max(1, len(self.aag)):.1f} dB average",
                           sounds=self.num_total_sounds, aag=list(self.aag))

    async def cm_slac_match(self) -> None:
        await super().cm_slac_match()
        match = EvseMatch(_mac(self.pev_mac), self.nid, self.nmk, self.run_id)
        self.owner.match = match
        self.owner.record("SlacMatched", f"matched EV {match.ev_mac}, NID {self.nid.hex().upper()}",
                           ev_mac=match.ev_mac, nid=self.nid, run_id=self.run_id)
        self.owner.matched.set()


class _Controller(_pyslac_session.SlacSessionController):
    def __init__(self, owner: "PyslacEvse") -> None:  # pyslac's constructor only logs a banner
        self.owner = owner

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        self.owner.record("MatchingOngoing", "matching in progress")

    async def notify_matching_failed(self, evse_id: str) -> None:
        self.owner.failed("pyslac gave up after its retries")


class PyslacEvse:
    """One EVSE's SLAC on an endpoint, driven by a pilot (or by :meth:`cp_state` directly)."""

    def __init__(self, recorder: Recorder, endpoint, *, timers: SlacTimers = STANDARD, evse_id: str = "1",
                 name: str = "evse", apply_digital_duty: bool = True,
                 on_failed: Callable[[str], None] | None = None) -> None:
        self.recorder = recorder
        #: told when matching failed for good (the EVSE reports it: harness.ocpp.iso15118_failures)
        self.on_failed = on_failed
        self.endpoint = endpoint  # harness.slac.io.Endpoint
        self.timers = timers
        self.evse_id = evse_id
        self.name = name
        self.apply_digital_duty = apply_digital_duty
        self.config = _PyslacConfig(slac_init_timeout=timers.TT_EVSE_SLAC_init,
                                    # whole ms, for the sounds window pyslac waits (TT_EVSE_match_MNBC)
                                    slac_atten_results_timeout=max(1, round(timers.TT_EVSE_match_MNBC * 1000)))
        self.session: _HarnessSession | None = None
        self.controller: _Controller | None = None
        self.match: EvseMatch | None = None
        self.matched = asyncio.Event()
        self._pilot: PilotLine | None = None
        self._pending: set[asyncio.Task] = set()
        # CP changes are handled one after the other: pyslac's controller awaits the cancellation
        # of a running match on A, and a B right behind it must see the result
        self._cp_lock = asyncio.Lock()
        self._duty_keeper: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        #: this plug-in's failure was reported (once per plug-in)
        self._failure_reported = False

    @property
    def mac(self) -> str:
        assert self.session is not None
        return _mac(self.session.evse_mac)

    async def start(self, pilot: PilotLine | None = None) -> None:
        """Open the session, give the EVSE's modem a fresh network key, follow the pilot."""
        _scale_pyslac(self.timers)
        self.session = _HarnessSession(self)
        self.controller = _Controller(self)
        await self.session.evse_set_key()
        if pilot is not None:
            self._pilot = pilot
            pilot.on_state_change(self._on_cp)
            if pilot.state is not CpState.A:
                self._on_cp(CpState.A, pilot.state)

    async def stop(self) -> None:
        if self._pilot is not None:
            self._pilot.remove_state_listener(self._on_cp)
            self._pilot = None
        for task in (self._duty_keeper, self._watchdog):
            if task is not None:
                task.cancel()
        for task in list(self._pending):
            task.cancel()
        if self.session is not None:
            task = self.session.matching_process_task
            if task is not None:
                await cancel_until_done(task)
            self.session.socket.close()
        await asyncio.gather(*self._pending, return_exceptions=True)

    def _on_cp(self, old: CpState, new: CpState) -> None:
        task = asyncio.get_running_loop().create_task(self.cp_state(new))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def cp_state(self, state: CpState) -> None:
        """Tell the controller the CP state (what pilot hardware would report)."""
        async with self._cp_lock:
            await self._cp_state(state)

    async def _cp_state(self, state: CpState) -> None:
        assert self.session is not None and self.controller is not None
        if state in (CpState.A, CpState.E, CpState.F):
            self.matched.clear()
            self.match = None
            self._failure_reported = False
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
        elif self.on_failed is not None and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_match())
        if state is CpState.B and self.apply_digital_duty and self._pilot is not None:
            await self._pilot.set_duty(DIGITAL_COMMUNICATION)
            if self._duty_keeper is None or self._duty_keeper.done():
                self._duty_keeper = asyncio.get_running_loop().create_task(self._keep_digital_duty(self._pilot))
        elif state in (CpState.A, CpState.E, CpState.F) and self._duty_keeper is not None:
            self._duty_keeper.cancel()
            self._duty_keeper = None
        self.record("CpState", f"CP state {state}: matching "
                     f"{'may start' if state in (CpState.B, CpState.C, CpState.D) else 'stops'}")
        await self.controller.process_cp_state(self.session, state.value)

    async def _watch_match(self) -> None:
        """A plugged-in EV that has not matched by the time a conforming one would have given up
        (TT_EVSE_SLAC_init for its first CM_SLAC_PARM.REQ, then TT_matching_repetition for its
        attempts) has failed SLAC. pyslac reports a failure only in some of the ways it happens
        (not when the EV's CM_SLAC_MATCH.REQ never comes), so the harness watches the time itself."""
        allowed = self.timers.TT_EVSE_SLAC_init + self.timers.TT_matching_repetition
        try:
            async with asyncio.timeout(allowed):
                await self.matched.wait()
        except TimeoutError:
            self.failed(f"no match within {allowed:g} s of the EV's plug-in (TT_EVSE_SLAC_init + "
                        f"TT_matching_repetition)")

    def failed(self, why: str) -> None:
        """Matching failed for this plug-in: on the timeline, and reported once."""
        if self._failure_reported or self.matched.is_set():
            return
        self._failure_reported = True
        self.record("SlacFailed", f"matching failed: {why}", reason=why)
        if self.on_failed is not None:
            self.on_failed(f"SLAC matching failed: {why}")

    async def _keep_digital_duty(self, pilot: PilotLine) -> None:
        """While the EV is plugged in and nothing else offers a current, the EVSE keeps 5 %: other
        parts of the EVSE (the reference EVSE drops the PWM when a cable leaves) handle their CP
        events in tasks of their own and may act on an older event after this one."""
        while pilot.state in (CpState.B, CpState.C, CpState.D):
            if pilot.duty == NO_PWM:
                await pilot.set_duty(DIGITAL_COMMUNICATION)
            await asyncio.sleep(0.02)

    async def wait_matched(self, timeout: float) -> EvseMatch:
        async with asyncio.timeout(timeout):
            await self.matched.wait()
        assert self.match is not None
        return self.match

    def record(self, name: str, summary: str, **payload: Any) -> None:
        keys = {"evse_mac": self.mac if self.session else None}
        if "run_id" in payload:
            keys["run_id"] = payload["run_id"].hex().upper()
        if "ev_mac" in payload:
            keys["ev_mac"] = payload["ev_mac"]
        self.recorder.emit(Layer.SLAC, name, summary, src=self.name, observer=self.name, payload=payload or None,
                           keys=keys)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)

