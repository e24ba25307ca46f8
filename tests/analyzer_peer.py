"""The simulated analyzer on a real TCP port, served from a loop thread like the rig does: the peer
of the analyzer drivers' tests (tests/power) and of the simulator's own (tests/emulators), whose
conftest files take these fixtures from here."""

from __future__ import annotations

import pytest

from harness.emulators.analyzer import SimulatedAnalyzer, flow_from
from harness.emulators.analyzer_server import AnalyzerServer
from harness.emulators.power import PowerFlow
from harness.rig.loop import LoopThread


@pytest.fixture
def loop():
    thread = LoopThread("analyzer test loop")
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def line():
    """A three-phase cable carrying 16 A at 230 V into the EV."""
    flow = PowerFlow(voltage=230.0, phases=3)
    flow.set(current=16.0, contactor_closed=True)
    return flow


@pytest.fixture
def serve(loop, line):
    """serve(dialect=..., **options) -> a started AnalyzerServer measuring ``line``."""
    servers = []

    def start(dialect: str = "wt", **options) -> AnalyzerServer:
        options.setdefault("accuracy", 0.0)
        analyzer = SimulatedAnalyzer(flow_from(line), dialect=dialect, **options)
        server = loop.run(AnalyzerServer(analyzer).start(), timeout=5)
        servers.append(server)
        return server

    yield start
    for server in servers:
        loop.run(server.stop(), timeout=5)


@pytest.fixture
def visa():
    """open(resource) -> a raw pyvisa-py session (LF terminations), closed afterwards."""
    import pyvisa

    manager = pyvisa.ResourceManager("@py")
    opened = []

    def open_(resource: str, read_termination: str = "\n"):
        instrument = manager.open_resource(resource, read_termination=read_termination, write_termination="\n",
                                           timeout=3000)
        opened.append(instrument)
        return instrument

    yield open_
    for instrument in opened:
        instrument.close()
    manager.close()
