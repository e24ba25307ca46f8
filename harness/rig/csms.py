"""The CSMS role: the mock CSMS the EVSE under test connects to, as the suites see it.

The role is what tests use (calls to the station, what it sent, its transactions); the driver of
the rig file's ``csms.kind`` runs the server. The one kind today is ``mock``
(:class:`MockCsmsDriver`): :class:`harness.ocpp.csms.MockCsms` with the TLS material of the rig
file, or a PKI generated for the run.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from harness.ocpp import commands, grid
from harness.ocpp.behaviour import CsmsBehaviour
from harness.ocpp.contracts import PncBackend
from harness.ocpp.csms import MockCsms
from harness.ocpp.endpoint import CallTimeout, ConnectionLost, InvalidResponse
from harness.ocpp.script import Script
from harness.ocpp.security import SecurityPolicy
from harness.ocpp.smart_charging import UPDATE_FIELDS
from harness.ocpp.transactions import TransactionView, transactions
from harness.pki.description import load_any_pnc_pki
from harness.pki.files import CertificateFileError
from harness.pki.ocpp import CertificateFiles, OcppPki, generate_ocpp_pki
from harness.pki.profiles import Role as CertificateRole
from harness.pki.revocation import RevocationServer
from harness.pki.signing import CsrSigner
from harness.pki.tls import ocpp_client_context, ocpp_server_context
from harness.rig import check
from harness.rig.check import ProbeResult
from harness.rig.config import RigConfig
from harness.rig.role import Driver, Role
from harness.trace import Event, Layer, TraceTimeout
from harness.v2g.provisioning import ContractProvisioning
from harness.verdicts import DutFailure, NotApplicable, RigNotReady
from harness.yamlfile import FileProblems

if TYPE_CHECKING:
    from harness.rig.rig import Rig
    from harness.v2g.credentials import V2gMaterial


#: the charging profile ids grid events use (above those the suites pick by hand)
GRID_PROFILE_IDS = 9000


@dataclass(frozen=True)
class GridOutcome:
    """What became of one grid event at the CSMS: the decision, the charger's answer to
    SetChargingProfile (None: nothing was sent), when the signal came (timeline clock) and the
    profile's duration on this rig (s)."""

    event: grid.GridEvent
    strategy: str
    decision: grid.Decision
    status: str | None
    signalled_at: float
    duration_s: float


@dataclass(frozen=True)
class CsmsTls:
    """The TLS material the mock CSMS uses and the deliberately wrong variants."""

    server: CertificateFiles
    station_ca: Path
    #: server certificates with one fault each (harness.pki.ocpp.SERVER_FAULTS); with the rig
    #: file's own server certificate only the untrusted one: the harness holds no key of its CA
    faulty_servers: Mapping[str, CertificateFiles] = field(default_factory=dict)

    @property
    def untrusted_server(self) -> CertificateFiles | None:
        return self.faulty_servers.get("untrusted-root")


class CsmsRole(Role):
    """The CSMS the EVSE under test connects to."""

    name = "csms"
    driver: "MockCsmsDriver"

    def __init__(self, rig: "Rig", driver: type["MockCsmsDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.csms
        self.station_id = rig.config.evse.station_id
        self.behaviour = CsmsBehaviour(heartbeat_interval=self.config.heartbeat_interval,
                                       id_tokens=self.config.id_tokens,
                                       unknown_token_status=self.config.unknown_token_status)
        self.driver = driver(self)
        #: the rig file's PKI when the CSMS serves it (None: the run's generated PKI)
        self.lab_pki: Path | None = None
        #: the ids of the charging profiles the EVSE accepted during the current case
        self.profiles_set: set[Any] = set()
        self._grid_profiles = 0
        #: when the rig last restored the CSMS (a transaction running now began after it)
        self.restored_at: float | None = None

    @property
    def server(self) -> MockCsms | None:
        return self.driver.server

    @property
    def pki(self) -> OcppPki | None:
        """The OCPP PKI generated for this run (None when the rig file gives all TLS material)."""
        return self.driver.pki

    @property
    def tls(self) -> "CsmsTls | None":
        return self.driver.tls

    @property
    def script(self) -> Script:
        return self._server().script

    def _server(self) -> MockCsms:
        if self.driver.server is None:
            raise RuntimeError("the CSMS role is not up")
        return self.driver.server

    def policy(self, profile: int, *, password: str | None = "configured", server: CertificateFiles | None = None,
               client_ca: Path | None = None, maximum_tls: ssl.TLSVersion | None = None,
               minimum_tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> SecurityPolicy:
        """The security policy for ``profile``: by default what the rig file says; a test may
        demand another ``password``, present another ``server`` certificate, trust another
        ``client_ca`` or cap the TLS version."""
        return self.driver.policy(profile, password=password, server=server, client_ca=client_ca,
                                  maximum_tls=maximum_tls, minimum_tls=minimum_tls)

    async def ensure_listening(self) -> None:
        """Listening with the rig file's policy and no scripted rules."""
        await self.driver.ensure_listening()

    # -- what tests do -------------------------------------------------------------------

    def url(self, station_id: str | None = None) -> str:
        return self._server().url(station_id or self.station_id)

    @property
    def connected(self) -> bool:
        return self.server is not None and self.station_id in self.server.sessions

    def wait_connected(self, timeout: float | None = None, *, expected: bool = True) -> None:
        """Wait until the EVSE is connected. Not connecting in time is the DUT's failure when a
        case expects it to come back (``expected``, an AssertionError), or, waiting for the DUT to
        be there at all (``expected=False``), a rig that cannot run cases (RigNotReady). Either
        way the message carries what the CSMS refused meanwhile (wrong id, password, TLS)."""
        timeout = timeout if timeout is not None else self.rig.config.evse.boot_timeout
        since = self.rig.trace.now()
        try:
            self.rig.run(self._server().wait_connected(self.station_id, timeout))
        except TimeoutError:
            message = f"{self.station_id} did not connect to the CSMS at {self.url()} within {timeout:g} s"
            refused = list(dict.fromkeys(e.summary for e in self.refusals(since=since)))[-3:]
            message += f"; the CSMS refused meanwhile: {'; '.join(refused)}" if refused else \
                "; no connection attempt reached the CSMS"
            raise (AssertionError if expected else RigNotReady)(message) from None


    def wait_disconnected(self, timeout: float) -> None:
        try:
            self.rig.run(self._server().wait_disconnected(self.station_id, timeout))
        except TimeoutError:
            raise AssertionError(f"{self.station_id} was still connected after {timeout:g} s") from None

    def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
             validate: bool = True) -> dict[str, Any]:
        """A CSMS-initiated call to the EVSE under test; returns its CALLRESULT payload."""
        return self.rig.run(self._call(action, payload, timeout, validate))

    def call_in_background(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                           validate: bool = True) -> concurrent.futures.Future:
        """Start a CSMS-initiated call and return at once; ``.result()`` waits for the answer."""
        return self.rig.loop.submit(self._call(action, payload, timeout, validate))

    async def _call(self, action: str, payload: dict[str, Any], timeout: float | None, validate: bool) -> dict:
        server = self._server()
        try:
            answer = await server.call(self.station_id, action, payload, timeout=timeout, validate=validate)
            if action == "SetChargingProfile" and isinstance(answer, dict) and answer.get("status") == "Accepted":
                profile = payload.get("chargingProfile") or payload.get("csChargingProfiles") or {}
                self.profiles_set.add(profile.get("id", profile.get("chargingProfileId")))
            return answer
        except (CallTimeout, InvalidResponse, ConnectionLost) as exc:
            # a valid CALL the DUT did not answer, or answered with what its schema forbids: the
            # DUT's failure (OCPP-J: every CALL gets a CALLRESULT or CALLERROR within the timeout)
            raise DutFailure(f"the charger under test: {exc}") from None

    def clear_profiles_set(self) -> None:
        """ClearChargingProfile for every profile the case set, so the next case starts without
        its limits; a refusal is on the timeline, not the next case's failure."""
        for profile_id in sorted(self.profiles_set, key=str):
            try:
                status = self.call(*commands.clear_charging_profile(self.rig.evse.version, profile_id)).get("status")
            except (DutFailure, RuntimeError) as exc:
                status = str(exc)
            if status != "Accepted":
                self.rig.trace.emit(Layer.RIG, "ProfileNotCleared", f"charging profile {profile_id} of the last case "
                                    f"was not cleared: {status}", src="harness", payload={"id": profile_id,
                                                                                          "status": status})
        self.profiles_set.clear()

    def grid_event(self, event: grid.GridEvent, strategy: str | grid.Strategy = "setpoint", *,
                   evse_id: int = 1, max_offline_s: float | None = None, dynamic: bool = False,
                   pull_every_s: float | None = None) -> "GridOutcome":
        """A grid signal reaches the CSMS now: ``strategy`` decides (``harness.ocpp.grid``) and
        the CSMS sends the charging profile it decided on to the EVSE (a TxProfile for the
        running transaction, else a TxDefaultProfile). Each step is on the timeline (GridSignal,
        CsmsDecision, the SetChargingProfile frames) for the hop latencies. The event's duration
        runs scaled like the rig's timers, as does ``max_offline_s`` (how long the profile stays
        in force once the charger has lost the CSMS: maxOfflineDuration). ``dynamic``: a 2.1 Dynamic
        profile, which :meth:`grid_update` rewrites for the next events; ``pull_every_s`` (scaled,
        at least 1 s on the wire) makes it one the charger asks about (dynUpdateInterval,
        PullDynamicScheduleUpdate) instead of one the CSMS pushes updates to."""
        chosen = grid.strategy(strategy) if isinstance(strategy, str) else strategy
        version = self.rig.evse.version.value
        if version == "1.6":
            raise NotApplicable("grid strategies set OCPP 2.x charging profiles; this charger speaks OCPP 1.6")
        signal = self._grid_signal(event)
        running = [tx for tx in self.transactions(since=self.restored_at) if tx.evse_id == evse_id and not tx.ended]
        transaction_id = running[-1].transaction_id if running else None
        self._grid_profiles += 1
        duration = max(1, round(self.rig.scaled(event.duration_s)))
        offline = None if max_offline_s is None else max(0, round(self.rig.scaled(max_offline_s)))
        decision = chosen.decide(event, profile_id=GRID_PROFILE_IDS + self._grid_profiles, duration_s=duration,
                                 transaction_id=transaction_id, now=_dt.datetime.now(_dt.timezone.utc),
                                 max_offline_s=offline, dynamic=dynamic)
        if pull_every_s is not None and decision.profile is not None:
            if not dynamic:
                raise ValueError("only a Dynamic profile (dynamic=True) is pulled")
            decision.profile["dynUpdateInterval"] = max(1, round(self.rig.scaled(pull_every_s)))
            period = decision.profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            self.behaviour.publish_dynamic_schedule(decision.profile["id"], {k: v for k, v in period.items()
                                                                            if k in UPDATE_FIELDS})
        self._grid_decided(chosen.name, decision, decision.why, transaction_id=transaction_id)
        status = None
        if decision.profile is not None and version != "2.1" and grid.needs_v21(decision.profile):
            raise NotApplicable(f"the {chosen.name} strategy's answer to {event.name} needs OCPP 2.1 (operationMode, "
                                f"setpoint, dischargeLimit); this charger speaks OCPP {version}")
        if decision.profile is not None:
            status = self.call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": decision.profile})["status"]
        return GridOutcome(event, chosen.name, decision, status, signal.mono, duration)

    def grid_update(self, previous: "GridOutcome", event: grid.GridEvent) -> "GridOutcome":
        """A new grid event for the Dynamic profile ``previous`` set: the strategy's period for it
        goes out as UpdateDynamicSchedule (OCPP 2.1), on the timeline like :meth:`grid_event`; for
        a profile the charger pulls (``pull_every_s``), the CSMS keeps it for the charger's next
        PullDynamicScheduleUpdate instead, and the outcome's status is "Published"."""
        profile = previous.decision.profile
        if profile is None or profile.get("chargingProfileKind") != "Dynamic":
            raise ValueError("grid_update needs a grid event set with grid_event(..., dynamic=True)")
        chosen = grid.strategy(previous.strategy)
        signal = self._grid_signal(event)
        period, power, why = chosen.period(event)
        update = {k: v for k, v in (period or {}).items() if k in UPDATE_FIELDS}
        decision = grid.Decision(profile, power, why)
        pulled = period is not None and bool(profile.get("dynUpdateInterval"))
        if pulled:  # before the decision is on the timeline: every answer after it carries the update
            self.behaviour.publish_dynamic_schedule(profile["id"], update)
        self._grid_decided(chosen.name, decision, f"{why} (update of profile {profile['id']}"
                           f"{', for the charger to pull' if pulled else ''})", update=update)
        status = None
        if pulled:
            status = "Published"
        elif period is not None:
            status = self.call("UpdateDynamicSchedule", {"chargingProfileId": profile["id"],
                                                         "scheduleUpdate": update})["status"]
        return GridOutcome(event, chosen.name, decision, status, signal.mono, previous.duration_s)

    def _grid_signal(self, event: grid.GridEvent) -> Event:
        return self.rig.trace.emit(Layer.GRID, "GridSignal", event.describe(), src="grid", observer="grid",
                                   payload=event.as_dict())

    def _grid_decided(self, strategy: str, decision: grid.Decision, why: str, *, transaction_id: str | None = None,
                      update: dict[str, Any] | None = None) -> None:
        """The CsmsDecision on the timeline: what the strategy asked for and why (the plot and the
        hop latencies read it)."""
        payload: dict[str, Any] = {"strategy": strategy, "requested_w": decision.requested_w,
                                   "profile": decision.profile, "transaction_id": transaction_id}
        if update is not None:
            payload["update"] = update
        keys = {"station_id": self.station_id, **({"transaction_id": transaction_id} if transaction_id else {})}
        self.rig.trace.emit(Layer.OCPP, "CsmsDecision", f"{strategy} strategy: {why}", src="csms", observer="csms",
                            payload=payload, keys=keys)

    def read_variable(self, component: str, variable: str, key_16: str) -> str | None:
        """A configuration value of the EVSE: the 2.x device-model variable, or on 1.6 its
        configuration key; None when the EVSE does not report it."""
        return commands.variable_value(self.call(*commands.get_variable(self.rig.evse.version, component, variable,
                                                                          key_16)))

    def write_variable(self, component: str, variable: str, key_16: str, value: str) -> bool:
        """Set a configuration value of the EVSE; whether it accepted."""
        return commands.variable_accepted(self.call(*commands.set_variable(self.rig.evse.version, component,
                                                                           variable, key_16, value)))

    def meter_value_interval(self) -> float:
        """The EVSE's transaction meter-value interval on this rig (its setting, scaled)."""
        value = self.read_variable("SampledDataCtrlr", "TxUpdatedInterval", "MeterValueSampleInterval")
        try:
            seconds = float(value) if value is not None else 0.0
        except ValueError:
            seconds = 0.0
        return self.rig.scaled(seconds if seconds > 0 else 60.0)

    def send_raw(self, text: str | bytes) -> None:
        self.rig.run(self._server().send_raw(self.station_id, text))

    def expect(self, action: str, *, timeout: float, since: float | None = None,
               where: Callable[[Mapping[str, Any]], bool] | None = None, kind: str = "CALL") -> Mapping[str, Any]:
        """Wait for the EVSE to send ``action`` (a CALL by default) and return its payload.
        ``where`` filters on the payload; ``since`` is a ``trace.now()`` mark."""
        event = self.wait_for_message(action, timeout=timeout, since=since, where=where, kind=kind)
        return event.payload.get("payload") or {}

    def wait_for_message(self, action: str, *, timeout: float, since: float | None = None,
                         where: Callable[[Mapping[str, Any]], bool] | None = None, kind: str = "CALL",
                         what: str | None = None) -> Event:
        """The EVSE's next ``action`` frame (valid, of ``kind``) that ``where`` accepts; not
        coming in time fails the case, saying what was awaited (``what`` describes ``where``)."""
        def match(event: Event) -> bool:
            body = event.payload
            body = body if isinstance(body, dict) else {}
            return (body.get("type") == kind and "violation" not in body
                    and (where is None or bool(where(body.get("payload") or {}))))

        try:
            return self.rig.trace.wait_for(timeout, layer=Layer.OCPP, name=action, src="evse", observer="csms",
                                           since=since, keys={"station_id": self.station_id}, where=match)
        except TraceTimeout:
            raise TraceTimeout(f"the EVSE sent no {action} {kind}{f' ({what})' if what else ''} within "
                               f"{timeout:g} s") from None

    def expect_security_event(self, wanted: str, *, since: float, timeout: float, who: str = "the charger",
                              reaction: Callable[..., Any] | None = None) -> None:
        """The DUT must send SecurityEventNotification ``wanted`` (a critical event of OCPP 2.0.1
        Part 2 Appendix 1, pushed to the CSMS): DutFailure naming what it sent instead. With the
        ``reaction`` fixture, the expected and the observed type go into the report."""
        seen = self.security_events(wanted, since=since, timeout=timeout)
        if reaction is not None:
            reaction("OCPP", "SecurityEventNotification type", expected=wanted, observed=", ".join(seen) or "none",
                     judged=True, agrees=wanted in seen)
        if wanted not in seen:
            raise DutFailure(f"{who} reported {', '.join(seen) or 'no security event'}, not {wanted} (a critical "
                             f"event of OCPP 2.0.1 Part 2 Appendix 1)")

    def security_events(self, wanted: str, *, since: float, timeout: float) -> list[str]:
        """The SecurityEventNotification types the EVSE sent since ``since``, once ``wanted`` is
        among them or ``timeout`` has passed (the caller judges)."""
        try:
            self.wait_for_message("SecurityEventNotification", since=since, timeout=timeout,
                                  where=lambda p: p.get("type") == wanted)
        except TraceTimeout:
            pass
        return [str((e.payload.get("payload") or {}).get("type"))
                for e in self.messages("SecurityEventNotification", since=since, kind="CALL")]

    def messages(self, action: str | None = None, *, since: float | None = None, kind: str | None = None,
                 transaction_id: str | None = None) -> list[Event]:
        """OCPP frames the CSMS exchanged with the EVSE, oldest first."""
        keys = {"station_id": self.station_id}
        if transaction_id is not None:
            keys["transaction_id"] = transaction_id
        events = self.rig.trace.select(layer=Layer.OCPP, observer="csms", name=action, since=since, keys=keys)
        return [e for e in events if kind is None or frame_type(e) == kind]

    def transactions(self, *, since: float | None = None) -> list[TransactionView]:
        return transactions(self.rig.trace, station_id=self.station_id, since=since)

    def wait_transaction(self, *, timeout: float, since: float | None = None,
                         where: Callable[[TransactionView], bool] = lambda tx: True,
                         what: str = "a transaction") -> TransactionView:
        """The first transaction (begun since ``since``) for which ``where`` holds, waiting up to
        ``timeout`` seconds as the CSMS receives messages."""
        trace = self.rig.trace
        deadline = trace.now() + timeout
        while True:
            for tx in self.transactions(since=since):
                if where(tx):
                    return tx
            remaining = deadline - trace.now()
            if remaining <= 0:
                raise TraceTimeout(f"the CSMS did not see {what} within {timeout:g} s")
            try:  # wake up on the next frame the CSMS receives
                trace.wait_for(min(remaining, 1.0), layer=Layer.OCPP, observer="csms", since=trace.now())
            except TraceTimeout:
                pass

    def wait_charging(self, *, timeout: float, since: float | None = None) -> Event:
        """The EVSE reports energy transfer: 2.x chargingState Charging, 1.6 status Charging."""
        if self.rig.evse.version.value == "1.6":
            return self.wait_for_message("StatusNotification", timeout=timeout, since=since,
                                         where=lambda p: p.get("status") == "Charging")
        return self.wait_for_message("TransactionEvent", timeout=timeout, since=since,
                                     where=lambda p: p.get("transactionInfo", {}).get("chargingState") == "Charging")

    def restart(self, policy: SecurityPolicy | None = None) -> None:
        """Close every connection and listen again (with ``policy`` if given), as OCTT does."""
        self.rig.run(self._server().restart(policy))

    def go_offline(self) -> None:
        """Close the connection and accept no reconnect until :meth:`come_online` (OCTT's way
        of taking a station offline, e.g. TC_E_40_CS)."""
        self.rig.run(self._server().stop())

    def come_online(self, policy: SecurityPolicy | None = None) -> None:
        server = self._server()
        if policy is not None:
            server.security = policy
        self.rig.run(server.start())

    def refusals(self, *, since: float | None = None) -> list[Event]:
        """Connection attempts the CSMS refused (HTTP status or TLS handshake)."""
        return self.rig.trace.select(layer=Layer.OCPP, observer="csms", since=since,
                                     name=("ConnectionRefused", "TlsHandshakeFailed", "TlsNotEstablished"))

    def restore(self) -> None:
        """Back to the rig file's behaviour: no scripted rules, the configured security policy,
        listening, no certificate revoked, SECC certificates signed correctly."""
        self.rig.run(self.ensure_listening())
        if self.behaviour.signer is not None and self.behaviour.signer.fault is not None:
            self.behaviour.signer = replace(self.behaviour.signer, fault=None)
        self.behaviour.dynamic_schedules.clear()
        if self.driver.revocation is not None:
            self.driver.revocation.revoked.clear()
            self.driver.revocation.crls.clear()
        self.restored_at = self.rig.trace.now()

    # -- Plug & Charge backend ------------------------------------------------------------------

    @property
    def ocsp_base_url(self) -> str | None:
        """Where the run's OCSP responder listens (None: the CSMS is not up): the ISO 15118 PKI
        generated for the run names it in its certificates."""
        revocation = self.driver.revocation
        return revocation.base_url if revocation is not None else None

    def serve_contracts(self, material: "V2gMaterial") -> None:
        """Be the Plug & Charge backend of the run's ISO 15118 PKI: trust its MO roots, know its
        CAs, answer OCSP for them (the responder its certificates name), sign SECC certificates
        with its -2 CPO Sub-CA 2, and issue -2 and -20 contracts for Get15118EVCertificate."""
        authorities = material.authorities()
        revocation = self.driver.revocation
        if revocation is not None:
            revocation.authorities.extend(a for a in authorities if a.key is not None)
        self.behaviour.pnc = PncBackend(material.all_mo_roots(), [a.cert for a in authorities],
                                        responders=[revocation.ocsp_url] if revocation else [])
        iso2 = material.iso2
        self.behaviour.provisioning = ContractProvisioning(
            material.provisioning().deliver,
            oem_roots=[p.issued[CertificateRole.OEM_ROOT].cert for p in (iso2, material.iso20)
                       if CertificateRole.OEM_ROOT in p.issued],
            mo_roots=material.all_mo_roots(), authorities=[a.cert for a in authorities],
            ocsp=self.behaviour.pnc.ocsp_check)
        cpo_sub_ca_2 = iso2.issued.get(CertificateRole.CPO_SUB_CA_2)
        cpo_sub_ca_1 = iso2.issued.get(CertificateRole.CPO_SUB_CA_1)
        if cpo_sub_ca_2 is not None and cpo_sub_ca_1 is not None:
            self.behaviour.signer = CsrSigner(cpo_sub_ca_2, (cpo_sub_ca_2.cert, cpo_sub_ca_1.cert),
                                              ocsp_url=iso2.ocsp_url(),
                                              crl_url=iso2.crl_url(CertificateRole.CPO_SUB_CA_2))

    def plug_and_charge_backend(self) -> tuple[str | None, str | None]:
        """Why the CSMS cannot sign SECC certificates, and why it cannot issue contracts for
        Get15118EVCertificate (None: it can), once the run's ISO 15118 PKI is loaded."""
        from harness.rig.hlc import material  # the PKI is loaded on first use

        material(self.rig)
        lab = f"the rig's PKI ({self.lab_pki})"
        no_signer = None if self.behaviour.signer is not None else (
            f"{lab} holds no -2 CPO Sub-CA 2 key, so the CSMS cannot sign SECC certificates")
        no_contracts = None if self.behaviour.provisioning is not None else (
            f"{lab} comes from a lab: its contracts come from its mobility operator, and the mock CSMS issues none")
        return no_signer, no_contracts

    def serve_lab_pki(self, path: Path) -> None:
        """Be the Plug & Charge backend of a lab's PKI (a description file, or a folder written by
        `harness certs generate`), as `harness csms serve --pki` is: trust its MO roots, know its
        CAs, ask the OCSP responders its certificates name, and sign SECC certificates when it
        holds the -2 CPO Sub-CA 2 key. Contracts come from the lab's MO: Get15118EVCertificate is
        answered Failed. The run's own responder knows none of the lab's CAs."""
        try:
            pki, responders = load_any_pnc_pki(path)
        except (FileProblems, CertificateFileError, ValueError, TypeError) as exc:
            raise RigNotReady(f"the rig file's pki ({path}): {exc}") from None
        self.behaviour.pnc = PncBackend(pki.mo_roots, pki.authorities, responders=responders)
        self.behaviour.signer = CsrSigner.of(pki)
        self.behaviour.provisioning = None
        self.lab_pki = path

    def sign_faultily(self, fault: str) -> None:
        """Sign every SECC certificate request with ``fault`` (one of
        harness.pki.signing.SIGNING_FAULTS) until the next test case."""
        no_signer, _ = self.plug_and_charge_backend()
        if no_signer is not None:
            raise NotApplicable(no_signer)
        assert self.behaviour.signer is not None
        self.behaviour.signer = replace(self.behaviour.signer, fault=fault)

    def publish_crl(self, name: str, crl: Any) -> None:
        """Serve ``crl`` at the run's ``/crl/<name>`` (until the next test case)."""
        self._revocation("serve a CRL for").crls[name] = crl

    def revoke(self, serial: int) -> None:
        """From now on the run's OCSP responder says the certificate with ``serial`` is revoked
        (until the next test case)."""
        self._revocation("revoke").revoke(serial)

    def _revocation(self, what: str) -> RevocationServer:
        if self.lab_pki is not None:
            raise NotApplicable(f"the rig's PKI ({self.lab_pki}) names its own OCSP responders and CRLs, so the "
                                f"harness cannot {what} its certificates")
        if self.driver.revocation is None:
            raise RigNotReady("the CSMS role is not up, so the run has no OCSP responder")
        return self.driver.revocation


def frame_type(event: Event) -> str | None:
    """CALL, CALLRESULT or CALLERROR for an OCPP frame on the timeline (valid or not), else None."""
    body = event.payload
    return body.get("type") if isinstance(body, dict) else None


def _server_names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in names and host not in ("0.0.0.0", "::"):
        names.insert(0, host)
    return names


class MockCsmsDriver(Driver):
    """``csms: {kind: mock}``: the harness's mock CSMS, with the rig file's TLS material or a PKI
    generated for the run."""

    def __init__(self, role: CsmsRole) -> None:
        super().__init__(role)
        self.config = role.config
        self.pki: OcppPki | None = None
        self.tls: CsmsTls | None = None
        self.server: MockCsms | None = None
        #: the policy of the rig file, which the role returns to after a test changed it
        self.default_policy: SecurityPolicy | None = None
        #: the OCSP responder of the run's ISO 15118 PKI (the CSMS is its Plug & Charge backend)
        self.revocation: RevocationServer | None = None

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        csms, station = config.csms, config.evse.ocpp.tls
        yield check.listen_port(csms.host, csms.port)
        if csms.tls is not None:
            server = csms.tls
            yield check.tls_files("csms.tls", lambda: ocpp_server_context(server.certificate, server.key,
                                                                          client_ca=server.ca))
        if station is not None:
            yield check.tls_files("evse.ocpp.tls", lambda: ocpp_client_context(
                station.ca or station.certificate, client_chain=station.certificate, client_key=station.key))

    async def activate(self) -> None:
        self.tls = self._tls_material()
        self.default_policy = self.role.policy(self.rig.config.evse.ocpp.security_profile)
        self.server = MockCsms(self.rig.trace, host=self.config.host, port=self.config.port,
                               security=self.default_policy,
                               versions=self.config.versions, behaviour=self.role.behaviour,
                               response_timeout=self.rig.scaled(self.config.response_timeout),
                               path_prefix=self.config.path_prefix)
        await self.server.start()
        self.revocation = RevocationServer([]).start()

    async def deactivate(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.revocation is not None:
            self.revocation.stop()
            self.revocation = None

    def _tls_material(self) -> CsmsTls:
        configured = self.config.tls
        evse = self.rig.config.evse
        if configured is None or self.rig.evse.emulated:
            # The emulated station and the mock CSMS share a generated PKI; a lab CSMS without
            # configured TLS still gets one so the "untrusted certificate" cases have material.
            self.pki = generate_ocpp_pki(self.rig.run_dir / "pki", station_ids=[evse.station_id],
                                         server_names=_server_names(self.config.host))
        if configured is not None:
            untrusted = {"untrusted-root": self.pki.untrusted_server} if self.pki else {}
            return CsmsTls(CertificateFiles(configured.certificate, configured.key),
                           configured.ca or configured.certificate, untrusted)
        assert self.pki is not None
        return CsmsTls(self.pki.csms_server, self.pki.csms_root, self.pki.faulty_servers)

    def policy(self, profile: int, *, password: str | None, server: CertificateFiles | None,
               client_ca: Path | None, maximum_tls: ssl.TLSVersion | None,
               minimum_tls: ssl.TLSVersion) -> SecurityPolicy:
        if self.tls is None:
            raise RuntimeError("the CSMS role is not up")
        configured = self.rig.config.evse.ocpp.password
        if password == "configured":
            password = configured
        credentials = {self.role.station_id: password} if password is not None else None
        return SecurityPolicy(profile=profile, credentials=credentials,
                              server=(server or self.tls.server) if profile >= 2 else None,
                              client_ca=(client_ca or self.tls.station_ca) if profile == 3 else None,
                              minimum_tls=minimum_tls, maximum_tls=maximum_tls,
                              keylog=self.rig.run_dir / "tls-keys.log")

    async def ensure_listening(self) -> None:
        server = self.server
        if server is None:
            raise RuntimeError("the CSMS role is not up")
        server.script.clear()
        if not server.running or server.security != self.default_policy:
            await server.restart(self.default_policy)


def dut_identity(trace, station_id: str) -> dict[str, str] | None:
    """The identity a station gave in its latest BootNotification, in one shape for all versions."""
    event = trace.last(layer=Layer.OCPP, name="BootNotification", observer="csms", src="evse",
                       keys={"station_id": station_id},
                       where=lambda e: frame_type(e) == "CALL" and "violation" not in e.payload)
    if event is None:
        return None
    body = event.payload.get("payload") or {}
    if "chargingStation" in body:
        station = body["chargingStation"]
        fields = {"vendor": station.get("vendorName"), "model": station.get("model"),
                  "serial_number": station.get("serialNumber"), "firmware_version": station.get("firmwareVersion")}
    else:
        fields = {"vendor": body.get("chargePointVendor"), "model": body.get("chargePointModel"),
                  "serial_number": body.get("chargePointSerialNumber") or body.get("chargeBoxSerialNumber"),
                  "firmware_version": body.get("firmwareVersion")}
    return {"station_id": station_id, **{k: v for k, v in fields.items() if v}}
