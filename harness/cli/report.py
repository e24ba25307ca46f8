"""``harness report bundle RUN``: a report folder without its secrets, to send to a vendor."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import UsageError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="report folders: make one fit to send")
    sub = parser.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    bundle = sub.add_parser(
        "bundle", help="copy a report folder without private keys and TLS key logs",
        description="Copy the report folder RUN (reports/<run-id>, or reports/latest) to --out without the "
                    "secrets a lab keeps: the run PKI's private keys and the TLS key logs that decrypt the "
                    "captures. BUNDLE.txt in the copy lists what was left out and what a kept file carries that "
                    "a vendor should know about (a capture with a clear-text OCPP password).")
    bundle.add_argument("run", metavar="RUN", type=Path, help="the report folder")
    bundle.add_argument("--out", type=Path, help="where the bundle goes (default: RUN-bundle next to RUN)")
    bundle.add_argument("--with-secrets", action="store_true",
                        help="include the private keys and key logs (the manifest says so)")
    bundle.set_defaults(handler=report_bundle)


def report_bundle(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.report.bundle import bundle

    source = args.run.resolve()
    target = args.out or source.with_name(source.name + "-bundle")
    try:
        made = bundle(source, target, with_secrets=args.with_secrets)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{target}: {len(made.copied)} file(s); {len(made.left_out)} secret(s) left out"
          + (" (included on request)" if args.with_secrets else "") + f"; see {target / 'BUNDLE.txt'}")
    for name, why in sorted(made.cautions.items()):
        print(f"  note: {name} {why}")
    return 0
