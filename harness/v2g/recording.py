"""Every V2G message on the timeline (Layer.V2G): EXI bytes, decoded JSON, direction and the
session's correlation keys, as the side that saw it saw it: ``session_id``, ``evccid``, ``evseid``
(ISO 15118's EVSEID, as the SECC named itself; not OCPP's ``evse_id``, an EVSE's number) and,
once a contract was presented, ``emaid``."""

from __future__ import annotations

import ipaddress
from typing import Any, Mapping

from harness.trace import Layer, Recorder
from harness.v2g.machine import Notice, Received, Send, Undecodable
from harness.v2g.messages import body_of

EV = "ev"
EVSE = "evse"


def peer_of(side: str) -> str:
    return EVSE if side == EV else EV


def keys_of(session: Any) -> dict[str, str | None]:
    return {"session_id": session.session_id, "evccid": session.evccid, "evseid": session.evse_id,
            "emaid": getattr(session, "emaid", None)}


def record_message(recorder: Recorder, side: str, event: Send | Received, session: Any, *,
                   fault: str | None = None, extra: Mapping[str, Any] | None = None, observer: str = "") -> None:
    """``side`` sent or received ``event``; ``observer`` is who saw it (``side`` unless told: a
    capture reader records what it saw between the two)."""
    sent = isinstance(event, Send)
    src, dst = (side, peer_of(side)) if sent else (peer_of(side), side)
    code = _response_code(event.message)
    summary = f"{src} -> {dst}: {event.name}" + (f" {code}" if code else "") + (f" [{fault}]" if fault else "")
    payload = {"direction": "sent" if sent else "received", "protocol": session.protocol.key if session.protocol else "sap",
               "schema": event.schema, "payload_type": f"0x{event.payload_type:04X}", "exi": event.data.hex().upper(),
               "message": event.message}
    if extra:
        payload.update(extra)
    recorder.emit(Layer.V2G, event.name, summary, src=src, dst=dst, observer=observer or side, payload=payload,
                  keys=keys_of(session))


def record_undecodable(recorder: Recorder, side: str, event: Undecodable, session: Any, *,
                       observer: str = "") -> None:
    """``side`` received a payload that does not decode."""
    recorder.emit(Layer.V2G, "UndecodableMessage", f"{side}: payload 0x{event.payload_type:04X} does not decode: "
                  f"{event.reason}", src=peer_of(side), dst=side, observer=observer or side,
                  payload={"exi": event.data.hex().upper(), "payload_type": f"0x{event.payload_type:04X}",
                           "reason": event.reason}, keys=keys_of(session))


def record_notice(recorder: Recorder, side: str, notice: Notice, session: Any) -> None:
    recorder.emit(Layer.V2G, notice.name, notice.summary, src=side, observer=side, payload=dict(notice.details),
                  keys=keys_of(session))


def endpoint_key(host: str, port: int) -> str:
    """An SECC's address as a correlation key, the same whoever saw it: ``[address]:port`` with
    the IPv6 address compressed and without its zone (SDP names the address, the EV connects to
    it with its interface's zone, the SECC sees it on its own)."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        bare = ipaddress.ip_address(bare).compressed
    except ValueError:
        pass
    return f"[{bare}]:{port}"


def record(recorder: Recorder, side: str, name: str, summary: str, session: Any = None, *,
           payload: Any = None, layer: Layer = Layer.V2G, peer: bool = False,
           keys: Mapping[str, Any] | None = None) -> None:
    keys = {**(keys_of(session) if session is not None else {}), **(keys or {})}
    recorder.emit(layer, name, summary, src=peer_of(side) if peer else side, dst=side if peer else "",
                  observer=side, payload=payload, keys=keys)


def _response_code(message: dict) -> str | None:
    try:
        body = body_of(message)
    except (StopIteration, AttributeError):
        return None
    return body.get("ResponseCode") if isinstance(body, dict) else None
