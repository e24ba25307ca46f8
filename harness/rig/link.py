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
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from harness.emulators.pilot import CpState, SimulatedPilot
from harness.netns import NetnsError, packet_socket, unavailable_reason
from harness.rig.roles import Role, RoleUnavailable
from harness.slac.ev import EvFaults, Failed, Matched
from harness.slac.io import Endpoint, EvSlacSession
from harness.slac.timing import STANDARD, SlacTimers
from harness.trace.pcap import CaseCapture, LinkCapture, packet_tap

if TYPE_CHECKING:
    from harness.emulators.evse import ReferenceEvse
    from harness.rig.plc import PowerLine
    from harness.rig.rig import Rig
    from harness.slac.evse import PyslacEvse

#: attenuation between the EV and the EVSE it is plugged into, and to the neighbouring EVSE, dB
PLUGGED_ATTENUATION_DB = 20.0
NEIGHBOUR_ATTENUATION_DB = 55.0


class LinkRole(Role):
    name = "link"

    def __init__(self, rig: "Rig") -> None:
        super().__init__(rig)
        self.config = rig.config.link
        self.kind = self.config.kind
        scale = rig.config.time_scale
        self.timers: SlacTimers = STANDARD.scaled(scale) if scale != 1.0 else STANDARD
        self.line: "PowerLine | None" = None
        self.capture: LinkCapture | None = None
        self.evse_slac: "PyslacEvse | None" = None
        self.neighbour_slac: "PyslacEvse | None" = None
        self.neighbour_pilot: SimulatedPilot | None = None
        self._external: subprocess.Popen | None = None
        self.last_match: Matched | Failed | None = None

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
            self.line.start_modems()
            self.line.set_attenuation("ev", "evse", self.config_attenuation)
            self.line.set_attenuation("ev", "neighbour", NEIGHBOUR_ATTENUATION_DB)
            self.capture = LinkCapture(self.rig.trace, packet_tap("plc0", self.line.stations["ev"].netns),
                                       captures / "link.pcap", where="the EV's interface", keylog=self.keylog)
            self.capture.start()
            if self.config_command:
                self._start_external(self.config_command)
        elif self.kind == "nic":
            assert self.config.iface
            try:
                probe, _ = packet_socket(self.config.iface, 0x88E1)
                probe.close()
            except NetnsError as exc:
                raise NetnsError(f"link.iface: {exc}") from None
            self.capture = LinkCapture(self.rig.trace, packet_tap(self.config.iface), captures / "link.pcap",
                                       where=self.config.iface, keylog=self.keylog)
            self.capture.start()
        elif unavailable_reason() is None:
            self.capture = LinkCapture(self.rig.trace, packet_tap("lo"), captures / "loopback.pcap",
                                       where="IPv6 on lo", keylog=self.keylog, keep=_ipv6)
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
        if problems:
            raise NetnsError("; ".join(problems))

    # -- what tests do -------------------------------------------------------------------------

    def match(self, *, timeout: float | None = None, faults: EvFaults = EvFaults(),
              attenuation_limit_db: float | None = None) -> Matched | Failed:
        """The EV's SLAC once the pilot allows it (state B, 5 %): the result, matched or failed."""
        if not self.slac:
            raise RoleUnavailable(f"a {self.kind} link has no SLAC")
        pilot = self._ev_pilot()
        timeout = timeout if timeout is not None else self.timers.TT_EVSE_SLAC_init + self.timers.TT_matching_repetition

        async def run() -> Matched | Failed:
            session = EvSlacSession(self.rig.trace, self.ev_endpoint, timers=self.timers, faults=faults,
                                    attenuation_limit_db=attenuation_limit_db)
            try:
                return await session.match_when_pilot_allows(pilot, timeout)
            except TimeoutError:
                return Failed(f"the pilot did not show state B with 5 % duty within {timeout:g} s", 0)
            finally:
                session.close()

        self.last_match = self.rig.run(run(), timeout=timeout + 30)
        return self.last_match

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

