"""A rig in use: its roles set up in order and always torn down in reverse order.

Set-up order: CSMS (the EVSE connects to it), link (namespaces, modems, captures), EVSE, meter (it
measures the EVSE's cable), EV. Teardown first makes every role safe (EV unplugged, integration
stopped and the instrument local, transactions stopped, contactors open), then deactivates them in
reverse order,
then stops the event loop and flushes the timeline, whatever failed before, including Ctrl-C.
A lab rig is locked for the whole time it is up.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Coroutine, TypeVar

from harness.ocpp.timing import OcppTimers
from harness.rig.config import RigConfig
from harness.rig.link import LinkRole
from harness.rig.lock import RigLock, default_lock_path
from harness.rig.loop import LoopThread
from harness.rig.meter import MeterRole
from harness.rig.operator import operator_for
from harness.rig.roles import CsmsRole, EvRole, EvseRole, Role
from harness.trace import Layer, Recorder

T = TypeVar("T")


class RigSetupError(RuntimeError):
    """A role could not be brought up; the rig was torn down again."""


class Rig:
    def __init__(self, config: RigConfig, *, run_dir: Path, trace: Recorder, run_id: str = "") -> None:
        self.config = config
        self.run_dir = run_dir
        self.trace = trace
        self.run_id = run_id
        self.timers = OcppTimers().scaled(config.time_scale) if config.time_scale != 1.0 else OcppTimers()
        self.loop = LoopThread(f"rig {config.name}")
        self.csms = CsmsRole(self)
        self.link = LinkRole(self)
        self.evse = EvseRole(self)
        self.ev = EvRole(self)
        self.meter = MeterRole(self)
        #: the hands at a lab bench (harness.rig.operator): plug in, unplug, present a token
        self.operator = operator_for(config.operator, trace, config.evse.station_id)
        self.roles: list[Role] = [self.csms, self.link, self.evse, self.meter, self.ev]
        self._active: list[Role] = []
        self._lock: RigLock | None = None
        self.up = False

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
            for role in self.roles:
                self.run(role.activate(), timeout=60.0)
                self._active.append(role)
                self.trace.emit(Layer.RIG, "RoleUp", f"{role.name} up", src="rig")
        except BaseException as exc:
            self.trace.emit(Layer.RIG, "RigSetupFailed", f"{role.name} failed to come up: {exc!r}", src="rig",
                            payload={"traceback": traceback.format_exc()})
            self.teardown()
            if isinstance(exc, Exception):
                raise RigSetupError(f"rig {self.config.name!r}: {role.name} failed to come up: {exc}") from exc
            raise
        self.up = True
        return self

    def teardown(self) -> list[str]:
        """Make every role safe, deactivate in reverse order, stop the loop, flush the trace.

        Never raises: every failure is recorded and returned, and the remaining steps still run.
        Tearing down a rig that is not up does nothing.
        """
        if not self._active and not self.loop.running and self._lock is None:
            return []
        failures: list[str] = []
        if self.csms in self._active:
            # The CSMS listens with its configured policy first, whatever the last test did to it,
            # so the EVSE can deliver what it queued while the other roles are made safe.
            try:
                self.run(self.csms.ensure_listening(), timeout=30.0)
            except BaseException as exc:  # noqa: BLE001
                failures.append(f"csms.ensure_listening: {exc!r}")
        for step in ("make_safe", "deactivate"):
            for role in reversed(self._active):
                try:
                    self.run(getattr(role, step)(), timeout=60.0)
                except BaseException as exc:  # noqa: BLE001 -- teardown must go on, even after Ctrl-C
                    failures.append(f"{role.name}.{step}: {exc!r}")
                    self.trace.emit(Layer.RIG, "TeardownFailed", f"{role.name}.{step} failed: {exc!r}", src="rig",
                                    payload={"traceback": traceback.format_exc()})
        self._active.clear()
        self.loop.stop()
        self.trace.emit(Layer.RIG, "RigTeardown", f"rig {self.config.name!r} torn down"
                        + (f" with {len(failures)} problem(s)" if failures else ""), src="rig",
                        payload={"failures": failures})
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.up = False
        return failures

    def restore(self) -> None:
        """Between test cases: every role back to its rig-file state, the EVSE connected and
        registered again, so each case starts from the same place."""
        self.ev.restore()
        self.csms.restore()
        self.evse.restore()
        # the DUT must be there and answer, else the next case cannot run (RigNotReady stops the run)
        self.evse.wait_registered(self.config.evse.boot_timeout, expected=False)
        problem = self.evse.unresponsive()
        if problem is not None:
            from harness.verdicts import RigNotReady

            raise RigNotReady(f"the charger stopped answering calls: {problem}")
        self.meter.restore()

    def __enter__(self) -> "Rig":
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()
