"""The harness's pytest plugin, registered as the ``harness`` pytest11 entry point.

Every pytest run in an environment where the harness is installed loads this module, so it imports
nothing heavy: it declares the options and markers and registers the part that runs suites
(:mod:`harness.plugin.run`, whose own heavy imports wait until a rig is given).

Options (each with an environment variable as fallback):

    --harness-rig FILE        HARNESS_RIG         the rig to run the suites on; enables the harness
    --harness-report-dir DIR  HARNESS_REPORT_DIR  the report folder (default reports/<run-id>)
    --harness-run-id ID       HARNESS_RUN_ID      the run id (default date, time, random suffix)
    --harness-place NAME      HARNESS_PLACE       a labgrid place to acquire and take devices from

``harness run --rig FILE --report-dir DIR --place NAME`` passes them on.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pluggy import HookimplMarker

from harness.verdicts import Inconclusive, NotApplicable, RigNotReady, inconclusive

if TYPE_CHECKING:
    import pytest

__all__ = ["Inconclusive", "NotApplicable", "RigNotReady", "inconclusive"]

hookimpl = HookimplMarker("pytest")

#: option name -> (environment variable, metavar, help)
OPTIONS = {
    "rig": ("HARNESS_RIG", "FILE", "rig file to run the suites on (enables the harness and its reports)"),
    "report-dir": ("HARNESS_REPORT_DIR", "DIR", "report folder (default: reports/<run-id> under the project root)"),
    "run-id": ("HARNESS_RUN_ID", "ID", "run id (default: date, time and a random suffix)"),
    "place": ("HARNESS_PLACE", "NAME", "labgrid place to acquire for the run (its devices replace the rig file's; "
                                       "coordinator from the rig file's labgrid: section or LG_COORDINATOR)"),
}

#: the markers suites use, declared here only
MARKERS = (
    "case(id): the catalogue id of a conformance test case (the catalogue.yaml beside or above the test)",
    "requires(*capabilities): rig capabilities a test case needs; skipped at collection where the rig lacks one",
)


def pytest_addoption(parser: "pytest.Parser") -> None:
    group = parser.getgroup("harness", "EV charging interoperability harness")
    for name, (variable, metavar, text) in OPTIONS.items():
        group.addoption(f"--harness-{name}", dest=f"harness_{name.replace('-', '_')}", metavar=metavar,
                        default=os.environ.get(variable) or None, help=f"{text} [env {variable}]")


@hookimpl(tryfirst=True)
def pytest_configure(config: "pytest.Config") -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    from harness.plugin import run  # pytest is loaded by now: this costs the run little

    config.pluginmanager.register(run, "harness.run")
    run.configure(config)
