"""A lab's own ISO 15118-2 PKI, built with the openssl command line in a layout of its own (DER
and PEM files, a bundle of two V2G roots, an encrypted SECC key, no CA keys at all), described by
a YAML file and used as it lies: `evse serve --pki` and `ev run --pki` run a Plug & Charge
session with it, and `csms serve --pki` takes it as its backend."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.pki.description import PkiDescription, PkiDescriptionError
from harness.pki.files import CertificateFileError
from tests.pki.openssl_cli import OPENSSL, needs_openssl
from tests.v2g.test_cli import _ev, _serve, _stop

PASSWORD_ENV = "HARNESS_TEST_LAB_PKI_PASSWORD"
EXTENSIONS = {
    "root": "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
    "sub1": "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    "sub2": "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    "secc": "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    "contract": "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation,keyAgreement\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
}


def _openssl(work: Path, *args: str) -> None:
    done = subprocess.run([OPENSSL, *args], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def _issue(work: Path, name: str, subject: str, kind: str, issuer: str | None = None) -> None:
    """<name>.key (P-256) and <name>.pem, signed with SHA-256 by <issuer> (self-signed without)."""
    (work / f"{name}.ext").write_text(EXTENSIONS[kind])
    _openssl(work, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")
    _openssl(work, "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
    signing = ["-signkey", f"{name}.key"] if issuer is None else ["-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
                                                                   "-set_serial", str(int.from_bytes(os.urandom(8), "big"))]
    _openssl(work, "x509", "-req", "-in", f"{name}.csr", *signing, "-days", "365", "-sha256",
             "-extfile", f"{name}.ext", "-out", f"{name}.pem")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """The lab's PKI: what its suppliers handed over, in their layout; the CA keys stay with them."""
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed")
    work = tmp_path_factory.mktemp("ca-work")
    _issue(work, "v2g-root", "/DC=V2G/O=Lab V2G/CN=Lab V2G Root CA", "root")
    _issue(work, "other-root", "/DC=V2G/O=Other V2G/CN=Other V2G Root CA", "root")
    _issue(work, "cpo1", "/DC=V2G/O=Lab CPO/CN=Lab CPO Sub-CA 1", "sub1", "v2g-root")
    _issue(work, "cpo2", "/DC=V2G/O=Lab CPO/CN=Lab CPO Sub-CA 2", "sub2", "cpo1")
    _issue(work, "secc", "/DC=CPO/O=Lab CPO/CN=DEHARE1234567", "secc", "cpo2")
    _issue(work, "mo-root", "/DC=MO/O=Lab MO/CN=Lab MO Root CA", "root")
    _issue(work, "mo1", "/DC=MO/O=Lab MO/CN=Lab MO Sub-CA 1", "sub1", "mo-root")
    _issue(work, "mo2", "/DC=MO/O=Lab MO/CN=Lab MO Sub-CA 2", "sub2", "mo1")
    _issue(work, "contract", "/DC=MO/O=Lab MO/CN=DELABC00000001", "contract", "mo2")
    lab = tmp_path_factory.mktemp("lab")
    for folder in ("roots", "charger", "vehicle"):
        (lab / folder).mkdir()
    _openssl(work, "x509", "-in", "mo-root.pem", "-outform", "DER", "-out", str(lab / "roots" / "MO-ROOT.crt"))
    (lab / "roots" / "v2g-roots.pem").write_text((work / "other-root.pem").read_text()
                                                 + (work / "v2g-root.pem").read_text())
    (lab / "roots" / "v2g-roots.key").write_text("a key beside a roots file must not matter\n")
    (lab / "charger" / "SECC_chain.pem").write_text("".join((work / f"{n}.pem").read_text()
                                                           for n in ("secc", "cpo2", "cpo1")))
    os.environ[PASSWORD_ENV] = "lab-secret-1"
    _openssl(work, "pkey", "-in", "secc.key", "-aes256", "-passout", f"env:{PASSWORD_ENV}",
             "-out", str(lab / "charger" / "SECC.key.enc"))
    (lab / "vehicle" / "contract-chain.pem").write_text("".join((work / f"{n}.pem").read_text()
                                                               for n in ("contract", "mo2", "mo1")))
    _openssl(work, "pkey", "-in", "contract.key", "-out", str(lab / "vehicle" / "contract.pem.key"))
    (lab / "pki.yaml").write_text(f"""
password: {{env: {PASSWORD_ENV}}}
iso2:
  v2g_roots: [roots/v2g-roots.pem]
  mo_roots: [roots/MO-ROOT.crt]
  secc: {{chain: charger/SECC_chain.pem, key: charger/SECC.key.enc}}
  contract: {{chain: vehicle/contract-chain.pem, key: vehicle/contract.pem.key}}
""")
    return lab


@needs_openssl
def test_a_plug_and_charge_session_with_the_labs_pki_as_it_lies(harness_command, lab, tmp_path):
    port = str(20000 + (os.getpid() + 7) % 20000)
    evse = _serve(harness_command, ["--iface", "lo", "--pki", str(lab / "pki.yaml"), "--sdp-port", port,
                                    "--sessions", "1", "--out", str(tmp_path / "evse")])
    try:
        result = _ev(harness_command, ["--iface", "lo", "--sdp-target", "::1", "--sdp-port", port,
                                       "--pki", str(lab / "pki.yaml"), "--protocol", "iso2", "--energy", "AC",
                                       "--identification", "PnC", "--cycles", "2", "--out", str(tmp_path / "ev")])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "outcome:   OK" in result.stdout
    finally:
        _stop(evse)
    trace = (tmp_path / "evse" / "trace.jsonl").read_text()
    assert "contract chain accepted, validated by the SECC" in trace and "Lab MO Root CA" in trace
    # the EVSE opened its encrypted key; what it wrote for itself is not readable by others
    key = tmp_path / "evse" / "pki-evse" / "iso2" / "secc.key"
    assert key.stat().st_mode & 0o077 == 0


@needs_openssl
def test_a_missing_part_is_one_line_naming_the_part_and_the_role(harness_command, lab, tmp_path):
    only_evse = tmp_path / "pki.yaml"
    only_evse.write_text((lab / "pki.yaml").read_text().replace("  contract:", "  # contract:")
                         .replace("roots/", f"{lab}/roots/").replace("charger/", f"{lab}/charger/"))
    result = _ev(harness_command, ["--iface", "lo", "--sdp-target", "::1", "--sdp-port", "1", "--pki", str(only_evse),
                                   "--protocol", "iso2", "--identification", "PnC"])
    assert result.returncode == 2
    assert "iso2: no contract certificate and key, and the EV needs them for Plug & Charge" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


@needs_openssl
def test_the_csms_takes_the_description_as_its_backend(harness_command, lab, tmp_path):
    process = subprocess.Popen([*harness_command, "csms", "serve", "--host", "127.0.0.1", "--port", "0",
                                "--pki", str(lab / "pki.yaml"), "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    banner = next((line for line in lines if line.startswith("Plug & Charge:")), "".join(lines))
    assert "1 MO root(s)" in banner and "contracts come from its MO" in banner


def test_description_problems_name_the_field(tmp_path):
    (tmp_path / "pki.yaml").write_text("iso2:\n  v2g_roots: [nope.pem]\n  secc: {chain: x.pem}\n  sec: 1\n")
    with pytest.raises(PkiDescriptionError) as raised:
        PkiDescription.load(tmp_path / "pki.yaml")
    text = str(raised.value)
    assert "iso2.v2g_roots[0]: no such file 'nope.pem'" in text
    assert "iso2.secc.key: is required" in text
    assert "iso2.sec: unknown field (did you mean 'secc'?)" in text


def test_a_wrong_password_names_the_key_and_the_role(lab, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(CertificateFileError, match=r"iso2\.secc\.key for the evse"):
        PkiDescription.load(lab / "pki.yaml").materialize(tmp_path, "evse")
