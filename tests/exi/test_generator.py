"""The committed grammar modules are what tools/gen_exi.py makes of the schemas: regenerating
them from ../shared/schemas gives the same bytes (and twice in a row, too)."""

from __future__ import annotations

import functools
import importlib.util
import sys

import pytest

from tests.exi.testdata import REPO_ROOT, SHARED

SCHEMAS = SHARED / "schemas"
COMMITTED = REPO_ROOT / "harness" / "exi" / "grammars"

pytestmark = pytest.mark.skipif(
    not SCHEMAS.is_dir(),
    reason="the schemas (../shared/schemas) are not on this machine; the committed grammar "
           "modules cannot be regenerated here")


@functools.cache
def _generator():
    spec = importlib.util.spec_from_file_location("gen_exi", REPO_ROOT / "tools" / "gen_exi.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_exi"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_regenerated_grammars_match_the_committed_modules(tmp_path):
    generated = {p.name: p.read_bytes() for p in _generator().generate(SCHEMAS, tmp_path)}
    committed = {p.name: p.read_bytes() for p in COMMITTED.glob("*.py")}
    assert sorted(generated) == sorted(committed)
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"run tools/gen_exi.py: {', '.join(stale)} differ from the schemas"


def test_generation_is_deterministic(tmp_path):
    generator = _generator()
    first = {p.name: p.read_bytes() for p in generator.generate(SCHEMAS, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in generator.generate(SCHEMAS, tmp_path / "b")}
    assert first == second
