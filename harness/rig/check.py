"""Probing what a rig file names, without starting the rig: ports, interfaces, instruments,
certificates, the lock. Each probe says what it looked at and what it found."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.emulators.analyzer import MODEL_DIALECTS
from harness.netns import unavailable_reason
from harness.pki.tls import TlsMaterialError, ocpp_client_context, ocpp_server_context
from harness.power.generic import CommandMapError, load_command_map
from harness.power.models import DRIVERS, is_command_map
from harness.rig.config import RigConfig
from harness.rig.lock import RigBusy, RigLock, default_lock_path


@dataclass(frozen=True)
class ProbeResult:
    what: str
    ok: bool
    detail: str


def probe(config: RigConfig) -> Iterator[ProbeResult]:
    yield _port(config.csms.host, config.csms.port)
    if config.csms.tls is not None:
        yield _tls_files("csms.tls", lambda: ocpp_server_context(config.csms.tls.certificate, config.csms.tls.key,
                                                                  client_ca=config.csms.tls.ca))
    station_tls = config.evse.ocpp.tls
    if station_tls is not None:
        yield _tls_files("evse.ocpp.tls", lambda: ocpp_client_context(
            station_tls.ca or station_tls.certificate, client_chain=station_tls.certificate, client_key=station_tls.key))
    if config.link.kind in ("nic", "veth") and config.link.iface:
        yield _interface(config.link.iface)
        yield _raw_socket()
    if config.link.kind == "veth":
        yield _namespaces()
    if config.meter.kind != "none":
        yield _meter_model(config)
    if config.meter.kind == "visa" and config.meter.resource:
        yield _instrument(config.meter.resource)
    if config.pilot.kind == "lab":
        yield ProbeResult("pilot", False, f"no lab pilot driver is part of this harness version "
                                          f"(resource {config.pilot.resource}); use pilot.kind: none and let the "
                                          f"rig's operator plug in (operator.kind: prompt or command)")
    if config.is_lab:
        yield _lock(config)


def _port(host: str, port: int) -> ProbeResult:
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


def _tls_files(what: str, build) -> ProbeResult:
    try:
        build()
    except TlsMaterialError as exc:
        return ProbeResult(what, False, str(exc))
    return ProbeResult(what, True, "certificate, key and CA load")


def _interface(name: str) -> ProbeResult:
    path = Path("/sys/class/net") / name
    if not path.exists():
        available = ", ".join(sorted(p.name for p in Path("/sys/class/net").iterdir())) if Path(
            "/sys/class/net").exists() else "?"
        return ProbeResult(f"interface {name}", False, f"no such interface (available: {available})")
    state = (path / "operstate").read_text().strip() if (path / "operstate").exists() else "unknown"
    return ProbeResult(f"interface {name}", True, f"present, {state}")


def _raw_socket() -> ProbeResult:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88E1))
        sock.close()
    except PermissionError:
        return ProbeResult("raw sockets", False, "missing CAP_NET_RAW: run as root or "
                                                 "`sudo setcap cap_net_raw,cap_net_admin+ep $(readlink -f $(which python3))`")
    except OSError as exc:
        return ProbeResult("raw sockets", False, str(exc))
    return ProbeResult("raw sockets", True, "AF_PACKET sockets can be opened")


def _namespaces() -> ProbeResult:
    reason = unavailable_reason()
    return ProbeResult("network namespaces", reason is None, reason or "namespaces, veth pairs and raw sockets "
                                                                       "can be created")


def _instrument(resource: str) -> ProbeResult:
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
            identity = instrument.query("*IDN?").strip()
        finally:
            instrument.close()
            manager.close()
    except Exception as exc:  # pyvisa raises many kinds: all mean "did not answer"
        return ProbeResult(what, False, f"did not answer *IDN?: {exc}")
    return ProbeResult(what, bool(identity), f"answers {identity!r}" if identity else "empty *IDN? reply")


def _meter_model(config: RigConfig) -> ProbeResult:
    """The meter's model names a driver (or a command map that loads)."""
    model = config.meter.model or "yokogawa-wt1800"
    what = f"meter model {model}"
    if config.meter.kind == "simulated":
        ok = model in MODEL_DIALECTS
        return ProbeResult(what, ok, "simulated" if ok else f"cannot be simulated ({', '.join(MODEL_DIALECTS)})")
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


def _lock(config: RigConfig) -> ProbeResult:
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
