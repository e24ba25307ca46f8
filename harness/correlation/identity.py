"""Who the charger said it was over ISO 15118, as the EV saw it: the EVSEIDs it named itself with
(SessionSetupRes), the protocols it agreed to (supportedAppProtocolRes), and the SECC
certificates its TLS handshakes presented. The OCPP side of the identity is the BootNotification
(:func:`harness.rig.csms.dut_identity`)."""

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
