"""``harness rig check [--rig FILE]``: validate a rig file and probe what it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.run import DEFAULT_RIG, project_root


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("rig", help="work with rig files")
    sub = parser.add_subparsers(dest="rig_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a rig file and probe its resources",
                           description="Validate a rig file (every problem, with its path) and probe what can be "
                                       "probed: free ports, network interfaces, instruments (*IDN?), certificates, "
                                       "the lock.")
    check.add_argument("--rig", type=Path, default=None, help=f"rig file (default {DEFAULT_RIG})")
    check.add_argument("--no-probe", action="store_true", help="validate only")
    check.set_defaults(handler=rig_check)


def rig_check(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.rig.check import probe
    from harness.rig.config import RigFileError, load_rig

    path = args.rig or project_root() / DEFAULT_RIG
    try:
        config = load_rig(path)
    except RigFileError as exc:
        print(f"{exc.path}: invalid rig file")
        for problem in exc.problems:
            print(f"  {problem}")
        return 1
    print(f"{path}: valid rig {config.name!r} ({config.kind})")
    if args.no_probe:
        return 0
    failed = 0
    for result in probe(config):
        print(f"  [{'ok' if result.ok else 'FAIL'}] {result.what}: {result.detail}")
        failed += not result.ok
    return 1 if failed else 0
