"""asyncio adapters: raw HomePlug AV frames on an interface, and the EV's SLAC session over them.

:class:`RawLink` is an AF_PACKET socket on the rig's event loop (optionally inside a network
namespace); :class:`EvSlacSession` runs the sans-IO :class:`harness.slac.ev.EvSlac` over one,
started by the pilot (CP state B with 5 % duty, ISO 15118-3 [V2G3-M06-...] / IEC 61851-1) and
stopped when the CP leaves B/C/D. Every frame sent and received goes on the timeline (layer slac).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from harness.iec61851.pilot import DIGITAL_COMMUNICATION, CpState, PilotLine
from harness.netns import Netns, packet_socket
from harness.slac import frames as f
from harness.slac import vendor
from harness.slac.ev import EvFaults, EvSlac, Failed, Matched, Note, Send
from harness.slac.timing import STANDARD, SlacTimers
from harness.trace import Layer, Recorder

PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent (seen on ETH_P_ALL sockets)


@dataclass(frozen=True)
class Endpoint:
    """Where a host talks on the link: an interface, in a namespace or not."""

    iface: str
    netns: Netns | None = None

    def __str__(self) -> str:
        return f"{self.iface}@{self.netns.name}" if self.netns else self.iface


class RawLink:
    """Raw Ethernet frames of one protocol (or all) on one interface, for the running loop."""

    def __init__(self, sock: socket.socket, mac: str, endpoint: Endpoint,
                 on_frame: Callable[[bytes, int], None] | None = None) -> None:
        self.sock = sock
        self.mac = mac
        self.endpoint = endpoint
        #: called for every frame as it arrives instead of queueing it
        self.on_frame = on_frame
        self._queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self.closed = False

    @classmethod
    def open(cls, endpoint: Endpoint, proto: int = f.ETH_P_HOMEPLUG_AV,
             on_frame: Callable[[bytes, int], None] | None = None) -> "RawLink":
        """Must be called on the loop that will use it."""
        sock, mac = packet_socket(endpoint.iface, proto, netns=endpoint.netns)
        return cls(sock, mac, endpoint, on_frame)

    def _readable(self) -> None:
        while True:
            try:
                data, address = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # interface gone (namespace deleted): stop reading
                self._loop.remove_reader(self.sock.fileno())
                return
            if self.on_frame is not None:
                self.on_frame(data, address[2])
            else:
                self._queue.put_nowait((data, address[2]))

    async def receive(self, timeout: float | None) -> tuple[bytes, int] | None:
        """The next frame and its packet type, or None when ``timeout`` passes first."""
        if timeout is not None and timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def send(self, frame: bytes) -> None:
        self.sock.send(frame.ljust(f.ETHERNET_MIN, b"\x00"))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, RuntimeError):
                pass
            self.sock.close()


class EvSlacSession:
    """The EV's SLAC on a link: match once, leave, report everything to the timeline."""

    def __init__(self, recorder: Recorder, endpoint: Endpoint, *, timers: SlacTimers = STANDARD,
                 attenuation_limit_db: float | None = None, faults: EvFaults = EvFaults(),
                 join: bool = True, name: str = "ev") -> None:
        self.recorder = recorder
        self.endpoint = endpoint
        self.timers = timers
        self.attenuation_limit_db = attenuation_limit_db
        self.faults = faults
        self.join = join
        self.name = name
        self.link: RawLink | None = None
        self.machine: EvSlac | None = None
        self.result: Matched | Failed | None = None
        #: when the matching started and ended (monotonic), for timing reports
        self.started_at = self.ended_at = 0.0

    @property
    def mac(self) -> str:
        assert self.link is not None, "open() first"
        return self.link.mac

    def open(self) -> "EvSlacSession":
        if self.link is None:
            self.link = RawLink.open(self.endpoint)
        return self

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    async def match_when_pilot_allows(self, pilot: PilotLine, timeout: float) -> Matched | Failed:
        """Wait for CP state B/C with 5 % duty (ISO 15118-3: SLAC starts on B with 5 %), then match;
        matching stops when the CP leaves B/C/D."""
        await pilot.wait_for(lambda p: p.state in (CpState.B, CpState.C, CpState.D)
                             and p.duty == DIGITAL_COMMUNICATION, timeout)
        return await self.match(pilot=pilot)

    async def match(self, *, pilot: PilotLine | None = None) -> Matched | Failed:
        self.open()
        assert self.link is not None
        kwargs: dict[str, Any] = {"timers": self.timers, "join": self.join, "faults": self.faults}
        if self.attenuation_limit_db is not None:
            kwargs["attenuation_limit_db"] = self.attenuation_limit_db
        machine = self.machine = EvSlac(self.link.mac, **kwargs)
        aborted: list[str] = []

        def on_cp(old: CpState, new: CpState) -> None:
            if new in (CpState.A, CpState.E, CpState.F):
                aborted.append(f"CP state {old} -> {new} during matching")

        if pilot is not None:
            pilot.on_state_change(on_cp)
        self.started_at = time.monotonic()
        try:
            self._act(machine.start(time.monotonic()))
            while not machine.done:
                if aborted:
                    self._act(machine.abort(aborted[0]))
                    break
                deadline = machine.next_deadline
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                # wake at least every 50 ms so a CP change is seen promptly
                received = await self.link.receive(0.05 if wait is None else min(wait, 0.05))
                now = time.monotonic()
                if received is not None:
                    data, _ = received
                    self._record_received(data)
                    self._act(machine.receive(data, now))
                self._act(machine.poll(time.monotonic()))
        finally:
            if pilot is not None:
                pilot.remove_state_listener(on_cp)
        self.ended_at = time.monotonic()
        self.result = machine.result or Failed("aborted", machine.attempts)
        return self.result

    async def leave(self) -> None:
        """Leave the logical network (new random key on the EV's modem)."""
        if self.link is not None and self.machine is not None:
            self._act(self.machine.leave())

    # -- timeline -----------------------------------------------------------------------------

    def _keys(self, run_id: bytes | None = None, evse_mac: str | None = None) -> dict[str, Any]:
        machine = self.machine
        run = run_id or (machine.run_id if machine else b"")
        return {"run_id": run.hex().upper() if run else None, "ev_mac": self.link.mac if self.link else None,
                "evse_mac": evse_mac}

    def _act(self, outputs: list) -> None:
        assert self.link is not None
        for output in outputs:
            if isinstance(output, Send):
                self.link.send(output.frame)
                dst = "broadcast" if output.dst == f.BROADCAST else ("modem" if output.name.startswith("CM_SET_KEY")
                                                                     else "evse")
                self.recorder.emit(Layer.SLAC, output.name, f"{output.name} -> {output.dst}", src=self.name, dst=dst,
                                   payload={"frame": output.frame, "dst_mac": output.dst},
                                   keys=self._keys(output.run_id, None if dst != "evse" else output.dst),
                                   observer=self.name)
            elif isinstance(output, Note):
                self.recorder.emit(Layer.SLAC, output.name, output.summary, src=self.name, payload=output.payload,
                                   keys=self._keys(evse_mac=output.payload.get("evse_mac")), observer=self.name)
            elif isinstance(output, Matched):
                self.recorder.emit(Layer.SLAC, "SlacMatched",
                                   f"matched {output.evse_mac} at {output.attenuation_db:.1f} dB, "
                                   f"NID {output.nid.hex().upper()}", src=self.name,
                                   payload={"nid": output.nid, "evse_mac": output.evse_mac,
                                            "attenuation_db": output.attenuation_db, "candidates": output.candidates,
                                            "attempts": output.attempts,
                                            "duration_s": time.monotonic() - self.started_at},
                                   keys=self._keys(output.run_id, output.evse_mac), observer=self.name)
            elif isinstance(output, Failed):
                self.recorder.emit(Layer.SLAC, "SlacFailed", f"matching failed: {output.reason}", src=self.name,
                                   payload={"reason": output.reason, "attempts": output.attempts},
                                   keys=self._keys(), observer=self.name)

    def _record_received(self, data: bytes) -> None:
        try:
            mme = f.parse(data)
        except f.FrameError:
            return  # the machine notes it
        if mme is None or mme.dst not in (self.mac, f.BROADCAST):
            return
        src = "modem" if mme.name.startswith("CM_SET_KEY") else "evse"
        self.recorder.emit(Layer.SLAC, mme.name, f"{mme.name} <- {mme.src}", src=src, dst=self.name,
                           payload={"frame": data, "src_mac": mme.src},
                           keys=self._keys(mme.run_id, mme.src if src == "evse" else None), observer=self.name)


# -- identifying the modem (Qualcomm vendor messages) --------------------------------------------

@dataclass(frozen=True)
class ModemReading:
    """What the Green PHY modem behind ``iface`` said of itself (:mod:`harness.slac.vendor`)."""

    iface: str
    modem_mac: str | None = None
    version: vendor.SoftwareVersion | None = None
    networks: tuple[vendor.Network, ...] = ()
    problem: str | None = None

    def describe(self) -> str:
        if self.version is None:
            return self.problem or f"no Qualcomm modem answered VS_SW_VER.REQ on {self.iface}"
        joined = (f"; in {len(self.networks)} network(s), seeing "
                  f"{sum(len(n.stations) for n in self.networks)} other station(s)") if self.networks else \
            "; in no network yet"
        upgradeable = ", upgradeable" if self.version.upgradeable else ""
        return f"{self.version.device} {self.modem_mac}, firmware {self.version.version}{upgradeable}{joined}"


def read_modem(iface: str, *, netns: Netns | None = None, timeout: float = 1.0) -> ModemReading:
    """Ask the modem behind ``iface`` (QCA's local address 00:B0:52:00:00:01) for its chip and
    firmware (VS_SW_VER) and its networks (VS_NW_INFO), waiting ``timeout`` seconds for each. A
    modem that does not answer (not a Qualcomm one, or none) gives a reading without a version,
    whose :meth:`ModemReading.describe` says so. Blocking: for ``rig check`` and tools."""
    sock, own_mac = packet_socket(iface, f.ETH_P_HOMEPLUG_AV, netns=netns)
    try:
        cookie = int(time.time() * 1000 % 2 ** 32).to_bytes(4, "big")
        answer = _ask(sock, vendor.sw_ver_req(own_mac, cookie=cookie), vendor.VS_SW_VER_CNF, timeout)
        if answer is None:
            return ModemReading(iface, problem=f"no Qualcomm modem answered VS_SW_VER.REQ on {iface} within "
                                               f"{timeout:g} s (a QCA700x answers it; a modem of another make may not)")
        try:
            version = vendor.parse_sw_ver_cnf(answer)
        except vendor.VendorError as exc:
            return ModemReading(iface, answer.src, problem=str(exc))
        info = _ask(sock, vendor.nw_info_req(own_mac), vendor.VS_NW_INFO_CNF, timeout)
        try:
            networks = tuple(vendor.parse_nw_info_cnf(info)) if info is not None else ()
        except vendor.VendorError as exc:
            return ModemReading(iface, answer.src, version, problem=str(exc))
        return ModemReading(iface, answer.src, version, networks)
    finally:
        sock.close()


def _ask(sock: socket.socket, request: bytes, answer_type: int, timeout: float) -> vendor.VendorMme | None:
    import select

    sock.send(request)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            continue
        mme = vendor.parse(data)
        if mme is not None and mme.mmtype == answer_type:
            return mme
    return None
