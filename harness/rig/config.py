"""Rig files: what plays each role (ev, evse, csms, meter, pilot, link) and with which settings.

``load_rig`` validates the whole file and raises :class:`RigFileError` listing every problem with
its path. rigs/lab-example.yaml documents every field of a lab rig, rigs/emulated-netns.yaml those
of the emulated power line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ocpp.versions import OcppVersion
from harness.rig.drivers import kinds
from harness.rig.operator import ACTIONS, OPERATORS, PLACEHOLDERS, OperatorConfig, placeholders
from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

RIG_KINDS = ("emulated", "netns", "lab")
VERSION_NAMES = tuple(v.value for v in OcppVersion)
TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "Unknown", "NoCredit", "NotAllowedTypeEVSE",
                  "NotAtThisLocation", "NotAtThisTime")
#: what an EVSE role can be asked to do; suites declare what they need (pytest.mark.requires).
#: basic_charging: an EV without high-level communication charges by PWM alone (IEC 61851-1);
#: a charger that charges only through ISO 15118 / DIN 70121 (most DC chargers) does not offer it;
#: discharge: bidirectional power transfer (ISO 15118-20 AC_BPT / DC_BPT);
#: plug_and_charge: the harness's EV can run Plug & Charge with this charger: the charger trusts
#: the run's PKI (its SECC chain is what the EV trusts, and it validates the EV's contracts itself
#: against the run's MO roots or through the mock CSMS). True of the reference EVSE; a lab charger
#: needs its PKI arranged for it (see the README) before declaring it
CAPABILITIES = ("ev", "local_id_token", "reconfigure_security", "remote_start", "reset", "charging_profiles",
                "offline", "iso15118", "basic_charging", "discharge", "plug_and_charge", "power_cycle")


class RigFileError(FileProblems):
    """A rig file that cannot be used; ``problems`` lists each problem as "path: message"."""


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    key: Path
    #: CA whose certificates the holder trusts from its peers
    ca: Path | None = None


@dataclass(frozen=True)
class CsmsConfig:
    kind: str = "mock"
    host: str = "127.0.0.1"
    port: int = 0
    path_prefix: str = "/"
    versions: tuple[OcppVersion, ...] = (OcppVersion.V201, OcppVersion.V21, OcppVersion.V16)
    heartbeat_interval: int = 300
    response_timeout: float = 30.0
    id_tokens: dict[str, str] = field(default_factory=dict)
    unknown_token_status: str = "Accepted"
    #: server certificate (and the CA issuing station certificates, profile 3); generated when absent
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class StationOcppConfig:
    version: OcppVersion = OcppVersion.V201
    security_profile: int = 1
    password: str | None = None
    #: the station's client certificate (profile 3) and the CSMS root it trusts (profiles 2, 3);
    #: generated for emulated stations when absent
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class Identity:
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True)
class EvseConfig:
    kind: str = "emulated"
    station_id: str = ""
    identity: Identity = Identity()
    ocpp: StationOcppConfig = StationOcppConfig()
    evse_count: int = 1
    max_current: float = 32.0
    phases: int = 3
    voltage: float = 230.0
    capabilities: tuple[str, ...] = CAPABILITIES
    #: how long to wait for the DUT to connect and boot after the rig is up
    boot_timeout: float = 120.0
    #: ISO 15118 profile of an emulated EVSE (fixtures/evse/*.yaml; default: the reference EVSE's)
    profile: Path | None = None


@dataclass(frozen=True)
class EvConfig:
    kind: str = "emulated"
    capacity_kwh: float = 60.0
    soc: float = 0.5
    max_charge_kw: float = 11.0
    max_current: float = 32.0
    phases: int = 3
    #: the ISO 15118 EV's profile (fixtures/ev/*.yaml; default: fixtures/ev/default.yaml)
    profile: Path | None = None
    #: an EV under test (kind lab): how long one plug-in may take until every connection it opened
    #: to the harness's SECC has ended, seconds of the standard (scaled on emulated rigs)
    session_timeout: float = 300.0
    #: an EV under test: its VIN as the lab knows it (no ISO 15118 message carries one), for reports
    vin: str | None = None


@dataclass(frozen=True)
class PilotConfig:
    kind: str = "simulated"
    resource: str | None = None


@dataclass(frozen=True)
class LinkConfig:
    kind: str = "loopback"
    iface: str | None = None
    #: veth: attenuation the EVSE's modem reports for the EV's sounds, dB (default 20)
    attenuation_db: float | None = None
    #: veth: an external software EVSE run in the EVSE's namespace instead of the reference EVSE's
    #: SLAC ("{iface}" becomes its interface)
    evse_command: str | None = None
    #: veth: how the Green PHY modem emulators answer CM_SET_KEY.REQ: "qualcomm" (RESULT 0x01, as
    #: QCA700x modems do) or "homeplug" (RESULT 0x00, as the HomePlug Green PHY text says)
    modem: str = "qualcomm"


@dataclass(frozen=True)
class LabgridConfig:
    """``labgrid:`` a labgrid place whose resources stand in for local devices (harness.rig.labgrid)."""

    #: the coordinator as HOST:PORT (None: the LG_COORDINATOR variable, else labgrid's default)
    coordinator: str | None = None
    place: str | None = None


@dataclass(frozen=True)
class MeterConfig:
    kind: str = "none"
    resource: str | None = None
    model: str | None = None
    #: seconds between the background sampler's readings
    sample_period: float = 0.2
    #: the analyzer's uncertainty in percent (a simulated analyzer's error is drawn within it)
    accuracy: float = 0.1
    #: simulated analyzer only: random noise on instantaneous values, percent rms
    noise: float = 0.0
    #: accuracy class the charger's own meter is held to (harness.correlation.metering)
    dut_class: str = "A"


@dataclass(frozen=True)
class RigConfig:
    name: str
    kind: str
    path: Path | None
    time_scale: float
    csms: CsmsConfig
    evse: EvseConfig
    ev: EvConfig
    pilot: PilotConfig
    link: LinkConfig
    meter: MeterConfig
    lock: Path | None = None
    operator: OperatorConfig = OperatorConfig()
    #: the ISO 15118 PKI of the run: a lab's PKI description (YAML) or a folder written by
    #: `harness certs generate`; None: the harness generates one per run
    pki: Path | None = None
    labgrid: LabgridConfig = LabgridConfig()

    @property
    def is_lab(self) -> bool:
        return self.kind == "lab"

    @property
    def under_test(self) -> frozenset[str]:
        """Which devices this rig tests: "evse" (a charger, evse.kind lab), "ev" (an EV, ev.kind
        lab), or on a rig of emulators alone both (the harness checking its own two ends)."""
        sides = {side for side, kind in (("evse", self.evse.kind), ("ev", self.ev.kind)) if kind == "lab"}
        return frozenset(sides or ("evse", "ev"))


def load_rig(path: Path | str) -> RigConfig:
    path = Path(path)
    return parse_rig(read_yaml(path, RigFileError), path=path)


def parse_rig(data: Any, *, path: Path | None = None) -> RigConfig:
    problems = Problems()
    base = path.parent if path is not None else Path.cwd()
    top = Reader(data, "", problems)
    name = top.str("name", required=True) or "?"
    kind = top.str("kind", required=True, choices=RIG_KINDS) or "emulated"
    timing = top.section("timing")
    scale = timing.float("scale", 1.0, exclusive_minimum=0.0, maximum=1.0)
    timing.done()
    if kind == "lab" and scale != 1.0:
        problems.add("timing.scale", "lab rigs run the standards' timers; only emulated rigs may scale time")
    lock = _path(top, "lock", base)
    pki = _path(top, "pki", base)
    if pki is not None and not pki.exists():
        problems.add("pki", f"no such PKI description or folder: {pki}")
    csms = _csms(top.section("csms", required=True), base)
    evse = _evse(top.section("evse", required=True), base)
    ev = _ev(top.section("ev"), base)
    pilot = _pilot(top.section("pilot"))
    link = _link(top.section("link"), kind)
    meter = _meter(top.section("meter"))
    operator = _operator(top.section("operator"), kind, ev.kind)
    place = top.section("labgrid")
    labgrid = LabgridConfig(coordinator=place.str("coordinator"), place=place.str("place"))
    place.done()
    top.done()
    _cross_checks(problems, kind, csms, evse, ev, pilot, link)
    if problems:
        raise RigFileError(path or "<rig>", problems.items)
    return RigConfig(name=name, kind=kind, path=path, time_scale=scale, csms=csms, evse=evse, ev=ev,
                     pilot=pilot, link=link, meter=meter, lock=lock, operator=operator, pki=pki,
                     labgrid=labgrid)


def _operator(reader: Reader, rig_kind: str, ev_kind: str) -> OperatorConfig:
    kind = reader.str("kind", "none", choices=tuple(OPERATORS)) or "none"
    commands = {action: text for action in ACTIONS if (text := reader.str(action)) is not None}
    for action, text in commands.items():
        try:
            unknown = [name for name in placeholders(text) if name not in PLACEHOLDERS]
        except ValueError as exc:
            reader.problems.add(reader._where(action), f"is not a command line with {{placeholders}}: {exc}")
            continue
        if unknown:
            reader.problems.add(reader._where(action), f"unknown placeholder {{{unknown[0]}}} (known: "
                                                       f"{', '.join(PLACEHOLDERS)})")
    config = OperatorConfig(kind=kind, commands=commands,
                            timeout=reader.float("timeout", 120.0, exclusive_minimum=0.0))
    if kind == "command" and not commands:
        reader.problems.add(reader._where("kind"), f"a command operator needs at least one of "
                                                  f"{', '.join(ACTIONS)} (a command line each)")
    if kind != "command" and commands:
        reader.problems.add(reader._where("kind"), "command lines apply to operator.kind: command")
    if kind != "none" and rig_kind != "lab" and ev_kind != "lab":
        reader.problems.add(reader._where("kind"), "an operator works at a lab bench (kind: lab) or plugs in an "
                                                  "EV under test (ev.kind: lab); emulated rigs plug in and present "
                                                  "tokens themselves")
    reader.done()
    return config


def _path(reader: Reader, key: str, base: Path, *, must_exist: bool = False) -> Path | None:
    text = reader.str(key)
    if text is None:
        return None
    resolved = (base / Path(text).expanduser()).resolve() if not Path(text).expanduser().is_absolute() \
        else Path(text).expanduser()
    if must_exist and not resolved.is_file():
        reader.problems.add(reader._where(key), f"no such file: {resolved}")
    return resolved


def _tls(reader: Reader, base: Path, *, need_ca: bool = False) -> TlsFiles | None:
    if not reader.data:
        reader.done()
        return None
    certificate = _path(reader, "certificate", base, must_exist=True)
    key = _path(reader, "key", base, must_exist=True)
    ca = _path(reader, "ca", base, must_exist=True)
    for name, value in (("certificate", certificate), ("key", key)):
        if value is None and name not in reader.data:
            reader.problems.add(reader._where(name), "is required when tls is given")
    if need_ca and ca is None and "ca" not in reader.data:
        reader.problems.add(reader._where("ca"), "is required here")
    reader.done()
    if certificate is None or key is None:
        return None
    return TlsFiles(certificate, key, ca)


def _csms(reader: Reader, base: Path) -> CsmsConfig:
    kind = reader.str("kind", "mock", choices=kinds("csms"))
    versions = reader.str_list("versions", list(VERSION_NAMES), choices=VERSION_NAMES)
    config = CsmsConfig(
        kind=kind,
        host=reader.str("host", "127.0.0.1"),
        port=reader.int("port", 0, minimum=0, maximum=65535),
        path_prefix=reader.str("path_prefix", "/"),
        versions=tuple(OcppVersion(v) for v in versions) or CsmsConfig.versions,
        heartbeat_interval=reader.int("heartbeat_interval", 300, minimum=1),
        response_timeout=reader.float("response_timeout", 30.0, exclusive_minimum=0.0),
        id_tokens=_token_statuses(reader),
        unknown_token_status=reader.str("unknown_token_status", "Accepted", choices=TOKEN_STATUSES),
        tls=_tls(reader.section("tls"), base),
    )
    reader.done()
    return config


def _token_statuses(reader: Reader) -> dict[str, str]:
    tokens = reader.str_map("id_tokens", {})
    for token, status in tokens.items():
        if status not in TOKEN_STATUSES:
            reader.problems.add(f"{reader._where('id_tokens')}.{token}", f"must be one of {', '.join(TOKEN_STATUSES)}")
    return tokens


def _evse(reader: Reader, base: Path) -> EvseConfig:
    kind = reader.str("kind", "emulated", choices=kinds("evse"))
    station_id = reader.str("station_id", "", required=True)
    if station_id and (":" in station_id or "/" in station_id or len(station_id) > 48):
        reader.problems.add(reader._where("station_id"), "must be at most 48 characters without ':' or '/' "
                            "(it is the last URL path segment and the Basic auth username)")
    identity_reader = reader.section("identity")
    identity = Identity(identity_reader.str("vendor"), identity_reader.str("model"),
                        identity_reader.str("serial_number"), identity_reader.str("firmware_version"))
    identity_reader.done()
    ocpp = reader.section("ocpp", required=True)
    version = ocpp.str("version", "2.0.1", required=True, choices=VERSION_NAMES)
    profile = ocpp.int("security_profile", 1, choices=(1, 2, 3))
    password = ocpp.str("password")
    if profile in (1, 2) and password is None and kind == "lab":
        ocpp.problems.add(ocpp._where("password"), f"is required for security profile {profile}")
    if password is not None and not 16 <= len(password) <= 40:
        ocpp.problems.add(ocpp._where("password"), "must be 16 to 40 characters (OCPP BasicAuthPassword)")
    station_ocpp = StationOcppConfig(OcppVersion(version), profile, password, _tls(ocpp.section("tls"), base))
    ocpp.done()
    capabilities = reader.str_list("capabilities", list(CAPABILITIES) if kind == "emulated" else [],
                                   choices=CAPABILITIES)
    config = EvseConfig(
        kind=kind, station_id=station_id, identity=identity, ocpp=station_ocpp,
        evse_count=reader.int("evse_count", 1, minimum=1, maximum=8),
        max_current=reader.float("max_current", 32.0, minimum=6.0, maximum=80.0),
        phases=reader.int("phases", 3, choices=(1, 3)),
        voltage=reader.float("voltage", 230.0, exclusive_minimum=0.0),
        capabilities=tuple(capabilities),
        boot_timeout=reader.float("boot_timeout", 120.0, exclusive_minimum=0.0),
        profile=_profile(reader, base, "evse"),
    )
    reader.done()
    return config


def _profile(reader: Reader, base: Path, kind: str) -> Path | None:
    """An EV or EVSE profile file, checked here so a rig file's problems come all at once."""
    path = _path(reader, "profile", base, must_exist=True)
    if path is not None and path.is_file():
        from harness.emulators.profiles import ProfileError, load_ev_profile, load_evse_profile

        try:
            (load_ev_profile if kind == "ev" else load_evse_profile)(path)
        except ProfileError as exc:
            for problem in exc.problems:
                reader.problems.add(reader._where("profile"), f"{path.name}: {problem}")
    return path


def _ev(reader: Reader, base: Path) -> EvConfig:
    config = EvConfig(
        kind=reader.str("kind", "emulated", choices=kinds("ev")),
        capacity_kwh=reader.float("capacity_kwh", 60.0, exclusive_minimum=0.0),
        soc=reader.float("soc", 0.5, minimum=0.0, maximum=1.0),
        max_charge_kw=reader.float("max_charge_kw", 11.0, exclusive_minimum=0.0),
        max_current=reader.float("max_current", 32.0, minimum=6.0, maximum=80.0),
        phases=reader.int("phases", 3, choices=(1, 3)),
        profile=_profile(reader, base, "ev"),
        session_timeout=reader.float("session_timeout", 300.0, exclusive_minimum=0.0),
        vin=reader.str("vin"),
    )
    reader.done()
    return config


def _pilot(reader: Reader) -> PilotConfig:
    config = PilotConfig(kind=reader.str("kind", "simulated", choices=kinds("pilot")),
                         resource=reader.str("resource"))
    if config.kind == "lab" and not config.resource:
        reader.problems.add(reader._where("resource"), "is required for a lab pilot")
    reader.done()
    return config


def _link(reader: Reader, rig_kind: str) -> LinkConfig:
    config = LinkConfig(kind=reader.str("kind", "loopback", choices=kinds("link")),
                        iface=reader.str("iface"),
                        attenuation_db=reader.float("attenuation_db", None, minimum=0.0, maximum=255.0),
                        evse_command=reader.str("evse_command"),
                        modem=reader.str("modem", "qualcomm", choices=MODEM_FIRMWARES) or "qualcomm")
    if config.kind == "nic" and not config.iface:
        reader.problems.add(reader._where("iface"), "is required for a nic link (the Green PHY interface)")
    if config.kind != "veth" and (config.attenuation_db is not None or config.evse_command
                                  or "modem" in (reader.data or {})):
        reader.problems.add(reader._where("kind"), "attenuation_db, evse_command and modem apply to a veth link only")
    reader.done()
    return config


MODEM_FIRMWARES = ("qualcomm", "homeplug")  # harness.emulators.greenphy.FIRMWARES
METER_CLASSES = ("A", "B", "C", "2", "1", "0.5S", "0.2S")  # harness.correlation.metering.ACCURACY_CLASSES


def _meter(reader: Reader) -> MeterConfig:
    config = MeterConfig(kind=reader.str("kind", "none", choices=kinds("meter")),
                         resource=reader.str("resource"), model=reader.str("model"),
                         sample_period=reader.float("sample_period", 0.2, exclusive_minimum=0.0),
                         accuracy=reader.float("accuracy", 0.1, minimum=0.0, maximum=10.0),
                         noise=reader.float("noise", 0.0, minimum=0.0, maximum=10.0),
                         dut_class=reader.str("dut_class", "A", choices=METER_CLASSES))
    if config.kind == "visa":
        for key in ("resource", "model"):
            if getattr(config, key) is None:
                reader.problems.add(reader._where(key), "is required for a VISA instrument")
    reader.done()
    return config


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _cross_checks(problems: Problems, kind: str, csms: CsmsConfig, evse: EvseConfig, ev: EvConfig,
                  pilot: PilotConfig, link: LinkConfig) -> None:
    if link.kind == "veth" and kind != "netns":
        problems.add("link.kind", "a veth link needs a netns rig (kind: netns)")
    if evse.ocpp.version not in csms.versions:
        problems.add("evse.ocpp.version", f"{evse.ocpp.version} is not among csms.versions "
                                          f"({', '.join(v.value for v in csms.versions)})")
    if kind != "lab" and evse.kind == "lab":
        problems.add("evse.kind", "a real EVSE needs a lab rig (kind: lab)")
    if kind == "lab" and evse.kind == "lab" and evse.ocpp.security_profile >= 2 and csms.tls is None:
        problems.add("csms.tls", "a lab DUT on security profile 2 or 3 must trust the CSMS certificate, so give "
                                 "the certificate and key it was provisioned with")
    if kind == "lab" and evse.kind == "lab" and _loopback(csms.host):
        problems.add("csms.host", f"{csms.host} is a loopback address: a real charger cannot reach a CSMS "
                                  "listening there; use the lab interface's address or 0.0.0.0")
    if evse.kind == "lab" and ev.kind == "emulated" and pilot.kind == "simulated":
        problems.add("pilot.kind", "a simulated pilot line cannot reach a real charger: use pilot hardware "
                                   "(pilot.kind: lab), or ev: {kind: none} and pilot: {kind: none}")
    if ev.kind == "lab" and evse.kind != "emulated":
        problems.add("ev.kind", "an EV under test meets the harness's charger (evse.kind: emulated): the harness "
                                "plays the charger, its SECC and SLAC, with the mock CSMS behind it")
    if ev.kind == "lab" and pilot.kind != "simulated":
        problems.add("pilot.kind", "an EV under test needs the charger's side of the pilot: only the simulated "
                                   "pilot of the netns rig is supported (pilot hardware has no driver in the "
                                   "harness yet)")
    if ev.kind == "lab" and link.kind != "veth":
        problems.add("link.kind", "an EV under test reaches the harness's charger over the netns rig's emulated "
                                  "power line (link.kind: veth); the charger's side of a Green PHY NIC (a modem in "
                                  "EVSE mode) has no driver in the harness yet")
    if ev.kind == "emulated" and pilot.kind == "none":
        problems.add("pilot.kind", "an emulated EV needs a pilot (simulated, or lab hardware)")
