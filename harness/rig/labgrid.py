"""labgrid places as rigs: a lab's benches behind a labgrid coordinator, shared by CI and people.

A rig file's ``labgrid: {coordinator, place}`` (or ``harness run --place NAME``) makes a run
acquire the place through the coordinator before anything else, take its devices from the place's
resources, and release it when the run ends, also after an error or Ctrl-C. A place someone else
holds stops the run at once with the holder's name, as the local lock of a lab rig does.

The resources a place's exporters offer stand in for the rig file's devices:

- a ``NetworkInterface`` (``RemoteNetworkInterface`` as the coordinator shows it): the Green PHY
  NIC, ``link: {kind: nic, iface}``; it must be on the machine that runs the harness (raw
  sockets do not cross the network);
- a ``NetworkService`` named ``analyzer``: the power analyzer, ``meter: {kind: visa, resource:
  TCPIP::address::port::SOCKET}`` (the rig file's model stays);
- a ``NetworkService`` named ``charger``: the charger's address, recorded with the run;
- a power port (``NetworkPowerPort``, ``PDUDaemonPort``, ``TasmotaPowerPort``, a USB power port):
  the charger's mains switch. The operator's ``power_cycle`` becomes ``labgrid-client power
  cycle`` on the place (unless a person at the bench does it, ``operator.kind: prompt``) and the
  charger offers the capability ``power_cycle``; the cases that cut its supply then run;
- anything else (serial consoles, ...): listed with the run, not used by the harness.

It speaks to the coordinator through ``labgrid-client``, labgrid's own command line (installed with
``pip install -e '.[labgrid]'``): acquire, show, release.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.rig.config import LinkConfig, MeterConfig, RigConfig

#: how long one labgrid-client command may take (the coordinator is on the lab network)
CLIENT_TIMEOUT = 30.0


class PlaceError(RuntimeError):
    """The place cannot be used; the message says why and what to do."""


class PlaceBusy(PlaceError):
    """Someone else holds the place; the message names the holder."""


@dataclass(frozen=True)
class PlaceResource:
    name: str
    cls: str
    params: dict[str, Any]

    @property
    def path(self) -> str:
        return f"{self.cls}/{self.name}"


def _client() -> list[str]:
    beside = Path(sys.executable).parent / "labgrid-client"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("labgrid-client")
    if found is None:
        raise PlaceError("labgrid is not installed (labgrid-client not found): pip install -e '.[labgrid]'")
    return [found]


class Place:
    """One labgrid place, acquired and released through the coordinator."""

    def __init__(self, name: str, coordinator: str | None = None) -> None:
        self.name = name
        self.coordinator = coordinator or os.environ.get("LG_COORDINATOR") or "127.0.0.1:20408"
        self.acquired = False

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [*_client(), "-x", self.coordinator, "-p", self.name, *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PlaceError(f"labgrid coordinator {self.coordinator} did not answer `{' '.join(args)}` within "
                             f"{CLIENT_TIMEOUT:g} s") from None

    def acquire(self) -> None:
        result = self._run("acquire")
        if result.returncode != 0:
            text = _error_text(result)
            holder = re.search(r"already acquired by (\S+?)\.?(\s|$)", text)
            if holder:
                raise PlaceBusy(f"labgrid place {self.name!r} is held by {holder.group(1)} (coordinator "
                                f"{self.coordinator}); the run stops here")
            raise PlaceError(f"labgrid place {self.name!r} at {self.coordinator} cannot be acquired: {text}")
        self.acquired = True

    def release(self) -> None:
        """Give the place back (nothing if this run does not hold it); never raises."""
        if not self.acquired:
            return
        try:
            self._run("release")
        except PlaceError:
            pass
        self.acquired = False

    def resources(self) -> list[PlaceResource]:
        """The resources the acquired place holds, as the coordinator describes them."""
        result = self._run("show")
        if result.returncode != 0:
            raise PlaceError(f"labgrid place {self.name!r}: {_error_text(result)}")
        return parse_show(result.stdout)

    def __enter__(self) -> "Place":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _error_text(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1].removeprefix("labgrid-client: Error: ") if lines else f"exit status {result.returncode}"


_ACQUIRED = re.compile(r"^Acquired resource '([^']+)' \(([^)]+)\):$")


def parse_show(text: str) -> list[PlaceResource]:
    """The acquired resources in ``labgrid-client show`` output: each a header line and its
    attributes as a Python literal."""
    found: list[PlaceResource] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _ACQUIRED.match(lines[index].strip())
        index += 1
        if match is None:
            continue
        block = []
        while index < len(lines) and lines[index].startswith("  ") and not _ACQUIRED.match(lines[index].strip()):
            block.append(lines[index])
            index += 1
        try:
            attributes = ast.literal_eval("\n".join(line.strip() for line in block))
        except (ValueError, SyntaxError) as exc:
            raise PlaceError(f"labgrid-client show: the attributes of {match.group(1)} do not read ({exc})") from None
        cls = str(attributes.get("cls") or match.group(2).split("/")[2])
        found.append(PlaceResource(match.group(1), cls, dict(attributes.get("params") or {})))
    return found


def is_power_port(cls: str) -> bool:
    return cls.endswith("PowerPort") or cls == "PDUDaemonPort"


def apply(config: RigConfig, resources: list[PlaceResource], place: "Place | None" = None) -> tuple[RigConfig, list[str]]:
    """The rig with the place's devices in it, and one line per resource saying what it became
    (``place``: the place they came from, whose power port the rig's operator then switches)."""
    notes: list[str] = []
    link, meter, operator, evse = config.link, config.meter, config.operator, config.evse
    for resource in resources:
        params = resource.params
        if resource.cls in ("NetworkInterface", "RemoteNetworkInterface"):
            host = str(params.get("host") or "localhost")
            if not _is_this_host(host):
                raise PlaceError(f"labgrid resource {resource.path}: the network interface {params.get('ifname')} "
                                 f"is on {host}; the Green PHY NIC must be on the machine that runs the harness")
            link = LinkConfig(kind="nic", iface=str(params["ifname"]))
            notes.append(f"{resource.path}: the Green PHY NIC {params['ifname']} (link: nic)")
        elif resource.cls == "NetworkService" and resource.name == "analyzer":
            visa = f"TCPIP0::{params['address']}::{params.get('port') or 5025}::SOCKET"
            meter = replace(meter if meter.kind == "visa" else MeterConfig(model=meter.model), kind="visa",
                            resource=visa)
            notes.append(f"{resource.path}: the power analyzer {visa} (meter: visa)")
        elif resource.cls == "NetworkService" and resource.name == "charger":
            notes.append(f"{resource.path}: the charger at {params.get('address')}")
        elif is_power_port(resource.cls) and place is not None and operator.kind != "prompt":
            command = shlex.join([*_client(), "-x", place.coordinator, "-p", place.name, "power", "cycle",
                                  "--name", resource.name]) + " --delay {off_s}"
            operator = replace(operator, kind="command", commands={**operator.commands, "power_cycle": command})
            if "power_cycle" not in evse.capabilities:
                evse = replace(evse, capabilities=(*evse.capabilities, "power_cycle"))
            notes.append(f"{resource.path}: the charger's mains switch (operator power_cycle: labgrid-client power "
                         f"cycle)")
        elif is_power_port(resource.cls):
            notes.append(f"{resource.path}: a power port, not used: the person at the bench (operator.kind: "
                         f"prompt) switches the charger's supply")
        else:
            notes.append(f"{resource.path}: not used by the harness")
    return replace(config, link=link, meter=meter, operator=operator, evse=evse), notes


def _is_this_host(host: str) -> bool:
    if host in ("localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return any(a.startswith("127.") or a == "::1" or a in _local_addresses() for a in addresses)


def _local_addresses() -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return set()
