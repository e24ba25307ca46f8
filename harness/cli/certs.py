"""``harness certs generate --out DIR``: the test PKIs, faulty variants included."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.cli import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    certs = subparsers.add_parser("certs", help="build the test PKIs (ISO 15118-2/-20, OCPP)")
    actions = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate", help="write every PKI, CRLs, faulty variants and a manifest to a directory")
    generate.add_argument("--out", required=True, type=Path, help="output directory")
    generate.add_argument("--parts", default=None,
                          help="comma-separated subset of: iso2, iso20-secp521r1, iso20-ed448, "
                               "ocpp (default: all)")
    secret = generate.add_mutually_exclusive_group()
    secret.add_argument("--password-file", type=Path,
                        help="encrypt private keys with the password in this file (first line)")
    secret.add_argument("--password-env", metavar="VAR",
                        help="encrypt private keys with the password in this environment variable")
    generate.add_argument("--station-id", action="append", dest="station_ids", metavar="ID",
                          help="charging station id for an OCPP client certificate (repeatable; "
                               "default CS001)")
    generate.add_argument("--server-name", action="append", dest="server_names", metavar="NAME",
                          help="CSMS host name or address (repeatable; default localhost, "
                               "127.0.0.1, ::1)")
    generate.add_argument("--revocation-url", default=None, metavar="URL",
                          help="base URL of the OCSP responder / CRL server the certificates "
                               "point to (default http://127.0.0.1:8880)")
    generate.add_argument("--no-faults", action="store_true", help="skip the faulty variants")
    generate.set_defaults(handler=_generate)


def _password(args) -> bytes | None:
    return key_password(args.password_file, args.password_env)


def key_password(path: Path | None, variable: str | None) -> bytes | None:
    """The password of encrypted keys: the first line of ``path`` or the environment variable
    ``variable`` (None: keys are not encrypted)."""
    if path is not None:
        try:
            line = path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read password file ({exc.strerror})")
        if not line or not line[0]:
            raise UsageError(f"{path}: the first line (the password) is empty")
        return line[0].encode()
    if variable is not None:
        value = os.environ.get(variable)
        if not value:
            raise UsageError(f"environment variable {variable} is not set or empty")
        return value.encode()
    return None


def _generate(args, extra) -> int:
    from harness.pki.faults import CATALOGUE
    from harness.pki.generate import PARTS, generate
    from harness.pki.iso15118 import DEFAULT_REVOCATION_BASE_URL

    parts = PARTS if args.parts is None else [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise UsageError(f"unknown part(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{', '.join(PARTS)}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"{args.out}: exists and is not a directory")
    result = generate(args.out, parts=parts, password=_password(args),
                      station_ids=args.station_ids or ("CS001",),
                      server_names=args.server_names or ("localhost", "127.0.0.1", "::1"),
                      revocation_base_url=args.revocation_url or DEFAULT_REVOCATION_BASE_URL,
                      faults=None if args.no_faults else CATALOGUE)
    print(f"wrote {', '.join(parts)} to {result.directory}; manifest {result.manifest}")
    return 0
