"""What the SECC asks of the charger it runs in, and what it may offer.

The session machine (:class:`harness.v2g.session.SeccSession`) does not own hardware or a
backend: it asks an :class:`Equipment` -- the power stage (limits, cable check, pre-charge,
the present voltage and current), the authorization backend (OCPP on the reference EVSE) and the
meter. Every call is synchronous and returns at once: what is not decided yet is "Ongoing", which
is exactly what the protocols let an SECC answer while it waits ([V2G2-710] .. [V2G2-713]).
Implementations: :class:`harness.emulators.charge_port.ChargePort` (standalone: authorizes by
local policy) and :class:`harness.emulators.bridge.OcppBridge` (the reference EVSE: OCPP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, Sequence

from harness.pki.profiles import DEFAULT_EVSE_ID, Generation

if TYPE_CHECKING:
    from harness.v2g.pnc import ContractCheck

#: ISO 15118-20 energy transfer services (ServiceID, -20 Table 204)
ISO20_SERVICES = {"AC": 1, "DC": 2, "WPT": 3, "DC_ACDP": 4, "AC_BPT": 5, "DC_BPT": 6, "DC_ACDP_BPT": 7}
ISO20_SERVICE_NAMES = {v: k for k, v in ISO20_SERVICES.items()}


@dataclass(frozen=True)
class EvseCapabilities:
    """What the charger offers and its limits (from fixtures/evse/*.yaml)."""

    evse_id: str = DEFAULT_EVSE_ID
    #: energy modes: AC, DC, AC_BPT, DC_BPT (AC_BPT/DC_BPT are -20 only)
    energy: tuple[str, ...] = ("AC", "DC", "AC_BPT", "DC_BPT")
    protocols: tuple[str, ...] = ("iso20-dc", "iso20-ac", "iso2", "din")
    #: EIM and/or PnC
    identification: tuple[str, ...] = ("EIM", "PnC")
    #: -20 control modes
    control_modes: tuple[str, ...] = ("scheduled", "dynamic")
    tls: str = "optional"  # "required", "optional", "none" (for -2/DIN; -20 always needs TLS 1.3)
    ac_nominal_voltage: float = 230.0
    ac_phases: int = 3
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    ac_max_discharge_current: float = 16.0
    dc_max_voltage: float = 500.0
    dc_min_voltage: float = 150.0
    dc_max_current: float = 200.0
    dc_min_current: float = 0.0
    dc_max_power: float = 50000.0
    dc_max_discharge_current: float = 100.0
    dc_max_discharge_power: float = 11000.0
    dc_peak_current_ripple: float = 2.0
    #: how fast the DC output follows a new target (A/s, V/s); 0 = at once
    current_ramp: float = 0.0
    voltage_ramp: float = 0.0
    #: Ongoing answers before an EVSE process finishes (CableCheck; it takes time on a real charger)
    cable_check_rounds: int = 1
    #: a MeteringReceipt is asked for every this many charge loops in PnC (0: never)
    receipt_every: int = 0
    free_service: bool = False
    certificate_service: bool = True
    meter_id: str = "HARNESS-METER-1"

    def max_power(self, energy: str) -> float:
        if energy.startswith("DC"):
            return self.dc_max_power
        return self.ac_nominal_voltage * self.ac_max_current * self.ac_phases

    def max_discharge_power(self, energy: str) -> float:
        if energy.startswith("DC"):
            return self.dc_max_discharge_power
        return self.ac_nominal_voltage * self.ac_max_discharge_current * self.ac_phases


@dataclass
class Present:
    """What the power stage puts out now."""

    voltage: float = 0.0
    current: float = 0.0  # negative: discharge
    current_limit_achieved: bool = False
    voltage_limit_achieved: bool = False
    power_limit_achieved: bool = False


class Equipment(Protocol):
    """The SECC's view of its charger; see the module docstring."""

    capabilities: EvseCapabilities

    # -- session and authorization ------------------------------------------------------
    def session_started(self, session_id: str, evccid: str | None, protocol: str) -> None: ...

    def session_ended(self, session_id: str | None, reason: str, paused: bool) -> None: ...

    def connection_failed(self, reason: str) -> None:
        """An EV's connection failed before a session could begin (its TLS handshake); why."""
        ...

    def authorize(self, method: str, *, emaid: str | None = None,
                  contract_chain: Sequence[Any] = ()) -> str:
        """"Accepted", "Ongoing" (ask again) or "Rejected"; ``method`` is "EIM" or "PnC". For
        PnC a backend's refusal of the contract may be named instead ("CertificateRevoked"...,
        the keys of :data:`harness.v2g.pnc.BACKEND_REFUSALS`), which picks the ResponseCode."""
        ...

    def notification(self) -> str:
        """The EVSENotification to send now: "None", "StopCharging" or "ReNegotiation"."""
        ...

    def ev_status(self, *, soc: float | None = None, ready: bool | None = None) -> None:
        """What the EV reported (SoC in percent) -- for meter values and displays."""
        ...

    def ev_charging_needs(self, needs: "ChargingNeeds") -> None:
        """What the EV asked for in its charge parameters (energy, limits, departure): a charger
        with a backend passes it on (OCPP 2.0.1 NotifyEVChargingNeeds)."""
        ...

    def ev_charging_schedule(self, schedule: "EvSchedule") -> None:
        """The power profile the EV announced when energy starts (-2 ChargingProfile, -20
        EVPowerProfile): a charger with a backend passes it on (OCPP 2.0.1
        NotifyEVChargingSchedule)."""
        ...

    # -- power stage ----------------------------------------------------------------------
    def cable_check(self) -> bool:
        """One step of the isolation test; True when it passed."""
        ...

    def energy_transfer(self, start: bool, energy: str, *, discharge: bool = False) -> bool:
        """Close (start) or open the power path for ``energy`` (AC, DC, AC_BPT, DC_BPT).
        False when it cannot (the EV is not in state C)."""
        ...

    def pre_charge(self, voltage: float, current: float) -> Present: ...

    def current_demand(self, voltage: float, current: float) -> Present:
        """Follow the EV's DC targets (negative current: discharge) within the limits."""
        ...

    def ac_target(self, power: float | None = None) -> float:
        """The AC current per phase the EV may draw now (A); ``power``: a -20 target in W."""
        ...

    def present(self) -> Present: ...

    def meter_wh(self) -> tuple[float, float]:
        """(imported Wh, exported Wh) of the EVSE meter."""
        ...

    # -- Plug & Charge services ----------------------------------------------------------
    def check_contract(self, chain: Sequence[Any], *, generation: Generation,
                       emaid: str | None) -> "ContractCheck":
        """Validate a contract certificate chain (leaf first): against the charger's MO roots, or
        by a backend that does it for the charger; a chain nobody validates is refused
        (:func:`harness.v2g.pnc.check_contract`)."""
        ...

    def certificate_service(self, request: str, *, oem_chain: Sequence[Any] = (),
                            contract_chain: Sequence[Any] = (), emaid: str | None = None,
                            generation: str = "iso2") -> Any:
        """CertificateInstallation/Update: the new contract for the EV, or None if none is
        available (:class:`harness.v2g.pnc.ContractDelivery`)."""
        ...

    def power_limit(self, energy: str) -> float:
        """The power (W) the charger offers the EV now: its capability (``energy``: AC, DC,
        AC_BPT, DC_BPT), lowered by what its backend limits it to (a charging profile)."""
        ...

    def discharge_limit(self, energy: str) -> float:
        """The discharge power (W, a magnitude) the charger allows now: its capability, lowered by
        its backend (a charging profile's dischargeLimit; 0 in an operation mode without
        discharge)."""
        ...

    def power_setpoint(self, energy: str) -> float | None:
        """The signed power (W; negative: discharge) the charger's backend asks it to transfer
        now (an OCPP 2.1 setpoint), within :meth:`power_limit` and :meth:`discharge_limit`; None
        when the EV's demand decides within those limits."""
        ...

    def power_schedule(self, energy: str) -> Sequence[Any]:
        """What the charger allows over the hours ahead, as :class:`harness.v2g.schedules.Offer`
        in the order of their starts (the first at 0: the values of :meth:`power_limit`,
        :meth:`discharge_limit` and :meth:`power_setpoint` now), for the schedules an SECC offers."""
        ...

    def installs_certificates(self, generation: str) -> bool:
        """Whether the charger offers certificate installation for ``generation`` ("iso2",
        "iso20"): through a secondary actor, or by itself."""
        ...

    def certificate_relay(self, request: str, message: dict,
                          schema: str) -> Callable[[], Awaitable[dict | None]] | None:
        """How a charger that hands the EV's CertificateInstallationReq / CertificateUpdateReq
        (the whole ``message``, EXI schema ``schema``) to a secondary actor gets the response
        message back; None when it provisions itself (:meth:`certificate_service`)."""
        ...


@dataclass(frozen=True)
class ChargingNeeds:
    """The EV's charge parameters as one shape for every protocol: energy in Wh, currents in A,
    voltages in V, power in W, the departure in seconds from now (None: not given)."""

    energy_transfer: str  # AC_single_phase, AC_three_phase, DC, AC_BPT, DC_BPT (OCPP 2.1 names)
    energy_wh: float | None = None
    max_current: float | None = None
    min_current: float | None = None
    max_voltage: float | None = None
    max_power: float | None = None
    soc: float | None = None
    departure_s: int | None = None
    #: ISO 15118-20: the power range, discharge included (W), the energy requests (Wh), the target
    #: SoC (%), and the control mode ("scheduled", "dynamic")
    min_power: float | None = None
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    target_energy_wh: float | None = None
    min_energy_wh: float | None = None
    max_energy_wh: float | None = None
    min_v2x_energy_wh: float | None = None
    max_v2x_energy_wh: float | None = None
    target_soc: float | None = None
    control: str | None = None


@dataclass(frozen=True)
class EvSchedule:
    """The EV's planned power over time, as every protocol says it: (seconds from now, W) per
    period (negative: discharge), and the schedule it chose (-2 SAScheduleTupleID, -20
    ScheduleTupleID; None in -20 dynamic mode)."""

    periods: tuple[tuple[int, float], ...]
    schedule_id: int | None = None


@dataclass
class Grant:
    """What the EVSE granted the EV, as the EVCC learned it (kept on the vehicle)."""

    ac_max_current: float | None = None
    #: the power (W) the EVSE asks the EV to transfer (-20 EVSETargetActivePower, or the bound of the
    #: schedule the EV chose); negative: discharge; None: the EV's own demand decides
    target_power: float | None = None
    dc_present_voltage: float | None = None
    dc_present_current: float | None = None
    dc_max_current: float | None = None
    dc_max_power: float | None = None
    dc_max_voltage: float | None = None
    max_power: float | None = None
    notification: str = "None"
    #: the schedule the EV chose (harness.v2g.schedules.Bounds over time) and the Unix time its
    #: first step starts at; ``follow_schedule``: its bounds set the target power (-20 scheduled
    #: mode), otherwise its upper bound only caps the charging power (-2 and DIN PMax)
    schedule: tuple[Any, ...] = ()
    schedule_start: float = 0.0
    follow_schedule: bool = False

    def take_schedule(self, steps: Sequence[Any], start: float, *, follow: bool) -> None:
        self.schedule, self.schedule_start, self.follow_schedule = tuple(steps), start, follow

    def drop_schedule(self) -> None:
        self.take_schedule((), 0.0, follow=False)
