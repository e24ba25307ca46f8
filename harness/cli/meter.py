"""``harness meter read|simulate``: read a power analyzer, or run the simulated one."""

from __future__ import annotations

import argparse
import sys
import time

from harness.cli import UsageError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("meter", help="power analyzers: read one, or run the simulated analyzer")
    sub = parser.add_subparsers(dest="meter_command", metavar="ACTION", required=True)
    read = sub.add_parser("read", help="read U, I, P and energy from an analyzer",
                          description="Identify the analyzer, set its wiring, and print voltage, current, active "
                                      "power per channel and in total and the integrator's energy, once or every "
                                      "N seconds until Ctrl-C. The integrator is left as it is.")
    read.add_argument("--resource", required=True, help="VISA resource, e.g. TCPIP::192.168.10.30::INSTR or "
                                                        "TCPIP::127.0.0.1::5025::SOCKET")
    read.add_argument("--model", required=True, help="driver: yokogawa-wt1800, hioki-pw3337, zes-lmg600, ... "
                                                     "or a command map file (*.yaml)")
    read.add_argument("--wiring", choices=("ac1", "ac3", "dc"), default="ac3", help="default ac3")
    read.add_argument("--every", type=float, metavar="N", help="repeat every N seconds")
    read.add_argument("--count", type=int, help="stop after this many readings (with --every)")
    read.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
    read.set_defaults(handler=meter_read)
    simulate = sub.add_parser("simulate", help="run the simulated analyzer as a SCPI socket server",
                              description="The harness's simulated power analyzer on a TCP port, with a steady "
                                          "three-phase load. Reach it with --resource TCPIP::127.0.0.1::<port>::SOCKET.")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=5025, help="TCP port (default 5025; 0 = any free port)")
    simulate.add_argument("--model", default="yokogawa-wt1800", help="dialect and identity (default yokogawa-wt1800)")
    simulate.add_argument("--voltage", type=float, default=230.0)
    simulate.add_argument("--current", type=float, default=16.0, help="A per phase; negative exports")
    simulate.add_argument("--phases", type=int, choices=(0, 1, 3), default=3, help="0 = DC")
    simulate.add_argument("--accuracy", type=float, default=0.1, help="percent; the error is drawn within it")
    simulate.add_argument("--noise", type=float, default=0.0, help="percent rms on instantaneous values")
    simulate.add_argument("-v", "--verbose", action="store_true", help="print every message and answer")
    simulate.set_defaults(handler=meter_simulate)


def meter_read(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.power.analyzer import InstrumentError, Wiring
    from harness.power.generic import CommandMapError
    from harness.power.models import UnknownModel, open_analyzer

    if args.every is not None and args.every <= 0:
        raise UsageError("--every must be positive")
    try:
        analyzer = open_analyzer(args.resource, args.model, timeout=args.timeout)
    except (UnknownModel, CommandMapError) as exc:
        raise UsageError(str(exc)) from None
    except InstrumentError as exc:
        print(f"harness meter: {exc}", file=sys.stderr)
        return 1
    count = 0
    try:
        print(f"{analyzer.name}: {analyzer.identify()}")
        analyzer.configure(Wiring(args.wiring))
        while True:
            reading = analyzer.read()
            channels = "  ".join(f"ch{c.channel} {c.voltage:.2f} V {c.current:.3f} A {c.power:.1f} W"
                                 for c in reading.channels)
            print(f"{time.strftime('%H:%M:%S')}  P {reading.power:.1f} W  E+ {reading.imported_wh:.4f} Wh  "
                  f"E- {reading.exported_wh:.4f} Wh  integration {analyzer.integration_state().value}  |  {channels}",
                  flush=True)
            count += 1
            if args.every is None or (args.count is not None and count >= args.count):
                return 0
            time.sleep(args.every)
    except InstrumentError as exc:
        print(f"harness meter: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            analyzer.go_local()
        except InstrumentError:
            pass
        analyzer.close()


def meter_simulate(args: argparse.Namespace, extra: list[str]) -> int:
    import asyncio

    from harness.emulators.analyzer import MODEL_DIALECTS, SimulatedAnalyzer, constant_flow
    from harness.emulators.analyzer_server import AnalyzerServer

    if args.model not in MODEL_DIALECTS:
        raise UsageError(f"--model {args.model!r} cannot be simulated (choose from {', '.join(MODEL_DIALECTS)})")

    def show(message: str, answer: str | None) -> None:
        print(f"<< {message}" + (f"\n>> {answer}" if answer is not None else ""), flush=True)

    async def serve() -> None:
        analyzer = SimulatedAnalyzer(constant_flow(args.voltage, args.current, args.phases),
                                     dialect=MODEL_DIALECTS[args.model], model=args.model, accuracy=args.accuracy,
                                     noise=args.noise)
        try:
            server = await AnalyzerServer(analyzer, host=args.host, port=args.port,
                                          on_message=show if args.verbose else None).start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        print(f"simulated {args.model} listening: resource {server.resource}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("stopped")
    return 0
