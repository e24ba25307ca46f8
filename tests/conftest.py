"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests are deterministic unless asked otherwise: the test command (and CI) runs the same
# examples every time, so a red run is the code's, not the seed's. `bench/properties.py` runs them
# randomized with many more examples (HYPOTHESIS_PROFILE=explore).
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def run():
    """Run a coroutine to completion in a fresh event loop (the tests are synchronous)."""

    def runner(coroutine, timeout: float = 60.0):
        return asyncio.run(asyncio.wait_for(coroutine, timeout))

    return runner


@pytest.fixture(scope="session")
def harness_command():
    """The command line that runs the installed ``harness`` console script."""
    executable = Path(sys.executable).with_name("harness")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "harness.cli"]
