"""The vector files in tests/vectors are copies of the shared project data; when the shared
folder is present, they must be identical, so the tests run on the real thing."""

from __future__ import annotations

import pytest

from tests.exi.testdata import SHARED, VECTORS

SHARED_VECTORS = SHARED / "vectors"


@pytest.mark.skipif(not SHARED_VECTORS.is_dir(),
                    reason="the shared project data (../shared/vectors) is not on this machine")
@pytest.mark.parametrize("name", ["exi_sessions.jsonl", "exi_known.jsonl",
                                  "xmldsig_iso2_annex_j2.json"])
def test_vector_copy_is_identical_to_the_shared_file(name):
    assert (VECTORS / name).read_bytes() == (SHARED_VECTORS / name).read_bytes()
