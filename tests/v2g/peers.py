"""Protocol stacks the harness did not write, installed from the package registry for the tests
that run the harness against them.

Each peer lives in a virtual environment of its own under ``.peers/`` in the checkout (its
dependencies pin versions the harness's do not allow), made on first use. Without the registry
or the runtime a peer needs, a test skips and says so; in CI (``CI`` set) it fails instead, since
CI installs what the peers need.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / ".peers"

#: SwitchEV/EcoG's ISO 15118 stack (EVCC and SECC for DIN 70121, ISO 15118-2 and -20); it encodes EXI
#: with EXIficient in a JVM. aiofile is a dependency its wheel does not declare.
JOSEV = ("iso15118==0.31.2", "aiofile>=3.8,<4")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI should have this: {reason}")
    pytest.skip(reason)


def josev_python() -> Path:
    """The Python of a virtual environment with Josev installed (made once)."""
    if shutil.which("java") is None:
        _unavailable("Josev's EXI codec needs a Java runtime (`apt-get install default-jre-headless`)")
    home = PEERS / "josev-0.31.2"
    python = home / "bin" / "python"
    marker = home / ".installed"
    if not marker.exists():
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", *JOSEV], capture_output=True, text=True,
                                timeout=600)
        if result.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            _unavailable(f"cannot install {' '.join(JOSEV)} from the package registry: "
                         f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        marker.write_text(" ".join(JOSEV) + "\n")
    return python


def needs_netns() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        _unavailable("network namespaces and veth pairs need root and iproute2")


def harness_python() -> str:
    return sys.executable


class VethPair:
    """A veth pair: ``ev`` in this network namespace, ``evse`` in a namespace of its own
    (``netns``), both up with link-local addresses usable at once (DAD off)."""

    def __init__(self, tag: str) -> None:
        self.netns, self.ev, self.evse = f"v2g-{tag}", f"ev{tag}", f"se{tag}"

    def __enter__(self) -> "VethPair":
        self._ip("netns", "add", self.netns)
        try:
            self._ip("link", "add", self.ev, "type", "veth", "peer", "name", self.evse)
            self._ip("link", "set", self.evse, "netns", self.netns)
            self._sysctl(f"net.ipv6.conf.{self.ev}.accept_dad=0")
            self._sysctl(f"net.ipv6.conf.{self.evse}.accept_dad=0", self.netns)
            self._ip("link", "set", self.ev, "up")
            self._ip("link", "set", self.evse, "up", netns=self.netns)
            self._ip("link", "set", "lo", "up", netns=self.netns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.ev], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    def in_evse(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *command]

    @property
    def ev_mac(self) -> str:
        return Path(f"/sys/class/net/{self.ev}/address").read_text().strip()

    @staticmethod
    def _ip(*args: str, netns: str | None = None) -> None:
        command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
        subprocess.run(command, check=True, capture_output=True)

    @staticmethod
    def _sysctl(key: str, netns: str | None = None) -> None:
        command = ["sysctl", "-q", "-w", key]
        subprocess.run(["ip", "netns", "exec", netns, *command] if netns else command, check=True,
                       capture_output=True)
