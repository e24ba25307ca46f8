"""Rules for the harness's asyncio code that no linter here checks."""

from __future__ import annotations

import re
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"


def test_no_asyncio_wait_for_in_the_harness():
    """On Python 3.11 asyncio.wait_for drops a cancellation that arrives together with the result
    it waits for (CPython gh-86296, fixed in 3.12). A loop reading frames through it can outlive
    the cancel of its task: an unplug that did not stop SLAC, a connection that did not close. The
    harness uses asyncio.timeout, which keeps the cancellation."""
    pattern = re.compile(r"\basyncio\.wait_for\(|\bfrom asyncio import\b[^\n]*\bwait_for\b")
    found = [f"{path.relative_to(HARNESS.parent)}:{number}"
             for path in sorted(HARNESS.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == [], f"asyncio.wait_for in {found}: use `async with asyncio.timeout(...)`"
