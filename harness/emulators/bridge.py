"""The SECC <-> OCPP station bridge of the reference EVSE: the one place where an ISO 15118
session meets the charging station's transaction.

- Session start/stop: a V2G session keeps the connector on 5 % duty (digital communication);
  the OCPP transaction follows the station's rules (TxStartPoint PowerPathClosed: plugged in and
  authorized; TxStopPoint EVConnected/Authorized: it ends when the EV leaves).
- Authorization: EIM waits for the external means (a token presented at the charger, a remote
  start from the CSMS) and answers "Ongoing" until the transaction runs; with ``eim: free`` the
  EVSE authorizes the EV itself by its EVCCID (idToken type MacAddress). Plug & Charge: the SECC
  validates the contract chain against the MO roots it was given (Equipment.check_contract, the
  ChargePort's); then Authorize goes to the CSMS with the eMAID only (idToken type eMAID), and the
  transaction starts when the CSMS accepts. The check through OCPP (the contract certificate or
  iso15118CertificateHashData in Authorize, OCSP at the CSMS) is not built yet.
- Meter values: the SoC the EV reports goes into the station's samples (measurand SoC).
- A transaction ended by the CSMS (RequestStopTransaction) becomes EVSENotification StopCharging.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Sequence

from harness.emulators.charge_port import ChargePort
from harness.emulators.evse_connector import Authorization
from harness.trace import Layer
from harness.v2g.equipment import EvseCapabilities

if TYPE_CHECKING:
    from harness.emulators.evse import Connector, ReferenceEvse


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

    def _emit(self, name: str, summary: str, **keys: Any) -> None:
        self.evse.recorder.emit(Layer.OCPP, name, summary, src="evse",
                                keys={"evse_id": self.connector.evse_id, **keys})

    # -- session ------------------------------------------------------------------------------

    def session_started(self, session_id: str, evccid: str | None, protocol: str) -> None:
        super().session_started(session_id, evccid, protocol)
        self._pnc = None
        self._had_transaction = self.connector.transaction is not None
        if self.on_session is not None:
            self.on_session(self.connector, True)
        self._emit("HlcSessionStarted", f"EVSE {self.connector.evse_id}: ISO 15118 session {session_id} "
                   f"({protocol}) with EVCCID {evccid}", session_id=session_id, evccid=evccid)

    def session_ended(self, session_id: str | None, reason: str, paused: bool) -> None:
        super().session_ended(session_id, reason, paused)
        if self._pnc is not None and not self._pnc.done():
            self._pnc.cancel()
        self._emit("HlcSessionEnded", f"EVSE {self.connector.evse_id}: ISO 15118 session {session_id} ended "
                   f"({reason})", session_id=session_id)

    # -- authorization --------------------------------------------------------------------------

    def authorize(self, method: str, *, emaid: str | None = None, contract_chain: Sequence[Any] = ()) -> str:
        connector = self.connector
        if connector.transaction is not None:
            self._had_transaction = True
            return "Accepted"
        if method == "PnC":
            return self._authorize_contract(emaid or "")
        if self.eim == "free" and connector.authorization is None:
            token = (self.session.evccid if self.session and self.session.evccid else "HLC-EV")
            connector.events.put_nowait(("authorized", Authorization(token, "local", token_type="MacAddress"),
                                         "Authorized"))
        return "Ongoing"  # waiting for the token, the remote start, or the transaction to begin

    def _authorize_contract(self, emaid: str) -> str:
        if self._pnc is None:
            self._pnc = asyncio.get_running_loop().create_task(self._authorize_emaid(emaid))
            return "Ongoing"
        if not self._pnc.done():
            return "Ongoing"
        return "Rejected" if self._pnc.cancelled() or self._pnc.result() != "Accepted" else "Ongoing"

    async def _authorize_emaid(self, emaid: str) -> str:
        status = await self.evse.authorize(emaid, "eMAID")
        self._emit("ContractAuthorization", f"eMAID {emaid}: {status}", id_token=emaid)
        if status == "Accepted":
            await self.connector.events.put(("authorized", Authorization(emaid, "local", token_type="eMAID"),
                                             "Authorized"))
        return status

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
