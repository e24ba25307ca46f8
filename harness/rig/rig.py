"""A rig in use: its roles, built from the rig file through the driver registry, moved between
states by its strategy, always torn down in reverse order.

Set-up order (:data:`harness.rig.drivers.ROLES`): CSMS (the EVSE connects to it), link
(namespaces, modems, captures), EVSE, pilot (the EVSE's connector line), meter (it measures the
EVSE's cable), EV. Teardown first makes every role safe (EV unplugged, integration stopped and the
instrument local, transactions stopped, contactors open), then deactivates them in reverse order,
then stops the event loop and flushes the timeline, whatever failed before, including Ctrl-C.
A lab rig is locked for the whole time it is up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Coroutine, TypeVar

from harness.ocpp.timing import OcppTimers
from harness.rig import drivers
from harness.rig.config import RigConfig
from harness.rig.csms import CsmsRole
from harness.rig.ev import EvRole
from harness.rig.evse import EvseRole
from harness.rig.link import LinkRole
from harness.rig.lock import RigLock, default_lock_path
from harness.rig.loop import LoopThread
from harness.rig.meter import MeterRole
from harness.rig.operator import operator_for
from harness.rig.pilot import PilotRole
from harness.rig.role import Role
from harness.rig.strategy import RigSetupError, RigState, RigStrategy
from harness.trace import Layer, Recorder

__all__ = ["Rig", "RigSetupError", "RigState"]

T = TypeVar("T")


class Rig:
    def __init__(self, config: RigConfig, *, run_dir: Path, trace: Recorder, run_id: str = "") -> None:
        self.config = config
        self.run_dir = run_dir
        self.trace = trace
        self.run_id = run_id
        self.timers = OcppTimers().scaled(config.time_scale) if config.time_scale != 1.0 else OcppTimers()
        self.loop = LoopThread(f"rig {config.name}")
        self.csms = CsmsRole(self, self._driver("csms"))
        self.link = LinkRole(self, self._driver("link"))
        self.evse = EvseRole(self, self._driver("evse"))
        self.pilot = PilotRole(self, self._driver("pilot"))
        self.meter = MeterRole(self, self._driver("meter"))
        self.ev = EvRole(self, self._driver("ev"))
        #: the hands at a lab bench (harness.rig.operator): plug in, unplug, present a token
        self.operator = operator_for(config.operator, trace, config.evse.station_id)
        #: the roles in set-up order
        self.roles: list[Role] = [getattr(self, name) for name in drivers.ROLES]
        self.strategy = RigStrategy(self)
        self._lock: RigLock | None = None

    def _driver(self, role: str) -> type[Any]:
        return drivers.driver_class(role, getattr(self.config, role).kind)

    @property
    def up(self) -> bool:
        return self.strategy.state is not RigState.OFF

    def scaled(self, seconds: float) -> float:
        """A standard's duration on this rig (emulated rigs may shrink time)."""
        return seconds * self.config.time_scale

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the rig's loop from a test (synchronous) and return its result."""
        return self.loop.run(coroutine, timeout)

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> "Rig":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.config.is_lab:
            self._lock = RigLock(self.config.lock or default_lock_path(self.config.name), self.config.name,
                                 self.run_id)
            self._lock.acquire()  # RigBusy names the holder
        self.trace.emit(Layer.RIG, "RigSetup", f"setting up rig {self.config.name!r} ({self.config.kind})",
                        src="rig", payload={"rig": self.config.name, "kind": self.config.kind,
                                            "file": str(self.config.path) if self.config.path else None,
                                            "time_scale": self.config.time_scale})
        self.loop.start()
        try:
            self.strategy.transition(RigState.UNPLUGGED)
        except BaseException:
            self._stopped(self.strategy.setup_teardown_failures)
            raise
        return self

    def teardown(self) -> list[str]:
        """Make every role safe, deactivate in reverse order, stop the loop, flush the trace.

        Never raises: every failure is recorded and returned, and the remaining steps still run.
        Tearing down a rig that is not up does nothing.
        """
        if not self.up and not self.loop.running and self._lock is None:
            return []
        return self._stopped(self.strategy.transition(RigState.OFF))

    def _stopped(self, failures: list[str]) -> list[str]:
        self.loop.stop()
        self.trace.emit(Layer.RIG, "RigTeardown", f"rig {self.config.name!r} torn down"
                        + (f" with {len(failures)} problem(s)" if failures else ""), src="rig",
                        payload={"failures": failures})
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        return failures

    def restore(self) -> None:
        """Between test cases: every role back to its rig-file state, the EVSE connected and
        registered again, so each case starts from the same place."""
        self.strategy.transition(RigState.UNPLUGGED)

    def __enter__(self) -> "Rig":
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()
