"""Timeline events and their JSON form."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping


class Layer(enum.StrEnum):
    """Where in the stack an event happened."""

    OCPP = "ocpp"
    V2G = "v2g"
    SLAC = "slac"
    SDP = "sdp"
    PILOT = "pilot"
    METER = "meter"
    GRID = "grid"
    RIG = "rig"
    FAULT = "fault"
    VERDICT = "verdict"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as the timeline keeps it.

    ``src`` and ``dst`` name the participants a message travelled between (``evse`` -> ``csms``,
    ``ev`` -> ``evse``); events that are not messages (a meter sample, a rig step) leave ``dst``
    empty. ``observer`` is who saw it: on an emulated rig both ends of a connection are the
    harness's, so the same frame is recorded once as sent and once as received; the black-box
    view of a DUT is what the harness's own side (``csms``, ``ev``) observed. ``keys`` carries the
    correlation keys that tie layers together.

    The payload is kept as its JSON text and parsed when asked for: a long run holds hundreds of
    thousands of events, and as text they cost the garbage collector nothing. It also means the
    payload a query sees is exactly what trace.jsonl holds.
    """

    seq: int
    mono: float
    wall: float
    layer: Layer
    name: str
    summary: str
    src: str = ""
    dst: str = ""
    payload_json: str = "null"
    keys: Mapping[str, str] = field(default_factory=dict)
    test: str = ""
    observer: str = ""

    @property
    def payload(self) -> Any:
        """The payload, parsed afresh on every access (callers may change what they get)."""
        return json.loads(self.payload_json)

    @property
    def direction(self) -> str:
        return f"{self.src}->{self.dst}" if self.dst else self.src

    def to_json(self) -> str:
        head = json.dumps(
            {
                "seq": self.seq,
                "mono": round(self.mono, 6),
                "wall": wall_iso(self.wall),
                "layer": self.layer.value,
                "name": self.name,
                "src": self.src,
                "dst": self.dst,
                "observer": self.observer,
                "summary": self.summary,
                "keys": dict(self.keys),
                "test": self.test,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return f'{head[:-1]},"payload":{self.payload_json}}}'

    @classmethod
    def from_json(cls, line: str) -> "Event":
        raw = json.loads(line)
        return cls(
            seq=raw["seq"],
            mono=raw["mono"],
            wall=_dt.datetime.fromisoformat(raw["wall"]).timestamp(),
            layer=Layer(raw["layer"]),
            name=raw["name"],
            summary=raw["summary"],
            src=raw.get("src", ""),
            dst=raw.get("dst", ""),
            payload_json=payload_text(raw.get("payload")),
            keys=raw.get("keys", {}),
            test=raw.get("test", ""),
            observer=raw.get("observer", ""),
        )


#: the most JSON text one event's payload keeps; a larger one (a 4 MB frame, a 65 kB datagram) is
#: kept as its size, digest and first part (the whole bytes stay in a capture, when one is taken)
MAX_PAYLOAD_TEXT = 64 * 1024
#: how much of an oversized payload's text the event keeps
TRUNCATED_HEAD = 4 * 1024


def payload_text(payload: Any) -> str:
    """The JSON text of a payload: bytes as hex, dataclasses and enums as values; at most
    :data:`MAX_PAYLOAD_TEXT` characters (see there)."""
    text = json.dumps(payload, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= MAX_PAYLOAD_TEXT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return json.dumps({"truncated": True, "size": len(text), "sha256": digest, "head": text[:TRUNCATED_HEAD]},
                      ensure_ascii=False, separators=(",", ":"))


def wall_iso(wall: float) -> str:
    return _dt.datetime.fromtimestamp(wall, _dt.timezone.utc).isoformat(timespec="microseconds")


def _json_default(value: Any) -> Any:
    """JSON for what the layers put in payloads: bytes as hex, dataclasses and enums as values."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    # Anything else is kept as its repr rather than lost: evidence must never be dropped.
    return {"repr": repr(value)}
