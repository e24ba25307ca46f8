"""EV and EVSE profiles: fixtures/ev/*.yaml and fixtures/evse/*.yaml.

A profile says what an emulated vehicle or charger is: protocols and their priorities, energy
modes (AC, DC, AC_BPT, DC_BPT), limits, battery, identification. Loading validates the whole file
and raises :class:`ProfileError` listing every problem with its path, like rig files do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.emulators.evse_device import Misbehaviour
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.sap import PROTOCOLS
from harness.v2g.vehicle import CONTROL_MODES, ENERGY_MODES, IDENTIFICATIONS, ChargePlan
from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

#: where the fixtures live (the repository's fixtures/ folder)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEFAULT_EV_PROFILE = FIXTURES / "ev" / "default.yaml"
DEFAULT_EVSE_PROFILE = FIXTURES / "evse" / "reference.yaml"


class ProfileError(FileProblems):
    """An EV or EVSE profile that cannot be used; ``problems`` lists each as "path: message"."""


@dataclass(frozen=True)
class EvProfile:
    name: str
    evccid: str                 # DIN / -2: the EV's MAC, 6 bytes hex
    vin: str                    # -20 EVCCID
    protocols: tuple[str, ...]
    energy: tuple[str, ...]
    capacity_kwh: float = 60.0
    soc: float = 0.4
    target_soc: float = 1.0
    min_soc: float = 0.2
    pack_voltage: tuple[float, float] = (320.0, 400.0)
    ac_phases: int = 3
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    dc_max_voltage: float = 450.0
    dc_max_current: float = 125.0
    max_charge_kw: float = 50.0
    max_discharge_kw: float = 11.0
    departure_time: int = 7200
    plan: ChargePlan = field(default_factory=ChargePlan)
    #: "installed" (a contract from the run's PKI at plug-in), "install" / "none" (no contract at
    #: plug-in; a case gets one through CertificateInstallation with ev.charge(certificate="install"))
    contract: str = "installed"
    path: Path | None = None


@dataclass(frozen=True)
class EvseProfile:
    name: str
    capabilities: EvseCapabilities
    #: 5 % duty at plug-in to ask for digital communication (ISO 15118-3)
    announce_hlc: bool = True
    #: protocol seconds after plug-in without a V2G session before falling back to nominal PWM
    hlc_fallback: float = 10.0
    #: where the SDP server listens (UDP); 0 on an emulated rig means any free port
    sdp_port: int = 15118
    #: authorization of EIM sessions: "external" (a token presented or a remote start) or "free"
    eim: str = "external"
    #: Plug & Charge contracts: "local" (validated against the MO roots of the PKI, then
    #: Authorize with their OCSP hash data) or "central" (no MO root held: the chain goes to the
    #: CSMS in Authorize's certificate field, OCPP 2.0.1 C07.FR.06)
    contract_validation: str = "local"
    #: plays a charger whose V2G_SECC_Sequence_Timeout is this (the standard's seconds; None: the
    #: standards' values) -- a non-conforming charger, for checking the harness's own checks
    sequence_timeout: float | None = None
    #: the OCPP rules it breaks on purpose (none unless the profile has ``misbehave:``)
    misbehave: Misbehaviour = Misbehaviour()
    #: what the charger says it is in its BootNotification: vendor, model, serial number, firmware
    identity: tuple[str, str, str | None, str | None] = ("Harness", "Reference EVSE", None, None)
    path: Path | None = None


def _load(path: Path | str) -> tuple[Path, Any]:
    path = Path(path)
    return path, read_yaml(path, ProfileError)


def _protocols(reader: Reader, default: list[str]) -> tuple[str, ...]:
    return tuple(reader.str_list("protocols", default, choices=list(PROTOCOLS)) or default)


def load_ev_profile(path: Path | str = DEFAULT_EV_PROFILE) -> EvProfile:
    path, data = _load(path)
    problems = Problems()
    top = Reader(data, "", problems)
    name = top.str("name", path.stem)
    evccid = top.str("evccid", "0A1B2C3D4E5F")
    if evccid and (len(evccid) > 12 or len(evccid) % 2 or any(c not in "0123456789abcdefABCDEF" for c in evccid)):
        problems.add("evccid", "must be the EV's MAC address as up to 12 hex digits (DIN 70121 / ISO 15118-2 EVCCID)")
    vin = top.str("vin", "WHARNESS000000001")
    if vin and not 1 <= len(vin) <= 255:
        problems.add("vin", "must be 1 to 255 characters")
    protocols = _protocols(top, ["iso20-dc", "iso20-ac", "iso2", "din"])
    energy = tuple(top.str_list("energy", ["AC", "DC"], choices=ENERGY_MODES))
    battery = top.section("battery")
    capacity = battery.float("capacity_kwh", 60.0, exclusive_minimum=0.0)
    soc = battery.float("soc", 0.4, minimum=0.0, maximum=1.0)
    target_soc = battery.float("target_soc", 1.0, minimum=0.0, maximum=1.0)
    min_soc = battery.float("min_soc", 0.2, minimum=0.0, maximum=1.0)
    pack = battery.section("pack_voltage")
    pack_voltage = (pack.float("empty", 320.0, exclusive_minimum=0.0), pack.float("full", 400.0, exclusive_minimum=0.0))
    pack.done()
    battery.done()
    ac = top.section("ac")
    ac_phases = ac.int("phases", 3, choices=(1, 3))
    ac_max = ac.float("max_current", 32.0, minimum=6.0, maximum=80.0)
    ac_min = ac.float("min_current", 6.0, minimum=0.0, maximum=80.0)
    ac.done()
    dc = top.section("dc")
    dc_voltage = dc.float("max_voltage", 450.0, exclusive_minimum=0.0)
    dc_current = dc.float("max_current", 125.0, exclusive_minimum=0.0)
    dc.done()
    power = top.section("power")
    max_charge = power.float("max_charge_kw", 50.0, exclusive_minimum=0.0)
    max_discharge = power.float("max_discharge_kw", 11.0, minimum=0.0)
    power.done()
    departure = top.int("departure_time_s", 7200, minimum=0)
    session = top.section("session")
    plan_args: dict[str, Any] = dict(
        protocols=protocols,
        energy=session.str("energy", energy[0] if energy else "AC", choices=ENERGY_MODES),
        identification=session.str("identification", "EIM", choices=IDENTIFICATIONS),
        control=session.str("control", "scheduled", choices=CONTROL_MODES),
        cycles=session.int("cycles", 10, minimum=1),
        loop_interval=session.float("loop_interval_s", 0.25, minimum=0.0),
        ongoing_interval=session.float("ongoing_interval_s", 0.25, minimum=0.0),
        phases=ac_phases,
    )
    session.done()
    contract = top.str("contract", "installed", choices=("installed", "install", "none"))
    top.done()
    if plan_args["energy"] not in energy:
        problems.add("session.energy", f"{plan_args['energy']} is not among the EV's energy modes ({', '.join(energy)})")
    if problems:
        raise ProfileError(path, problems.items)
    return EvProfile(name=name, evccid=evccid.upper(), vin=vin, protocols=protocols, energy=energy,
                     capacity_kwh=capacity, soc=soc, target_soc=target_soc, min_soc=min_soc,
                     pack_voltage=pack_voltage, ac_phases=ac_phases, ac_max_current=ac_max, ac_min_current=ac_min,
                     dc_max_voltage=dc_voltage, dc_max_current=dc_current, max_charge_kw=max_charge,
                     max_discharge_kw=max_discharge, departure_time=departure, plan=ChargePlan(**plan_args),
                     contract=contract, path=path)


def load_evse_profile(path: Path | str = DEFAULT_EVSE_PROFILE) -> EvseProfile:
    path, data = _load(path)
    problems = Problems()
    top = Reader(data, "", problems)
    name = top.str("name", path.stem)
    evse_id = top.str("evse_id", EvseCapabilities.evse_id)
    if evse_id and not 7 <= len(evse_id) <= 37:
        problems.add("evse_id", "must be 7 to 37 characters (ISO 15118-2 evseIDType)")
    protocols = _protocols(top, ["iso20-dc", "iso20-ac", "iso2", "din"])
    energy = tuple(top.str_list("energy", ["AC", "DC"], choices=ENERGY_MODES))
    identification = tuple(top.str_list("identification", ["EIM", "PnC"], choices=IDENTIFICATIONS))
    control = tuple(top.str_list("control_modes", list(CONTROL_MODES), choices=CONTROL_MODES))
    tls = top.str("tls", "optional", choices=("required", "optional", "none"))
    ac = top.section("ac")
    ac_args = dict(ac_nominal_voltage=ac.float("nominal_voltage", 230.0, exclusive_minimum=0.0),
                   ac_phases=ac.int("phases", 3, choices=(1, 3)),
                   ac_max_current=ac.float("max_current", 32.0, minimum=6.0, maximum=80.0),
                   ac_min_current=ac.float("min_current", 6.0, minimum=0.0),
                   ac_max_discharge_current=ac.float("max_discharge_current", 16.0, minimum=0.0))
    ac.done()
    dc = top.section("dc")
    dc_args = dict(dc_max_voltage=dc.float("max_voltage", 500.0, exclusive_minimum=0.0),
                   dc_min_voltage=dc.float("min_voltage", 150.0, minimum=0.0),
                   dc_max_current=dc.float("max_current", 200.0, exclusive_minimum=0.0),
                   dc_min_current=dc.float("min_current", 0.0, minimum=0.0),
                   dc_max_power=dc.float("max_power_kw", 50.0, exclusive_minimum=0.0) * 1000.0,
                   dc_max_discharge_current=dc.float("max_discharge_current", 100.0, minimum=0.0),
                   dc_max_discharge_power=dc.float("max_discharge_power_kw", 11.0, minimum=0.0) * 1000.0,
                   dc_peak_current_ripple=dc.float("peak_current_ripple", 2.0, minimum=0.0),
                   current_ramp=dc.float("current_ramp", 0.0, minimum=0.0),
                   voltage_ramp=dc.float("voltage_ramp", 0.0, minimum=0.0))
    dc.done()
    cable_check_rounds = top.int("cable_check_rounds", 1, minimum=1, maximum=100)
    receipt_every = top.int("receipt_every", 0, minimum=0)
    certificate_service = top.bool("certificate_service", True)
    hlc = top.section("hlc")
    announce = hlc.bool("announce", True)
    fallback = hlc.float("fallback_s", 10.0, exclusive_minimum=0.0)
    sdp_port = hlc.int("sdp_port", 15118, minimum=0, maximum=65535)
    eim = hlc.str("eim", "external", choices=("external", "free"))
    contract_validation = hlc.str("contract_validation", "local", choices=("local", "central"))
    sequence_timeout = hlc.float("sequence_timeout_s", None, exclusive_minimum=0.0)
    hlc.done()
    wrong = top.section("misbehave")
    misbehave = Misbehaviour(transaction_id=wrong.str("transaction_id"), id_token=wrong.str("id_token"),
                             meter_clock_offset_s=wrong.float("meter_clock_offset_s", 0.0),
                             boot_reason=wrong.str("boot_reason"))
    wrong.done()
    who = top.section("identity")
    identity = (who.str("vendor", "Harness") or "Harness", who.str("model", "Reference EVSE") or "Reference EVSE",
                who.str("serial_number"), who.str("firmware_version"))
    who.done()
    top.done()
    if problems:
        raise ProfileError(path, problems.items)
    capabilities = EvseCapabilities(evse_id=evse_id, energy=energy, protocols=protocols, identification=identification,
                                    control_modes=control, tls=tls, cable_check_rounds=cable_check_rounds,
                                    receipt_every=receipt_every, certificate_service=certificate_service,
                                    **ac_args, **dc_args)
    return EvseProfile(name=name, capabilities=capabilities, announce_hlc=announce, hlc_fallback=fallback,
                       sdp_port=sdp_port, eim=eim, contract_validation=contract_validation, identity=identity, sequence_timeout=sequence_timeout,
                       misbehave=misbehave, path=path)
