"""The link between EV and EVSE as a role of the rig: SLAC, its captures, and where each side talks.

``link.kind`` in the rig file picks the driver:

- ``loopback`` (:class:`LoopbackLink`, emulated rigs): no SLAC; where raw sockets are allowed, IPv6 on ``lo`` is captured
  (the V2GTP stream of a loopback rig runs on ::1).
- ``veth`` (:class:`VethLink`, netns rig): an emulated power line (harness.rig.plc): the EV, the EVSE and a
  neighbouring EVSE in network namespaces of their own, each behind a Green PHY modem emulator.
  The reference EVSE's SLAC is pyslac's EVSE session on connector 1's pilot; ``evse_command``
  runs an external software EVSE in the EVSE's namespace instead.
- ``nic`` (:class:`NicLink`, lab): the EV on a real Green PHY interface; a missing interface or a missing
  CAP_NET_RAW stops the set-up with the fix in the message.

Every test case on a veth or nic link gets its own pcap of the EV's interface and the TLS key log
lines written meanwhile (``captures/<case>.pcap`` and ``.keys.log``).

The link also decides where V2G talks (:meth:`LinkRole.host`, :meth:`LinkRole.sdp_destination`):
on the netns rig the EV and the reference EVSE use the link-local addresses of their ``plc0``
with sockets made in their own namespaces, and SDP goes to the all-nodes group on the line, as
on a lab rig with a Green PHY NIC; on a loopback link the reference EVSE listens on ::1 and the
EV asks its SDP server there by unicast.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from harness.iec61851.pilot import CpState, PilotLine, SimulatedPilot
from harness.netns import NetnsError, packet_socket, unavailable_reason
from harness.rig import check
from harness.rig.check import ProbeResult
from harness.rig.config import RigConfig
from harness.rig.plc import PowerLine
from harness.rig.role import Driver, Role, RoleUnavailable
from harness.slac import frames as slac_frames
from harness.slac.ev import EvFaults, Failed, Matched
from harness.slac.evse import PyslacEvse
from harness.slac.io import Endpoint, EvSlacSession
from harness.slac.timing import SlacTimers, for_scale
from harness.trace.pcap import CaseCapture, LinkCapture, packet_tap
from harness.v2g import sdp
from harness.v2g.links import interface_address, interface_evccid
from harness.v2g.transport import SocketFactory
from harness.v2g.vehicle import mac_evccid
from harness.verdicts import HarnessFailure

if TYPE_CHECKING:
    from harness.rig.rig import Rig

#: attenuation between the EV and the EVSE it is plugged into, and to the neighbouring EVSE, dB
PLUGGED_ATTENUATION_DB = 20.0
NEIGHBOUR_ATTENUATION_DB = 55.0

#: what the link's captures put on the timeline: SLAC frames and SDP datagrams
DISSECTORS = (slac_frames.describe, sdp.describe)


@dataclass(frozen=True)
class LinkHost:
    """One end of the link as IP sees it."""

    #: where an SECC on this host listens: ``::1``, or the link-local address with its %scope
    address: str
    #: the index of the host's link interface (the scope of fe80:: addresses); 0 on loopback
    scope: int = 0
    #: makes the host's sockets (inside its network namespace on the netns rig); None: here
    sockets: SocketFactory | None = None

    @property
    def iface(self) -> str | None:
        """The interface to send SDP multicast on, as :func:`harness.v2g.sdp.discover` takes it."""
        return str(self.scope) if self.scope else None


LOOPBACK = LinkHost("::1")


class LinkRole(Role):
    name = "link"
    driver: "LinkDriver"

    def __init__(self, rig: "Rig", driver: type["LinkDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.link
        self.kind = self.config.kind
        scale = rig.config.time_scale
        self.timers: SlacTimers = for_scale(scale)
        self.capture: LinkCapture | None = None
        self.neighbour_slac: PyslacEvse | None = None
        self.neighbour_pilot: SimulatedPilot | None = None
        self.last_match: Matched | Failed | None = None
        #: when (timeline clock) :attr:`last_match` ended
        self.last_match_at: float | None = None
        self.driver = driver(self)

    # -- where each side talks -------------------------------------------------------------

    @property
    def slac(self) -> bool:
        """The link carries SLAC (veth and nic links)."""
        return self.driver.carries_slac

    @property
    def line(self) -> PowerLine | None:
        """The emulated power line (netns rig)."""
        return self.driver.line

    @property
    def evse_slac(self) -> PyslacEvse | None:
        """The reference EVSE's SLAC on the emulated power line."""
        return self.driver.evse_slac

    def host(self, side: str) -> LinkHost:
        """Where ``side`` (``ev`` or ``evse``) talks IP on this link: on the netns rig its host's
        ``plc0``, on a nic link the EV's interface, on a loopback link ::1."""
        return self.driver.host(side)

    def ev_mac(self) -> str | None:
        """The EV's MAC address on the link (what SLAC shows as the EV's, and the DIN 70121 /
        ISO 15118-2 EVCCID): the EV host's interface on the netns line, the Green PHY NIC on a
        nic link; None on loopback, where the EV profile's ``evccid`` stands in."""
        return self.driver.ev_mac()

    def reference_secc(self) -> LinkHost:
        """Where the reference EVSE's SDP server and SECC listen."""
        return self.driver.reference_secc()

    def sdp_destination(self) -> tuple[str, int]:
        """Where the EV sends its SDP requests."""
        return self.driver.sdp_destination()

    @property
    def keylog(self) -> Path:
        """Where the V2G TLS sessions of this rig write their secrets (NSS key log)."""
        return self.rig.run_dir / "captures" / "v2g-tls-keys.log"

    # -- lifecycle -----------------------------------------------------------------------------

    async def attach_evse(self, pilot: PilotLine, on_failed: Callable[[str], None] | None = None) -> None:
        """The reference EVSE's SLAC on its connector's ``pilot``, where the link carries it (the
        emulated power line); ``on_failed`` hears when matching failed for good."""
        await self.driver.attach_evse(pilot, on_failed)

    async def make_safe(self) -> None:
        await self._stop_neighbour()
        await self.driver.make_safe()

    async def deactivate(self) -> None:
        await self.driver.deactivate()
        self.stop_capture()

    def stop_capture(self) -> None:
        """The run's tap off (a driver stops it before it takes the interface away)."""
        if self.capture is not None:
            self.capture.stop()
            self.capture = None

    def start_capture(self, open_socket: Callable[[], socket.socket], file_name: str, *, where: str,
                      keep: Callable[[bytes, int], bool] | None = None) -> None:
        """The run's tap on the link (what a driver calls when it comes up): captures/<file_name>,
        a file per case, SLAC and SDP on the timeline."""
        self.capture = LinkCapture(self.rig.trace, open_socket, self.rig.run_dir / "captures" / file_name,
                                   where=where, keylog=self.keylog, keep=keep, dissectors=DISSECTORS)
        self.capture.start()

    # -- what tests do -------------------------------------------------------------------------

    def match(self, *, timeout: float | None = None, faults: EvFaults = EvFaults(),
              attenuation_limit_db: float | None = None) -> Matched | Failed:
        """The EV's SLAC once the pilot allows it (state B, 5 %): the result, matched or failed."""
        timeout = timeout if timeout is not None else self.match_timeout
        return self.rig.run(self.matching(timeout=timeout, faults=faults, attenuation_limit_db=attenuation_limit_db),
                            timeout=timeout + 30)

    @property
    def match_timeout(self) -> float:
        """How long the EV waits for 5 % and a match: TT_EVSE_SLAC_init + TT_matching_repetition."""
        return self.timers.TT_EVSE_SLAC_init + self.timers.TT_matching_repetition

    async def matching(self, *, timeout: float | None = None, faults: EvFaults = EvFaults(),
                       attenuation_limit_db: float | None = None) -> Matched | Failed:
        """:meth:`match` on the rig's loop."""
        endpoint = self.driver.ev_endpoint()
        pilot = self.rig.pilot.line(1)
        timeout = timeout if timeout is not None else self.match_timeout
        session = EvSlacSession(self.rig.trace, endpoint, timers=self.timers, faults=faults,
                                attenuation_limit_db=attenuation_limit_db)
        try:
            result = await session.match_when_pilot_allows(pilot, timeout)
        except TimeoutError:
            result = Failed(f"the pilot did not show state B with 5 % duty within {timeout:g} s", 0)
        finally:
            session.close()
        self.last_match, self.last_match_at = result, self.rig.trace.now()
        if isinstance(result, Failed) and self.driver.evse_slac is not None and faults == EvFaults() \
                and result.unanswered:
            # both ends are the harness's (its EV, the reference EVSE's SLAC): an answer that did not
            # come is the harness's failure (a loaded host), not the charger's
            raise HarnessFailure(f"SLAC between the harness's EV and the reference EVSE's SLAC failed: "
                                 f"{result.reason} (reasons of each attempt: {'; '.join(result.reasons)})")
        return result

    async def join(self, plugged_at: float) -> Matched | Failed | None:
        """What an EV does after plugging in before any IP: the SLAC match of this plug-in (the
        one a test already made since ``plugged_at``, a timeline mark, or a new one). None where
        the link carries no SLAC (loopback)."""
        if not self.slac:
            return None
        if isinstance(self.last_match, Matched) and (self.last_match_at or 0.0) >= plugged_at:
            return self.last_match
        return await self.matching()

    @property
    def config_attenuation(self) -> float:
        """The attenuation between the EV and its EVSE the rig file sets (veth links)."""
        return self.config.attenuation_db if self.config.attenuation_db is not None else PLUGGED_ATTENUATION_DB

    def set_attenuation(self, db: float, *, evse: str = "evse") -> None:
        """What the EVSE's modem measures for the EV's sounds (``evse`` or ``neighbour``)."""
        self.driver.power_line().set_attenuation("ev", evse, db)

    @contextlib.contextmanager
    def neighbour(self, *, attenuation_db: float = NEIGHBOUR_ATTENUATION_DB) -> Iterator[PyslacEvse]:
        """A neighbouring charger on the same line, with an EV of its own plugged in (so it answers
        SLAC too), at ``attenuation_db`` from the EV under test (crosstalk)."""
        line = self.driver.power_line()
        self.set_attenuation(attenuation_db, evse="neighbour")

        async def start() -> PyslacEvse:
            self.neighbour_pilot = SimulatedPilot(self.rig.trace, evse_id=99)
            slac = PyslacEvse(self.rig.trace, line.stations["neighbour"].endpoint, timers=self.timers,
                              name="neighbour")
            await slac.start(self.neighbour_pilot)
            await self.neighbour_pilot.set_state(CpState.B)
            self.neighbour_slac = slac
            return slac

        slac = self.rig.run(start(), timeout=30)
        try:
            yield slac
        finally:
            self.rig.run(self._stop_neighbour(), timeout=30)

    async def _stop_neighbour(self) -> None:
        if self.neighbour_slac is not None:
            await self.neighbour_slac.stop()
            self.neighbour_slac = None

    # -- captures ------------------------------------------------------------------------------

    def begin_case(self, name: str) -> None:
        if self.capture is not None:
            self.capture.begin(self.rig.run_dir / "captures" / f"{_file_name(name)}.pcap")

    def end_case(self) -> CaseCapture | None:
        if self.capture is None:
            return None
        ended = self.rig.run(_call(self.capture.end)) if self.rig.loop.running else self.capture.end()
        if ended is not None and ended.frames == 0 and not self.driver.keep_empty_captures:
            ended.pcap.unlink(missing_ok=True)  # nothing crossed the link: no file
            if ended.keylog is not None:
                ended.keylog.unlink(missing_ok=True)
            return None
        return ended


class LinkDriver(Driver):
    """What differs between kinds of link."""

    #: SLAC runs on this link
    carries_slac = False
    #: a case's capture is kept even when nothing crossed the link (a silent power line is evidence)
    keep_empty_captures = True
    line: PowerLine | None = None
    evse_slac: PyslacEvse | None = None

    def host(self, side: str) -> LinkHost:
        return LOOPBACK

    def ev_mac(self) -> str | None:
        return None

    def reference_secc(self) -> LinkHost:
        return LOOPBACK

    def sdp_destination(self) -> tuple[str, int]:
        return sdp.ALL_NODES, sdp.SDP_PORT

    def ev_endpoint(self) -> Endpoint:
        raise RoleUnavailable(f"a {self.role.kind} link has no SLAC")

    def power_line(self) -> PowerLine:
        raise RoleUnavailable("attenuation and neighbouring chargers exist on the emulated power line (netns "
                              "rig) only")

    async def attach_evse(self, pilot: PilotLine, on_failed: Callable[[str], None] | None = None) -> None:
        pass


class LoopbackLink(LinkDriver):
    """``link: {kind: loopback}``: no SLAC; V2G on ::1, captured where raw sockets are allowed."""

    keep_empty_captures = False

    async def activate(self) -> None:
        if unavailable_reason() is None:
            self.role.start_capture(packet_tap("lo"), "loopback.pcap", where="IPv6 on lo", keep=self._ours)
        else:
            self.record("NoCapture", "loopback is not captured: raw sockets need CAP_NET_RAW")

    def _ours(self, frame: bytes, kind: int) -> bool:
        """IPv6 on lo to or from this rig's SDP server or SECC: other rigs on the machine (the
        workers of a parallel run, another run) share lo and stay out of this rig's captures.
        Before the reference EVSE listens, all of IPv6 on lo."""
        if not _ipv6(frame, kind):
            return False
        ports = self._ports()
        if not ports or len(frame) < 58 or frame[20] not in (6, 17):  # TCP or UDP right after the header
            return not ports
        return int.from_bytes(frame[54:56], "big") in ports or int.from_bytes(frame[56:58], "big") in ports

    def _ports(self) -> frozenset[int]:
        emulator = self.rig.evse.driver.emulator
        hlc = emulator.hlc if emulator is not None else None
        if hlc is None or hlc.secc is None:
            return frozenset()
        sdp_port = hlc.sdp.bound_port if hlc.sdp is not None else None
        return frozenset(p for p in (hlc.secc.tcp_port, hlc.secc.tls_port, sdp_port) if p)

    def sdp_destination(self) -> tuple[str, int]:
        """The reference EVSE's SDP server on ::1 (unicast; its port is picked at start)."""
        port = self.rig.evse.sdp_port()
        if port:
            return "::1", port
        return sdp.ALL_NODES, sdp.SDP_PORT


class VethLink(LinkDriver):
    """``link: {kind: veth}``: the emulated power line of the netns rig."""

    carries_slac = True

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        yield check.raw_socket()
        yield check.namespaces()

    def __init__(self, role: LinkRole) -> None:
        super().__init__(role)
        self._hosts: dict[str, LinkHost] = {}
        self._external: subprocess.Popen | None = None

    async def activate(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise NetnsError(f"the netns rig cannot be built: {reason}")
        config = self.role.config
        self.line = await asyncio.to_thread(PowerLine.build, self.rig.trace,
                                            {"ev": "ev", "evse": "evse", "neighbour": "evse"})
        try:
            self._hosts = await asyncio.to_thread(lambda: {side: self._line_host(side) for side in ("ev", "evse")})
            self.line.start_modems(firmware=config.modem)
            self.line.set_attenuation("ev", "evse", self.role.config_attenuation)
            self.line.set_attenuation("ev", "neighbour", NEIGHBOUR_ATTENUATION_DB)
            self.role.start_capture(packet_tap("plc0", self.line.stations["ev"].netns), "link.pcap",
                                    where="the EV's interface")
            if config.evse_command:
                self._start_external(config.evse_command)
        except BaseException:  # the rig tears down only roles that came up: remove the line here
            await self.role.deactivate()
            raise

    async def attach_evse(self, pilot: PilotLine, on_failed: Callable[[str], None] | None = None) -> None:
        """The reference EVSE's SLAC: pyslac on connector 1's pilot, in the EVSE's namespace."""
        if self.line is None or self.role.config.evse_command:
            return
        if self.evse_slac is not None:  # the EVSE restarted (new security settings): follow its new pilot
            await self.evse_slac.stop()
        self.evse_slac = PyslacEvse(self.rig.trace, self.line.stations["evse"].endpoint, timers=self.role.timers,
                                    name="evse", on_failed=on_failed)
        await self.evse_slac.start(pilot)

    async def deactivate(self) -> None:
        problems: list[str] = []
        if self.evse_slac is not None:
            await self.evse_slac.stop()
            self.evse_slac = None
        if self._external is not None:
            self._stop_external()
        self.role.stop_capture()  # before the line and the EV's interface go
        if self.line is not None:
            problems = await asyncio.to_thread(self.line.close)
            self.line = None
            self._hosts = {}
        if problems:
            raise NetnsError("; ".join(problems))

    def power_line(self) -> PowerLine:
        if self.line is None:
            raise RuntimeError("the emulated power line is not up")
        return self.line

    def ev_endpoint(self) -> Endpoint:
        return self.power_line().stations["ev"].endpoint

    def socket(self, side: str, family: int, kind: int, proto: int = 0) -> socket.socket:
        """A socket on the ``ev`` or ``evse`` side of the line, inside that side's namespace: how
        SDP and the V2GTP/TLS session get onto the link."""
        return self.power_line().stations[side].netns.socket(family, kind, proto)

    def host(self, side: str) -> LinkHost:
        found = self._hosts.get(side)
        if found is None:  # the line's hosts are known after set-up; a neighbour's on demand
            found = self._hosts[side] = self._line_host(side)
        return found

    def _line_host(self, side: str) -> LinkHost:
        station = self.power_line().stations[side]
        scope = station.netns.call(socket.if_nametoindex, "plc0")
        return LinkHost(f"{station.link_local()}%{scope}", scope, functools.partial(self.socket, side))

    def ev_mac(self) -> str | None:
        return mac_evccid(self.power_line().stations["ev"].mac)

    def reference_secc(self) -> LinkHost:
        """On the EVSE host of the line, unless an external software EVSE plays the EVSE there
        (then on ::1, out of the EV's way)."""
        return LOOPBACK if self.role.config.evse_command else self.host("evse")

    # an external software EVSE in the EVSE's namespace

    def _start_external(self, command: str) -> None:
        namespace = self.power_line().stations["evse"].netns.name
        text = command.replace("{iface}", "plc0")
        log = (self.rig.run_dir / "captures" / "external-evse.log").open("ab")
        self._external = subprocess.Popen(["ip", "netns", "exec", namespace, "sh", "-c", text], stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.record("ExternalEvseStarted", f"external EVSE in {namespace}: {text}", pid=self._external.pid)

    def _stop_external(self) -> None:
        process, self._external = self._external, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class NicLink(LinkDriver):
    """``link: {kind: nic, iface}``: the EV on a Green PHY NIC of this machine; the EVSE is the
    charger under test at the other end of the cable."""

    carries_slac = True

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        iface = check.interface(config.link.iface or "")
        sockets = check.raw_socket()
        yield iface
        yield sockets
        if iface.ok and sockets.ok:
            yield check.modem(config.link.iface or "")

    async def activate(self) -> None:
        iface = self.role.config.iface or ""
        try:
            probe, _ = packet_socket(iface, slac_frames.ETH_P_HOMEPLUG_AV)
            probe.close()
        except NetnsError as exc:
            raise NetnsError(f"link.iface: {exc}") from None
        self.role.start_capture(packet_tap(iface), "link.pcap", where=iface)

    def ev_endpoint(self) -> Endpoint:
        return Endpoint(self.role.config.iface or "")

    def host(self, side: str) -> LinkHost:
        if side != "ev":
            raise RoleUnavailable("the EVSE on a lab link is the charger under test")
        iface = self.role.config.iface or ""
        return LinkHost(interface_address(iface), socket.if_nametoindex(iface))

    def ev_mac(self) -> str | None:
        return interface_evccid(self.role.config.iface or "")

    def reference_secc(self) -> LinkHost:
        """A reference EVSE beside a NIC link (a rig that tests the NIC's SLAC only) listens on ::1."""
        return LOOPBACK


async def _call(function):
    return function()


def _ipv6(frame: bytes, kind: int) -> bool:
    # loopback shows every frame twice (sent and received): keep the sent copy
    return kind == 4 and len(frame) > 14 and frame[12:14] == b"\x86\xdd"


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", name)[:150]

