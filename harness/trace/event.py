"""Timeline events and their JSON form."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
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
    """

    seq: int
    mono: float
    wall: float
    layer: Layer
    name: str
    summary: str
    src: str = ""
    dst: str = ""
    payload: Any = None
    keys: Mapping[str, str] = field(default_factory=dict)
    test: str = ""
    observer: str = ""

    @property
    def direction(self) -> str:
        return f"{self.src}->{self.dst}" if self.dst else self.src

    def to_json(self) -> str:
        return json.dumps(
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
                "payload": self.payload,
            },
            default=_json_default,
            ensure_ascii=False,
            separators=(",", ":"),
        )

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
            payload=raw.get("payload"),
            keys=raw.get("keys", {}),
            test=raw.get("test", ""),
            observer=raw.get("observer", ""),
        )


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
