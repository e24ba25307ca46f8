"""V2G messages in their JSON form, whatever the protocol: names, headers, bodies, schemas.

DIN 70121 and ISO 15118-2 wrap every body in ``V2G_Message`` (Header, Body); ISO 15118-20
messages are root elements of their own with the Header inside; the supportedAppProtocol
handshake has no header. These helpers hide the difference so the session machines can talk
about "the SessionSetupRes and its SessionID".
"""

from __future__ import annotations

from harness import exi
from harness.v2g.v2gtp import SCHEMA_PAYLOAD_TYPES, PayloadType

FAMILIES = ("din", "iso2", "iso20")

#: the SessionID an EVCC sends before it has one: DIN and -2 as the vectors' sessions do (one
#: zero byte), -20 with its fixed 8 bytes
NO_SESSION = {"din": "00", "iso2": "00", "iso20": "0000000000000000"}


def is_zero_session(session_id: str) -> bool:
    return not session_id or set(session_id) <= {"0"}


def schema_of(family: str, name: str) -> str:
    """The EXI schema a message of ``family`` named ``name`` is encoded with."""
    if name.startswith("supportedAppProtocol"):
        return "sap"
    if family == "iso20":
        if name.startswith("AC_"):
            return "iso20-ac"
        if name.startswith("DC_"):
            return "iso20-dc"
        return "iso20"
    return family


def payload_type_of(family: str, name: str) -> PayloadType:
    return SCHEMA_PAYLOAD_TYPES[schema_of(family, name)]


def name_of(message: dict) -> str:
    """SessionSetupReq, AC_ChargeLoopRes, supportedAppProtocolReq ..."""
    if "V2G_Message" in message:
        body = message["V2G_Message"].get("Body") or {}
        return next(iter(body), "Body")
    return next(iter(message))


def body_of(message: dict) -> dict:
    if "V2G_Message" in message:
        body = message["V2G_Message"].get("Body") or {}
        return next(iter(body.values()), {})
    return next(iter(message.values()))


def header_of(message: dict) -> dict:
    if "V2G_Message" in message:
        return message["V2G_Message"].get("Header") or {}
    root = next(iter(message.values()))
    return root.get("Header") or {} if isinstance(root, dict) else {}


def session_id_of(message: dict) -> str | None:
    return header_of(message).get("SessionID")


def response_name(request: str) -> str:
    if not request.endswith("Req"):
        raise ValueError(f"{request} is not a request")
    return request[:-3] + "Res"


def request_name(response: str) -> str:
    if not response.endswith("Res"):
        raise ValueError(f"{response} is not a response")
    return response[:-3] + "Req"


def wrap(family: str, name: str, body: dict, session_id: str, *, timestamp: int | None = None,
         header_extra: dict | None = None) -> dict:
    """The whole message for a body: V2G_Message for DIN/-2, the -20 root with its Header."""
    if family == "iso20":
        header = {"SessionID": session_id, "TimeStamp": int(timestamp or 0), **(header_extra or {})}
        return {name: {"Header": header, **body}}
    header = {"SessionID": session_id, **(header_extra or {})}
    return {"V2G_Message": {"Header": header, "Body": {name: body}}}


def response_code_of(message: dict) -> str | None:
    return body_of(message).get("ResponseCode")


def encode(family: str, message: dict) -> tuple[str, bytes]:
    """(schema, EXI bytes) of a message; raises harness.exi.EncodeError."""
    schema = schema_of(family, name_of(message))
    return schema, exi.encode(message, schema)


def decode(family: str | None, payload_type: int, data: bytes) -> tuple[str, dict]:
    """(schema, message) for a payload that arrived with ``payload_type``: before the
    handshake (``family`` None) only supportedAppProtocol; raises harness.exi.DecodeError."""
    schema = schema_for_payload(family, payload_type)
    return schema, exi.decode(data, schema)


def schema_for_payload(family: str | None, payload_type: int) -> str:
    if family is None or payload_type == PayloadType.EXI and family == "iso20":
        if payload_type != PayloadType.EXI:
            raise exi.DecodeError(f"payload type 0x{payload_type:04X} before the handshake")
        return "sap"
    if family in ("din", "iso2"):
        if payload_type != PayloadType.EXI:
            raise exi.DecodeError(f"payload type 0x{payload_type:04X} in a {family} session")
        return family
    for schema, kind in SCHEMA_PAYLOAD_TYPES.items():
        if kind == payload_type and schema.startswith("iso20"):
            return schema
    raise exi.DecodeError(f"payload type 0x{payload_type:04X} in an ISO 15118-20 session")
