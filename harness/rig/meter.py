"""The meter role: the power analyzer between EVSE and EV, as the suites see it.

``meter: {kind: visa, resource, model}`` drives a lab instrument (:class:`VisaMeter`); ``kind:
simulated`` (:class:`SimulatedMeter`) starts the simulated analyzer on a local TCP port, measuring
the reference EVSE's cable (the same one the EV emulator draws from), and reaches it through
pyvisa-py like a LAN instrument; ``kind: none`` (:class:`NoMeter`) has none. Either way the
suites get the same role: read it, measure a stretch of a test (integrator reset and started,
background samples on the timeline), plot it.

The role comes up after the EVSE (whose power flow a simulated analyzer measures) and is made safe
before it: sampler stopped, integration stopped, instrument back to local. If the connection
broke, teardown reconnects once to do that; what cannot be done is recorded and teardown goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from harness.emulators.analyzer import MODEL_DIALECTS, SimulatedAnalyzer, constant_flow, flow_from
from harness.emulators.analyzer_server import AnalyzerServer
from harness.power.analyzer import Identity, InstrumentError, IntegrationState, Measurement, PowerAnalyzer, Wiring
from harness.power.models import open_analyzer
from harness.power.plot import power_plot
from harness.power.sampler import MeterRun, MeterSampler, read
from harness.rig import check
from harness.rig.check import ProbeResult
from harness.rig.config import RigConfig
from harness.rig.role import Driver, Role, RoleUnavailable
from harness.trace import Layer

if TYPE_CHECKING:
    from harness.rig.rig import Rig

DEFAULT_SIMULATED_MODEL = "yokogawa-wt1800"
#: correlation keys of meter events: the analyzer is on EVSE 1's cable
KEYS = {"evse_id": 1}


class MeterRole(Role):
    name = "meter"
    driver: "MeterDriver"

    def __init__(self, rig: "Rig", driver: type["MeterDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.meter
        self.kind = self.config.kind
        self.analyzer: PowerAnalyzer | None = None
        self.identity: Identity | None = None
        self.driver = driver(self)
        self.sampler: MeterSampler | None = None
        self.run_in_progress: MeterRun | None = None
        self._lock = threading.RLock()

    @property
    def present(self) -> bool:
        return self.driver.present

    @property
    def server(self) -> AnalyzerServer | None:
        """The simulated analyzer's server (harness tests only; suites never touch it)."""
        return self.driver.server

    @property
    def model(self) -> str:
        return self.config.model or DEFAULT_SIMULATED_MODEL

    @property
    def resource(self) -> str:
        return self.driver.resource()

    @property
    def wiring(self) -> Wiring:
        return Wiring.AC3 if self.rig.config.evse.phases == 3 else Wiring.AC1

    # -- lifecycle ------------------------------------------------------------------------

    async def activate(self) -> None:
        await self.driver.activate()
        if self.present:
            await asyncio.to_thread(self.connect)

    def connect(self) -> None:
        """Open the driver, identify the instrument and configure its wiring (blocking)."""
        with self._lock:
            base = self.rig.config.path.parent if self.rig.config.path else None
            analyzer = open_analyzer(self.resource, self.model, base=base, clock=self.rig.trace.now)
            try:
                self.identity = analyzer.identify()
                # an instrument still integrating (left so by a broken run) refuses new settings
                if analyzer.integration_state() is IntegrationState.RUNNING:
                    analyzer.stop_integration()
                analyzer.configure(self.wiring)
            except BaseException:
                analyzer.close()
                raise
            self.analyzer = analyzer
            self.record("MeterConnected", f"{analyzer.name}: {self.identity}, wiring {self.wiring.value}",
                         identity=str(self.identity), resource=self.resource, model=self.model)

    async def make_safe(self) -> None:
        if self.present:
            await asyncio.to_thread(self._make_safe)
        await self.driver.make_safe()

    def _make_safe(self, local: bool = True) -> None:
        """Sampler stopped, integration stopped and (``local``) the front panel handed back;
        reconnects once if the connection broke."""
        with self._lock:
            self._stop_sampler()
            self.run_in_progress = None
            problem = None
            for attempt in ("as connected", "after reconnecting"):
                try:
                    if self.analyzer is None:
                        self.connect()
                    assert self.analyzer is not None
                    if local:
                        self.analyzer.make_safe()
                        self.record("MeterSafe", f"{self.analyzer.name}: integration stopped, instrument local "
                                     f"({attempt})")
                    else:
                        if self.analyzer.integration_state() is IntegrationState.RUNNING:
                            self.analyzer.stop_integration()
                        if attempt != "as connected":
                            self.record("MeterRestored", f"{self.analyzer.name}: reconnected, integration stopped")
                    return
                except InstrumentError as exc:
                    problem = exc
                    self._drop()
            raise InstrumentError(self.model, None, f"could not be made safe: {problem}")

    async def deactivate(self) -> None:
        await asyncio.to_thread(self._drop)
        await self.driver.deactivate()

    def _drop(self) -> None:
        if self.analyzer is not None:
            self.analyzer.close()
            self.analyzer = None

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None

    def restore(self) -> None:
        """Between test cases: no sampler, integration stopped, connected again if a test broke
        the connection."""
        if self.present:
            self._make_safe(local=False)  # stays remote: the next case measures again

    # -- what tests do -------------------------------------------------------------------

    def _need(self) -> PowerAnalyzer:
        if not self.present:
            raise RoleUnavailable("this rig has no power analyzer")
        if self.sampler is not None:
            self.sampler.raise_error()
        if self.analyzer is None:
            raise InstrumentError(self.model, None, f"not connected ({self.resource})")
        return self.analyzer

    def read(self) -> Measurement:
        """One reading now, also recorded on the timeline."""
        return read(self.rig.trace, self._need(), keys=KEYS)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[MeterRun]:
        """Integrator reset and started, background samples on the timeline; on a normal exit the
        integrator is stopped and the final reading taken (after an exception only the sampler
        stops here; the rig's restore stops the integrator). An instrument failure inside (in the
        sampler or a call) is raised here, after the evidence is on the timeline."""
        analyzer = self._need()
        analyzer.reset_integration()
        analyzer.start_integration()
        started = self.rig.trace.now()
        first = read(self.rig.trace, analyzer, "MeterRunStarted", KEYS)
        run = MeterRun(self.rig.trace, started, first=first, instrument=analyzer.name,
                       accuracy=self.config.accuracy)
        self.run_in_progress = run
        self.sampler = MeterSampler(analyzer, self.rig.trace, self.config.sample_period, keys=KEYS)
        self.sampler.start()
        try:
            yield run
        finally:
            sampler, self.sampler = self.sampler, None
            if sampler is not None:
                sampler.stop()
            self.run_in_progress = None
        if sampler is not None:
            sampler.raise_error()
        last = read(self.rig.trace, analyzer, "MeterRunEnded", KEYS)
        analyzer.stop_integration()
        run.last = last
        run.ended = self.rig.trace.now()
        self.rig.trace.emit(Layer.METER, "MeterRun", f"measured {run.imported_wh:.4f} Wh imported, "
                            f"{run.exported_wh:.4f} Wh exported in {run.ended - run.started:.2f} s", src="meter",
                            observer="meter", payload={"imported_wh": run.imported_wh, "exported_wh": run.exported_wh,
                                                       "samples": len(run.samples())})

    def wait_power(self, predicate, *, timeout: float, since: float | None = None):
        """The first meter sample (an Event) whose power in W satisfies ``predicate``."""
        self._need()
        return self.rig.trace.wait_for(timeout, layer=Layer.METER, name="MeterSample", since=since,
                                       where=lambda e: bool(predicate(e.payload["power_w"])))

    def plot(self, run: MeterRun, name: str, *, title: str = "") -> Path:
        """A PNG of power over the run with limits and setpoints, in the report folder's plots/."""
        config = self.rig.config.evse
        path = self.rig.run_dir / "plots" / f"{name}.png"
        return power_plot(self.rig.trace, path, since=run.started, until=run.ended, title=title,
                          voltage=config.voltage, phases=config.phases, station_id=config.station_id)


class MeterDriver(Driver):
    """What differs between kinds of meter: where the instrument is."""

    present = True
    server: AnalyzerServer | None = None

    def resource(self) -> str:
        return self.role.config.resource or ""


class NoMeter(MeterDriver):
    """``meter: {kind: none}``."""

    present = False


class VisaMeter(MeterDriver):
    """``meter: {kind: visa, resource, model}``: a lab analyzer at its VISA resource."""

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        yield check.meter_model(config)
        if config.meter.resource:
            yield check.instrument(config.meter.resource)


class SimulatedMeter(MeterDriver):
    """``meter: {kind: simulated}``: the simulated analyzer on a local TCP port, measuring the
    reference EVSE's cable (a constant load where there is none)."""

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        model = config.meter.model or DEFAULT_SIMULATED_MODEL
        ok = model in MODEL_DIALECTS
        yield ProbeResult(f"meter model {model}", ok,
                          "simulated" if ok else f"cannot be simulated ({', '.join(MODEL_DIALECTS)})")

    async def activate(self) -> None:
        model, config = self.role.model, self.role.config
        if model not in MODEL_DIALECTS:
            raise ValueError(f"meter.model {model!r} cannot be simulated (simulated: {', '.join(MODEL_DIALECTS)})")
        try:
            self.rig.evse.connector(1)
            # the cable is looked up at each reading: a reset of the reference EVSE makes new connectors
            source = lambda: flow_from(self.rig.evse.connector(1).line)()  # noqa: E731
        except RoleUnavailable:  # a real charger's cable: nothing to follow, a constant load
            source = constant_flow()
        analyzer = SimulatedAnalyzer(source, dialect=MODEL_DIALECTS[model], model=model,
                                     accuracy=config.accuracy, noise=config.noise,
                                     update_interval=min(0.1, config.sample_period / 2))
        self.server = await AnalyzerServer(analyzer).start()
        self.record("SimulatedAnalyzer", f"simulated {model} listening on {self.server.resource} "
                    f"(gain error {analyzer.gain_error * 100:+.4f} %)", resource=self.server.resource,
                    gain_error_percent=analyzer.gain_error * 100)

    async def deactivate(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def resource(self) -> str:
        if self.server is None:
            raise RuntimeError("the simulated analyzer is not running")
        return self.server.resource
