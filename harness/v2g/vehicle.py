"""The EV as its EVCC sees it: identity, battery, limits, credentials and the plan of a session.

Plain data and arithmetic, no I/O: the EVCC session machine reads it to fill its requests and
writes what the EVSE granted into :attr:`Vehicle.grant`; the EV emulator
(:mod:`harness.emulators.hlc_ev`) moves energy between the cable and :attr:`Vehicle.battery`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from harness.v2g import schedules
from harness.v2g.battery import Battery
from harness.v2g.equipment import Grant
from harness.v2g.sap import pki_generation
from harness.v2g.schedules import Bounds

ENERGY_MODES = ("AC", "DC", "AC_BPT", "DC_BPT")
IDENTIFICATIONS = ("EIM", "PnC")
CONTROL_MODES = ("scheduled", "dynamic")


@dataclass(frozen=True)
class ChargePlan:
    """What one session shall do."""

    #: application protocols offered, most wanted first (sap keys: din, iso2, iso20-ac, iso20-dc)
    protocols: tuple[str, ...] = ("iso2",)
    energy: str = "AC"
    identification: str = "EIM"
    #: -20 control mode
    control: str = "scheduled"
    #: charge-loop requests before the EV stops by itself (None: until full or told to stop)
    cycles: int | None = 10
    #: pause between charge-loop requests and between repeats after "Ongoing" (protocol seconds)
    loop_interval: float = 0.25
    ongoing_interval: float = 0.25
    #: end with SessionStop(Pause) instead of Terminate
    pause: bool = False
    #: the EV asks to renegotiate after this many charge loops (-2: PowerDelivery Renegotiate)
    renegotiate_after: int | None = None
    #: BPT: discharge instead of charge
    discharge: bool = False
    #: PnC: "install" or "update" the contract certificate before authorizing
    certificate: str | None = None
    #: AC phases used (-2 energy transfer mode AC_single_phase_core / AC_three_phase_core)
    phases: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.energy not in ENERGY_MODES:
            problems.append(f"energy {self.energy!r} (one of {', '.join(ENERGY_MODES)})")
        if self.identification not in IDENTIFICATIONS:
            problems.append(f"identification {self.identification!r} (EIM or PnC)")
        if self.control not in CONTROL_MODES:
            problems.append(f"control {self.control!r} (scheduled or dynamic)")
        if self.certificate not in (None, "install", "update"):
            problems.append(f"certificate {self.certificate!r} (install or update)")
        if problems:
            raise ValueError("charge plan: " + "; ".join(problems))

    @property
    def dc(self) -> bool:
        return self.energy.startswith("DC")

    @property
    def bpt(self) -> bool:
        return self.energy.endswith("_BPT")

    def with_(self, **changes: Any) -> "ChargePlan":
        return replace(self, **changes)


@dataclass
class Credentials:
    """Plug & Charge material of the EV (certificates as cryptography x509 objects)."""

    emaid: str | None = None
    contract_chain: list = field(default_factory=list)  # leaf, Sub-CA 2, Sub-CA 1
    contract_key: Any = None
    oem_chain: list = field(default_factory=list)       # OEM provisioning leaf, Sub-CAs
    oem_key: Any = None
    v2g_roots: list = field(default_factory=list)       # trust anchors for the SECC / CPS
    #: -20 TLS client certificate (vehicle) chain and key, as files for the TLS context
    vehicle_chain_file: Any = None
    vehicle_key_file: Any = None


def mac_evccid(mac: str) -> str:
    """The DIN 70121 / ISO 15118-2 EVCCID of an interface MAC address ("0a:1b:2c:3d:4e:5f" ->
    "0A1B2C3D4E5F"); ValueError for anything that is not 6 bytes of hex."""
    digits = mac.replace(":", "").replace("-", "").upper()
    if len(digits) != 12 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ValueError(f"{mac!r} is not a MAC address (6 bytes)")
    return digits


@dataclass
class Vehicle:
    """``mac``: the MAC address of the EV's communication interface as 12 hex digits, the EVCCID of
    DIN 70121 and ISO 15118-2 ([V2G2-879]); ``vin``: the EVCCID of ISO 15118-20, which starts with
    the manufacturer's WMI ([V2G20-1062], Annex C.5). Which one a session sends is decided by the
    protocol the SECC chose (:meth:`evccid`), never before."""

    mac: str
    battery: Battery
    plan: ChargePlan = field(default_factory=ChargePlan)
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    ac_nominal_voltage: float = 230.0
    dc_max_voltage: float = 450.0
    dc_max_current: float = 125.0
    dc_min_current: float = 0.0
    #: the pack voltage runs from ``pack_voltage_empty`` at 0 % to ``pack_voltage_full`` at 100 %
    pack_voltage_empty: float = 320.0
    pack_voltage_full: float = 400.0
    departure_time: int = 7200
    target_soc: float = 1.0
    min_soc: float = 0.2
    credentials: Credentials = field(default_factory=Credentials)
    grant: Grant = field(default_factory=Grant)
    #: set by a test or the driver: end the session at the next chance
    stop_requested: bool = False
    vin: str = "WHARNESS000000001"
    #: the Unix time now, for following a schedule (replaced in tests)
    clock: Callable[[], float] = time.time
    #: Plug & Charge material per ISO 15118 generation ("iso2", "iso20"): once the SECC chose the
    #: protocol, the session takes the generation's set as :attr:`credentials`
    wallet: dict[str, Credentials] = field(default_factory=dict)
    #: material to present in this session only, by generation, before the wallet's (a faulty
    #: contract chain a test has the EV present); the wallet keeps the good set
    presenting: dict[str, Credentials] = field(default_factory=dict)

    def use_credentials_of(self, family: str) -> None:
        generation = pki_generation(family)
        chosen = self.presenting.get(generation) or self.wallet.get(generation)
        if chosen is not None:
            self.credentials = chosen

    def evccid(self, family: str) -> str:
        """SessionSetupReq's EVCCID in a session of ``family`` (din, iso2, iso20)."""
        return self.vin if family == "iso20" else self.mac

    @property
    def soc_percent(self) -> int:
        return max(0, min(100, int(round(self.battery.soc * 100))))

    @property
    def max_charge_power(self) -> float:
        return self.battery.max_charge_w

    @property
    def max_discharge_power(self) -> float:
        return self.battery.max_discharge_w

    def pack_voltage(self) -> float:
        return self.pack_voltage_empty + (self.pack_voltage_full - self.pack_voltage_empty) * self.battery.soc

    def energy_request_wh(self) -> float:
        return max(0.0, (self.target_soc - self.battery.soc) * self.battery.capacity_wh)

    def energy_capacity_wh(self) -> float:
        return self.battery.capacity_wh

    def full(self) -> bool:
        return self.battery.soc >= min(self.target_soc, 0.999)

    def scheduled(self) -> Bounds | None:
        """The step of the chosen schedule in force now (None: no schedule)."""
        grant = self.grant
        return schedules.at(grant.schedule, self.clock() - grant.schedule_start) if grant.schedule else None

    def target(self) -> float | None:
        """The power (W; negative: discharge) the EVSE asks the EV to transfer now: the charge
        loop's target, or, in -20 scheduled mode, the bound of the schedule step in force that
        the EV's wish picks (an EV that wants to discharge takes the lower bound, one that charges
        the upper; a bound that leaves only one direction is followed). A target the charge loop
        carries (EVSETargetActivePower, also in scheduled mode) is a command and comes first."""
        step = self.scheduled() if self.grant.follow_schedule and self.grant.target_power is None else None
        if step is None:
            return self.grant.target_power
        upper = step.upper_w if step.upper_w != float("inf") else self.max_charge_power
        lower = step.lower_w if self.plan.bpt and step.lower_w is not None else min(0.0, upper)
        wants_discharge = self.plan.bpt and self.plan.discharge
        return lower if (wants_discharge and lower < 0) or upper < 0 else upper

    def _cap(self) -> float | None:
        """The charging power the chosen schedule allows now (-2 and DIN PMax; None: no cap)."""
        step = self.scheduled() if not self.grant.follow_schedule else None
        return None if step is None else step.upper_w

    def discharging(self) -> bool:
        """BPT: the EV feeds energy back, because it chose to (its plan) or because the EVSE's
        target asks it to."""
        if not self.plan.bpt:
            return False
        target = self.target()
        return self.plan.discharge if target is None else target < 0

    def ac_current(self) -> float:
        """The AC current per phase the EV draws now (A; negative: it feeds back)."""
        limit = self.grant.ac_max_current if self.grant.ac_max_current is not None else 0.0
        phases = max(1, self.plan.phases)
        volts = self.ac_nominal_voltage * phases
        target = self.target()
        cap = self._cap()
        if cap is not None and not self.discharging():
            limit = min(limit, max(0.0, cap) / volts)
        if target is not None:
            limit = min(limit, abs(target) / volts) if limit else abs(target) / volts
        if self.discharging():
            available = self.battery.available_discharge_w(self.min_soc) / volts
            return -max(0.0, min(limit, self.ac_max_current, available))
        if self.full():
            return 0.0
        accepted = self.battery.acceptance_w() / volts
        return max(0.0, min(limit, self.ac_max_current, accepted))

    def dc_target_current(self) -> float:
        """The DC current the EV asks for (A; negative: discharge)."""
        voltage = max(1.0, self.pack_voltage())
        target = self.target()
        cap = self._cap()
        if cap is not None and not self.discharging():
            target = max(0.0, cap) if target is None else min(target, max(0.0, cap))
        if self.discharging():
            available = self.battery.available_discharge_w(self.min_soc)
            if target is not None:
                available = min(available, -target)
            return -max(0.0, min(self.dc_max_current, available / voltage))
        if self.full():
            return 0.0
        accepted = self.battery.acceptance_w() if target is None else min(self.battery.acceptance_w(), target)
        return max(0.0, min(self.dc_max_current, accepted / voltage))

    def charging_complete(self) -> bool:
        return self.full() and not self.discharging()

    def keep_going(self, loops: int) -> bool:
        """Whether the charge loop goes on after ``loops`` cycles."""
        if self.stop_requested:
            return False
        if self.plan.cycles is not None and loops >= self.plan.cycles:
            return False
        if self.plan.bpt and self.plan.discharge:  # its own discharge ends at its minimum SoC
            return self.battery.soc > self.min_soc
        return not self.full()  # a discharge the EVSE asks for stops at the minimum SoC, the session goes on
