"""``harness report bundle RUN``: a report folder without its secrets, to send to a vendor;
``harness report interop RUN...``: one matrix over several runs."""

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
    interop = sub.add_parser(
        "interop", help="one matrix over several runs: feature x (DUT, EV profile)",
        description="Read the conformance.json of each RUN (report folders) and write interop.html and interop.csv: "
                    "one row per feature (test case with its parameters), one column per pairing of device under "
                    "test and EV profile, each cell the verdict (the latest run's where runs repeat a pairing), and "
                    "what failed where.")
    interop.add_argument("runs", metavar="RUN", type=Path, nargs="+", help="report folders")
    interop.add_argument("--out", type=Path, required=True, help="folder for interop.html and interop.csv")
    interop.set_defaults(handler=report_interop)
    catalogue = sub.add_parser(
        "catalogue", help="the test-case catalogue as a document a lab plans with",
        description="Write the catalogue (testcases/catalogue.yaml) as Markdown: per suite, each case's id, title, "
                    "the clauses it checks, its parameters and what the rig must offer for it (capabilities and "
                    "rig parts, read from the test code without running it).")
    catalogue.add_argument("--tests", type=Path, default=Path("testcases"),
                           help="the folder with catalogue.yaml and the test modules (default testcases)")
    catalogue.add_argument("--out", type=Path, help="write to this file (default: standard output)")
    catalogue.set_defaults(handler=report_catalogue)


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


def report_interop(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.report.interop import InteropError, load_run, write

    try:
        runs = [load_run(folder) for folder in args.runs]
        page, table = write(runs, args.out)
    except (InteropError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(f"{page}\n{table}")
    return 0


def report_catalogue(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.report.catalogue import CATALOGUE_FILE, CatalogueError, load_catalogue
    from harness.report.catalogue_doc import document, read_test_code

    try:
        catalogue = load_catalogue(args.tests / CATALOGUE_FILE)
        text = document(catalogue, read_test_code(args.tests))
    except (CatalogueError, OSError, SyntaxError) as exc:
        raise UsageError(str(exc)) from None
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(args.out)
    return 0
