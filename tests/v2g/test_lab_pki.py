"""A lab's own ISO 15118-2 PKI, built with the openssl command line in a layout of its own (DER
and PEM files, a bundle of two V2G roots, an encrypted SECC key, no CA keys at all), described by
a YAML file and used as it lies: `evse serve --pki` and `ev run --pki` run a Plug & Charge
session with it, and `csms serve --pki` takes it as its backend."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from harness.pki.description import PkiDescription, PkiDescriptionError
from harness.pki.files import CertificateFileError
from harness.rig.config import load_rig
from harness.rig.hlc import material
from harness.rig.rig import Rig
from harness.trace import Recorder
from harness.verdicts import NotApplicable
from tests.pki.openssl_cli import OPENSSL, needs_openssl
from tests.v2g.test_cli import _ev, _serve, _stop

ROOT = Path(__file__).resolve().parents[2]
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ca_work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ca-work")


@pytest.fixture(scope="module")
def lab_ocsp_url() -> str:
    """Where the lab's MO answers OCSP for its contracts (the contract's AIA names it)."""
    return f"http://127.0.0.1:{_free_port()}/ocsp"


@pytest.fixture(scope="module")
def lab(ca_work, lab_ocsp_url, tmp_path_factory) -> Path:
    """The lab's PKI: what its suppliers handed over, in their layout; the CA keys stay with them."""
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed")
    work = ca_work
    EXTENSIONS["contract-aia"] = EXTENSIONS["contract"] + f"authorityInfoAccess=OCSP;URI:{lab_ocsp_url}\n"
    _issue(work, "v2g-root", "/DC=V2G/O=Lab V2G/CN=Lab V2G Root CA", "root")
    _issue(work, "other-root", "/DC=V2G/O=Other V2G/CN=Other V2G Root CA", "root")
    _issue(work, "cpo1", "/DC=V2G/O=Lab CPO/CN=Lab CPO Sub-CA 1", "sub1", "v2g-root")
    _issue(work, "cpo2", "/DC=V2G/O=Lab CPO/CN=Lab CPO Sub-CA 2", "sub2", "cpo1")
    _issue(work, "secc", "/DC=CPO/O=Lab CPO/CN=DEHARE1234567", "secc", "cpo2")
    _issue(work, "mo-root", "/DC=MO/O=Lab MO/CN=Lab MO Root CA", "root")
    _issue(work, "mo1", "/DC=MO/O=Lab MO/CN=Lab MO Sub-CA 1", "sub1", "mo-root")
    _issue(work, "mo2", "/DC=MO/O=Lab MO/CN=Lab MO Sub-CA 2", "sub2", "mo1")
    _issue(work, "contract", "/DC=MO/O=Lab MO/CN=DELABC00000001", "contract-aia", "mo2")
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
ocsp_responders: [{lab_ocsp_url}]
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


@pytest.fixture(scope="module")
def lab_responder(lab, ca_work, lab_ocsp_url):
    """The lab MO's OCSP responder for its Sub-CA 2: `openssl ocsp`, software the harness did not
    write, answering from a CA index in which the contract is valid."""
    contract = x509.load_pem_x509_certificate((ca_work / "contract.pem").read_bytes())
    expiry = contract.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    subject = "/" + "/".join(reversed(contract.subject.rfc4514_string().split(",")))
    (ca_work / "index.txt").write_text(f"V\t{expiry}\t\t{contract.serial_number:X}\tunknown\t{subject}\n")
    port = lab_ocsp_url.rsplit(":", 1)[1].split("/")[0]
    process = subprocess.Popen([OPENSSL, "ocsp", "-index", "index.txt", "-port", port, "-rsigner", "mo2.pem",
                                "-rkey", "mo2.key", "-CA", "mo2.pem", "-ndays", "1"], cwd=ca_work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # openssl serves one connection at a time: wait for its banner rather than probe the port
    assert process.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "waiting for OCSP client connections" not in process.stdout.readline():
        assert process.poll() is None, "openssl ocsp did not start"
    yield contract
    process.terminate()
    process.wait(10)


@needs_openssl
def test_a_rig_runs_plug_and_charge_with_the_labs_pki(harness_command, lab, lab_responder, tmp_path):
    """The rig file names the lab's description (``pki``): the reference EVSE and the EV take
    their parts, and the mock CSMS is the backend of the lab's MO roots, asking the lab's own OCSP
    responder (openssl's) about the contract the charger sends as hash data (OCPP 2.0.1 C07)."""
    rig_file = tmp_path / "rig.yaml"
    rig_text = (ROOT / "rigs" / "emulated.yaml").read_text()
    rig_text = rig_text.replace("../fixtures/", f"{ROOT}/fixtures/")
    rig_file.write_text(rig_text + f"\npki: {lab / 'pki.yaml'}\n")
    checked = subprocess.run([*harness_command, "rig", "check", "--rig", str(rig_file)], capture_output=True,
                             text=True, timeout=60)
    assert f"[ok] pki {lab / 'pki.yaml'}: 1 MO root(s)" in checked.stdout, checked.stdout + checked.stderr
    rig = Rig(load_rig(rig_file), run_dir=tmp_path / "run", trace=Recorder(tmp_path / "trace.jsonl"), run_id="lab")
    rig.setup()
    try:
        mark = rig.trace.now()
        result = rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
        assert result.ok, result.outcome.reason
        verdicts = [e.payload for e in rig.trace.select(name="ContractVerdict", observer="csms", since=mark)]
        assert verdicts and verdicts[-1]["certificate_status"] == "Accepted", verdicts
        authorize = [e.payload["payload"] for e in rig.csms.messages("Authorize", since=mark, kind="CALL")]
        hash_data = authorize[-1]["iso15118CertificateHashData"]
        assert {h["serialNumber"].lower().lstrip("0") for h in hash_data} >= {format(lab_responder.serial_number, "x")}
        assert any(h["responderURL"].endswith("/ocsp") for h in hash_data)
        assert [t.id_token for t in rig.csms.transactions(since=mark)] == ["DELABC00000001"]
        # what the lab's PKI does not let the harness do is not applicable, not an error
        with pytest.raises(NotApplicable, match="names its own OCSP responders"):
            rig.csms.revoke(lab_responder.serial_number)
        with pytest.raises(NotApplicable, match="holds no -2 CPO Sub-CA 2 key"):
            rig.csms.sign_faultily("expired")
        with pytest.raises(NotApplicable, match="holds no key of the -2"):
            material(rig).faulty_secc_context("expired-leaf")
        assert rig.csms.plug_and_charge_backend()[1] is not None  # contracts come from the lab's MO
    finally:
        assert rig.teardown() == []
