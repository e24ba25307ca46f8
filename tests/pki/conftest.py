"""Test PKIs, generated once per session: generation is cheap, but not free."""

from __future__ import annotations

import pytest

from harness.pki.builder import KeyAlgorithm
from harness.pki.iso15118 import Iso15118Pki, build_iso15118_pki
from harness.pki.profiles import Generation


@pytest.fixture(scope="session")
def iso2_pki() -> Iso15118Pki:
    return build_iso15118_pki(Generation.ISO2)


@pytest.fixture(scope="session")
def iso20_pki() -> Iso15118Pki:
    return build_iso15118_pki(Generation.ISO20, KeyAlgorithm.SECP521R1)


@pytest.fixture(scope="session")
def iso20_ed448_pki() -> Iso15118Pki:
    return build_iso15118_pki(Generation.ISO20, KeyAlgorithm.ED448)


@pytest.fixture(scope="session", params=["iso2", "iso20-secp521r1", "iso20-ed448"])
def any_pki(request, iso2_pki, iso20_pki, iso20_ed448_pki) -> Iso15118Pki:
    return {"iso2": iso2_pki, "iso20-secp521r1": iso20_pki,
            "iso20-ed448": iso20_ed448_pki}[request.param]


#: the password the generated keys are encrypted with in the tests
KEY_PASSWORD = b"harness-test"


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Everything ``harness certs generate`` writes, keys encrypted, once per session."""
    from harness.pki.generate import generate

    return generate(tmp_path_factory.mktemp("certs"), password=KEY_PASSWORD,
                    station_ids=("CS001",))
