"""``--pki`` for the commands that play a Plug & Charge role (``csms serve``, ``evse serve``,
``ev run``): a folder in the layout ``harness certs generate`` writes, or a lab's PKI described by
a YAML file (:mod:`harness.pki.description`), and the password of encrypted keys."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli import UsageError

if TYPE_CHECKING:
    from harness.v2g.credentials import V2gMaterial


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, folder_help: str) -> None:
    parser.add_argument("--pki", "--certs", dest="pki", type=Path, metavar="DIR|FILE",
                        help=f"{folder_help}; or a YAML file that describes a lab's own PKI where it lies "
                             "(see the README, \"Plug & Charge through OCPP\")")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--pki-password-file", type=Path, help="password of encrypted keys: first line of this file")
    secret.add_argument("--pki-password-env", metavar="VAR", help="password of encrypted keys: this variable")


def password(args: argparse.Namespace) -> bytes | None:
    from harness.cli.certs import key_password

    return key_password(args.pki_password_file, args.pki_password_env)


def material(args: argparse.Namespace, role: str, out: Path) -> "V2gMaterial":
    """The ISO 15118 material of ``--pki`` for ``role`` ("evse" or "ev"); a problem is one
    UsageError naming the file or the part and the role."""
    from harness.pki.description import PkiDescription
    from harness.pki.files import CertificateFileError
    from harness.v2g.credentials import V2gMaterial
    from harness.yamlfile import FileProblems

    keylog = out / "tls-keys.log"
    try:
        if args.pki.is_file():
            described = PkiDescription.load(args.pki).materialize(out / f"pki-{role}", role)
            return V2gMaterial.load(described, keylog=keylog)
        return V2gMaterial.load(args.pki, keylog=keylog, password=password(args))
    except FileProblems as exc:
        raise UsageError(f"--pki: {exc}") from None
    except (CertificateFileError, ValueError) as exc:
        raise UsageError(f"--pki: {exc}") from None
