"""The states a rig moves between, and the one object that moves it.

A case starts from :attr:`RigState.UNPLUGGED` (every role up, the EV unplugged, the CSMS on the
rig file's policy; after a restore also the charger registered again, while on the way up the
suites' ``evse`` fixture waits for its registration, so a charger that never comes stops the run
there in its own words) and may move on to PLUGGED (the EV's cable in, CP state
B) and LINK_UP (the EV matched the charger with SLAC where the link carries it). Restoring the rig
after a case is the transition back to UNPLUGGED; bringing it up and tearing it down are the
transitions out of and into OFF. Charging is not a state the strategy reaches: how energy starts
(remote start, a token, Plug & Charge, an ISO 15118 session) is what cases test, so they drive it.
"""

from __future__ import annotations

import enum
import traceback
from typing import TYPE_CHECKING

from harness.rig.role import Role
from harness.slac.ev import Failed
from harness.trace import Layer
from harness.verdicts import RigNotReady

if TYPE_CHECKING:
    from harness.rig.rig import Rig


class RigState(enum.IntEnum):
    OFF = 0
    UNPLUGGED = 1
    PLUGGED = 2
    LINK_UP = 3


class RigSetupError(RuntimeError):
    """A role could not be brought up; the rig was torn down again."""


class RigStrategy:
    """Moves the rig between :class:`RigState` s, one step at a time, and knows where it is."""

    def __init__(self, rig: "Rig") -> None:
        self.rig = rig
        self._state = RigState.OFF
        #: roles that came up, in order (teardown goes through these only)
        self.active: list[Role] = []
        #: what failed while a failed set-up was taken down again
        self.setup_teardown_failures: list[str] = []

    @property
    def state(self) -> RigState:
        """Where the rig is: where the strategy moved it, unless a case unplugged the EV since."""
        if self._state >= RigState.PLUGGED and not self.rig.ev.plugged:
            return RigState.UNPLUGGED
        return self._state

    def transition(self, target: RigState) -> list[str]:
        """Move the rig to ``target``. Going down (OFF) never raises and returns what failed;
        the other transitions raise what stops them. Restoring (UNPLUGGED from any state up) always
        runs in full: a case may have left the rig anywhere."""
        if target is RigState.OFF:
            return self._down()
        if self.state is RigState.OFF:
            self._up()
        elif target is RigState.UNPLUGGED or target < self.state:
            self._restore()
        if target >= RigState.PLUGGED and self.state < RigState.PLUGGED:
            self.rig.ev.plug_in()
            self._state = RigState.PLUGGED
        if target >= RigState.LINK_UP and self.state < RigState.LINK_UP:
            self._link_up()
        return []

    def _up(self) -> None:
        rig = self.rig
        role: Role | None = None
        try:
            for role in rig.roles:
                rig.run(role.activate(), timeout=60.0)
                self.active.append(role)
                rig.trace.emit(Layer.RIG, "RoleUp", f"{role.name} up", src="rig")
        except BaseException as exc:
            name = role.name if role is not None else "?"
            rig.trace.emit(Layer.RIG, "RigSetupFailed", f"{name} failed to come up: {exc!r}", src="rig",
                           payload={"traceback": traceback.format_exc()})
            self.setup_teardown_failures = self._down()
            if isinstance(exc, Exception):
                raise RigSetupError(f"rig {rig.config.name!r}: {name} failed to come up: {exc}") from exc
            raise
        self._state = RigState.UNPLUGGED

    def _link_up(self) -> None:
        """SLAC after the plug-in where the link carries it; a loopback link is up once plugged.
        A charger that does not match is the DUT's failure."""
        link = self.rig.link
        if link.slac:
            result = link.match()
            if isinstance(result, Failed):
                raise AssertionError(f"the link did not come up: SLAC failed: {result.reason}")
        self._state = RigState.LINK_UP

    def _restore(self) -> None:
        """Every role back to its rig-file state, the EVSE connected and registered again."""
        rig = self.rig
        rig.ev.restore()
        rig.csms.restore()
        rig.evse.restore()
        self._state = RigState.UNPLUGGED
        # the DUT must be there and answer, else the next case cannot run (RigNotReady stops the run)
        rig.evse.wait_registered(rig.config.evse.boot_timeout, expected=False)
        problem = rig.evse.unresponsive()
        if problem is not None:
            raise RigNotReady(f"the charger stopped answering calls: {problem}")
        rig.csms.clear_profiles_set()  # the limits a case set do not outlive it
        rig.meter.restore()

    def _down(self) -> list[str]:
        """Make every role that came up safe, then deactivate them in reverse order. Never raises:
        every failure is recorded and returned, and the remaining steps still run."""
        rig = self.rig
        failures: list[str] = []
        if rig.csms in self.active:
            # The CSMS listens with its configured policy first, whatever the last test did to it,
            # so the EVSE can deliver what it queued while the other roles are made safe.
            try:
                rig.run(rig.csms.ensure_listening(), timeout=30.0)
            except BaseException as exc:  # noqa: BLE001
                failures.append(f"csms.ensure_listening: {exc!r}")
        for step in ("make_safe", "deactivate"):
            for role in reversed(self.active):
                try:
                    rig.run(getattr(role, step)(), timeout=60.0)
                except BaseException as exc:  # noqa: BLE001 -- teardown must go on, even after Ctrl-C
                    failures.append(f"{role.name}.{step}: {exc!r}")
                    rig.trace.emit(Layer.RIG, "TeardownFailed", f"{role.name}.{step} failed: {exc!r}", src="rig",
                                   payload={"traceback": traceback.format_exc()})
        self.active.clear()
        self._state = RigState.OFF
        return failures
