"""``harness run [--rig FILE] [pytest args]``: run the conformance suites and write the reports."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from harness.cli import UsageError

DEFAULT_RIG = Path("rigs") / "emulated.yaml"
SUITES = "testcases"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run", help="run the conformance suites on a rig and write reports/<run-id>/",
        description="Run the conformance suites (testcases/) on a rig. Arguments after the options go to pytest "
                    "(-k EXPR, -x, a test path...). Reports land in reports/<run-id>/ and reports/latest.")
    parser.add_argument("--rig", type=Path, default=None, help=f"rig file (default {DEFAULT_RIG})")
    parser.add_argument("--report-dir", type=Path, default=None, help="report folder (default reports/<run-id>)")
    parser.add_argument("-n", "--workers", type=int, default=None, metavar="N",
                        help="spread the cases over N workers, each with its own emulated rig (pytest-xdist); one "
                             "merged report (emulated rigs only)")
    parser.add_argument("--place", default=None, help="a labgrid place to acquire for the run: its resources replace "
                                                      "the rig file's devices; released when the run ends (needs "
                                                      "pip install -e '.[labgrid]')")
    parser.set_defaults(handler=run, accepts_extra=True)


def project_root() -> Path:
    """The folder holding testcases/ and rigs/: the current one, or the checkout the harness runs from."""
    here = Path.cwd()
    if (here / SUITES).is_dir():
        return here
    source = Path(__file__).resolve().parents[2]
    if (source / SUITES).is_dir():
        return source
    raise UsageError(f"no {SUITES}/ folder here or in {source}; run from the harness checkout")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    root = project_root()
    rig = args.rig or root / DEFAULT_RIG
    if not rig.is_file():
        raise UsageError(f"no rig file {rig}")
    pytest_args = [f"--harness-rig={rig}", "-p", "no:cacheprovider", f"--rootdir={root}",
                   "-c", str(root / "pyproject.toml")]
    if args.report_dir is not None:
        pytest_args.append(f"--harness-report-dir={args.report_dir}")
    if args.place:
        pytest_args.append(f"--harness-place={args.place}")
    if args.workers is not None:
        if args.workers < 1:
            raise UsageError("-n: at least 1 worker")
        # a suite's cases stay on one worker, in order, as they would run serially
        pytest_args += ["-p", "xdist", "-n", str(args.workers), "--dist", "loadfile"]
    if extra[:1] == ["--"]:  # `harness run -- -k x`: what follows is pytest's
        extra = extra[1:]
    if not any(Path(a.split("::")[0]).exists() for a in extra if not a.startswith("-")):
        pytest_args.append(str(root / SUITES))  # no test path given: all suites
    # A lab run stopped with SIGTERM (CI timeout, `kill`) tears the rig down like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return int(pytest.main(pytest_args + list(extra)))
