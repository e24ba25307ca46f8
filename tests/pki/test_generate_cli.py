"""``harness certs generate``: files, permissions, manifest, and the errors a user can make."""

from __future__ import annotations

import json
import os
import stat

import pytest

from harness.cli import main
from harness.pki.files import load_certificates, load_private_key
from harness.pki.manifest import read_manifest
from tests.pki.conftest import KEY_PASSWORD


def test_every_key_is_0600_and_encrypted(generated):
    keys = [e for e in read_manifest(generated.directory) if e["kind"] == "private-key"]
    assert keys
    for entry in keys:
        path = generated.directory / entry["file"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, entry["file"]
        assert entry["encrypted"] is True
    load_private_key(generated.directory / keys[0]["file"], KEY_PASSWORD)


def test_manifest_describes_every_certificate_file(generated):
    entries = read_manifest(generated.directory)
    files = {p.relative_to(generated.directory).as_posix()
             for p in generated.directory.rglob("*.pem") if "faults" not in p.parts
             and p.name != "anchors.pem"}
    listed = {e["file"] for e in entries}
    assert files <= listed
    for entry in entries:
        if entry["kind"] != "certificate":
            continue
        leaf = load_certificates(generated.directory / entry["file"])[0]
        for key in ("role", "chain", "subject", "serial", "not_before", "not_after",
                    "sha256_fingerprint"):
            assert entry[key], (entry["file"], key)
        assert entry["serial"] == format(leaf.serial_number, "X")


def test_generated_parts(generated):
    roles = {e["role"] for e in read_manifest(generated.directory)}
    assert {"v2g-root", "secc", "contract", "oem-provisioning", "cps", "vehicle",
            "csms-server", "charging-station", "manufacturer-root"} <= roles
    faults = {e.get("fault", "").split("/")[-1] for e in read_manifest(generated.directory)}
    assert {"expired-leaf", "revoked-by-crl-leaf", "secc-without-dc-cpo",
            "contract-cn-not-emaid"} <= faults
    assert (generated.directory / "crl" / "iso2-cpo-sub-ca-2.crl").is_file()


def test_command_line_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY_PASSWORD", "from-env")
    out = tmp_path / "out"
    assert main(["certs", "generate", "--out", str(out), "--parts", "iso2,ocpp",
                 "--password-env", "HARNESS_TEST_KEY_PASSWORD", "--station-id", "CS042",
                 "--no-faults"]) == 0
    assert "manifest" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert not any("fault" in e for e in manifest)
    assert (out / "ocpp" / "station-CS042.pem").is_file()
    load_private_key(out / "iso2" / "secc.key", b"from-env")


@pytest.mark.parametrize("args, message", [
    (["--parts", "iso3"], "unknown part(s) iso3"),
    (["--password-env", "HARNESS_TEST_UNSET_VARIABLE"], "HARNESS_TEST_UNSET_VARIABLE is not set"),
    (["--password-file", "no-such-file"], "no-such-file: cannot read password file"),
])
def test_command_line_errors(tmp_path, capsys, args, message):
    assert main(["certs", "generate", "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
