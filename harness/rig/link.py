"""The link between EV and EVSE as a role of the rig: SLAC, its captures, and where each side talks.

``link.kind`` in the rig file:

- ``loopback`` (emulated rigs): no SLAC; where raw sockets are allowed, IPv6 on ``lo`` is captured
  (the V2GTP stream of a loopback rig runs on ::1).
- ``veth`` (netns rig): an emulated power line (harness.rig.plc): the EV, the EVSE and a
  neighbouring EVSE in network namespaces of their own, each behind a Green PHY modem emulator.
  The reference EVSE's SLAC is pyslac's EVSE session on connector 1's pilot; ``evse_command``
  runs an external software EVSE in the EVSE's namespace instead.
- ``nic`` (lab): the EV on a real Green PHY interface; a missing interface or a missing
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
from typing import TYPE_CHECKING, Iterator

from harness.iec61851.pilot import CpState, SimulatedPilot
from harness.netns import NetnsError, packet_socket, unavailable_reason
from harness.rig.roles import Role, RoleUnavailable
from harness.slac import frames as slac_frames
from harness.slac.ev import EvFaults, Failed, Matched
from harness.slac.io import Endpoint, EvSlacSession
from harness.slac.timing import RIG_MIN_TIMEOUT, STANDARD, SlacTimers
from harness.trace.pcap import CaseCapture, LinkCapture, packet_tap
from harness.verdicts import HarnessFailure
from harness.v2g import sdp
from harness.v2g.transport import SocketFactory

if TYPE_CHECKING:
    from harness.emulators.evse import ReferenceEvse
    from harness.rig.plc import PowerLine
    from harness.rig.rig import Rig
    from harness.slac.evse import PyslacEvse

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

    def __init__(self, rig: "Rig") -> None:
        super().__init__(rig)
        self.config = rig.config.link
        self.kind = self.config.kind
        scale = rig.config.time_scale
        self.timers: SlacTimers = STANDARD.scaled(scale, min_timeout=RIG_MIN_TIMEOUT) if scale != 1.0 else STANDARD
        self.line: "PowerLine | None" = None
        self.capture: LinkCapture | None = None
        self.evse_slac: "PyslacEvse | None" = None
        self.neighbour_slac: "PyslacEvse | None" = None
        self.neighbour_pilot: SimulatedPilot | None = None
        self._external: subprocess.Popen | None = None
        self.last_match: Matched | Failed | None = None
        #: when (timeline clock) :attr:`last_match` ended
        self.last_match_at: float | None = None
        self._hosts: dict[str, LinkHost] = {}

    # -- where each side talks -------------------------------------------------------------

    @property
    def slac(self) -> bool:
        """The link carries SLAC (veth and nic links)."""
        return self.kind in ("veth", "nic")

    @property
    def ev_endpoint(self) -> Endpoint:
        if self.kind == "nic":
            return Endpoint(self.config.iface or "")
        if self.line is None:
            raise RoleUnavailable(f"a {self.kind} link has no SLAC endpoint")
        return self.line.stations["ev"].endpoint

    @property
    def evse_endpoint(self) -> Endpoint:
        if self.line is None:
            raise RoleUnavailable("only the netns rig has an EVSE endpoint of its own")
        return self.line.stations["evse"].endpoint

    def socket(self, side: str, family: int, kind: int, proto: int = 0) -> "socket.socket":
        """A socket on the ``ev`` or ``evse`` side of the line (inside that side's namespace on the
        netns rig): how SDP and the V2GTP/TLS session get onto the link. Pair it with
        :meth:`scope_id` for IPv6 link-local addresses on ``plc0``."""
        if self.line is None:
            return socket.socket(family, kind, proto)
        return self.line.stations[side].netns.socket(family, kind, proto)

    def scope_id(self, side: str) -> int:
        """The interface index of the side's link interface (the %scope of fe80:: addresses)."""
        if self.line is None:
            return socket.if_nametoindex(self.config.iface or "lo")
        return self.line.stations[side].netns.call(socket.if_nametoindex, "plc0")

    def host(self, side: str) -> LinkHost:
        """Where ``side`` (``ev`` or ``evse``) talks IP on this link: on the netns rig its host's
        ``plc0``, on a nic link the EV's interface, on a loopback link ::1."""
        if self.line is not None:
            found = self._hosts.get(side)
            if found is None:  # the line's hosts are known after set-up; a neighbour's on demand
                found = self._hosts[side] = self._line_host(side)
            return found
        if self.kind == "nic":
            if side != "ev":
                raise RoleUnavailable("the EVSE on a lab link is the charger under test")
            from harness.v2g.links import interface_address

            iface = self.config.iface or ""
            return LinkHost(interface_address(iface), socket.if_nametoindex(iface))
        return LOOPBACK

    def ev_mac(self) -> str | None:
        """The EV's MAC address on the link (what SLAC shows as the EV's, and the DIN 70121 /
        ISO 15118-2 EVCCID): the EV host's interface on the netns line, the Green PHY NIC on a
        nic link; None on loopback, where the EV profile's ``evccid`` stands in."""
        from harness.v2g.links import interface_evccid
        from harness.v2g.vehicle import mac_evccid

        if self.line is not None:
            return mac_evccid(self.line.stations["ev"].mac)
        if self.kind == "nic" and self.config.iface:
            return interface_evccid(self.config.iface)
        return None

    def _line_host(self, side: str) -> LinkHost:
        assert self.line is not None
        scope = self.scope_id(side)
        address = self.line.stations[side].link_local()
        return LinkHost(f"{address}%{scope}", scope, functools.partial(self.socket, side))

    def reference_secc(self) -> LinkHost:
        """Where the reference EVSE's SDP server and SECC listen: on the EVSE host of the emulated
        line, unless an external software EVSE plays the EVSE there (then on ::1, out of the EV's
        way), else on ::1."""
        if self.line is not None and not self.config_command:
            return self.host("evse")
        return LOOPBACK

    def sdp_destination(self) -> tuple[str, int]:
        """Where the EV sends its SDP requests: the all-nodes group on the link (UDP 15118), or,
        on a loopback link, the reference EVSE's SDP server on ::1 (unicast; its port is picked at
        start)."""
        from harness.v2g.sdp import ALL_NODES, SDP_PORT

        if self.kind == "loopback":
            emulator = self.rig.evse.emulator
            sdp = getattr(getattr(emulator, "hlc", None), "sdp", None)
            if sdp is not None and sdp.bound_port:
                return "::1", sdp.bound_port
        return ALL_NODES, SDP_PORT

    @property
    def keylog(self) -> Path:
        """Where the V2G TLS sessions of this rig write their secrets (NSS key log)."""
        return self.rig.run_dir / "captures" / "v2g-tls-keys.log"

    # -- lifecycle -----------------------------------------------------------------------------

    async def activate(self) -> None:
        captures = self.rig.run_dir / "captures"
        if self.kind == "veth":
            reason = unavailable_reason()
            if reason:
                raise NetnsError(f"the netns rig cannot be built: {reason}")
            from harness.rig.plc import PowerLine

            self.line = await asyncio.to_thread(PowerLine.build, self.rig.trace,
                                                {"ev": "ev", "evse": "evse", "neighbour": "evse"})
            try:
                self._hosts = await asyncio.to_thread(lambda: {side: self._line_host(side) for side in ("ev", "evse")})
                self.line.start_modems(firmware=self.config.modem)
                self.line.set_attenuation("ev", "evse", self.config_attenuation)
                self.line.set_attenuation("ev", "neighbour", NEIGHBOUR_ATTENUATION_DB)
                self.capture = LinkCapture(self.rig.trace, packet_tap("plc0", self.line.stations["ev"].netns),
                                           captures / "link.pcap", where="the EV's interface", keylog=self.keylog,
                                           dissectors=DISSECTORS)
                self.capture.start()
                if self.config_command:
                    self._start_external(self.config_command)
            except BaseException:  # the rig tears down only roles that came up: remove the line here
                await self.deactivate()
                raise
        elif self.kind == "nic":
            assert self.config.iface
            try:
                probe, _ = packet_socket(self.config.iface, 0x88E1)
                probe.close()
            except NetnsError as exc:
                raise NetnsError(f"link.iface: {exc}") from None
            self.capture = LinkCapture(self.rig.trace, packet_tap(self.config.iface), captures / "link.pcap",
                                       where=self.config.iface, keylog=self.keylog, dissectors=DISSECTORS)
            self.capture.start()
        elif unavailable_reason() is None:
            self.capture = LinkCapture(self.rig.trace, packet_tap("lo"), captures / "loopback.pcap",
                                       where="IPv6 on lo", keylog=self.keylog, keep=_ipv6, dissectors=DISSECTORS)
            self.capture.start()
        else:
            self._record("NoCapture", "loopback is not captured: raw sockets need CAP_NET_RAW")

    @property
    def config_attenuation(self) -> float:
        return self.config.attenuation_db if self.config.attenuation_db is not None else PLUGGED_ATTENUATION_DB

    @property
    def config_command(self) -> str | None:
        return self.config.evse_command

    async def attach_evse(self, emulator: "ReferenceEvse") -> None:
        """The reference EVSE's SLAC: pyslac on connector 1's pilot, in the EVSE's namespace."""
        if self.line is None or self.config_command:
            return
        from harness.slac.evse import PyslacEvse

        if self.evse_slac is not None:  # the EVSE restarted (new security settings): follow its new pilot
            await self.evse_slac.stop()
        self.evse_slac = PyslacEvse(self.rig.trace, self.evse_endpoint, timers=self.timers, name="evse")
        await self.evse_slac.start(emulator.connectors[1].pilot)

    async def make_safe(self) -> None:
        await self._stop_neighbour()

    async def deactivate(self) -> None:
        problems = []
        if self.evse_slac is not None:
            await self.evse_slac.stop()
            self.evse_slac = None
        if self._external is not None:
            self._stop_external()
        if self.capture is not None:
            self.capture.stop()
            self.capture = None
        if self.line is not None:
            problems = await asyncio.to_thread(self.line.close)
            self.line = None
            self._hosts = {}
        if problems:
            raise NetnsError("; ".join(problems))

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
        if not self.slac:
            raise RoleUnavailable(f"a {self.kind} link has no SLAC")
        pilot = self._ev_pilot()
        timeout = timeout if timeout is not None else self.match_timeout
        session = EvSlacSession(self.rig.trace, self.ev_endpoint, timers=self.timers, faults=faults,
                                attenuation_limit_db=attenuation_limit_db)
        try:
            result = await session.match_when_pilot_allows(pilot, timeout)
        except TimeoutError:
            result = Failed(f"the pilot did not show state B with 5 % duty within {timeout:g} s", 0)
        finally:
            session.close()
        self.last_match, self.last_match_at = result, self.rig.trace.now()
        if isinstance(result, Failed) and self.evse_slac is not None and faults == EvFaults() \
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

    def set_attenuation(self, db: float, *, evse: str = "evse") -> None:
        """What the EVSE's modem measures for the EV's sounds (``evse`` or ``neighbour``)."""
        if self.line is None:
            raise RoleUnavailable("attenuation can only be set on the emulated power line (netns rig)")
        self.line.set_attenuation("ev", evse, db)

    @contextlib.contextmanager
    def neighbour(self, *, attenuation_db: float = NEIGHBOUR_ATTENUATION_DB) -> Iterator["PyslacEvse"]:
        """A neighbouring charger on the same line, with an EV of its own plugged in (so it answers
        SLAC too), at ``attenuation_db`` from the EV under test (crosstalk)."""
        if self.line is None:
            raise RoleUnavailable("a neighbouring EVSE needs the emulated power line (netns rig)")
        self.set_attenuation(attenuation_db, evse="neighbour")
        from harness.slac.evse import PyslacEvse

        async def start() -> PyslacEvse:
            self.neighbour_pilot = SimulatedPilot(self.rig.trace, evse_id=99)
            slac = PyslacEvse(self.rig.trace, self.line.stations["neighbour"].endpoint, timers=self.timers,
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

    def _ev_pilot(self) -> SimulatedPilot:
        emulator = self.rig.evse.emulator
        if emulator is None:
            raise RoleUnavailable("the EV's pilot on a lab rig needs pilot hardware")
        return emulator.connectors[1].pilot

    # -- captures ------------------------------------------------------------------------------

    def begin_case(self, name: str) -> None:
        if self.capture is not None:
            self.capture.begin(self.rig.run_dir / "captures" / f"{_file_name(name)}.pcap")

    def end_case(self) -> CaseCapture | None:
        if self.capture is None:
            return None
        ended = self.rig.run(_call(self.capture.end)) if self.rig.loop.running else self.capture.end()
        if ended is not None and ended.frames == 0 and self.kind == "loopback":
            ended.pcap.unlink(missing_ok=True)  # nothing crossed loopback: no file
            if ended.keylog is not None:
                ended.keylog.unlink(missing_ok=True)
            return None
        return ended

    # -- an external software EVSE ---------------------------------------------------------------

    def _start_external(self, command: str) -> None:
        assert self.line is not None
        namespace = self.line.stations["evse"].netns.name
        text = command.replace("{iface}", "plc0")
        log = (self.rig.run_dir / "captures" / "external-evse.log").open("ab")
        self._external = subprocess.Popen(["ip", "netns", "exec", namespace, "sh", "-c", text], stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._record("ExternalEvseStarted", f"external EVSE in {namespace}: {text}", pid=self._external.pid)

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


async def _call(function):
    return function()


def _ipv6(frame: bytes, kind: int) -> bool:
    # loopback shows every frame twice (sent and received): keep the sent copy
    return kind == 4 and len(frame) > 14 and frame[12:14] == b"\x86\xdd"


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", name)[:150]

