"""SLAC over real raw sockets on veth pairs in network namespaces: our EV against pyslac's EVSE
(an independent implementation), through the Green PHY modem emulators; crosstalk; the link that
comes up once keys match; captures that tshark dissects; namespaces that never outlive a run.

Needs root (namespaces, raw sockets). Elsewhere the tests skip and say so; in CI (which runs as
root) a missing capability is a failure, not a skip."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from harness.capture.packets import read_capture
from harness.iec61851.pilot import CpState, SimulatedPilot
from harness.netns import Netns, NetnsError, packet_socket, remove_stale, unavailable_reason
from harness.rig.config import load_rig, parse_rig
from harness.rig.plc import PowerLine
from harness.rig.rig import Rig, RigSetupError
from harness.slac import frames as slac_frames
from harness.slac.ev import Matched
from harness.slac.evse import PyslacEvse
from harness.slac.io import EvSlacSession
from harness.slac.timing import STANDARD
from harness.trace import Recorder
from harness.trace.pcap import LinkCapture, packet_tap

ROOT = Path(__file__).resolve().parents[2]
# a tenth of the standards' timers, yet no timeout under 0.4 s: a busy CI machine must not turn
# a late CM_ATTEN_CHAR.IND into a failed match
TIMERS = STANDARD.scaled(0.1, min_timeout=0.4)


@pytest.fixture(autouse=True)
def _needs_namespaces():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root, yet: {reason}")
        pytest.skip(reason)


@pytest.fixture
def line(tmp_path):
    recorder = Recorder(tmp_path / "trace.jsonl")
    built = PowerLine.build(recorder, {"ev": "ev", "evse": "evse", "neighbour": "evse"})
    try:
        yield built
    finally:
        assert built.close() == []


async def _reference_evse(line: PowerLine, *, timers=TIMERS, modems_started: bool = False):
    """The modems up, the EV 18 dB from the EVSE, the reference EVSE's SLAC following a pilot in A."""
    if not modems_started:
        line.start_modems()
    line.set_attenuation("ev", "evse", 18)
    pilot = SimulatedPilot(line.recorder)
    evse = PyslacEvse(line.recorder, line.stations["evse"].endpoint, timers=timers)
    await evse.start(pilot)
    return pilot, evse


async def _match(line: PowerLine, *, neighbour_db: float | None = None, capture: Path | None = None,
                 modems_started: bool = False):
    recorder = line.recorder
    tap = None
    if capture is not None:
        tap = LinkCapture(recorder, packet_tap("plc0", line.stations["ev"].netns), capture, where="ev",
                          dissectors=(slac_frames.describe,))
        tap.start()
    pilot, evse = await _reference_evse(line, modems_started=modems_started)
    neighbour = None
    if neighbour_db is not None:
        line.set_attenuation("ev", "neighbour", neighbour_db)
        neighbour_pilot = SimulatedPilot(recorder, evse_id=2)
        neighbour = PyslacEvse(recorder, line.stations["neighbour"].endpoint, timers=TIMERS, name="neighbour")
        await neighbour.start(neighbour_pilot)
        await neighbour_pilot.set_state(CpState.B)
    ev = EvSlacSession(recorder, line.stations["ev"].endpoint, timers=TIMERS)
    try:
        await pilot.set_state(CpState.B)
        result = await ev.match_when_pilot_allows(pilot, 5)
        evse_side = await evse.wait_matched(2) if isinstance(result, Matched) and result.evse_mac == evse.mac else None
        return result, evse, neighbour, evse_side
    finally:
        ev.close()
        await evse.stop()
        if neighbour is not None:
            await neighbour.stop()
        if tap is not None:
            tap.stop()


def test_our_ev_matches_pyslacs_evse_through_the_modems(line, run):
    result, evse, _, evse_side = run(_match(line))
    assert isinstance(result, Matched), result
    assert result.evse_mac == evse.mac == line.stations["evse"].mac
    assert result.attenuation_db == 18.0
    # both ends agree on the network; the EV's modem joined it and both modems see the link up
    assert evse_side.nid == result.nid and evse_side.nmk == result.nmk
    assert evse_side.ev_mac == line.stations["ev"].mac and evse_side.run_id == result.run_id
    ups = line.recorder.select(name="LinkUp")
    assert {e.observer for e in ups} >= {"modem-ev", "modem-evse"}


def test_crosstalk_the_ev_matches_the_nearer_evse(line, run):
    result, evse, neighbour, _ = run(_match(line, neighbour_db=50))
    assert isinstance(result, Matched)
    assert result.candidates == {evse.mac: 18.0, neighbour.mac: 50.0}
    assert result.evse_mac == evse.mac


def test_crosstalk_with_the_neighbour_nearer(line, run):
    result, evse, neighbour, _ = run(_match(line, neighbour_db=6))
    assert isinstance(result, Matched) and result.evse_mac == neighbour.mac


def test_an_unplug_the_match_does_not_take_at_once_still_ends_it(line, run):
    """pyslac reads each frame through asyncio.wait_for, which on Python 3.11 drops a cancellation
    that arrives together with a frame (CPython gh-86296): an unplug during the sounds then left
    the match running, and the EVSE never took the next plug-in (SLAC-006 on the netns rig). The
    unplug cancels until the match has ended; plugging in again matches (ISO 15118-3: a new
    matching on every transition to state B)."""

    async def match_that_drops_one_cancel():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # what wait_for does on 3.11 when a frame came with the cancellation
        await asyncio.sleep(3600)

    async def scenario():
        pilot, evse = await _reference_evse(line)
        ev = EvSlacSession(line.recorder, line.stations["ev"].endpoint, timers=TIMERS)
        try:
            await pilot.set_state(CpState.B)
            async with asyncio.timeout(2):
                while evse.session.matching_process_task is None:  # the EVSE's CP handling starts it
                    await asyncio.sleep(0.01)
            running = evse.session.matching_process_task
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            stubborn = asyncio.get_running_loop().create_task(match_that_drops_one_cancel())
            evse.session.matching_process_task = stubborn
            await asyncio.sleep(0)
            await pilot.set_state(CpState.A)
            await pilot.set_state(CpState.B)
            result = await ev.match_when_pilot_allows(pilot, 10)
            return result, stubborn
        finally:
            ev.close()
            await evse.stop()

    result, stubborn = run(scenario())
    assert stubborn.done()
    assert isinstance(result, Matched), result


def test_data_crosses_the_line_only_once_keys_match(line, run):
    """IPv6 between the hosts: dropped while their modems are in different networks, carried
    after the match (the link is up once keys match)."""

    def exchange() -> bool:
        ev_ns, evse_ns = line.stations["ev"].netns, line.stations["evse"].netns
        server = evse_ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        client = ev_ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            server.bind(("::", 15118))
            server.settimeout(0.3)
            index = ev_ns.call(socket.if_nametoindex, "plc0")
            client.sendto(b"SDP?", ("ff02::1", 15118, 0, index))
            try:
                return server.recvfrom(100)[0] == b"SDP?"
            except TimeoutError:
                return False
        finally:
            server.close()
            client.close()

    async def scenario():
        line.start_modems()
        await asyncio.sleep(0.05)
        before = await asyncio.to_thread(exchange)
        result, *_ = await _match(line, modems_started=True)
        await asyncio.sleep(0.05)
        after = await asyncio.to_thread(exchange)
        return before, result, after

    before, result, after = run(scenario())
    assert before is False
    assert isinstance(result, Matched)
    assert after is True


def test_the_capture_has_every_slac_frame_and_tshark_dissects_them(line, run, tmp_path):
    capture = tmp_path / "link.pcap"
    result, *_ = run(_match(line, capture=capture))
    assert isinstance(result, Matched)
    frames = [(packet.at, packet.data) for packet in read_capture(capture)]
    names = [e.name for e in line.recorder.select(layer="slac", observer="capture")]
    for expected in ("CM_SLAC_PARM.REQ", "CM_SLAC_PARM.CNF", "CM_START_ATTEN_CHAR.IND", "CM_MNBC_SOUND.IND",
                     "CM_ATTEN_CHAR.IND", "CM_ATTEN_CHAR.RSP", "CM_SLAC_MATCH.REQ", "CM_SLAC_MATCH.CNF",
                     "CM_SET_KEY.REQ", "CM_SET_KEY.CNF"):
        assert expected in names, expected
    assert len(frames) >= len(names) and all(f[1][12:14] in (b"\x88\xe1", b"\x86\xdd") for f in frames)
    if shutil.which("tshark") is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is missing in CI (.ci/run installs it)")
        pytest.skip("tshark is not installed: `apt-get install tshark` to check the dissection")
    fields = subprocess.run(["tshark", "-r", str(capture), "-Y", "homeplug-av", "-T", "fields",
                             "-e", "frame.protocols", "-e", "_ws.col.Info"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert fields and all("homeplug-av" in line.split("\t")[0] for line in fields)
    infos = " ".join(line.split("\t")[1] for line in fields)
    for expected in ("CM_SLAC_PARM.REQ", "CM_START_ATTEN_CHAR.IND", "CM_MNBC_SOUND.IND", "CM_ATTEN_CHAR.IND",
                     "CM_SLAC_MATCH.REQ", "CM_SLAC_MATCH.CNF", "CM_SET_KEY.REQ"):
        assert expected in infos, expected


def test_namespaces_go_away_after_a_failure_and_stale_ones_are_removed(tmp_path, monkeypatch):
    recorder = Recorder(tmp_path / "trace.jsonl")
    with pytest.raises(NetnsError, match="station name"):
        PowerLine.build(recorder, {"ev": "ev", "bad name": "evse"})

    def broken(iface, netns=None):  # a failure half-way, after namespaces and veths exist
        raise NetnsError("injected")

    monkeypatch.setattr("harness.rig.plc.disable_tx_offload", broken)
    with pytest.raises(NetnsError, match="injected"):
        PowerLine.build(recorder, {"ev": "ev", "evse": "evse"}, clean_stale=False)
    assert not [n for n in _namespaces() if n.startswith(f"hrn{os.getpid()}-")]
    # a namespace of a harness process that is gone is removed at the next start
    dead = _dead_pid()
    Netns.create(f"hrn{dead}-9-plc")
    assert f"hrn{dead}-9-plc" in remove_stale()
    assert f"hrn{dead}-9-plc" not in _namespaces()


def test_the_netns_rig_sets_up_matches_and_tears_down(tmp_path):
    rig = Rig(load_rig(ROOT / "rigs" / "emulated-netns.yaml"), run_dir=tmp_path, trace=Recorder(tmp_path / "t.jsonl"))
    with rig:
        rig.link.begin_case("case")
        rig.ev.plug_in()
        result = rig.link.match()
        assert isinstance(result, Matched)
        rig.ev.unplug()
        captured = rig.link.end_case()
        assert captured.frames > 10 and captured.keylog.exists()
        prefix = rig.link.line.prefix
    assert not [n for n in _namespaces() if n.startswith(prefix)]


def test_a_missing_nic_stops_the_rig_with_the_fix(tmp_path):
    data = load_rig(ROOT / "rigs" / "emulated.yaml")
    config = parse_rig({"name": "nic", "kind": "emulated", "csms": {"port": 0},
                        "evse": {"station_id": "X", "ocpp": {"version": "2.0.1", "password": "p" * 16}},
                        "link": {"kind": "nic", "iface": "nosuchnic0"}})
    assert data.link.kind == "loopback"
    rig = Rig(config, run_dir=tmp_path, trace=Recorder(tmp_path / "t.jsonl"))
    with pytest.raises(RigSetupError, match="no network interface nosuchnic0"):
        rig.setup()
    assert not rig.up


def test_packet_socket_names_the_interface():
    with pytest.raises(NetnsError, match="link.iface"):
        packet_socket("nosuchnic0")


def _namespaces() -> list[str]:
    return [line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                          text=True).stdout.splitlines() if line.strip()]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


#: what the suite run on the netns rig covers: the SLAC suite (SLAC-007 is the whole chain: SLAC,
#: SDP, ISO 15118-2 Plug & Charge over TLS, SessionStop) and an EIM and a PnC session case
NETNS_CASES = ["testcases/test_slac.py", "testcases/test_iso15118_sessions.py::test_iso2_eim_session",
               "testcases/test_iso15118_sessions.py::test_iso2_plug_and_charge"]


@pytest.fixture(scope="module")
def netns_run(tmp_path_factory, harness_command):
    """One `harness run` of :data:`NETNS_CASES` on rigs/emulated-netns.yaml: its report folder."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root, yet: {reason}")
        pytest.skip(reason)
    report = tmp_path_factory.mktemp("netns") / "run"
    result = subprocess.run(harness_command + ["run", "--rig", str(ROOT / "rigs" / "emulated-netns.yaml"),
                                               "--report-dir", str(report), *NETNS_CASES],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return report


def _cases(report: Path) -> list[dict]:
    import json

    return json.loads((report / "conformance.json").read_text())["cases"]


def test_the_slac_suite_passes_on_the_netns_rig_with_a_capture_per_case(netns_run):
    cases = _cases(netns_run)
    assert cases and all(c["verdict"] == "pass" for c in cases), [(c["instance"], c["verdict"]) for c in cases]
    ids = {c["id"] for c in cases}
    assert {"SLAC-001", "SLAC-007", "V2G-SES-002", "V2G-SES-003"} <= ids
    for case in cases:
        pcap, keylog = case["evidence"]["captures"]  # within the report folder, which travels
        assert pcap == f"captures/{case['instance']}.pcap" and list(read_capture(netns_run / pcap))
        assert keylog.endswith(".keys.log") and (netns_run / keylog).exists()
        assert (netns_run / keylog).stat().st_mode & 0o777 == 0o600  # it decrypts the case's sessions
    assert (netns_run / "captures" / "v2g-tls-keys.log").stat().st_mode & 0o777 == 0o600
    trace = Recorder.load(netns_run / "trace.jsonl")
    assert trace.select(layer="slac", observer="capture", name="CM_SLAC_MATCH.CNF")
    assert not [n for n in _namespaces() if n.startswith("hrn")], "the run left namespaces behind"


def test_the_iso15118_sessions_ran_over_the_line(netns_run):
    """SDP by multicast on the line and V2GTP between the hosts' link-local addresses, each EV
    session after a SLAC match of its own plug-in."""
    trace = Recorder.load(netns_run / "trace.jsonl")
    sessions = trace.select(layer="v2g", name="TcpConnected", observer="ev")
    assert len(sessions) >= 1 + 4 + 2  # SLAC-007, V2G-SES-002 x4, V2G-SES-003 x2
    for connected in sessions:
        assert connected.payload["peer"].startswith("[fe80::"), connected.summary
        sdp = trace.last(layer="sdp", name="SdpRequest", observer="ev", where=lambda e: e.mono < connected.mono)
        plugged = trace.last(layer="pilot", name="PlugIn", where=lambda e: e.mono < connected.mono)
        matched = trace.last(layer="slac", name="SlacMatched", observer="ev", where=lambda e: e.mono < connected.mono)
        assert sdp.payload["to"] == "ff02::1" and plugged.mono < matched.mono < sdp.mono


def test_the_plug_and_charge_capture_dissects_in_tshark(netns_run):
    """SLAC-007's pcap: SLAC as HomePlug AV, SDP on UDP 15118, the TLS handshake, and with the
    case's key log the V2GTP messages inside TLS, the first one the EV's supportedAppProtocolReq."""
    from harness import exi

    case = next(c for c in _cases(netns_run) if c["id"] == "SLAC-007")
    pcap, keylog = (netns_run / p for p in case["evidence"]["captures"])
    tshark = _tshark()

    slac = tshark("-r", pcap, "-Y", "homeplug-av", "-T", "fields", "-e", "frame.protocols", "-e", "_ws.col.Info")
    assert slac and all("homeplug-av" in row[0] for row in slac)
    infos = " ".join(row[1] for row in slac)
    for expected in ("CM_SLAC_PARM.REQ", "CM_SLAC_PARM.CNF", "CM_START_ATTEN_CHAR.IND", "CM_MNBC_SOUND.IND",
                     "CM_ATTEN_CHAR.IND", "CM_ATTEN_CHAR.RSP", "CM_SLAC_MATCH.REQ", "CM_SLAC_MATCH.CNF",
                     "CM_SET_KEY.REQ"):
        assert expected in infos, expected

    sdp = tshark("-r", pcap, "-Y", "udp.port == 15118", "-T", "fields", "-e", "ipv6.dst", "-e", "udp.dstport",
                 "-e", "data.data")
    request = next(row for row in sdp if row[1] == "15118")
    response = next(row for row in sdp if row[1] != "15118")
    assert request[0] == "ff02::1" and request[2] == "01fe9000000000020000"  # SDP request: TLS, TCP
    answer = bytes.fromhex(response[2])
    assert answer[:4] == bytes.fromhex("01fe9001") and answer[26] == 0x00  # SDP response, Security TLS
    tls_port = int.from_bytes(answer[24:26], "big")

    decode_as = ("-d", f"tcp.port=={tls_port},tls")
    hello = tshark("-r", pcap, *decode_as, "-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "tcp.dstport")
    assert [row[0] for row in hello] == [str(tls_port)]
    assert tshark("-r", pcap, *decode_as, "-Y", "tls.handshake.type == 2", "-T", "fields", "-e", "frame.number")

    decrypted = tshark("-r", pcap, *decode_as, "-o", f"tls.keylog_file:{keylog}", "-Y", "tls and data",
                       "-T", "fields", "-e", "tcp.dstport", "-e", "data.data")
    # a frame may carry several records: tshark joins their fields with ","
    records = [(int(row[0]), bytes.fromhex(data)) for row in decrypted if len(row) > 1 for data in row[1].split(",")]
    assert len(records) >= 22, f"{len(records)} decrypted records"  # 11 requests and their responses at least
    assert all(data[:2] == b"\x01\xfe" for _, data in records)  # V2GTP version 1 and its inverse
    first_port, first = records[0]
    assert first_port == tls_port  # from the EV
    message = exi.decode(first[8:], "sap")
    assert "supportedAppProtocolReq" in message


def _tshark():
    if shutil.which("tshark") is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is missing in CI (.ci/run installs it)")
        pytest.skip("tshark is not installed: `apt-get install tshark` to check the dissection")

    def tshark(*args) -> list[list[str]]:
        done = subprocess.run(["tshark", *map(str, args)], capture_output=True, text=True, timeout=60, check=True)
        return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]

    return tshark


def test_tcp_over_link_local_addresses_carries_bulk_data_after_the_match(line, run):
    """What V2GTP over TCP/TLS needs from the line: a TCP connection between the hosts' fe80::
    addresses, with segments larger than one frame in both directions."""

    async def scenario():
        result, *_ = await _match(line)
        assert isinstance(result, Matched)
        evse_ns, ev_ns = line.stations["evse"].netns, line.stations["ev"].netns
        scope = ev_ns.call(socket.if_nametoindex, "plc0")
        address = evse_ns.ip("-6", "-o", "addr", "show", "dev", "plc0", "scope", "link").split()[3].split("/")[0]
        listener = evse_ns.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.bind(("::", 0))
        listener.listen()
        port = listener.getsockname()[1]

        async def echo(reader, writer):
            writer.write(await reader.readexactly(200_000))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, sock=listener)
        client = ev_ns.socket(socket.AF_INET6, socket.SOCK_STREAM)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, (address, port, 0, scope))
        reader, writer = await asyncio.open_connection(sock=client)
        payload = os.urandom(200_000)
        writer.write(payload)
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        writer.close()
        server.close()
        return echoed == payload

    assert run(scenario()) is True


def test_the_command_line_matches_across_processes(line, harness_command):
    """`harness slac modem|evse|ev` as separate processes on the emulated line, as a lab would use
    them on real interfaces."""
    prefix = line.prefix
    modems = [subprocess.Popen(harness_command + ["slac", "modem", "--netns", prefix + "plc", "--iface", f"h-{n}",
                                                  "--line", f"l-{n}", "--role", role], stdout=subprocess.PIPE,
                               text=True) for n, role in (("ev", "ev"), ("evse", "evse"))]
    evse = None
    try:
        for modem in modems:
            assert "Ctrl-C stops" in modem.stdout.readline()
        evse = subprocess.Popen(harness_command + ["slac", "evse", "--netns", prefix + "evse", "--iface", "plc0",
                                                   "--scale", "0.1", "--timeout", "20"], stdout=subprocess.PIPE,
                                text=True)
        ev = None
        for _ in range(3):  # the EVSE process needs a moment to set its key and listen
            ev = subprocess.run(harness_command + ["slac", "ev", "--netns", prefix + "ev", "--iface", "plc0",
                                                   "--scale", "0.1"], capture_output=True, text=True, timeout=60)
            if ev.returncode == 0:
                break
        assert ev.returncode == 0, ev.stdout + ev.stderr
        assert f"matched     EVSE {line.stations['evse'].mac}" in ev.stdout and "attenuation 20.0 dB" in ev.stdout
        out, _ = evse.communicate(timeout=30)
        assert evse.returncode == 0 and f"matched     EV {line.stations['ev'].mac}" in out
        nid = next(w.split()[1] for w in ev.stdout.splitlines() if w.startswith("NID"))
        assert f"NID         {nid}" in out
    finally:
        for process in [*modems, evse]:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)


def test_slac_cli_errors_are_one_line(harness_command):
    result = subprocess.run(harness_command + ["slac", "ev", "--iface", "nosuchnic0", "--timeout", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no network interface nosuchnic0" in result.stderr
    assert "Traceback" not in result.stderr


# -- against Qualcomm's own SLAC tools ------------------------------------------------------------
# open-plc-utils (Debian's plc-utils-extra: `evse`, `pev`) is the SLAC software Qualcomm Atheros
# published for its Green PHY modems: it sets keys on its local modem and reads CM_SET_KEY.CNF the
# way QCA700x firmware answers it (RESULT 0x01 on success, 0x00 is "Device refused request").

def _qualcomm_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"open-plc-utils' {name} is missing in CI (.ci/run installs plc-utils-extra)")
        pytest.skip(f"open-plc-utils' {name} is not installed: `apt-get install plc-utils-extra`")
    return path


async def _qualcomm(tool: str, netns: Netns, tmp_path: Path, *extra: str) -> asyncio.subprocess.Process:
    profile = tmp_path / f"{Path(tool).name}.ini"
    profile.write_text("[default]\nsettle time = 1\ncharge time = 1\n")  # seconds: keep the test short
    return await asyncio.create_subprocess_exec("ip", "netns", "exec", netns.name, tool, "-i", "plc0", "-p",
                                                str(profile), *extra, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


async def _output(process: asyncio.subprocess.Process, timeout: float) -> str:
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        process.kill()
        out, _ = await process.communicate()
    return out.decode(errors="replace")


@pytest.mark.parametrize("firmware", ["qualcomm", "homeplug"])
def test_qualcomms_evse_tool_matches_our_ev_through_the_modem_emulator(line, run, tmp_path, firmware):
    """open-plc-utils' evse sets its key on the EVSE's modem emulator, then plays the EVSE of a
    whole SLAC with our EV. With the emulator answering as QCA firmware does (the default), it
    matches; answering as the HomePlug text says, the tool stops: "Device refused request"."""
    tool = _qualcomm_tool("evse")

    async def scenario():
        line.start_modems(firmware=firmware)
        line.set_attenuation("ev", "evse", 18)
        evse = await _qualcomm(tool, line.stations["evse"].netns, tmp_path, "-l")
        await asyncio.sleep(1.5)  # the tool sets its key, then listens
        ev = EvSlacSession(line.recorder, line.stations["ev"].endpoint, timers=STANDARD)
        try:
            result = await ev.match()
        finally:
            ev.close()
        return result, await _output(evse, 20)

    result, printed = run(scenario())
    if firmware == "qualcomm":
        assert isinstance(result, Matched), f"{result}\n{printed}"
        assert result.evse_mac == line.stations["evse"].mac and result.attenuation_db == 18.0
        assert "CM_SLAC_MATCH.CNF" in printed and "refused" not in printed
        # the tool's NID and NMK (its evse.ini defaults) are what our EV joined
        assert result.nid.hex().upper() == "026BCBA5354E08"
    else:
        assert "Device refused request" in printed
        assert not isinstance(result, Matched)


def test_qualcomms_pev_tool_matches_our_evse_through_the_modem_emulators(line, run, tmp_path):
    """open-plc-utils' pev plays the EV against the reference EVSE's SLAC (pyslac behind our
    EVSE modem) and sets the key it was given on the EV's modem emulator."""
    tool = _qualcomm_tool("pev")

    async def scenario():
        pilot, evse = await _reference_evse(line, timers=STANDARD)
        try:
            await pilot.set_state(CpState.B)
            printed = await _output(await _qualcomm(tool, line.stations["ev"].netns, tmp_path), 40)
            return printed, await evse.wait_matched(5)
        finally:
            await evse.stop()

    printed, matched = run(scenario())
    assert "CM_SLAC_MATCH.CNF" in printed and "Can't set keys" not in printed, printed
    assert printed.count("<-- CM_SET_KEY.CNF") >= 1
    assert matched.ev_mac == line.stations["ev"].mac
    keys = line.recorder.select(layer="slac", name="KeySet", observer="evse")
    assert keys and keys[-1].payload["result"] == 0x01  # our EVSE took the QCA firmware's success


def test_slac_between_two_harness_parts_failing_is_the_harnesss_failure(tmp_path):
    """On the netns rig both SLAC ends are the harness's: the reference EVSE's SLAC not answering
    (here stopped; under load, late) is a HarnessFailure -- verdict error with the cause -- not the
    charger's failure. With EV faults injected, a failed match stays the test's to judge."""
    from harness.slac.ev import EvFaults, Failed
    from harness.verdicts import HarnessFailure

    rig = Rig(load_rig(ROOT / "rigs" / "emulated-netns.yaml"), run_dir=tmp_path, trace=Recorder(tmp_path / "t.jsonl"))
    with rig:
        rig.run(rig.link.evse_slac.stop())
        rig.ev.plug_in()
        with pytest.raises(HarnessFailure, match="SLAC between the harness's EV and the reference EVSE's SLAC "
                                                 "failed: no CM_SLAC_PARM.CNF"):
            rig.link.match(timeout=10)
        result = rig.link.match(timeout=10, faults=EvFaults(match_delay=0.1))
        assert isinstance(result, Failed)
        rig.ev.unplug()


def test_slac_timeouts_of_an_emulated_rig_stay_at_the_standards_short_values():
    """Scaled for an emulated rig, the response timers stay what ISO 15118-3 says (200 ms for a
    confirmation): below that a loaded host, not the peer, decides whether an answer is in time."""
    from harness.slac.timing import RIG_MIN_TIMEOUT

    rig = load_rig(ROOT / "rigs" / "emulated-netns.yaml")

    scaled = STANDARD.scaled(0.1, min_timeout=RIG_MIN_TIMEOUT)
    assert (scaled.TT_match_response, scaled.TT_match_sequence, scaled.TT_EV_atten_results) == (0.2, 0.4, 1.2)
    assert scaled.TT_EVSE_SLAC_init == pytest.approx(5.0) and scaled.TT_EVSE_match_session == 1.5
    assert scaled.TP_EV_batch_msg_interval == pytest.approx(0.002)  # a pause the EV chooses scales freely
    assert rig.time_scale == 0.1


@pytest.mark.parametrize("firmware", ["qualcomm", "homeplug"])
def test_qualcomms_plctool_identifies_the_modem_emulator(line, run, tmp_path, firmware):
    """open-plc-utils' plctool, the tool labs identify QCA modems with, reads the emulated modem's
    chip and firmware (VS_SW_VER) and, after SLAC put both modems into one network, that network
    and the other modem (VS_NW_INFO); the harness's own reading of the same messages agrees. A
    modem of another make (``homeplug`` firmware) does not answer, and the harness says so."""
    from harness.emulators.greenphy import FIRMWARE_VERSION
    from harness.slac.io import read_modem

    tool = _qualcomm_tool("plctool")

    async def plctool(*options: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", line.stations["ev"].netns.name, tool, "-i", "plc0", "-t", "500", *options,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return await _output(process, 20)

    async def scenario():
        line.start_modems(firmware=firmware)
        before = await plctool("-r")
        ours = await asyncio.get_running_loop().run_in_executor(
            None, lambda: read_modem("plc0", netns=line.stations["ev"].netns, timeout=1.0))
        if firmware == "qualcomm":
            line.set_attenuation("ev", "evse", 18)
            pilot, evse = await _reference_evse(line, modems_started=True)
            try:
                await pilot.set_state(CpState.B)
                ev = EvSlacSession(line.recorder, line.stations["ev"].endpoint, timers=TIMERS)
                try:
                    assert isinstance(await ev.match(), Matched)
                finally:
                    ev.close()
            finally:
                await evse.stop()
        return before, ours, await plctool("-m")

    version, ours, network = run(scenario())
    if firmware == "homeplug":
        assert FIRMWARE_VERSION not in version
        assert ours.version is None and "no Qualcomm modem answered" in ours.describe()
        return
    assert "QCA7000" in version and FIRMWARE_VERSION in version, version
    assert ours.version is not None and ours.version.device == "QCA7000" and ours.version.version == FIRMWARE_VERSION
    assert ours.modem_mac == line.stations["ev"].modem.mac
    # plctool prints the network the EV's modem joined in SLAC, its central coordinator (the
    # EVSE's modem) and the one other station, with the PHY rates
    evse_modem = line.stations["evse"].modem.mac.replace(":", "").upper()
    nid = line.stations["ev"].modem.core.nid.hex().upper()
    assert "Found 1 Network(s)" in network and f"network->NID = {_hexstring(nid)}" in network, network
    assert f"network->CCO_DA = {_hexstring(evse_modem)}" in network and "network->STATIONS = 1" in network
    assert f"station->MAC = {_hexstring(evse_modem)}" in network and "AvgPHYDR_TX = 009 mbps" in network


def _hexstring(hexdigits: str) -> str:
    """A byte string as open-plc-utils prints it: upper-case hex pairs joined by colons."""
    return ":".join(hexdigits[i:i + 2] for i in range(0, len(hexdigits), 2))


def test_rig_check_names_the_modem_behind_a_nic(run, tmp_path, harness_command):
    """`harness rig check` on a nic link reads the modem's chip and firmware (here the modem
    emulator behind a veth end in this namespace, standing in for a QCA7000 NIC)."""
    from harness.emulators.greenphy import FIRMWARE_VERSION, ModemEmulator, ModemRole
    from harness.slac.io import Endpoint

    name = f"hrnnic{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}m"], check=True)
    try:
        for end in (name, f"{name}m"):
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        rig = (ROOT / "rigs" / "lab-example.yaml").read_text().replace("iface: eth1", f"iface: {name}")
        (tmp_path / "rig.yaml").write_text(rig)

        async def scenario():
            modem = ModemEmulator(Recorder(), Endpoint(f"{name}m"), role=ModemRole.EV, name="nic-modem")
            modem.start()
            try:
                process = await asyncio.create_subprocess_exec(
                    *harness_command, "rig", "check", "--rig", str(tmp_path / "rig.yaml"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
                return await _output(process, 60), modem.mac
            finally:
                modem.stop()

        printed, mac = run(scenario())
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
    line = next((row for row in printed.splitlines() if f"Green PHY modem behind {name}" in row), "")
    assert line.startswith("  [ok]") and f"QCA7000 {mac}, firmware {FIRMWARE_VERSION}" in line, printed
    assert "in no network yet" in line
