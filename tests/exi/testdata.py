"""Shared test data of the EXI codec tests: the vectors copied into tests/vectors.

Imported by the test modules of this package (tests.exi.testdata).
"""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = REPO_ROOT / "tests" / "vectors"
#: the shared project data next to the repository, absent on most machines
SHARED = REPO_ROOT.parent / "shared"


def load_vectors() -> list[dict]:
    """The single-message vectors: published ones first, then those recorded from sessions."""
    vectors = []
    for name in ("exi_known.jsonl", "exi_sessions.jsonl"):
        for line in (VECTORS / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                vectors.append(json.loads(line))
    return vectors


def vector_ids(vectors: list[dict]) -> list[str]:
    """Readable parametrize ids: schema-message-n, numbered per schema and message."""
    seen: dict[str, int] = {}
    ids = []
    for vector in vectors:
        stem = f"{vector['schema']}-{vector['message']}"
        seen[stem] = seen.get(stem, 0) + 1
        ids.append(f"{stem}-{seen[stem]}")
    return ids


def load_annex_j2() -> dict:
    return json.loads((VECTORS / "xmldsig_iso2_annex_j2.json").read_text(encoding="utf-8"))
