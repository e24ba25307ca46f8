"""Probing what a rig file names, without starting the rig: ports, interfaces, instruments,
certificates, the lock. Each probe says what it looked at and what it found.

What to probe for a role depends on its kind, so each driver class says it (its ``probe``
classmethod, using the probes here); :func:`probe` asks every role's driver, then checks the lock.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.netns import unavailable_reason
from harness.pki.description import load_any_pnc_pki
from harness.pki.files import CertificateFileError
from harness.pki.tls import TlsMaterialError
from harness.power.generic import CommandMapError, load_command_map
from harness.power.models import DRIVERS, is_command_map
from harness.rig.config import RigConfig
from harness.rig.drivers import ROLES, driver_class
from harness.rig.lock import RigBusy, RigLock, default_lock_path
from harness.yamlfile import FileProblems


@dataclass(frozen=True)
class ProbeResult:
    what: str
    ok: bool
    detail: str


def probe(config: RigConfig) -> Iterator[ProbeResult]:
    for role in ROLES:
        yield from driver_class(role, getattr(config, role).kind).probe(config)
    if config.pki is not None:
        yield pki(config.pki)
    if config.is_lab:
        yield lock(config)


def pki(path: Path) -> ProbeResult:
    """The rig's ISO 15118 PKI as the mock CSMS takes it (the roles' own parts are named when
    they start)."""
    what = f"pki {path}"
    try:
        loaded, responders = load_any_pnc_pki(path)
    except (FileProblems, CertificateFileError, ValueError, TypeError) as exc:
        return ProbeResult(what, False, str(exc))
    return ProbeResult(what, True, f"{len(loaded.mo_roots)} MO root(s), {len(loaded.authorities)} CA certificates "
                                   f"of {', '.join(loaded.parts)}; OCSP responders: "
                                   f"{', '.join(sorted({*loaded.ocsp_urls, *responders})) or 'none named'}")


def listen_port(host: str, port: int) -> ProbeResult:
    what = f"csms listen address {host}:{port or '<any>'}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            bound = sock.getsockname()[1]
    except OSError as exc:
        return ProbeResult(what, False, f"cannot listen there: {exc.strerror or exc}")
    return ProbeResult(what, True, "free" if port else f"free ports available (e.g. {bound})")


def tls_files(what: str, build) -> ProbeResult:
    try:
        build()
    except TlsMaterialError as exc:
        return ProbeResult(what, False, str(exc))
    return ProbeResult(what, True, "certificate, key and CA load")


def interface(name: str) -> ProbeResult:
    path = Path("/sys/class/net") / name
    if not path.exists():
        available = ", ".join(sorted(p.name for p in Path("/sys/class/net").iterdir())) if Path(
            "/sys/class/net").exists() else "?"
        return ProbeResult(f"interface {name}", False, f"no such interface (available: {available})")
    state = (path / "operstate").read_text().strip() if (path / "operstate").exists() else "unknown"
    return ProbeResult(f"interface {name}", True, f"present, {state}")


def raw_socket() -> ProbeResult:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88E1))
        sock.close()
    except PermissionError:
        return ProbeResult("raw sockets", False, "missing CAP_NET_RAW: run as root or "
                                                 "`sudo setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(which python3))`")
    except OSError as exc:
        return ProbeResult("raw sockets", False, str(exc))
    return ProbeResult("raw sockets", True, "AF_PACKET sockets can be opened")


def modem(iface: str) -> ProbeResult:
    """The Green PHY modem behind a NIC: chip, firmware and networks, from Qualcomm's vendor
    messages (VS_SW_VER, VS_NW_INFO). A modem that does not answer them is not a failure: modems of
    other makes do not, and SLAC does not need them; the line says so."""
    from harness.netns import NetnsError
    from harness.slac.io import read_modem

    what = f"Green PHY modem behind {iface}"
    try:
        reading = read_modem(iface, timeout=1.0)
    except NetnsError as exc:
        return ProbeResult(what, False, str(exc))
    return ProbeResult(what, True, reading.describe())


def namespaces() -> ProbeResult:
    reason = unavailable_reason()
    return ProbeResult("network namespaces", reason is None, reason or "namespaces, veth pairs and raw sockets "
                                                                       "can be created")


def instrument(resource: str) -> ProbeResult:
    what = f"instrument {resource}"
    try:
        import pyvisa
        from pyvisa.resources import MessageBasedResource
    except ImportError:  # pragma: no cover - a dependency of the harness
        return ProbeResult(what, False, "pyvisa is not installed")
    try:
        manager = pyvisa.ResourceManager("@py")
        instrument = manager.open_resource(resource, open_timeout=3000)
        instrument.timeout = 3000
        try:
            if not isinstance(instrument, MessageBasedResource):
                # *IDN? is a message; a register-based resource cannot be asked it
                return ProbeResult(what, False, f"{resource} is a {type(instrument).__name__}, not a message-based "
                                                "VISA resource (use a ...::INSTR or ...::SOCKET resource)")
            if resource.upper().endswith("::SOCKET"):
                # a raw socket has no message end of its own: SCPI ends each with LF
                instrument.read_termination = instrument.write_termination = "\n"
            identity = instrument.query("*IDN?").strip()
        finally:
            instrument.close()
            manager.close()
    except Exception as exc:  # pyvisa raises many kinds: all mean "did not answer"
        return ProbeResult(what, False, f"did not answer *IDN?: {exc}")
    return ProbeResult(what, bool(identity), f"answers {identity!r}" if identity else "empty *IDN? reply")


def meter_model(config: RigConfig) -> ProbeResult:
    """The meter's model names a driver (or a command map that loads)."""
    model = config.meter.model or ""
    what = f"meter model {model}"
    if is_command_map(model):
        path = Path(model) if Path(model).is_absolute() or config.path is None else config.path.parent / model
        try:
            loaded = load_command_map(path)
        except CommandMapError as exc:
            return ProbeResult(what, False, str(exc))
        return ProbeResult(what, True, f"command map for {loaded.model} loads")
    if model not in DRIVERS:
        return ProbeResult(what, False, f"no driver (known: {', '.join(sorted(DRIVERS))}, or a *.yaml command map)")
    return ProbeResult(what, True, f"driver {DRIVERS[model].__name__}")


def lock(config: RigConfig) -> ProbeResult:
    path = config.lock or default_lock_path(config.name)
    lock = RigLock(path, config.name, "rig check")
    try:
        lock.acquire()
    except RigBusy as exc:
        return ProbeResult("lock", False, str(exc))
    except OSError as exc:
        return ProbeResult("lock", False, f"{path}: {exc.strerror or exc}")
    lock.release()
    return ProbeResult("lock", True, f"{path} is free (uid {os.getuid()})")
