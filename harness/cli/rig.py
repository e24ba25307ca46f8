"""``harness rig check [--rig FILE]``: validate a rig file and probe what it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import UsageError, shown
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
    check.add_argument("--place", default=None, help="a labgrid place: acquire it, show what its resources become, "
                                                     "probe them, release it")
    check.set_defaults(handler=rig_check)


def rig_check(args: argparse.Namespace, extra: list[str]) -> int:
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
    name = args.place or config.labgrid.place
    if not name:
        return _probe(config)
    from harness.rig.labgrid import Place, PlaceBusy, PlaceError, apply

    place = Place(name, config.labgrid.coordinator)
    try:
        with place:
            placed, notes = apply(config, place.resources(), place)
            print(f"labgrid place {name!r} at {place.coordinator}, acquired:")
            for note in notes:
                print(f"  {shown(note)}")
            return _probe(placed)
    except PlaceBusy as exc:
        print(f"  [FAIL] {exc}")
        return 3
    except PlaceError as exc:
        raise UsageError(str(exc)) from None


def _probe(config) -> int:
    from harness.rig.check import probe

    failed = 0
    for result in probe(config):
        print(f"  [{'ok' if result.ok else 'FAIL'}] {shown(result.what)}: {shown(result.detail)}")
        failed += not result.ok
    return 1 if failed else 0
