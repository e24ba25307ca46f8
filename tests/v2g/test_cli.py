"""``harness evse serve`` and ``harness ev run`` as processes: on loopback, and on a veth pair
whose EVSE end is in its own network namespace (link-local addresses, multicast SDP)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

FAST = ["--time-scale", "0.1"]


def _serve(harness_command, args, *, netns=None):
    command = [*harness_command, "evse", "serve", *args, "--quiet", *FAST]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith("SECC on") or process.poll() is not None:
            break
    assert any(l.startswith("SECC on") for l in lines), "".join(lines)
    return process


def _ev(harness_command, args):
    return subprocess.run([*harness_command, "ev", "run", *args, "--quiet", *FAST], capture_output=True, text=True,
                          timeout=60)


def _stop(process):
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_a_dc_session_and_a_tls13_bpt_session_on_loopback(harness_command, tmp_path):
    certs = tmp_path / "pki"
    port = str(20000 + os.getpid() % 20000)
    evse = _serve(harness_command, ["--iface", "lo", "--certs", str(certs), "--sdp-port", port, "--sessions", "2",
                                    "--out", str(tmp_path / "evse")])
    try:
        common = ["--iface", "lo", "--sdp-target", "::1", "--sdp-port", port]
        tcp = _ev(harness_command, [*common, "--protocol", "iso2", "--energy", "DC", "--no-tls", "--cycles", "3"])
        assert tcp.returncode == 0, tcp.stdout + tcp.stderr
        assert "outcome:   OK" in tcp.stdout and "protocol:  iso2" in tcp.stdout
        tls = _ev(harness_command, [*common, "--energy", "DC_BPT", "--certs", str(certs), "--cycles", "3"])
        assert tls.returncode == 0, tls.stdout + tls.stderr
        assert "protocol:  iso20-dc" in tls.stdout
        evse.wait(20)  # --sessions 2: it stops by itself
    finally:
        _stop(evse)
    assert evse.returncode == 0
    assert (tmp_path / "evse" / "trace.jsonl").stat().st_size > 0


def test_plug_and_charge_is_validated_against_the_mo_roots_given(harness_command, tmp_path):
    """evse serve validates contract chains against the MO roots of its --certs folder, or of
    --mo-roots: a contract of the folder's PKI is accepted by the first, refused by an SECC that
    trusts another MO root only (PaymentDetailsRes FAILED_CertChainError)."""
    from cryptography.hazmat.primitives import serialization

    from harness.pki.iso15118 import build_iso15118_pki
    from harness.pki.profiles import Generation, Role

    certs = tmp_path / "pki"
    other_root = tmp_path / "other-mo-root.pem"
    other_root.write_bytes(build_iso15118_pki(Generation.ISO2).issued[Role.MO_ROOT].cert.public_bytes(
        serialization.Encoding.PEM))
    port = str(20000 + (os.getpid() + 7) % 20000)
    common = ["--iface", "lo", "--sdp-target", "::1", "--sdp-port", port, "--protocol", "iso2", "--energy", "AC",
              "--identification", "PnC", "--certs", str(certs), "--cycles", "2"]
    for extra, accepted in (([], True), (["--mo-roots", str(other_root)], False)):
        evse = _serve(harness_command, ["--iface", "lo", "--certs", str(certs), "--sdp-port", port, "--sessions",
                                        "1", "--out", str(tmp_path / f"evse-{accepted}"), *extra])
        try:
            result = _ev(harness_command, common)
        finally:
            _stop(evse)
        if accepted:
            assert result.returncode == 0, result.stdout + result.stderr
        else:
            assert result.returncode == 1 and "FAILED_CertChainError" in result.stdout, result.stdout
        trace = (tmp_path / f"evse-{accepted}" / "trace.jsonl").read_text()
        assert ('"ContractAccepted"' if accepted else '"ContractRefused"') in trace


def test_ev_run_names_a_missing_interface(harness_command):
    result = _ev(harness_command, ["--iface", "no-such-if0"])
    assert result.returncode == 2 and "no network interface 'no-such-if0'" in result.stderr


def test_tls_without_certificates_is_a_usage_error(harness_command):
    result = _ev(harness_command, ["--iface", "lo", "--identification", "PnC"])
    assert result.returncode == 2 and "--pki" in result.stderr


def _can_use_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.mark.skipif(not _can_use_netns(), reason="network namespaces need root and iproute2")
def test_a_session_over_a_veth_into_a_network_namespace(harness_command, tmp_path):
    from tests.v2g.peers import VethPair

    with VethPair(uuid.uuid4().hex[:6]) as pair:
        ev_if = pair.ev
        evse = _serve(harness_command, ["--iface", pair.evse, "--certs", str(tmp_path / "pki"), "--sessions", "1"],
                      netns=pair.netns)
        try:
            # SDP by multicast to ff02::1 on the EV's end, then TCP to the EVSE's link-local address
            result = _ev(harness_command, ["--iface", ev_if, "--protocol", "iso2", "--energy", "AC", "--no-tls",
                                           "--cycles", "2", "--out", str(tmp_path / "ev")])
            assert result.returncode == 0, result.stdout + result.stderr
            assert "outcome:   OK" in result.stdout
            # the -2 EVCCID is the MAC of the EV's interface ([V2G2-879])
            mac = pair.ev_mac.replace(":", "").upper()
            trace = (tmp_path / "ev" / "trace.jsonl").read_text()
            assert f'"EVCCID": "{mac}"' in trace or f'"EVCCID":"{mac}"' in trace
        finally:
            _stop(evse)
