"""Network namespaces for the netns rig, and sockets opened inside them.

Everything of a rig runs in one process on one event loop; the EV, the EVSE and the modems each
live in a namespace of their own only through their sockets: a socket belongs to the namespace
it was created in, so :meth:`Netns.socket` switches the calling thread into the namespace for the
``socket()`` call alone (setns(2) acts on the calling thread) and back. Sockets made that way
work with asyncio like any other.

Namespaces and interfaces carry the prefix ``hrn<pid>-`` (harness rig namespace, owning process),
so a run can clean up what a crashed run left behind (:func:`remove_stale`) without touching the
namespaces of a run still alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Callable, Iterator, TypeVar

PREFIX = "hrn"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
_STALE = re.compile(rf"^{PREFIX}(\d+)-")

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)
_switch = threading.RLock()


class NetnsError(RuntimeError):
    """A namespace or interface operation failed; the message names the command and the fix."""


def unavailable_reason() -> str | None:
    """Why network namespaces and raw sockets cannot be used here, or None when they can."""
    if not hasattr(socket, "AF_PACKET"):
        return "network namespaces and raw sockets need Linux"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing: install iproute2"
    if os.geteuid() != 0:
        return ("network namespaces and veth pairs need root (CAP_SYS_ADMIN and CAP_NET_ADMIN): "
                "run as root, e.g. in CI or a container started with --privileged")
    try:
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        probe.close()
    except PermissionError:
        return "raw sockets need CAP_NET_RAW"
    except OSError as exc:
        return f"raw sockets cannot be opened: {exc}"
    return None


def run_prefix(pid: int | None = None) -> str:
    return f"{PREFIX}{pid if pid is not None else os.getpid()}-"


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; a failure raises NetnsError with ip's own message."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NetnsError("the `ip` command (iproute2) is missing: install iproute2") from None
    if check and done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def ip_batch(commands: list[str], *, netns: str | None = None) -> None:
    """Several ``ip`` commands in one process (``ip -batch``), much faster than one each."""
    if not commands:
        return
    args = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    done = subprocess.run(args, input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsError(f"`{' '.join(args)}` failed: {done.stderr.strip()}\n  commands: {'; '.join(commands)}")


class Netns:
    """A named network namespace (``ip netns``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    @classmethod
    def create(cls, name: str) -> "Netns":
        ip("netns", "add", name)
        return cls(name)

    def delete(self) -> None:
        ip("netns", "del", self.name, check=False)

    @property
    def exists(self) -> bool:
        return (NETNS_DIR / self.name).exists()

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside this namespace for the duration (no awaits inside!)."""
        with _switch:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                _setns_path(NETNS_DIR / self.name)
                try:
                    yield
                finally:
                    if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - cannot happen as root
                        raise NetnsError(f"cannot return from {self.name}: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(home)

    def call(self, function: Callable[..., T], *args) -> T:
        with self.entered():
            return function(*args)

    def socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        with self.entered():
            return socket.socket(family, kind, proto)

    def sysctl(self, key: str, value: str) -> None:
        path = Path("/proc/sys") / key.replace(".", "/")
        with self.entered():
            path.write_text(value)

    def ip(self, *args: str) -> str:
        return ip("-n", self.name, *args)


SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017


def disable_tx_offload(iface: str, netns: Netns | None = None) -> None:
    """Have the kernel compute checksums and segment TCP before a frame leaves ``iface``.

    On a veth pair the kernel leaves checksums unfilled and sends 64 KB TCP segments, both fixed
    up on the other side of the pair. A modem emulator that reads frames with a raw socket and
    sends them on must get finished, MTU-sized frames (as a real Ethernet host would send). Turning
    off TX checksum offload also turns off TCP segmentation offload (``ethtool -K IF tx off``)."""
    import fcntl
    import struct

    sock = netns.socket(socket.AF_INET, socket.SOCK_DGRAM) if netns else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
        request = struct.pack("16sP", iface.encode(), ctypes.addressof(value))
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    except OSError as exc:
        raise NetnsError(f"cannot turn off TX offload on {iface}: {exc.strerror or exc}") from None
    finally:
        sock.close()


def _setns_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise NetnsError(f"no network namespace {path.name} ({path} is missing)") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise NetnsError(f"setns into {path.name}: {os.strerror(ctypes.get_errno())} (needs CAP_SYS_ADMIN)")
    finally:
        os.close(fd)


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces left by harness processes that no longer run; returns their names."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in sorted(NETNS_DIR.iterdir()):
        match = _STALE.match(entry.name)
        if not match or not entry.name.startswith(prefix):
            continue
        if _alive(int(match.group(1))):
            continue
        ip("netns", "del", entry.name, check=False)
        removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def packet_socket(iface: str, proto: int = ETH_P_ALL, *, netns: Netns | None = None,
                  rcvbuf: int = 4 << 20) -> tuple[socket.socket, str]:
    """A non-blocking AF_PACKET raw socket bound to ``iface`` (inside ``netns`` if given) and the
    interface's MAC address. A missing interface or missing CAP_NET_RAW raises NetnsError naming
    the fix."""
    where = f"{iface}" + (f" in namespace {netns.name}" if netns else "")
    try:
        sock = (netns.socket if netns else socket.socket)(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    except PermissionError:
        raise NetnsError(f"cannot open a raw socket on {where}: missing CAP_NET_RAW; run as root or "
                         "`sudo setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(which python3))`") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((iface, proto))
    except OSError as exc:
        sock.close()
        if exc.errno == 19:  # ENODEV
            raise NetnsError(f"no network interface {where}; check the rig file's link.iface "
                             "(`ip link` lists the interfaces)") from None
        raise NetnsError(f"cannot bind a raw socket to {where}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock, ":".join(f"{b:02x}" for b in sock.getsockname()[4][:6])
