"""``harness csms serve``: the mock CSMS alone, for manual work with a charger in the lab."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from harness.cli import UsageError

if TYPE_CHECKING:
    from harness.ocpp.versions import OcppVersion


class _CsmsOptions(TypedDict, total=False):
    """Keywords of MockCsms passed only when given on the command line (else its defaults)."""

    versions: list[OcppVersion]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("csms", help="the mock CSMS")
    sub = parser.add_subparsers(dest="csms_command", metavar="ACTION", required=True)
    serve = sub.add_parser(
        "serve", help="run the mock CSMS until Ctrl-C",
        description="Run the mock CSMS alone. It prints the URL a charger should use and every message as it "
                    "flows. Without --station any station id and password are accepted (and recorded as "
                    "auto-commissioned); with --station only those.")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    serve.add_argument("--security-profile", type=int, choices=(1, 2, 3), default=1)
    serve.add_argument("--station", action="append", default=[], metavar="ID:PASSWORD",
                       help="a station allowed to connect (repeatable); profile 3 takes ID alone")
    serve.add_argument("--version", action="append", default=[], metavar="V",
                       help="OCPP versions to offer, in order of preference (default 2.0.1, 2.1, 1.6)")
    serve.add_argument("--cert", type=Path, help="server certificate chain (PEM) for profiles 2 and 3")
    serve.add_argument("--key", type=Path, help="its private key")
    serve.add_argument("--ca", type=Path, help="CA that issues station certificates (profile 3)")
    serve.add_argument("--out", type=Path, help="folder for trace.jsonl and generated certificates")
    serve.add_argument("--heartbeat-interval", type=int, default=300)
    serve.set_defaults(handler=serve_command)


def _stations(entries: list[str], profile: int) -> dict[str, str] | None:
    if not entries:
        return None
    stations = {}
    for entry in entries:
        station, colon, password = entry.partition(":")
        if not station or (profile < 3 and not colon):
            raise UsageError(f"--station {entry!r}: expected ID:PASSWORD")
        stations[station] = password
    return stations


def serve_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.ocpp.behaviour import CsmsBehaviour
    from harness.ocpp.csms import MockCsms
    from harness.ocpp.security import SecurityPolicy
    from harness.ocpp.versions import OcppVersion
    from harness.pki.ocpp import CertificateFiles, generate_ocpp_pki
    from harness.trace import Recorder

    try:
        versions = [OcppVersion.parse(v) for v in args.version] or None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    stations = _stations(args.station, args.security_profile)
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-csms-"))
    out.mkdir(parents=True, exist_ok=True)
    server = client_ca = None
    if args.security_profile >= 2:
        if args.cert or args.key:
            if not (args.cert and args.key):
                raise UsageError("--cert and --key go together")
            server = CertificateFiles(args.cert, args.key)
            client_ca = args.ca
        else:
            pki = generate_ocpp_pki(out / "pki", station_ids=list(stations or []),
                                    server_names=[args.host] if args.host not in ("0.0.0.0", "::") else ["localhost"])
            server, client_ca = pki.csms_server, args.ca or pki.csms_root
            print(f"generated a CSMS certificate; the charger must trust {pki.csms_root}")
        if args.security_profile == 3 and client_ca is None:
            raise UsageError("profile 3 needs --ca, the CA that issues the station certificates")
    try:
        policy = SecurityPolicy(profile=args.security_profile, credentials=stations, server=server,
                                client_ca=client_ca, keylog=out / "tls-keys.log")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    trace = Recorder(out / "trace.jsonl")
    trace.subscribe(_print_event)
    options: _CsmsOptions = {"versions": versions} if versions else {}
    csms = MockCsms(trace, host=args.host, port=args.port, security=policy,
                    behaviour=CsmsBehaviour(heartbeat_interval=args.heartbeat_interval), **options)

    async def main() -> None:
        try:
            await csms.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        for line in _charger_lines(csms, stations, args.security_profile):
            print(line)
        print(f"trace: {out / 'trace.jsonl'}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await csms.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("stopped")
    finally:
        trace.close()
    return 0


def _charger_lines(csms, stations: dict[str, str] | None, profile: int) -> list[str]:
    """What to tell the person configuring the charger: the URLs to use and who may connect."""
    auth = {1: "HTTP Basic auth over ws://", 2: "HTTP Basic auth over wss:// (TLS)",
            3: "a client certificate (wss://, TLS)"}[profile]
    if stations:
        lines = [f"charger URLs ({auth}):"]
        for station, password in stations.items():
            for url in csms.charger_urls(station):
                lines.append(f"  {url}")
            lines.append(f"    station {station!r}" + (f", password {password!r}" if profile < 3 else
                                                        f", certificate CN {station!r}"))
        lines.append("other station ids are refused (401)")
        return lines
    lines = [f"charger URLs: one of these, then the charger's own station id ({auth}):"]
    lines += [f"  {url}" for url in csms.charger_urls()]
    lines.append("any station id and password are accepted and recorded (auto-commissioning); "
                 "--station ID:PASSWORD accepts only those")
    return lines


def _print_event(event) -> None:
    stamp = _dt.datetime.fromtimestamp(event.wall).strftime("%H:%M:%S.%f")[:-3]
    station = event.keys.get("station_id", "")
    line = f"{stamp} {station:>12} {event.direction:12} {event.summary}"
    frame = event.payload.get("frame") if isinstance(event.payload, dict) else None
    print(line if frame is None else f"{line}\n{'':>26}{frame}", flush=True)
