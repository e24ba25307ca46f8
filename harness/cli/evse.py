"""``harness evse serve``: the reference EVSE's ISO 15118 side (SDP server + SECC + power stage
model) on an interface, for manual work with an EV; it authorizes by local policy (no OCPP)."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tempfile
from pathlib import Path

from harness.cli import UsageError, pki


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evse", help="the reference EVSE (ISO 15118 / DIN 70121)")
    sub = parser.add_subparsers(dest="evse_command", metavar="ACTION", required=True)
    serve = sub.add_parser(
        "serve", help="serve EVs on an interface until Ctrl-C",
        description="Run the SDP server and the SECC on --iface (its link-local address, or ::1 on lo), with "
                    "the limits and protocols of the EVSE profile, and print every message. Sessions are "
                    "authorized locally (--authorization). No SLAC: the link must already carry IPv6.")
    serve.add_argument("--iface", required=True, help="interface to serve on (lo, a veth, an Ethernet port)")
    serve.add_argument("--profile", type=Path, help="EVSE profile (default fixtures/evse/reference.yaml)")
    pki.add_arguments(serve, folder_help="ISO 15118 certificates folder; generated there if it does not exist yet "
                                         "(give the same folder to `harness ev run --pki`)")
    serve.add_argument("--port", type=int, default=0,
                       help="TCP port of the SECC, 49152-65535 as ISO 15118 requires (default: a free one)")
    serve.add_argument("--tls-port", type=int, default=0,
                       help="TLS port of the SECC, 49152-65535 as ISO 15118 requires (default: a free one)")
    serve.add_argument("--sdp-port", type=int, default=15118, help="UDP port of the SDP server (default 15118)")
    serve.add_argument("--mo-roots", type=Path, metavar="PEM",
                       help="MO root certificates (PEM or DER; several in one PEM file) to validate Plug & Charge "
                            "contract chains against (default: the --pki folder's mo-root.pem); without any, "
                            "every contract is refused, as nobody could validate it")
    serve.add_argument("--authorization", choices=("accept", "reject"), default="accept")
    serve.add_argument("--time-scale", type=float, default=1.0,
                       help="shrink the standards' timers (1 = as the standards say)")
    serve.add_argument("--sessions", type=int, default=0, help="stop after this many sessions (0: run until Ctrl-C)")
    serve.add_argument("--out", type=Path, help="folder for trace.jsonl and the TLS key log")
    serve.add_argument("--quiet", action="store_true", help="do not print every message")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.cli.ev import _print_event
    from harness.emulators.charge_port import ChargePort
    from harness.emulators.profiles import DEFAULT_EVSE_PROFILE, ProfileError, load_evse_profile
    from harness.pki.files import CertificateFileError, load_certificates
    from harness.trace import Recorder
    from harness.trace.recorder import SERVER_MEMORY_BUDGET
    from harness.v2g.credentials import V2gMaterial
    from harness.v2g.links import InterfaceError, interface_address
    from harness.v2g.sdp import SdpServer
    from harness.v2g.secc import Secc, SeccConfig
    from harness.v2g.timers import Timing
    from harness.v2g.transport import SeccPortError, check_secc_port

    try:
        profile = load_evse_profile(args.profile or DEFAULT_EVSE_PROFILE)
        host = interface_address(args.iface)
        check_secc_port(args.port, "--port")
        check_secc_port(args.tls_port, "--tls-port")
    except (ProfileError, InterfaceError, SeccPortError) as exc:
        raise UsageError(str(exc)) from None
    if not 0 < args.time_scale <= 1:
        raise UsageError("--time-scale must be above 0 and at most 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-evse-"))
    out.mkdir(parents=True, exist_ok=True)
    caps = profile.capabilities
    material = None
    if caps.tls != "none":
        certs = args.pki or out / "pki"
        if certs.is_file() or any((certs / f).is_dir() for f in ("iso2", "iso20", "iso20-secp521r1")):
            args.pki = certs
            material = pki.material(args, "evse", out)
        else:
            try:
                material = V2gMaterial.generate(certs, evse_id=caps.evse_id, keylog=out / "tls-keys.log")
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(f"generated ISO 15118 certificates in {certs} (give it to the EV: --pki {certs})")
    try:
        mo_roots = load_certificates(args.mo_roots) if args.mo_roots else \
            (material.all_mo_roots() if material else [])
    except CertificateFileError as exc:
        raise UsageError(f"--mo-roots: {exc}") from None
    if "PnC" in caps.identification and not mo_roots:
        print("no MO root certificates: Plug & Charge contracts will be refused (give --mo-roots)", flush=True)
    trace = Recorder(out / "trace.jsonl", memory_budget=SERVER_MEMORY_BUDGET)
    if not args.quiet:
        trace.subscribe(_print_event)
    timing = Timing(scale=args.time_scale)
    port = ChargePort(caps, authorization=args.authorization, mo_roots=mo_roots,
                      provisioning=material.provisioning() if material else None,
                      tariff_key=material.tariff_key("iso2") if material else None)
    try:
        secc_tls = material.secc_tls() if material else None
    except (CertificateFileError, ssl.SSLError) as exc:
        raise UsageError(f"--pki: the SECC's TLS: {exc}") from None
    config = SeccConfig(host=host, tcp_port=args.port, tls_port=args.tls_port, tls=secc_tls, protocols=caps.protocols)

    async def main() -> None:
        secc = Secc(trace, port, config, timing=timing)
        try:
            await secc.start()
        except (OSError, SeccPortError) as exc:
            raise UsageError(f"cannot listen on [{host}]: {getattr(exc, 'strerror', None) or exc}") from None
        sdp = SdpServer(trace, host, args.sdp_port, tcp_port=secc.tcp_port, tls_port=secc.tls_port,
                        tls_policy=caps.tls)
        try:
            await sdp.start()
        except OSError as exc:
            await secc.stop()
            raise UsageError(f"cannot listen for SDP on UDP {args.sdp_port}: {exc.strerror or exc}") from None
        print(f"SECC on [{host}] TCP {secc.tcp_port}" + (f", TLS {secc.tls_port}" if secc.tls_port else "")
              + f"; SDP on UDP {sdp.bound_port}; protocols {', '.join(caps.protocols)}", flush=True)
        print(f"trace: {out / 'trace.jsonl'}", flush=True)
        try:
            while not args.sessions or len(secc.outcomes) < args.sessions:
                secc.session_done.clear()
                await secc.session_done.wait()
        finally:
            await sdp.stop()
            await secc.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("stopped")
    finally:
        trace.close()
    return 0
