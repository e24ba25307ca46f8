"""What `harness report bundle` counts as a secret, and what it keeps with a note."""

from __future__ import annotations

import pytest

from harness.report.bundle import MANIFEST, bundle, caution, secret


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    (folder / "pki").mkdir(parents=True)
    (folder / "captures").mkdir()
    (folder / "conformance.json").write_text("{}")
    (folder / "trace.jsonl").write_text('{"name": "CLIENT_RANDOM is only a word here"}\n')
    (folder / "pki" / "csms-server.pem").write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
    (folder / "pki" / "bundle.pem").write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"
                                               "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n")
    (folder / "pki" / "station.key").write_bytes(b"\x30\x82\x01\x00")  # DER: no marker, the name tells
    (folder / "captures" / "case.keys.log").write_text("# SSL/TLS secrets log file\nCLIENT_RANDOM 00 11\n")
    (folder / "captures" / "ocpp.pcap").write_bytes(b"\xd4\xc3\xb2\xa1GET /CS1 HTTP/1.1\r\nAuthorization: Basic Q1M=\r\n")
    return folder


def test_secrets_are_known_by_what_they_hold(run):
    assert secret(run / "pki" / "bundle.pem") == "holds a PEM private key"
    assert secret(run / "pki" / "station.key") == "a private key file"
    assert secret(run / "captures" / "case.keys.log").startswith("a TLS key log")
    assert secret(run / "pki" / "csms-server.pem") is None
    assert secret(run / "trace.jsonl") is None  # the label inside a line is not a key log
    assert caution(run / "captures" / "ocpp.pcap").startswith("holds an HTTP Basic Authorization header")


def test_a_bundle_leaves_the_secrets_out_and_says_which(run, tmp_path):
    made = bundle(run, tmp_path / "out")
    assert sorted(made.left_out) == ["captures/case.keys.log", "pki/bundle.pem", "pki/station.key"]
    assert not (tmp_path / "out" / "pki" / "bundle.pem").exists()
    assert (tmp_path / "out" / "pki" / "csms-server.pem").exists()
    manifest = (tmp_path / "out" / MANIFEST).read_text()
    assert "pki/station.key: a private key file" in manifest and "captures/ocpp.pcap: holds an HTTP Basic" in manifest


def test_with_secrets_they_are_in_and_the_manifest_says_so(run, tmp_path):
    made = bundle(run, tmp_path / "out", with_secrets=True)
    assert not made.left_out and (tmp_path / "out" / "pki" / "station.key").exists()
    assert "SECRETS INCLUDED" in (tmp_path / "out" / MANIFEST).read_text()


@pytest.mark.parametrize("case, why", [("not-a-run", "no conformance.json"), ("inside", "lies inside")])
def test_what_is_not_a_bundle_is_refused(run, tmp_path, case, why):
    source, target = (tmp_path, tmp_path / "out") if case == "not-a-run" else (run, run / "bundle")
    with pytest.raises(ValueError, match=why):
        bundle(source, target)
