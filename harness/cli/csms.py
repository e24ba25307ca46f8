"""``harness csms serve``: the mock CSMS alone, for manual work with a charger in the lab."""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from harness.cli import UsageError, shown

if TYPE_CHECKING:
    from harness.ocpp.contracts import PncBackend
    from harness.ocpp.versions import OcppVersion
    from harness.pki.folders import PncPki
    from harness.pki.revocation import RevocationServer
    from harness.pki.signing import CsrSigner
    from harness.v2g.provisioning import ContractProvisioning


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
    pnc = serve.add_argument_group(
        "Plug & Charge", "The CSMS as the Plug & Charge backend (Authorize with a contract certificate or its "
                         "hash data, GetCertificateStatus; in 1.6 through DataTransfer as the OCA application note "
                         "says). Without --pki a contract presented through OCPP is refused (CertChainError).")
    pnc.add_argument("--pki", type=Path, metavar="DIR|FILE",
                     help="a folder written by `harness certs generate`, or a YAML file describing a lab's own "
                          "PKI: contracts are validated against its MO roots, hash data against its CAs, "
                          "revocation asked of the OCSP responders its certificates name")
    pnc.add_argument("--ocsp-serve", action="store_true",
                     help="also answer OCSP for that PKI, at the address its certificates name (needs the CA "
                          "keys in DIR)")
    pnc.add_argument("--revoked-serial", action="append", default=[], metavar="HEX",
                     help="with --ocsp-serve: answer 'revoked' for this certificate serial number (repeatable)")
    secret = pnc.add_mutually_exclusive_group()
    secret.add_argument("--pki-password-file", type=Path, help="password of encrypted CA keys: first line of this file")
    secret.add_argument("--pki-password-env", metavar="VAR", help="password of encrypted CA keys: this variable")
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
    from harness.trace.recorder import SERVER_MEMORY_BUDGET

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
    backend, responder, signer, provisioning = _pnc(args)
    trace = Recorder(out / "trace.jsonl", memory_budget=SERVER_MEMORY_BUDGET)
    trace.subscribe(_print_event)
    options: _CsmsOptions = {"versions": versions} if versions else {}
    csms = MockCsms(trace, host=args.host, port=args.port, security=policy,
                    behaviour=CsmsBehaviour(heartbeat_interval=args.heartbeat_interval, pnc=backend,
                                            signer=signer, provisioning=provisioning), **options)

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
            try:  # Ctrl-C ends the program in bounded time, whatever a connection is doing
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await csms.stop()
            except TimeoutError:
                print(f"the CSMS did not stop within {STOP_TIMEOUT_S:g} s; leaving anyway", flush=True)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("stopped")
    finally:
        if responder is not None:
            responder.stop()
        trace.close()
    return 0


#: how long Ctrl-C waits for the CSMS to close its connections
STOP_TIMEOUT_S = 5.0


def _pnc(args: argparse.Namespace) -> tuple[PncBackend | None, RevocationServer | None, CsrSigner | None,
                                           ContractProvisioning | None]:
    """The Plug & Charge backend of ``--pki``, the OCSP responder of ``--ocsp-serve`` (started),
    the signer of SECC certificates when the folder holds the -2 CPO Sub-CA 2 key, and the -2
    contract issuer when it holds the MO Sub-CA 2 and CPS keys."""
    from harness.cli.certs import key_password
    from harness.ocpp.contracts import PncBackend
    from harness.pki.description import load_any_pnc_pki
    from harness.pki.files import CertificateFileError
    from harness.pki.revocation import RevocationServer
    from harness.pki.signing import CsrSigner
    from harness.yamlfile import FileProblems

    if args.pki is None:
        if args.ocsp_serve or args.revoked_serial:
            raise UsageError("--ocsp-serve and --revoked-serial need --pki")
        return None, None, None, None
    if args.revoked_serial and not args.ocsp_serve:
        raise UsageError("--revoked-serial needs --ocsp-serve (the CSMS asks the PKI's own responder otherwise)")
    try:
        serials = [int(serial, 16) for serial in args.revoked_serial]
    except ValueError:
        raise UsageError(f"--revoked-serial: {args.revoked_serial} must be hexadecimal serial numbers") from None
    described = args.pki.is_file()
    if described and args.ocsp_serve:
        raise UsageError("--ocsp-serve answers for a generated PKI folder; a lab's PKI has its own responders")
    try:
        pki, extra_responders = load_any_pnc_pki(args.pki, password=key_password(args.pki_password_file,
                                                                                 args.pki_password_env))
    except (FileProblems, CertificateFileError, ValueError, TypeError) as exc:
        raise UsageError(f"--pki: {exc}") from None
    responder = None
    if args.ocsp_serve:
        urls = pki.ocsp_urls
        if len(urls) != 1:
            raise UsageError(f"--ocsp-serve: the certificates in {args.pki} name {len(urls)} OCSP responders "
                             f"({', '.join(urls) or 'none'}); one can be served")
        where = urllib.parse.urlsplit(urls[0])
        try:
            responder = RevocationServer(pki.signing, revoked=serials, host=where.hostname or "127.0.0.1",
                                         port=where.port or 80).start()
        except OSError as exc:
            raise UsageError(f"--ocsp-serve: cannot listen at {urls[0]}: {exc.strerror or exc}") from None
    signer = CsrSigner.of(pki)
    backend = PncBackend(pki.mo_roots, pki.authorities, responders=extra_responders)
    provisioning, why_not = (None, "a lab's PKI: contracts come from its MO") if described else \
        _provisioning(args.pki, pki, key_password(args.pki_password_file, args.pki_password_env), backend)
    print(f"Plug & Charge: {len(pki.mo_roots)} MO root(s) and {len(pki.authorities)} CA certificates of "
          f"{', '.join(pki.parts)}; OCSP responder {', '.join(pki.ocsp_urls) or '(none named)'}"
          + (" served here" if responder else "") + "; SECC certificates "
          + (f"signed by {signer.issuer.subject_cn}" if signer else "not signed (no -2 CPO Sub-CA 2 key in the folder)")
          + "; -2 and -20 contracts for Get15118EVCertificate " + ("issued" if provisioning else f"not issued ({why_not})"))
    return backend, responder, signer, provisioning


def _provisioning(directory: Path, pki: PncPki, password: bytes | None,
                  backend: PncBackend) -> tuple[ContractProvisioning | None, str]:
    """The -2 contract issuer of a generated PKI folder: it needs the MO Sub-CA 2 and CPS keys."""
    from harness.pki.files import CertificateFileError
    from harness.pki.profiles import Role
    from harness.v2g.credentials import V2gMaterial
    from harness.v2g.provisioning import ContractProvisioning

    try:
        material = V2gMaterial.load(directory, password=password)
    except (CertificateFileError, ValueError) as exc:
        return None, str(exc)
    missing = [r.value for r in (Role.MO_SUB_CA_2, Role.CPS, Role.CPO_SUB_CA_2) if r not in material.iso2.issued]
    oem_roots = [root for part in ("iso2", "iso20") if (root := pki.by_role.get((part, Role.OEM_ROOT)))]
    if missing or not oem_roots:
        return None, f"{directory}/iso2 lacks the certificate and key of {', '.join(missing) or 'oem-root'}"
    return ContractProvisioning(material.provisioning().deliver, oem_roots=oem_roots, mo_roots=pki.mo_roots,
                                authorities=pki.authorities, ocsp=backend.ocsp_check), ""


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
    line = f"{stamp} {shown(station):>12} {event.direction:12} {shown(event.summary)}"
    frame = event.payload.get("frame") if isinstance(event.payload, dict) else None
    print(line if frame is None else f"{line}\n{'':>26}{shown(frame)}", flush=True)
