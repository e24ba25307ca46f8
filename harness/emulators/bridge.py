"""The SECC <-> OCPP station bridge of the reference EVSE: the one place where an ISO 15118
session meets the charging station's transaction.

- Session start/stop: a V2G session keeps the connector on 5 % duty (digital communication);
  the OCPP transaction follows the station's rules (TxStartPoint PowerPathClosed: plugged in and
  authorized; TxStopPoint EVConnected/Authorized: it ends when the EV leaves).
- Authorization: EIM waits for the external means (a token presented at the charger, a remote
  start from the CSMS) and answers "Ongoing" until the transaction runs; with ``eim: free`` the
  EVSE authorizes the EV itself by its EVCCID (idToken type MacAddress). Plug & Charge (OCPP
  2.0.1 C07; the 1.6 application note's DataTransfer): with MO roots the SECC validates the contract
  chain itself and Authorize carries the eMAID with the chain's iso15118CertificateHashData, for
  the CSMS to ask the OCSP responder; without MO roots, and with
  ISO15118Ctrlr.CentralContractValidationAllowed true, the chain goes to the CSMS as PEM in
  ``certificate`` (C07.FR.06). The EV hears EVSEProcessing Ongoing until the CSMS answers; a
  refusal becomes the ResponseCode of :data:`harness.v2g.pnc.BACKEND_REFUSALS`, an acceptance
  starts the transaction with the eMAID as its idToken (type eMAID).
- Contracts for the EV (OCPP 2.0.1 M01/M02): an ISO 15118-2 CertificateInstallationReq or
  CertificateUpdateReq goes to the CSMS as it came, in Get15118EVCertificate, and the CSMS's signed
  response goes back as it is (FAILED_NoCertificateAvailable when none comes).
- Meter values: the SoC the EV reports goes into the station's samples (measurand SoC).
- A transaction ended by the CSMS (RequestStopTransaction) becomes EVSENotification StopCharging.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

from harness import exi
from harness.emulators.charge_port import ChargePort
from harness.emulators.evse_connector import Authorization
from harness.emulators.evse_device import CENTRAL_CONTRACT_VALIDATION
from harness.ocpp import iso15118_failures
from harness.pki.profiles import Generation
from harness.pki.revocation import certificate_hash_data
from harness.pki.signing import chain_pem
from harness.trace import Layer
from harness.v2g import messages
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.pnc import BACKEND_REFUSALS, PROVISIONING_NAMESPACES, ContractCheck
from harness.v2g.schedules import HORIZON_S, Offer

if TYPE_CHECKING:
    from harness.emulators.evse import Connector, ReferenceEvse
    from harness.ocpp.smart_charging import Limit


class OcppBridge(ChargePort):
    def __init__(self, evse: "ReferenceEvse", connector: "Connector", capabilities: EvseCapabilities, *,
                 eim: str = "external", on_session: Any = None, **port: Any) -> None:
        super().__init__(capabilities, connector.line, **port)
        self.evse = evse
        self.connector = connector
        self.eim = eim
        self.on_session = on_session
        self._pnc: asyncio.Task | None = None
        self._had_transaction = False
        #: NotifyEVChargingNeeds on their way (kept so they are not collected before they finish)
        self._tasks: set[asyncio.Future] = set()
        #: the DC power (W) the stage was last told to deliver
        self._commanded: float | None = None
        #: the schedule offered last (time.monotonic() then, its offers, the energy transfer)
        self._offered: tuple[float, tuple[Offer, ...], str] | None = None

    def _emit(self, name: str, summary: str, *, layer: Layer = Layer.OCPP, payload: Any = None, **keys: Any) -> None:
        self.evse.recorder.emit(layer, name, summary, src="evse", payload=payload,
                                keys={"evse_id": self.connector.evse_id, **keys})

    # -- session ------------------------------------------------------------------------------

    def session_started(self, session_id: str, evccid: str | None, protocol: str) -> None:
        super().session_started(session_id, evccid, protocol)
        self._pnc = None
        self._commanded = None
        self._offered = None
        self._had_transaction = self.connector.transaction is not None
        if self.on_session is not None:
            self.on_session(self.connector, True)
        self._emit("HlcSessionStarted", f"EVSE {self.connector.evse_id}: ISO 15118 session {session_id} "
                   f"({protocol}) with EVCCID {evccid}", session_id=session_id, evccid=evccid)

    def session_ended(self, session_id: str | None, reason: str, paused: bool) -> None:
        super().session_ended(session_id, reason, paused)
        self._failed(reason)
        if self._pnc is not None and not self._pnc.done():
            self._pnc.cancel()
        self._emit("HlcSessionEnded", f"EVSE {self.connector.evse_id}: ISO 15118 session {session_id} ended "
                   f"({reason})", session_id=session_id)

    def connection_failed(self, reason: str) -> None:
        super().connection_failed(reason)
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        """Report what went wrong under a running transaction (harness.ocpp.iso15118_failures)."""
        failure = iso15118_failures.classify(reason)
        if failure is not None and self.connector.transaction is not None:
            self.connector.events.put_nowait(("iso15118_failure", failure))

    # -- authorization --------------------------------------------------------------------------

    def authorize(self, method: str, *, emaid: str | None = None, contract_chain: Sequence[Any] = ()) -> str:
        connector = self.connector
        if connector.transaction is not None:
            self._had_transaction = True
            return "Accepted"
        if method == "PnC":
            return self._authorize_contract(emaid or "", contract_chain)
        if self.eim == "free" and connector.authorization is None:
            token = (self.session.evccid if self.session and self.session.evccid else "HLC-EV")
            connector.events.put_nowait(("authorized", Authorization(token, "local", token_type="MacAddress"),
                                         "Authorized"))
        return "Ongoing"  # waiting for the token, the remote start, or the transaction to begin

    def _authorize_contract(self, emaid: str, chain: Sequence[Any]) -> str:
        if self._pnc is None:
            self._pnc = asyncio.get_running_loop().create_task(self._ask_csms(emaid, list(chain)))
            return "Ongoing"
        if not self._pnc.done():
            return "Ongoing"
        return "Rejected" if self._pnc.cancelled() else self._pnc.result()

    def check_contract(self, chain: Sequence[Any], *, generation: Generation, emaid: str | None) -> ContractCheck:
        if self.mo_roots or not self._central_validation:
            return super().check_contract(chain, generation=generation, emaid=emaid)
        return ContractCheck(None, "the CSMS (Authorize with the certificate, C07.FR.06)",
                             "no MO root here: the chain goes to the CSMS")

    @property
    def _central_validation(self) -> bool:
        return self.evse.device.value(CENTRAL_CONTRACT_VALIDATION) == "true"

    async def _ask_csms(self, emaid: str, chain: list[Any]) -> str:
        """Authorize the contract at the CSMS: "Ongoing" once accepted (the transaction starts),
        else the refusal's name for :func:`harness.v2g.pnc.authorization_refusal`."""
        if self.mo_roots:
            hash_data = contract_hash_data(chain, self.mo_roots)
            status, certificate_status = await self.evse.authorize_contract(emaid, hash_data=hash_data)
            sent = f"{len(hash_data)} certificate hash data"
        else:
            status, certificate_status = await self.evse.authorize_contract(emaid, certificate=chain_pem(chain))
            sent = "the contract chain (PEM)"
        self._emit("ContractAuthorization", f"eMAID {emaid} with {sent}: idToken {status}, certificateStatus "
                   f"{certificate_status or '(none)'}", id_token=emaid)
        if certificate_status is None and not self.mo_roots:
            # nobody validated the chain here, so the CSMS's silence about it is no acceptance
            certificate_status = "CertChainError"
        if certificate_status not in (None, "Accepted"):
            known = BACKEND_REFUSALS[Generation.ISO2]
            return str(certificate_status) if certificate_status in known else "CertChainError"
        if status != "Accepted":
            return "Rejected"
        await self.connector.events.put(("authorized", Authorization(emaid, "local", token_type="eMAID"),
                                         "Authorized"))
        return "Ongoing"  # authorized: Accepted once the transaction runs

    # -- charging profiles (OCPP K01, K15) ----------------------------------------------------------

    def _profile(self) -> "Limit | None":
        return self.connector.profile_limit(self.connector) if self.connector.profile_limit is not None else None

    def _watts(self, amps: float) -> float:
        """A per-phase current of the composite schedule as power: A per phase at the nominal
        voltage (for DC, the same power on the grid side)."""
        caps = self.capabilities
        return amps * caps.ac_nominal_voltage * caps.ac_phases

    def power_limit(self, energy: str) -> float:
        """The capability, lowered by the charging profiles' limit for this connector."""
        return self._charge_w(energy, self._profile())

    def discharge_limit(self, energy: str) -> float:
        """The discharge capability, lowered by the profiles' dischargeLimit (0 in an operation
        mode without discharge)."""
        return self._discharge_w(energy, self._profile())

    def power_setpoint(self, energy: str) -> float | None:
        return self._setpoint_w(energy, self._profile())

    def _charge_w(self, energy: str, found: "Limit | None") -> float:
        capability = self.capabilities.max_power(energy)
        return capability if found is None else min(capability, self._watts(found.amps))

    def _discharge_w(self, energy: str, found: "Limit | None") -> float:
        capability = self.capabilities.max_discharge_power(energy)
        if found is None or found.discharge_amps is None:
            return capability
        return min(capability, self._watts(found.discharge_amps))

    def _setpoint_w(self, energy: str, found: "Limit | None") -> float | None:
        if found is None or found.setpoint_amps is None:
            return None
        return max(-self._discharge_w(energy, found), min(self._charge_w(energy, found), self._watts(found.setpoint_amps)))

    def power_schedule(self, energy: str) -> Sequence[Offer]:
        """The composite schedule over the horizon, one offer wherever what it allows changes;
        kept as the schedule the EV now holds (see :meth:`limit_changed`)."""
        offers = self._schedule_ahead(energy)
        self._offered = (time.monotonic(), tuple(offers), energy)
        return offers

    def _schedule_ahead(self, energy: str) -> Sequence[Offer]:
        ahead = self.connector.profile_ahead
        if ahead is None:
            return super().power_schedule(energy)
        offers: list[Offer] = []
        for offset, found in ahead(self.connector, HORIZON_S):
            offer = Offer(round(offset), self._charge_w(energy, found), self._discharge_w(energy, found),
                          self._setpoint_w(energy, found))
            if offers and (offer.limit_w, offer.discharge_w, offer.setpoint_w) == (
                    offers[-1].limit_w, offers[-1].discharge_w, offers[-1].setpoint_w):
                continue
            if offers and offer.start <= offers[-1].start:  # within the same second: the later one
                offers[-1] = Offer(offers[-1].start, offer.limit_w, offer.discharge_w, offer.setpoint_w)
                continue
            offers.append(offer)
        return offers or super().power_schedule(energy)

    def ac_target(self, power: float | None = None) -> float:
        """EVSEMaxCurrent: the capability, lowered by the charging profiles' limit."""
        found = self._profile()
        target = super().ac_target(power)
        return target if found is None else min(target, found.amps)

    def current_demand(self, voltage: float, current: float) -> Any:
        """DC: the power stage follows the target; a new target (a limit or setpoint changed, or
        the EV asked for another current) goes on the timeline once."""
        present = super().current_demand(voltage, current)
        wanted = voltage * current
        if self._commanded is None or abs(wanted - self._commanded) > max(200.0, 0.02 * abs(self._commanded)):
            self._commanded = wanted
            self._emit("PowerApplied", f"EVSE {self.connector.evse_id}: DC power stage to {wanted / 1000:.2f} kW "
                       f"({current:.1f} A at {voltage:.0f} V)", layer=Layer.V2G, payload={"target_w": wanted, "power_w": present.voltage * present.current})
        return present

    def ev_charging_needs(self, needs: Any) -> None:
        self._notify(self.evse.dialect.ev_charging_needs(self.connector.evse_id, needs))

    def ev_charging_schedule(self, schedule: Any) -> None:
        self._notify(self.evse.dialect.ev_charging_schedule(self.connector.evse_id, schedule))

    def _notify(self, message: tuple[str, dict[str, Any]] | None) -> None:
        """Send what the EV said on to the CSMS, without holding up the session."""
        if message is None:  # the OCPP version has no such message
            return
        task = asyncio.ensure_future(self.evse.notify(*message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def limit_changed(self) -> None:
        """The charging profiles' limit changed: a running session renegotiates its schedule
        (-2 EVSENotification ReNegotiation, -20 ScheduleRenegotiation) once energy flows, unless
        the schedule the EV holds already says so (a later period of the same profiles)."""
        if self.session is not None and self.session.ended is None and not self._announced():
            self.pending_notification = "ReNegotiation"

    def _announced(self) -> bool:
        """Whether what the profiles allow from now on is what the schedule offered last said for
        this time on (its steps within a second)."""
        if self._offered is None:
            return False
        offered_at, offered, energy = self._offered
        elapsed = time.monotonic() - offered_at
        expected = [(max(0.0, o.start - elapsed), o.limit_w, o.discharge_w, o.setpoint_w) for index, o in
                    enumerate(offered) if index + 1 == len(offered) or offered[index + 1].start > elapsed]
        now = [(o.start, o.limit_w, o.discharge_w, o.setpoint_w) for o in self._schedule_ahead(energy)]
        horizon = HORIZON_S - elapsed - 1.0  # the offered schedule ends earlier than one made now
        now = [step for step in now if step[0] < horizon]
        return len(expected) == len(now) and all(
            abs(a[0] - b[0]) <= 1.0 and a[1:] == b[1:] for a, b in zip(expected, now))

    # -- contract installation and update through the CSMS (OCPP 2.0.1 M01, M02) ----------------

    def installs_certificates(self, generation: str) -> bool:
        return True  # the CSMS provisions (Get15118EVCertificate); what it answers goes to the EV

    def certificate_relay(self, request: str, message: dict, schema: str) -> Callable[[], Awaitable[dict | None]]:
        """The EV's CertificateInstallationReq / CertificateUpdateReq goes to the CSMS as it came
        (Get15118EVCertificate, iso15118SchemaVersion naming the generation's schema), and the
        CSMS's signed response goes back to the EV as it is."""
        action = "Install" if request == "CertificateInstallationReq" else "Update"
        family = "iso20" if schema.startswith("iso20") else "iso2"

        async def ask() -> dict | None:
            exi_request = base64.b64encode(exi.encode(message, schema)).decode()
            status, exi_response = await self.evse.ev_certificate(PROVISIONING_NAMESPACES[family], action, exi_request)
            self._emit("EvCertificateRelayed", f"{request} relayed to the CSMS: {status}", action=action)
            if status != "Accepted" or exi_response is None:
                return None
            try:
                return exi.decode(base64.b64decode(exi_response, validate=True), messages.schema_of(family,
                                  request.replace("Req", "Res")))
            except (binascii.Error, ValueError, TypeError) as exc:
                self._emit("EvCertificateRelayed", f"the CSMS's exiResponse does not decode: {exc}", action=action)
                return None

        return ask

    def notification(self) -> str:
        if self.connector.transaction is not None:
            self._had_transaction = True
        elif self._had_transaction:
            return "StopCharging"  # the transaction ended under the session (remote stop, deauthorized)
        return super().notification()

    def ev_status(self, *, soc: float | None = None, ready: bool | None = None) -> None:
        super().ev_status(soc=soc, ready=ready)
        if soc is not None:
            self.connector.soc = float(soc)

    def energy_transfer(self, start: bool, energy: str, *, discharge: bool = False) -> bool:
        if start and self.connector.transaction is None:
            return False
        return super().energy_transfer(start, energy, discharge=discharge)


def contract_hash_data(chain: Sequence[Any], roots: Sequence[Any]) -> list[dict[str, str]]:
    """iso15118CertificateHashData for a contract chain (leaf first): one entry per certificate
    below the MO root, at most four (OCPP 2.0.1 AuthorizeRequest), each with its issuer's hashes."""
    known = [*chain, *roots]
    entries = []
    for certificate in list(chain)[:4]:
        issuer = next((c for c in known if c.subject == certificate.issuer and c is not certificate), None)
        if issuer is None:
            break  # the chain was validated, so only a self-issued top could get here
        entries.append(certificate_hash_data(certificate, issuer).as_ocpp())
    return entries

