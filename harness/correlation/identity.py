"""Who each end said it was over ISO 15118.

- The charger, as the EV saw it (:func:`iso15118_identity`): the EVSEIDs it named itself with
  (SessionSetupRes), the protocols it agreed to (supportedAppProtocolRes), and the SECC
  certificates its TLS handshakes presented. The OCPP side of the identity is the
  BootNotification (:func:`harness.rig.csms.dut_identity`).
- The EV, as the harness's SECC saw it (:func:`ev_identity`): the EVCCIDs it sent
  (SessionSetupReq), the protocols it offered (supportedAppProtocolReq, in its priority order)
  and the vehicle certificates it presented in TLS (ISO 15118-20).
"""

from __future__ import annotations

from typing import Any, Iterable

from harness.trace import Event, Layer


def iso15118_identity(events: Iterable[Event], *, observer: str = "ev") -> dict[str, Any] | None:
    """The charger's ISO 15118 identity over ``events``, or None when the EV never met it."""
    evseids: list[str] = []
    protocols: list[str] = []
    certificates: list[str] = []
    for event in events:
        if event.layer is not Layer.V2G or event.observer != observer:
            continue
        evseid = readable_evseid(event.keys.get("evseid"))
        if evseid and evseid not in evseids:
            evseids.append(evseid)
        payload = event.payload if isinstance(event.payload, dict) else {}
        protocol = payload.get("protocol")
        if protocol and protocol != "sap" and protocol not in protocols:
            protocols.append(protocol)
        shown = payload.get("secc_certificate") if event.name == "TcpConnected" else None
        if isinstance(shown, dict):
            described = f"{shown.get('subject')} (serial {shown.get('serial')}, issued by {shown.get('issuer')})"
            if described not in certificates:
                certificates.append(described)
    if not (evseids or protocols or certificates):
        return None
    return {"evseid": evseids, "protocols": protocols, "secc_certificates": certificates}


def readable_evseid(value: str | None) -> str | None:
    """An EVSEID as people read it: DIN 70121 carries it as hexBinary, which chargers fill with the
    ASCII of the ISO 15118 form ("44454841..." is "DEHA..."); anything else stays as it came."""
    if not value or len(value) % 2 or any(c not in "0123456789ABCDEFabcdef" for c in value):
        return value
    try:
        text = bytes.fromhex(value).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return value
    return text if text.isprintable() and text.strip() else value


def ev_identity(events: Iterable[Event]) -> dict[str, Any] | None:
    """The EV's ISO 15118 identity over ``events`` as the SECC (observer ``evse``) saw it, or None
    when no EV reached the SECC."""
    evccids: list[str] = []
    offered: list[str] = []
    certificates: list[str] = []
    for event in events:
        if event.layer is not Layer.V2G or event.observer != "evse":
            continue
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.name == "SessionSetupReq" and event.src == "ev":
            evccid = event.keys.get("evccid") or _field(payload.get("message"), "EVCCID")
            if evccid and evccid not in evccids:
                evccids.append(str(evccid))
        elif event.name == "supportedAppProtocolReq" and event.src == "ev":
            for protocol in _app_protocols(payload.get("message")):
                if protocol not in offered:
                    offered.append(protocol)
        elif event.name == "TcpAccepted" and payload.get("vehicle_certificate"):
            described = str(payload["vehicle_certificate"])
            if described not in certificates:
                certificates.append(described)
    if not (evccids or offered or certificates):
        return None
    return {"evccid": evccids, "protocols_offered": offered, "vehicle_certificates": certificates}


def _field(message: Any, name: str) -> Any:
    if not isinstance(message, dict):
        return None
    for body in message.values():
        if isinstance(body, dict):
            found = body.get(name)
            if found is None:
                found = next((v.get(name) for v in body.values() if isinstance(v, dict) and name in v), None)
            if found is not None:
                return found
    return None


def _priority(value: Any) -> int:
    return value if isinstance(value, int) else 99


def _app_protocols(message: Any) -> list[str]:
    """``namespace vMajor.Minor`` of each AppProtocol of a supportedAppProtocolReq, by Priority."""
    body = message.get("supportedAppProtocolReq") if isinstance(message, dict) else None
    entries = body.get("AppProtocol") if isinstance(body, dict) else None
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    listed = [e for e in entries if isinstance(e, dict)]
    listed.sort(key=lambda e: _priority(e.get("Priority")))
    return [f"{e.get('ProtocolNamespace')} v{e.get('VersionNumberMajor')}.{e.get('VersionNumberMinor')}"
            for e in listed]
