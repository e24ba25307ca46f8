"""supportedAppProtocol: how EVCC and SECC agree on the application protocol (ISO 15118-2 8.2,
[V2G2-165] .. [V2G2-168]; the same handshake opens DIN 70121 and ISO 15118-20 sessions).

The EVCC offers up to 20 protocols, each with a SchemaID it chooses and a Priority (1 = most
wanted); the SECC picks the most wanted one it supports and answers with its SchemaID:
OK_SuccessfulNegotiation when the version matches exactly,
OK_SuccessfulNegotiationWithMinorDeviation when only the major version matches, and
Failed_NoNegotiation (no SchemaID) when nothing matches, after which the SECC closes the
connection. ISO 15118-20 is only selected over TLS 1.3 ([V2G20-2356] as public
implementations quote it), which :func:`negotiate` enforces when told the session is not TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

OK = "OK_SuccessfulNegotiation"
OK_MINOR_DEVIATION = "OK_SuccessfulNegotiationWithMinorDeviation"
FAILED = "Failed_NoNegotiation"


@dataclass(frozen=True)
class AppProtocol:
    """An application protocol as the handshake names it. ``key`` is the harness's name."""

    key: str
    namespace: str
    major: int
    minor: int
    #: the EXI schemas its messages use (the first is the one SessionSetup is in)
    schemas: tuple[str, ...]
    #: ISO 15118-20 runs over TLS 1.3 only
    tls_required: bool = False

    @property
    def family(self) -> str:
        """din, iso2 or iso20: which session machine speaks it."""
        return "iso20" if self.key.startswith("iso20") else self.key


DIN = AppProtocol("din", "urn:din:70121:2012:MsgDef", 2, 0, ("din",))
ISO2 = AppProtocol("iso2", "urn:iso:15118:2:2013:MsgDef", 2, 0, ("iso2",))
ISO20_AC = AppProtocol("iso20-ac", "urn:iso:std:iso:15118:-20:AC", 1, 0, ("iso20", "iso20-ac"),
                       tls_required=True)
ISO20_DC = AppProtocol("iso20-dc", "urn:iso:std:iso:15118:-20:DC", 1, 0, ("iso20", "iso20-dc"),
                       tls_required=True)

#: every protocol the harness speaks, by key
PROTOCOLS: dict[str, AppProtocol] = {p.key: p for p in (DIN, ISO2, ISO20_AC, ISO20_DC)}


class NegotiationError(Exception):
    """A handshake that cannot go on (for the EVCC: an answer it cannot use)."""


def pki_generation(key: str) -> str:
    """The Plug & Charge and TLS generation of a protocol key (or a family): "iso20" for the -20
    protocols, "iso2" for -2 and for DIN 70121, which has no PKI of its own."""
    return "iso20" if key.startswith("iso20") else "iso2"


def protocol(key: str) -> AppProtocol:
    try:
        return PROTOCOLS[key]
    except KeyError:
        raise ValueError(f"unknown application protocol {key!r} (known: {', '.join(PROTOCOLS)})") from None


@dataclass(frozen=True)
class Offer:
    """What the EVCC offered: the protocols with the SchemaID it gave each."""

    entries: tuple[tuple[AppProtocol, int, int], ...]  # (protocol, SchemaID, Priority)

    def by_schema_id(self, schema_id: int) -> AppProtocol | None:
        return next((p for p, sid, _ in self.entries if sid == schema_id), None)


def offer(protocols: Sequence[AppProtocol | str]) -> Offer:
    """An offer in order of preference: Priority 1 for the first; SchemaIDs count from 1."""
    chosen = [protocol(p) if isinstance(p, str) else p for p in protocols]
    if not 1 <= len(chosen) <= 20:
        raise ValueError("an EVCC offers 1 to 20 protocols ([V2G2-167])")
    return Offer(tuple((p, index + 1, index + 1) for index, p in enumerate(chosen)))


def request(offered: Offer) -> dict:
    """supportedAppProtocolReq (JSON form)."""
    return {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": p.namespace, "VersionNumberMajor": p.major, "VersionNumberMinor": p.minor,
         "SchemaID": schema_id, "Priority": priority}
        for p, schema_id, priority in offered.entries]}}


@dataclass(frozen=True)
class Negotiation:
    response: dict
    chosen: AppProtocol | None
    schema_id: int | None
    why: str

    @property
    def ok(self) -> bool:
        return self.chosen is not None


def negotiate(message: dict, supported: Iterable[AppProtocol], *, tls13: bool = True) -> Negotiation:
    """The SECC's choice for a supportedAppProtocolReq (JSON form)."""
    supported = list(supported)
    entries = sorted(message["supportedAppProtocolReq"]["AppProtocol"], key=lambda e: e["Priority"])
    skipped: list[str] = []
    for entry in entries:
        for candidate in supported:
            if entry["ProtocolNamespace"] != candidate.namespace or entry["VersionNumberMajor"] != candidate.major:
                continue
            if candidate.tls_required and not tls13:
                skipped.append(f"{candidate.key} needs TLS 1.3")
                continue
            code = OK if entry["VersionNumberMinor"] == candidate.minor else OK_MINOR_DEVIATION
            return Negotiation({"supportedAppProtocolRes": {"ResponseCode": code, "SchemaID": entry["SchemaID"]}},
                               candidate, entry["SchemaID"],
                               f"{candidate.key} (Priority {entry['Priority']}, SchemaID {entry['SchemaID']})")
    offered = ", ".join(f"{e['ProtocolNamespace']} {e['VersionNumberMajor']}.{e['VersionNumberMinor']}"
                        for e in entries)
    why = f"none of the offered protocols ({offered}) is supported" + (f"; {'; '.join(skipped)}" if skipped else "")
    return Negotiation({"supportedAppProtocolRes": {"ResponseCode": FAILED}}, None, None, why)


def accepted(message: dict, offered: Offer) -> AppProtocol:
    """The protocol an SECC's supportedAppProtocolRes selected; NegotiationError if none or if it
    names a SchemaID that was not offered."""
    body = message["supportedAppProtocolRes"]
    code = body["ResponseCode"]
    if code == FAILED:
        raise NegotiationError("the SECC supports none of the offered protocols (Failed_NoNegotiation)")
    schema_id = body.get("SchemaID")
    chosen = offered.by_schema_id(schema_id) if schema_id is not None else None
    if chosen is None:
        raise NegotiationError(f"{code} with SchemaID {schema_id}, which was not offered")
    return chosen
