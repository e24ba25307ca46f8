"""Fixtures of the V2G tests."""

from __future__ import annotations

import pytest

from tests.v2g.pair import generated_material


@pytest.fixture(scope="session")
def material(tmp_path_factory):
    """One generated ISO 15118 PKI (-2 and -20) for all V2G tests."""
    return generated_material(tmp_path_factory.mktemp("v2g-pki"))
