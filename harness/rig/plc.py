"""An emulated power line in network namespaces: hosts, their Green PHY modems, the line.

::

    namespace <p>-ev          namespace <p>-plc (the line and the modems)            namespace <p>-evse1
    plc0 (EV host) ------ h-ev [modem ev] l-ev -- p-ev ==bridge plc== p-evse1 -- l-evse1 [modem evse1] h-evse1 ------ plc0 (EVSE host)

Each host sees one interface, ``plc0``, as it would see a Green PHY NIC; its modem emulator
bridges it to the line (a Linux bridge, so several chargers share it: crosstalk). IPv6 duplicate
address detection is off on the hosts (a fresh link-local address is usable at once, as the
rig must not wait a second per run); the line namespace has no IPv6 at all, so only the hosts'
own traffic is on it.

:meth:`PowerLine.close` removes every namespace (and so every interface) and is safe to call
after any failure; namespaces of crashed runs are removed by :func:`harness.netns.remove_stale`.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field

from harness.emulators.greenphy import DEFAULT_ATTENUATION_DB, ModemEmulator, ModemRole
from harness.netns import NETNS_DIR, Netns, NetnsError, disable_tx_offload, ip, ip_batch, remove_stale, run_prefix
from harness.slac.io import Endpoint
from harness.trace import Layer, Recorder

HOST_IFACE = "plc0"
_serial = itertools.count(1)


@dataclass
class Station:
    """A host on the line: its namespace, its interface, its modem."""

    name: str
    role: ModemRole
    netns: Netns
    modem: ModemEmulator | None = None
    mac: str = ""

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(HOST_IFACE, self.netns)

    def link_local(self, timeout: float = 2.0) -> str:
        """The host's IPv6 link-local address on ``plc0`` (without scope). The kernel adds it
        once the interface is up with a carrier; DAD is off, so it is usable as soon as it shows."""
        deadline = time.monotonic() + timeout
        while True:
            words = self.netns.ip("-6", "-o", "addr", "show", "dev", HOST_IFACE, "scope", "link").split()
            if "inet6" in words:
                return words[words.index("inet6") + 1].split("/")[0]
            if time.monotonic() > deadline:
                raise NetnsError(f"{HOST_IFACE} in {self.netns.name} has no IPv6 link-local address "
                                 f"after {timeout:g} s")
            time.sleep(0.01)


@dataclass
class PowerLine:
    recorder: Recorder
    prefix: str
    medium: Netns
    stations: dict[str, Station] = field(default_factory=dict)
    #: seconds the namespaces and interfaces took to build
    setup_s: float = 0.0

    @classmethod
    def build(cls, recorder: Recorder, stations: dict[str, ModemRole | str], *, clean_stale: bool = True) -> "PowerLine":
        """Namespaces, veth pairs and the bridge for ``stations`` (name -> ev|evse); modems are
        started separately (:meth:`start_modems`, on the event loop)."""
        started = time.monotonic()
        if clean_stale:
            stale = remove_stale()
            if stale:
                recorder.emit(Layer.RIG, "StaleNamespacesRemoved", f"removed {len(stale)} namespaces of crashed runs",
                              src="link", payload={"namespaces": stale})
        for name in stations:
            if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", name):
                raise NetnsError(f"station name {name!r}: use 1 to 10 lower-case letters and digits "
                                 "(it becomes part of interface names)")
        prefix = f"{run_prefix()}{next(_serial)}-"
        medium = Netns(prefix + "plc")
        line = cls(recorder, prefix, medium)
        try:
            ip_batch([f"netns add {medium.name}"] + [f"netns add {prefix}{name}" for name in stations])
            medium.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            medium.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            for name, role in stations.items():
                station = Station(name, ModemRole(role), Netns(prefix + name))
                station.netns.sysctl("net.ipv6.conf.default.accept_dad", "0")
                station.netns.sysctl("net.ipv6.conf.all.accept_dad", "0")
                line.stations[name] = station
            ip_batch([f"link add {HOST_IFACE} netns {s.netns.name} type veth peer h-{n} netns {medium.name}"
                      for n, s in line.stations.items()]
                     + [f"link add l-{n} netns {medium.name} type veth peer p-{n} netns {medium.name}"
                        for n in line.stations])
            ip_batch(["link add plc type bridge stp_state 0 mcast_snooping 0 forward_delay 0", "link set plc up"]
                     + [c for n in line.stations for c in (f"link set p-{n} master plc", f"link set p-{n} up",
                                                           f"link set l-{n} up", f"link set h-{n} up")],
                     netns=medium.name)
            for station in line.stations.values():
                ip_batch(["link set lo up", f"link set {HOST_IFACE} up"], netns=station.netns.name)
                disable_tx_offload(HOST_IFACE, station.netns)
                station.mac = _iface_mac(station.netns, HOST_IFACE)
        except BaseException:
            line.close()
            raise
        line.setup_s = time.monotonic() - started
        recorder.emit(Layer.RIG, "PowerLineUp", f"emulated power line with {', '.join(stations)} "
                      f"({line.setup_s * 1000:.0f} ms)", src="link",
                      payload={"medium": medium.name, "setup_s": line.setup_s,
                               "stations": {n: {"netns": s.netns.name, "mac": s.mac, "role": s.role}
                                            for n, s in line.stations.items()}})
        return line

    def start_modems(self, *, default_attenuation_db: float = DEFAULT_ATTENUATION_DB,
                     firmware: str = "qualcomm") -> None:
        """One modem emulator per station (on the running loop), each with ``firmware``'s manners
        (:data:`harness.emulators.greenphy.FIRMWARES`)."""
        for name, station in self.stations.items():
            modem = ModemEmulator(self.recorder, Endpoint(f"h-{name}", self.medium), Endpoint(f"l-{name}", self.medium),
                                  role=station.role, name=f"modem-{name}", host_mac=station.mac,
                                  default_attenuation_db=default_attenuation_db, firmware=firmware)
            modem.start()
            station.modem = modem

    def set_attenuation(self, ev: str, evse: str, db: float) -> None:
        """What the modem of ``evse`` measures for the sounds of ``ev``."""
        modem = self.stations[evse].modem
        assert modem is not None, "start_modems() first"
        modem.set_attenuation(self.stations[ev].mac, db)

    def stop_modems(self) -> None:
        for station in self.stations.values():
            if station.modem is not None:
                station.modem.stop()
                station.modem = None

    def close(self) -> list[str]:
        """Stop the modems and delete every namespace of this line; never raises. Returns what
        could not be removed."""
        self.stop_modems()
        problems = []
        mine = {self.medium.name, *(s.netns.name for s in self.stations.values())}
        if NETNS_DIR.is_dir():  # also what a half-done build created
            mine |= {p.name for p in NETNS_DIR.iterdir() if p.name.startswith(self.prefix)}
        for namespace in [Netns(name) for name in sorted(mine)]:
            try:
                ip("netns", "del", namespace.name, check=False)
            except NetnsError as exc:  # pragma: no cover - ip missing after having worked
                problems.append(str(exc))
            if namespace.exists:
                problems.append(f"namespace {namespace.name} is still there")
        return problems


def _iface_mac(netns: Netns, iface: str) -> str:
    text = netns.ip("-o", "link", "show", iface)
    words = text.split()
    return words[words.index("link/ether") + 1]
