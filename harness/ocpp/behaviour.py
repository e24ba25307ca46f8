"""The mock CSMS's default answers: one small handler per action.

A behaviour change for a test is a scripted rule (:mod:`harness.ocpp.script`); a change of what a
well-behaved CSMS answers is one handler here. Handlers return payloads that satisfy the
version's response schema (a test checks every one of them).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import inspect
import io
import itertools
import json
import threading
from typing import Any, Mapping, Protocol

from harness import exi
from harness.ocpp.contracts import ContractVerdict, PncBackend
from harness.ocpp.endpoint import Handler, IncomingCall, Result
from harness.ocpp.routing import Answering, answers
from harness.ocpp.timing import timestamp
from harness.ocpp.versions import PNC_VENDOR_ID, STATION_ACTIONS, OcppVersion
from harness.pki.signing import SIGNING_FAULTS, CsrSigner, SigningRefused, chain_pem

_V16 = OcppVersion.V16


#: the EXI tunnel's vendorIds and the harness's EXI schemas a message of each may be in
EXI_TUNNEL_SCHEMAS: dict[str, tuple[str, ...]] = {
    "DIN70121": ("din",), "ISO15118-2": ("iso2",),
    "ISO15118-20": ("iso20", "iso20-ac", "iso20-dc", "iso20-acdp", "iso20-wpt"),
}
#: decompressed EXI larger than this is refused: a V2G message is a few KiB, a gzip bomb is not
MAX_TUNNEL_EXI = 64 * 1024


def _gunzip(data: bytes) -> bytes:
    stream = gzip.GzipFile(fileobj=io.BytesIO(data))
    raw = stream.read(MAX_TUNNEL_EXI + 1)
    if len(raw) > MAX_TUNNEL_EXI:
        raise ValueError(f"more than {MAX_TUNNEL_EXI} bytes once decompressed")
    return raw


class CertificateProvisioning(Protocol):
    """Issues contracts for Get15118EVCertificate (harness.v2g.provisioning.ContractProvisioning)."""

    def answer(self, schema_version: str, action: str, exi_request: str) -> Any:
        """An object with ``status`` (Accepted, Failed), ``exi_response`` (base64) and ``detail``."""
        ...




class CsmsBehaviour(Answering):
    """What a conforming, cooperative CSMS answers: one method per action, marked with
    :func:`~harness.ocpp.routing.answers`.

    ``id_tokens`` maps token -> authorization status ("Accepted", "Blocked", "Invalid",
    "Expired"...); tokens not in it get ``unknown_token_status``. An eMAID is a token like any
    other: its status is the contract's (valid, blocked, expired, unknown).

    ``pnc`` is the Plug & Charge backend (:mod:`harness.ocpp.contracts`) that decides about
    contract certificates; without one, a contract presented through OCPP is refused with
    CertChainError and the timeline says that this CSMS was given no PKI. ``signer`` signs the
    charger's SECC certificate requests (SignCertificate, certificateType V2GCertificate): the
    CSMS accepts the request, then sends the chain in CertificateSigned (OCPP 2.0.1 A03); without
    one, or for another certificate type, the request is rejected with the reason.
    ``provisioning`` answers Get15118EVCertificate: the EV's EXI CertificateInstallationReq or
    CertificateUpdateReq in, the signed EXI response out (:class:`CertificateProvisioning`).
    ``dynamic_schedules`` holds, by charging profile id, the scheduleUpdate this CSMS gives a
    station that asks with PullDynamicScheduleUpdate (OCPP 2.1) for one of its Dynamic profiles.
    """

    def __init__(self, *, heartbeat_interval: int = 300, id_tokens: Mapping[str, str] | None = None,
                 unknown_token_status: str = "Accepted", pnc: PncBackend | None = None,
                 signer: CsrSigner | None = None, provisioning: "CertificateProvisioning | None" = None) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.id_tokens = dict(id_tokens or {})
        self.unknown_token_status = unknown_token_status
        self.pnc = pnc
        self.signer = signer
        self.provisioning = provisioning
        self.dynamic_schedules: dict[int, dict[str, Any]] = {}
        self._transaction_ids = itertools.count(1)
        self._lock = threading.Lock()

    def handler(self, action: str, version: OcppVersion) -> Handler | None:
        method = self.answer_for(action)
        if method is None or action not in STATION_ACTIONS[version]:
            return None

        async def answer(call: IncomingCall) -> Result:
            payload = method(call)
            if inspect.isawaitable(payload):
                payload = await payload
            return payload if isinstance(payload, Result) else Result(payload)

        return answer

    def token_status(self, token: str | None) -> str:
        if token is None:
            return "Accepted"
        return self.id_tokens.get(token, self.unknown_token_status)

    def _token_info(self, call: IncomingCall, token: str | None) -> dict[str, Any]:
        status = self.token_status(token)
        if call.version is _V16:
            # 1.6 has no "Unknown" and calls it idTagInfo
            return {"idTagInfo": {"status": status if status != "Unknown" else "Invalid"}}
        return {"idTokenInfo": {"status": status}}

    # -- provisioning --------------------------------------------------------------------

    @answers("BootNotification")
    def boot_notification(self, call: IncomingCall) -> dict[str, Any]:
        return {"currentTime": timestamp(), "interval": self.heartbeat_interval, "status": "Accepted"}

    @answers("Heartbeat")
    def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        return {"currentTime": timestamp()}

    # -- authorization and transactions ---------------------------------------------------

    @answers("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        if call.version is _V16:
            return self._token_info(call, call.payload.get("idTag"))
        token = call.payload["idToken"]["idToken"]
        return await self._authorize_contract(call, call.payload, token, token_info=self._token_info(call, token))

    async def _authorize_contract(self, call: IncomingCall, request: dict[str, Any], token: str, *,
                                  token_info: dict[str, Any]) -> dict[str, Any]:
        """C07: an Authorize that carries a contract (certificate or hash data) is answered with
        the backend's certificateStatus; a contract the backend refuses is not authorized,
        whatever the token's own status."""
        if "certificate" not in request and "iso15118CertificateHashData" not in request:
            return token_info
        verdict = await self._contract_verdict(request, token)
        info_key = "idTagInfo" if call.version is _V16 else "idTokenInfo"
        if not verdict.accepted:
            token_info = {info_key: {"status": "Expired" if verdict.certificate_status == "CertificateExpired"
                                     else "Invalid"}}
        call.endpoint.note("ContractVerdict", f"CSMS: contract of {token}: {verdict.certificate_status} "
                           f"({verdict.detail}); idToken {token_info[info_key]['status']}",
                           payload={"id_token": token, "certificate_status": verdict.certificate_status,
                                    "detail": verdict.detail,
                                    "checked": "certificate" if "certificate" in request else "hash data",
                                    "id_token_status": token_info[info_key]["status"]},
                           keys={"station_id": call.station_id, "id_token": token})
        return {**token_info, "certificateStatus": verdict.certificate_status}

    async def _contract_verdict(self, request: dict[str, Any], token: str) -> ContractVerdict:
        backend = self.pnc
        if backend is None:
            return ContractVerdict("CertChainError", "this CSMS was given no Plug & Charge PKI (MO roots, "
                                                     "OCSP responders) to check contracts against")
        if "certificate" in request:
            return await asyncio.to_thread(backend.check_certificate, str(request["certificate"]), token)
        entries = request["iso15118CertificateHashData"]
        return await asyncio.to_thread(backend.check_hash_data, entries if isinstance(entries, list) else [entries])

    @answers("GetCertificateStatus")
    async def get_certificate_status(self, call: IncomingCall) -> dict[str, Any]:
        return await self._certificate_status(call, call.payload.get("ocspRequestData"))

    async def _certificate_status(self, call: IncomingCall, request: Any) -> dict[str, Any]:
        """M06: the station's OCSP CertID relayed to the responder, the DER answer returned."""
        if self.pnc is None:
            status, result, detail = "Failed", None, "this CSMS was given no Plug & Charge PKI"
        else:
            answer = await asyncio.to_thread(self.pnc.certificate_status, request)
            status, result, detail = answer.status, answer.ocsp_result, answer.detail
        call.endpoint.note("CertificateStatusRelayed", f"CSMS: GetCertificateStatus {status} ({detail})",
                           payload={"status": status, "detail": detail}, keys={"station_id": call.station_id})
        return {"status": status, **({"ocspResult": result} if result else {})}

    @answers("StartTransaction")
    def start_transaction(self, call: IncomingCall) -> dict[str, Any]:
        with self._lock:
            transaction_id = next(self._transaction_ids)
        return {"transactionId": transaction_id, **self._token_info(call, call.payload["idTag"])}

    @answers("StopTransaction")
    def stop_transaction(self, call: IncomingCall) -> dict[str, Any]:
        token = call.payload.get("idTag")
        return self._token_info(call, token) if token is not None else {}

    @answers("TransactionEvent")
    def transaction_event(self, call: IncomingCall) -> dict[str, Any]:
        token = call.payload.get("idToken")
        # E01.FR.xx/C: idTokenInfo is returned when the request carried an idToken
        return self._token_info(call, token["idToken"]) if token else {}

    # -- everything a CSMS simply acknowledges ---------------------------------------------

    @answers("StatusNotification", "MeterValues", "NotifyEvent", "NotifyReport", "NotifyMonitoringReport",
             "SecurityEventNotification", "FirmwareStatusNotification", "LogStatusNotification",
             "DiagnosticsStatusNotification", "SignedFirmwareStatusNotification", "NotifyChargingLimit",
             "ClearedChargingLimit", "ReportChargingProfiles", "ReservationStatusUpdate",
             "NotifyCustomerInformation", "NotifyDisplayMessages", "PublishFirmwareStatusNotification",
             "NotifyPeriodicEventStream", "NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl")
    def acknowledge(self, call: IncomingCall) -> dict[str, Any]:
        return {}

    @answers("NotifyEVChargingNeeds", "NotifyEVChargingSchedule")
    def accept_ev_information(self, call: IncomingCall) -> dict[str, Any]:
        return {"status": "Accepted"}

    @answers("PullDynamicScheduleUpdate")
    def pull_dynamic_schedule_update(self, call: IncomingCall) -> dict[str, Any]:
        profile_id = call.payload.get("chargingProfileId")
        with self._lock:
            update = self.dynamic_schedules.get(profile_id) if isinstance(profile_id, int) else None
        if update is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownProfile", "additionalInfo":
                                                         f"this CSMS has no Dynamic profile {profile_id}"}}
        return {"status": "Accepted", "scheduleUpdate": dict(update)}

    def publish_dynamic_schedule(self, profile_id: int, update: Mapping[str, Any] | None) -> None:
        """The update a station's next PullDynamicScheduleUpdate for ``profile_id`` gets (None:
        the profile is no longer this CSMS's; the station's question is then Rejected)."""
        with self._lock:
            if update is None:
                self.dynamic_schedules.pop(profile_id, None)
            else:
                self.dynamic_schedules[profile_id] = dict(update)

    def _exi_tunnel(self, call: IncomingCall, vendor: str) -> dict[str, Any]:
        """The EXI tunnel many integrations use: vendorId the protocol, messageId the message,
        data ``EXI::`` + base64 of the gzip-compressed EXI. The message is decoded with the
        harness's codec and put on the timeline; what does not decode is Rejected, with the reason."""
        message_id = call.payload.get("messageId")
        data = call.payload.get("data")
        decoded: dict[str, Any] | None = None
        problem = None
        if not isinstance(data, str) or not data.startswith("EXI::"):
            problem = "data does not start with EXI::"
        else:
            try:
                raw = _gunzip(base64.b64decode(data[5:], validate=True))
            except (binascii.Error, ValueError, OSError, EOFError) as exc:
                problem = f"data is not base64 of gzip-compressed bytes ({exc})"
            else:
                for schema in EXI_TUNNEL_SCHEMAS[vendor]:
                    try:
                        decoded = {"schema": schema, "message": exi.decode(raw, schema), "exi": raw.hex().upper()}
                        break
                    except exi.DecodeError as exc:
                        problem = f"not an EXI {vendor} message ({exc})"
        if decoded is None:
            call.endpoint.note("ExiTunnelRefused", f"CSMS: {vendor} {message_id}: {problem}",
                               payload={"vendor": vendor, "message_id": message_id, "reason": problem},
                               keys={"station_id": call.station_id})
            return {"status": "Rejected"}
        call.endpoint.note("ExiTunnel", f"CSMS: {vendor} {message_id} through the EXI tunnel",
                           payload={"vendor": vendor, "message_id": message_id, **decoded},
                           keys={"station_id": call.station_id})
        return {"status": "Accepted"}

    @answers("Get15118EVCertificate")
    async def get_15118_ev_certificate(self, call: IncomingCall) -> dict[str, Any]:
        return await self._ev_certificate(call, call.payload)

    async def _ev_certificate(self, call: IncomingCall, request: dict[str, Any]) -> dict[str, Any]:
        """M01/M02: the EV's EXI certificate request handed to the provisioning service."""
        schema, action, exi_request = (request.get("iso15118SchemaVersion"), request.get("action"),
                                       request.get("exiRequest"))
        if self.provisioning is None:
            status, exi_response, detail = "Failed", "", "this CSMS was given no certificate provisioning service"
        elif not (isinstance(schema, str) and isinstance(action, str) and isinstance(exi_request, str)):
            status, exi_response, detail = "Failed", "", "iso15118SchemaVersion, action and exiRequest must be strings"
        else:
            answer = await asyncio.to_thread(self.provisioning.answer, schema, action, exi_request)
            status, exi_response, detail = answer.status, answer.exi_response or "", answer.detail
        call.endpoint.note("EvCertificateProvisioned", f"CSMS: Get15118EVCertificate {action}: {status} ({detail})",
                           payload={"action": action, "status": status, "detail": detail},
                           keys={"station_id": call.station_id})
        return {"status": status, "exiResponse": exi_response}

    @answers("SignCertificate")
    def sign_certificate(self, call: IncomingCall) -> Result:
        certificate_type = call.payload.get("certificateType")
        if call.version is _V16:  # the 1.6 security whitepaper's SignCertificate: the station's own certificate
            certificate_type = "ChargingStationCertificate"
        return self._sign(call, call.payload.get("csr"), certificate_type, wrapped=False)

    def _sign(self, call: IncomingCall, csr: Any, certificate_type: str | None, *, wrapped: bool) -> Result:
        """A03: accept a CSR this CSMS can sign, then send the chain in CertificateSigned; refuse
        the others with the reason (statusInfo in 2.x, the timeline always)."""
        refusal = None
        chain: list[Any] = []
        if certificate_type != "V2GCertificate":
            refusal = ("UnsupportedType", f"this CSMS signs SECC certificates (V2GCertificate) only, not "
                                          f"{certificate_type or 'a combined certificate (no certificateType)'}")
        elif self.signer is None:
            refusal = ("NoCA", "this CSMS was given no CPO Sub-CA key to sign SECC certificates with")
        elif not isinstance(csr, str):
            refusal = ("InvalidCSR", "csr is not a string")
        else:
            try:
                chain = self.signer.sign(csr)
            except SigningRefused as exc:
                refusal = ("InvalidCSR", str(exc))
        if refusal is not None:
            call.endpoint.note("CertificateRequestRefused", f"CSMS: SignCertificate refused: {refusal[1]}",
                               payload={"reason": refusal[1], "certificate_type": certificate_type},
                               keys={"station_id": call.station_id})
            answer: dict[str, Any] = {"status": "Rejected"}
            if call.version is not _V16 and not wrapped:
                answer["statusInfo"] = {"reasonCode": refusal[0], "additionalInfo": refusal[1][:512]}
            return Result(answer)
        leaf = chain[0]
        fault = self.signer.fault if self.signer is not None else None
        call.endpoint.note("CertificateRequestSigned", f"CSMS: signed the SECC certificate {leaf.subject.rfc4514_string()} "
                           f"(serial {leaf.serial_number:X}), CertificateSigned follows"
                           + (f"; deliberately faulty: {SIGNING_FAULTS[fault]}" if fault else ""),
                           payload={"subject": leaf.subject.rfc4514_string(), "serial": format(leaf.serial_number, "X"),
                                    "fault": fault},
                           keys={"station_id": call.station_id})
        signed = {"certificateChain": chain_pem(chain), "certificateType": "V2GCertificate"}

        async def deliver() -> None:
            if wrapped:
                await call.endpoint.call("DataTransfer", {"vendorId": PNC_VENDOR_ID, "messageId": "CertificateSigned",
                                                          "data": json.dumps({"certificateChain": signed["certificateChain"]})})
            else:
                await call.endpoint.call("CertificateSigned", signed)

        return Result({"status": "Accepted"}, then=deliver)

    @answers("DataTransfer")
    async def data_transfer(self, call: IncomingCall) -> dict[str, Any] | Result:
        vendor = call.payload.get("vendorId")
        if vendor in EXI_TUNNEL_SCHEMAS:
            return self._exi_tunnel(call, vendor)
        # OCPP 1.6 §4.3 / 2.0.1 P01: a receiver that does not know the vendorId says so
        if vendor != PNC_VENDOR_ID or call.version is not _V16:
            return {"status": "UnknownVendorId"}
        message = call.payload.get("messageId")
        if message not in ("Authorize", "GetCertificateStatus", "SignCertificate", "Get15118EVCertificate"):
            return {"status": "UnknownMessageId"}
        # the application note carries the OCPP 2.0.1 message as a JSON text in data
        try:
            request = json.loads(call.payload.get("data") or "")
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
            request = exc
        if not isinstance(request, dict):
            call.endpoint.note("DataTransferRefused", f"CSMS: {PNC_VENDOR_ID} {message}: data is not a JSON "
                               f"object ({request})", keys={"station_id": call.station_id})
            return {"status": "Rejected"}
        if message == "Authorize":
            token = request.get("idToken")
            if not isinstance(token, str):
                call.endpoint.note("DataTransferRefused", f"CSMS: {PNC_VENDOR_ID} Authorize without an idToken "
                                   "string (the application note's idToken is the eMAID as a string)",
                                   keys={"station_id": call.station_id})
                return {"status": "Rejected"}
            answer = await self._authorize_contract(call, request, token, token_info=self._token_info(call, token))
            answer = {"idTokenInfo" if k == "idTagInfo" else k: v for k, v in answer.items()}
        elif message == "Get15118EVCertificate":
            answer = await self._ev_certificate(call, request)
        elif message == "SignCertificate":  # the note's SignCertificate is for the SECC (V2G) certificate
            signed = self._sign(call, request.get("csr"), "V2GCertificate", wrapped=True)
            return Result({"status": "Accepted", "data": json.dumps(signed.payload, separators=(",", ":"))},
                          then=signed.then)
        else:
            answer = await self._certificate_status(call, request.get("ocspRequestData"))
        return {"status": "Accepted", "data": json.dumps(answer, separators=(",", ":"))}

