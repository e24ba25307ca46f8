"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest



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
