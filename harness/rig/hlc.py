"""ISO 15118 on a rig: the EV role's high-level communication and the emulated EVSE's SECC.

:class:`HlcDriver` is what the suites use through ``ev.charge(...)``: it plugs the ISO 15118 EV
in, finds the SECC with SDP over the rig's link, runs one V2G session as the plan says, and
returns a :class:`SessionResult` built from what the EV observed (the timeline, observer ``ev``):
black-box. On a lab rig the EV emulator would need pilot hardware at the charger's plug and a model
of the cable's power, which the harness does not have yet, so there these cases are skipped.

On an emulated rig the EV and the reference EVSE share the run's generated ISO 15118 PKI
(:func:`material`). The rig's link decides where V2G talks: on the default rig the EVSE's SDP
server listens on ::1 (unicast); on the netns rig the EV first matches the EVSE with SLAC (after
plug-in, on state B with 5 %), then sends SDP to the all-nodes group on the link and connects to
the SECC's link-local address, from its own network namespace.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from harness.emulators.evse_hlc import EvseHlc
from harness.emulators.hlc_ev import HlcEv
from harness.emulators.profiles import (
    DEFAULT_EV_PROFILE,
    DEFAULT_EVSE_PROFILE,
    EvProfile,
    load_ev_profile,
    load_evse_profile,
)
from harness.pki.description import PkiDescription
from harness.pki.faults import CATALOGUE
from harness.pki.files import CertificateFileError
from harness.pki.profiles import Role as CertificateRole
from harness.rig.secc_view import SeccView, collect
from harness.slac.ev import Failed
from harness.trace import Event, Layer, Recorder
from harness.v2g import sap
from harness.v2g.battery import Battery
from harness.v2g.credentials import V2gMaterial
from harness.v2g.faults import Fault, FaultPlan
from harness.v2g.machine import Outcome
from harness.v2g.messages import body_of, name_of
from harness.v2g.probe import V2gProbe
from harness.v2g.sdp import SdpError, discover
from harness.v2g.timers import Timing
from harness.v2g.vehicle import ChargePlan, Credentials, Vehicle
from harness.verdicts import NotApplicable, RigNotReady
from harness.yamlfile import FileProblems

if TYPE_CHECKING:
    from harness.rig.ev import EvRole
    from harness.rig.rig import Rig

_MATERIAL: "weakref.WeakKeyDictionary[Any, V2gMaterial]" = weakref.WeakKeyDictionary()

#: energy mode -> the protocols that can carry it, most capable first
PROTOCOLS_FOR = {
    "AC": ("iso20-ac", "iso2", "din"),
    "DC": ("iso20-dc", "iso2", "din"),
    "AC_BPT": ("iso20-ac",),
    "DC_BPT": ("iso20-dc",),
}


def timing(rig: "Rig") -> Timing:
    """The V2G timers on this rig: the standard's on a lab rig, scaled on an emulated one."""
    return Timing(scale=rig.config.time_scale) if not rig.config.is_lab else Timing()


def material(rig: "Rig") -> V2gMaterial:
    """The run's ISO 15118 PKI: the rig file's ``pki`` (a lab's description or a generated folder,
    each emulated role taking what it uses), or one generated once per rig in
    <run dir>/pki/iso15118. A PKI the rig file names that cannot be used stops the run
    (RigNotReady, naming the file and the part)."""
    found = _MATERIAL.get(rig)
    if found is None:
        # the link's V2G key log: its captures carry each case's TLS secrets beside the pcap
        keylog = rig.link.keylog
        keylog.parent.mkdir(parents=True, exist_ok=True)
        if rig.config.pki is not None:
            found = _lab_material(rig, rig.config.pki, keylog)
            rig.csms.serve_lab_pki(rig.config.pki)
        else:
            # the mock CSMS is the PKI's Plug & Charge backend and runs its OCSP responder
            responder = rig.csms.ocsp_base_url
            found = V2gMaterial.generate(rig.run_dir / "pki" / "iso15118", evse_id=evse_profile(rig).capabilities.evse_id,
                                         keylog=keylog, **({"revocation_base_url": responder} if responder else {}))
            rig.csms.serve_contracts(found)
        _MATERIAL[rig] = found
    return found


def _lab_material(rig: "Rig", pki: Path, keylog: Path) -> V2gMaterial:
    try:
        if pki.is_file():
            description = PkiDescription.load(pki)
            out = rig.run_dir / "pki" / "lab"
            out.mkdir(parents=True, exist_ok=True)
            for role, emulated in (("evse", rig.evse.emulated), ("ev", rig.config.ev.kind == "emulated")):
                if emulated:
                    description.materialize(out, role)
            return V2gMaterial.load(out, keylog=keylog)
        return V2gMaterial.load(pki, keylog=keylog)
    except (FileProblems, CertificateFileError, ValueError) as exc:
        raise RigNotReady(f"the rig file's pki ({pki}): {exc}") from None


def shares_pki(rig: "Rig") -> bool:
    """Whether the charger trusts the PKI the harness's EV holds: the reference EVSE does, and a
    lab charger does when the rig file names the lab's PKI (``pki``)."""
    return rig.evse.emulated or rig.config.pki is not None


def evse_profile(rig: "Rig"):
    return load_evse_profile(rig.config.evse.profile or DEFAULT_EVSE_PROFILE)


def emulated_evse_hlc(rig: "Rig") -> EvseHlc:
    """The reference EVSE's ISO 15118 side for an emulated rig, where the link puts it: on the
    EVSE host of the netns rig's line (the profile's SDP port, 15118), else on ::1 (any free SDP
    port: other programs of the machine may hold 15118)."""
    where = rig.link.reference_secc()
    profile = evse_profile(rig)
    timers = timing(rig)
    if profile.sequence_timeout is not None:
        timers = timers.with_sequence_timeout(profile.sequence_timeout)
    return EvseHlc(rig.trace, profile, timing=timers, material=material(rig), host=where.address,
                   sdp_port=None if where.scope else 0, sockets=where.sockets)


@dataclass
class SessionResult:
    """One V2G session: as the harness's EV saw it (``outcome``, ``events``), and as the harness's
    SECC saw the EV (:attr:`secc`, what the EV-side suites judge by). With an EV under test
    (``ev: {kind: lab}``) the SECC's view is all there is: ``outcome`` and ``events`` are then the
    SECC's."""

    outcome: Outcome
    #: the messages exchanged, oldest first (Layer.V2G events; observer ev, or evse for a lab EV)
    events: list[Event] = field(default_factory=list)
    soc_before: float = 0.0
    soc_after: float = 0.0
    tls: str | None = None
    sdp: Any = None
    #: where and since when the SECC's side of this plug-in is on the timeline (:attr:`secc`)
    trace: Recorder | None = field(default=None, repr=False)
    mark: float = 0.0
    #: how long :attr:`secc` waits for the SECC to finish what it saw
    secc_wait: float = 10.0
    _secc: SeccView | None = field(default=None, repr=False)

    @property
    def secc(self) -> SeccView:
        """The plug-in as the reference EVSE's SECC saw it (read once, when first asked: the SECC
        may record a connection's end a moment after the EV's side returned)."""
        if self._secc is None:
            if self.trace is None:
                raise RuntimeError("this session result has no timeline to read the SECC's view from")
            self._secc = collect(self.trace, self.mark, timeout=self.secc_wait)
        return self._secc

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def protocol(self) -> str | None:
        return self.outcome.protocol

    @property
    def session_id(self) -> str | None:
        return self.outcome.session_id

    def received(self, name: str | None = None) -> list[dict]:
        """Messages from the EVSE (JSON form), optionally only ``name``."""
        return [e.payload["message"] for e in self.events
                if e.src == "evse" and e.payload and e.payload.get("message") is not None
                and (name is None or e.name == name)]

    def sent(self, name: str | None = None) -> list[dict]:
        return [e.payload["message"] for e in self.events
                if e.src == "ev" and e.payload and e.payload.get("message") is not None
                and (name is None or e.name == name)]

    def names(self, direction: str | None = None) -> list[str]:
        """Message names in order; ``direction`` "sent" (by the EV) or "received" (by the EV) to
        filter, whoever observed them."""
        sender = {"sent": "ev", "received": "evse"}.get(direction or "")
        return [e.name for e in self.events if e.payload and "message" in (e.payload or {})
                and (sender is None or e.src == sender)]

    def response_codes(self) -> dict[str, str]:
        codes: dict[str, str] = {}
        for message in self.received():
            body = body_of(message)
            if isinstance(body, dict) and "ResponseCode" in body:
                codes[name_of(message)] = body["ResponseCode"]
        return codes


def needs_tls(protocols: Sequence[str], identification: str) -> bool:
    """TLS unless told otherwise: -20 requires it, and so does Plug & Charge."""
    return any(p.startswith("iso20") for p in protocols[:1]) or identification == "PnC"


class HlcDriver:
    """The ISO 15118 half of the EV role."""

    def __init__(self, role: "EvRole") -> None:
        self.role = role
        self.rig = role.rig
        self.profile: EvProfile | None = None
        self.ev: HlcEv | None = None
        self.faults = FaultPlan(side="ev")
        self.paused_session: str | None = None
        #: the session charge_in_background() started, until unplugged
        self.background: concurrent.futures.Future | None = None
        #: when (timeline clock) the EV plugged in last
        self.plugged_at = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    async def activate(self) -> None:
        config = self.rig.config.ev
        self.profile = load_ev_profile(config.profile or DEFAULT_EV_PROFILE)
        self.faults.recorder = self.rig.trace
        self.ev = HlcEv(self.rig.trace, self._vehicle(), timing=timing(self.rig))

    def _vehicle(self, plan: ChargePlan | None = None) -> Vehicle:
        profile = self.profile
        assert profile is not None
        battery = Battery(capacity_wh=profile.capacity_kwh * 1000.0, soc=profile.soc,
                          max_charge_w=profile.max_charge_kw * 1000.0, max_discharge_w=profile.max_discharge_kw * 1000.0)
        return Vehicle(profile.evccid, battery, plan=plan or profile.plan, vin=profile.vin,
                       ac_max_current=profile.ac_max_current, ac_min_current=profile.ac_min_current,
                       dc_max_voltage=profile.dc_max_voltage, dc_max_current=profile.dc_max_current,
                       pack_voltage_empty=profile.pack_voltage[0], pack_voltage_full=profile.pack_voltage[1],
                       departure_time=profile.departure_time, target_soc=profile.target_soc, min_soc=profile.min_soc)

    def _profile(self) -> EvProfile:
        if self.profile is None:
            raise RuntimeError("the ISO 15118 EV is not up")
        return self.profile

    @property
    def timing(self) -> Timing:
        """The V2G timers as this rig runs them (scaled on emulated rigs)."""
        return timing(self.rig)

    @property
    def plugged(self) -> bool:
        return self.ev is not None and self.ev.plugged

    async def make_safe(self) -> None:
        if self.ev is not None:
            self.ev.vehicle.stop_requested = True
            if self.ev.plugged:
                await self.ev.unplug()

    def end_session(self) -> None:
        if self.ev is not None:
            self.ev.vehicle.stop_requested = True

    def charge_in_background(self, **options: Any) -> "concurrent.futures.Future[SessionResult]":
        """:meth:`charge` with no end of its own (cycles=None), running while the case goes on;
        :meth:`unplug` (or the rig's restore) ends it."""
        if self.background is not None and not self.background.done():
            raise RuntimeError("an ISO 15118 session is already running in the background")
        plan = self.plan(cycles=None, **options)
        tls = needs_tls(plan.protocols, plan.identification)
        self.rig.run(self._plug_in())
        self.background = self.rig.loop.submit(self._charge(plan, tls, False, [], None))
        return self.background

    def _end_background(self) -> None:
        background, self.background = self.background, None
        if background is None:
            return
        self.end_session()
        try:
            background.result(timeout=self.rig.scaled(60) + 5.0)
        except concurrent.futures.TimeoutError:
            background.cancel()  # the unplug that follows ends it
        except Exception:  # noqa: BLE001 - the session's own failure is on the timeline
            pass

    def set_battery(self, *, soc: float | None = None, max_discharge_kw: float | None = None) -> None:
        if self.ev is None:
            raise RuntimeError("the ISO 15118 EV is not up")
        battery = self.ev.vehicle.battery
        if soc is not None:
            if not 0.0 <= soc <= 1.0:
                raise ValueError(f"a state of charge is between 0 and 1, not {soc}")
            battery.soc = soc
        if max_discharge_kw is not None:
            battery.max_discharge_w = max_discharge_kw * 1000.0

    def restore(self) -> None:
        """Unplugged, no faults, the profile's state of charge, no paused session."""
        self._end_background()
        self.rig.run(self.make_safe())
        self.faults.clear()
        self.paused_session = None
        if self.ev is not None and self.profile is not None:
            self.ev.vehicle.battery.soc = self.profile.soc
            self.ev.vehicle.battery.max_discharge_w = self.profile.max_discharge_kw * 1000.0
            self.ev.vehicle.stop_requested = False

    # -- what tests do ----------------------------------------------------------------------

    def plug_in(self) -> None:
        self.rig.run(self._plug_in())

    async def _plug_in(self) -> None:
        assert self.ev is not None
        if self.ev.plugged:
            return
        if self.role.vehicle is not None and self.role.vehicle.plugged:
            raise RuntimeError("the basic EV is plugged in; unplug it before an ISO 15118 session")
        pilot = self.rig.pilot.line(1)
        cable = self.rig.evse.connector(1).line
        self.plugged_at = self.rig.trace.now()
        await self.ev.plug_in(pilot, cable)

    async def _join_link(self) -> str | None:
        """SLAC where the link has it (once per plug-in); why it failed, or None."""
        result = await self.rig.link.join(self.plugged_at)
        return f"SLAC: {result.reason}" if isinstance(result, Failed) else None

    def unplug(self) -> None:
        self._end_background()
        if self.ev is not None:
            self.rig.run(self.ev.unplug())

    def inject(self, *faults: Fault) -> None:
        """Faults the EV commits in the next sessions (until the rig restores)."""
        self.faults.add(*faults)

    def plan(self, *, protocol: str | Iterable[str] | None = None, energy: str | None = None,
             identification: str | None = None, control: str | None = None, cycles: int | None | str = "profile",
             pause: bool = False, renegotiate_after: int | None = None, discharge: bool = False,
             certificate: str | None = None) -> ChargePlan:
        assert self.profile is not None
        base = self.profile.plan
        energy = energy or base.energy
        if protocol is None:
            protocols = tuple(p for p in self.profile.protocols if p in PROTOCOLS_FOR[energy])
        else:
            protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return dataclasses.replace(
            base, protocols=protocols, energy=energy, identification=identification or base.identification,
            control=control or base.control, cycles=cycles if not isinstance(cycles, str) else base.cycles,
            pause=pause,
            renegotiate_after=renegotiate_after, discharge=discharge, certificate=certificate)

    def charge(self, *, protocol: str | Iterable[str] | None = None, energy: str | None = None,
               identification: str | None = None, tls: bool | None = None, control: str | None = None,
               cycles: int | None | str = "profile", pause: bool = False, resume: bool = False,
               renegotiate_after: int | None = None, discharge: bool = False, certificate: str | None = None,
               faults: Iterable[Fault] = (), contract_fault: str | None = None,
               timeout: float | None = None, keep_pilot: bool = False) -> SessionResult:
        """One V2G session as the EV: plug in (if not yet), SDP, TCP/TLS, the handshake and the
        protocol to the end. ``resume`` continues the session paused last (SessionSetup with its
        SessionID); ``faults`` are committed by the EV in this session only; ``contract_fault``
        (an id of :data:`harness.pki.faults.CATALOGUE`) has it present a faulty contract chain in
        this session (Plug & Charge); ``keep_pilot`` leaves the pilot as the session left it (the
        EV's communication went away, the vehicle did not), where the EV otherwise returns to B."""
        plan = self.plan(protocol=protocol, energy=energy, identification=identification, control=control,
                         cycles=cycles, pause=pause, renegotiate_after=renegotiate_after, discharge=discharge,
                         certificate=certificate)
        if tls is None:
            tls = needs_tls(plan.protocols, plan.identification)
        limit = timeout if timeout is not None else self.rig.scaled(600) + 30.0
        return self.rig.run(self._charge(plan, tls, resume, list(faults), contract_fault, keep_pilot), timeout=limit)

    def _faulty_contract(self, fault_id: str, generation: str, held: Credentials) -> Credentials:
        """``held`` with a contract chain that has the catalogue's fault ``fault_id``. What the
        fault revokes is revoked at the run's OCSP responder and listed in the CRL it serves (a
        CA's OCSP answers and CRLs agree), until the next test case."""
        fault = next((f for f in CATALOGUE if f.id == fault_id and f.applies_to(CertificateRole.CONTRACT)), None)
        if fault is None:
            known = ", ".join(f.id for f in CATALOGUE if f.applies_to(CertificateRole.CONTRACT))
            raise ValueError(f"contract_fault {fault_id!r} is no contract fault of the catalogue (known: {known})")
        pki = material(self.rig).iso20 if generation == "iso20" else material(self.rig).iso2
        try:
            chain = pki.chain(CertificateRole.CONTRACT)
        except KeyError as missing:
            raise NotApplicable(f"the rig's PKI holds no key of the {generation} {missing.args[0].value}, so the "
                                f"harness cannot build a contract chain with {fault_id}") from None
        case = fault.apply(chain, emaid=pki.common_name(CertificateRole.CONTRACT))
        for crl in case.crls:
            issuer = next(role for role, issued in pki.issued.items() if issued.cert.subject == crl.issuer)
            self.rig.csms.publish_crl(Path(pki.crl_url(issuer)).name, crl)
            for entry in crl:
                self.rig.csms.revoke(entry.serial_number)
        for serial in case.ocsp_revoked:
            self.rig.csms.revoke(serial)
        self.rig.trace.emit(Layer.FAULT, "ContractFault", f"ev presents a contract chain with fault {fault.id}: "
                            f"{fault.description}", src="ev", payload={"fault": fault.id, "reason": fault.reason.value,
                                                                      "emaid": case.emaid})
        return dataclasses.replace(held, contract_chain=case.certificates, contract_key=case.leaf.key,
                                   emaid=case.emaid or held.emaid)

    def contract(self, protocol: str) -> Any:
        """The contract certificate the EV presents in a Plug & Charge session of ``protocol``:
        the one it holds (installed or updated in an earlier session), else the PKI's."""
        generation = sap.pki_generation(protocol)
        held = self.ev.vehicle.wallet.get(generation) if self.ev is not None else None
        if held is not None and held.contract_chain:
            return held.contract_chain[0]
        return material(self.rig).ev_credentials(generation).contract_chain[0]

    async def _charge(self, plan: ChargePlan, tls: bool, resume: bool, faults: list[Fault],
                      contract_fault: str | None = None, keep_pilot: bool = False) -> SessionResult:
        assert self.ev is not None
        await self._plug_in()
        vehicle = self.ev.vehicle
        vehicle.plan = plan
        # DIN / -2 EVCCID: the MAC of the EV's interface on the link, as SLAC saw it ([V2G2-879])
        profile = self._profile()
        vehicle.mac = self.rig.link.ev_mac() or profile.evccid
        generation = sap.pki_generation(plan.protocols[0])
        trusted = shares_pki(self.rig)
        if plan.identification == "PnC" and trusted:
            # one set per generation: a -20 session never presents the -2 contract (P-256) it holds
            for wanted in {sap.pki_generation(p) for p in plan.protocols}:
                credentials = vehicle.wallet.get(wanted)
                if credentials is None or not credentials.contract_chain or plan.certificate == "install":
                    vehicle.wallet[wanted] = material(self.rig).ev_credentials(
                        wanted, contract=profile.contract == "installed" and plan.certificate != "install")
            vehicle.credentials = vehicle.wallet[generation]
        vehicle.presenting = {}  # this session only: the wallet keeps the good contract
        if contract_fault is not None:
            if plan.identification != "PnC" or not trusted:
                raise ValueError("contract_fault needs a Plug & Charge session with a charger that trusts the run's "
                                 "PKI (the reference EVSE, or a lab charger with the rig file's pki)")
            vehicle.presenting[generation] = self._faulty_contract(contract_fault, generation,
                                                                   vehicle.wallet[generation])
            vehicle.credentials = vehicle.presenting[generation]
        trace = self.rig.trace
        mark = trace.now()
        soc_before = vehicle.battery.soc
        plan_faults = FaultPlan([*self.faults.faults, *faults], recorder=trace, side="ev")
        timing_ = timing(self.rig)
        no_link = await self._join_link()
        if no_link is not None:
            return SessionResult(Outcome(False, no_link), [], soc_before, vehicle.battery.soc, trace=trace, mark=mark,
                                 secc_wait=0.0)
        try:
            where = await self._discover(tls, timing_)
        except SdpError as exc:
            outcome = Outcome(False, f"SDP: {exc}")
            return SessionResult(outcome, [], soc_before, vehicle.battery.soc, trace=trace, mark=mark, secc_wait=0.0)
        context = None
        if where.tls:
            tls_fault = plan_faults.tls_fault()
            context = material(self.rig).evcc_context(plan.protocols, trusted=tls_fault is None) if trusted else None
        outcome = await self.ev.charge(where.address, where.port, context=context, faults=plan_faults,
                                       resume_session_id=self.paused_session if resume else None,
                                       sockets=self.rig.link.host("ev").sockets, keep_pilot=keep_pilot)
        self.paused_session = outcome.session_id if outcome.paused else None
        events = trace.select(layer=Layer.V2G, observer="ev", since=mark)
        result = SessionResult(outcome, events, soc_before, vehicle.battery.soc,
                               tls=self.ev.session.facts.get("tls") if self.ev.session else None, sdp=where,
                               trace=trace, mark=mark)
        if outcome.response_code == sap.FAILED:
            # the charger offers none of the protocols the case is about: nothing to test here
            answer = next(iter(result.received("supportedAppProtocolRes")), None)
            raise NotApplicable(f"the charger offers none of {', '.join(plan.protocols)} "
                                f"({'TLS' if where.tls else 'TCP'}); its supportedAppProtocolRes: "
                                f"{json.dumps(answer, separators=(',', ':'))}")
        if "ALERT_PROTOCOL_VERSION" in outcome.reason and all(sap.protocol(p).tls_required for p in plan.protocols):
            # ISO 15118-20 runs on TLS 1.3 only ([V2G20-1264], -20 Table 5): a charger that refuses it
            # with protocol_version does not offer -20
            raise NotApplicable(f"the charger refused TLS 1.3 ({outcome.reason}); ISO 15118-20 "
                                f"({', '.join(plan.protocols)}) runs on TLS 1.3 only ([V2G20-1264])")
        return result

    def probe(self, *, tls: bool = False, generation: str = "iso2") -> "ProbeHandle":
        """A raw V2G connection to the EVSE for negative tests (plugged in, found by SDP);
        use it as a context manager."""
        return self.rig.run(self._probe(tls, generation))

    async def _probe(self, tls: bool, generation: str) -> "ProbeHandle":
        await self._plug_in()
        no_link = await self._join_link()
        if no_link is not None:  # what the EVSE under test did not do: a failed case
            raise AssertionError(no_link)
        timing_ = timing(self.rig)
        where = await self._discover(tls, timing_)
        context = material(self.rig).evcc_context(generation) if where.tls and shares_pki(self.rig) else None
        probe = await V2gProbe.open(self.rig.trace, where.address, where.port, context=context,
                                    sockets=self.rig.link.host("ev").sockets)
        return ProbeHandle(self.rig, probe)

    async def _discover(self, tls: bool, timing_: Timing):
        link = self.rig.link
        target, port = link.sdp_destination()
        ev = link.host("ev")
        return await discover(self.rig.trace, tls=tls, target=target, port=port, iface=ev.iface, timers=timing_.sdp,
                              timeout_scale=timing_.timeout, sockets=ev.sockets)


class ProbeHandle:
    """:class:`harness.v2g.probe.V2gProbe` for synchronous tests (see :meth:`HlcDriver.probe`)."""

    def __init__(self, rig: "Rig", probe: Any) -> None:
        self.rig = rig
        self.probe = probe

    def __enter__(self) -> "ProbeHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session_id(self) -> str | None:
        return self.probe.session_id

    def handshake(self, *protocols: str) -> dict:
        return self.rig.run(self.probe.handshake(*protocols))

    def request(self, name: str, body: dict, *, session_id: str | None = None, timeout: float = 5.0) -> dict | None:
        return self.rig.run(self.probe.request(name, body, session_id=session_id, timeout=timeout))

    def send_raw(self, frame: bytes, what: str = "raw bytes") -> None:
        self.rig.run(self.probe.send_raw(frame, what))

    def send_exi(self, data: bytes, payload_type: int = 0x8001, what: str = "EXI") -> None:
        self.rig.run(self.probe.send_exi(data, payload_type, what))

    def response(self, timeout: float = 5.0) -> dict | None:
        return self.rig.run(self.probe.response(timeout))

    def closed_by_peer(self, timeout: float) -> bool:
        return self.rig.run(self.probe.closed_by_peer(timeout))

    def close(self) -> None:
        self.rig.run(self.probe.close())
