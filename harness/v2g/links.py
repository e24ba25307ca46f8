"""Where V2G talks on a host: the IPv6 address of an interface (link-local, or ::1 on loopback),
and the MAC address an EV's interface gives the DIN 70121 / ISO 15118-2 EVCCID."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from harness.v2g.vehicle import mac_evccid

IF_INET6 = Path("/proc/net/if_inet6")


class InterfaceError(ValueError):
    pass


def interface_address(iface: str) -> str:
    """The address the SECC listens on for ``iface``: ::1 for a loopback interface, else the
    interface's link-local address with its scope (``fe80::...%iface``)."""
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise InterfaceError(f"no network interface {iface!r}") from None
    addresses = []
    try:
        lines = IF_INET6.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[5] == iface:
            address = ipaddress.IPv6Address(int(fields[0], 16))
            addresses.append(address)
    if any(a.is_loopback for a in addresses):
        return "::1"
    link_local = [a for a in addresses if a.is_link_local]
    if not link_local:
        raise InterfaceError(f"interface {iface!r} has no IPv6 link-local address (is it up, with IPv6 on?)")
    return f"{link_local[0]}%{iface}"


def is_loopback(iface: str) -> bool:
    return interface_address(iface) == "::1"


def interface_evccid(iface: str) -> str | None:
    """The DIN 70121 / ISO 15118-2 EVCCID of an EV on ``iface`` (in the calling process's network
    namespace): the interface's MAC address as 12 hex digits ([V2G2-879]); None for an interface
    without one (lo) or that does not exist."""
    try:
        evccid = mac_evccid((Path("/sys/class/net") / iface / "address").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if evccid == "000000000000" else evccid
