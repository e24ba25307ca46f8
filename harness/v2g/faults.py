"""Breaking a V2G session on purpose, on either side, and saying so on the timeline.

A test gives the EV emulator or the reference EVSE a :class:`FaultPlan`: a list of
:class:`Fault` s, each naming the message it strikes (by name, and which occurrence) and what it
does to it. The adapters consult the plan for every message they are about to send; each fault
that fires is recorded on Layer.FAULT (what, which message, which side) before it takes effect.

Kinds, on the message about to be sent:

========== ==============================================================================
drop       it is not sent
delay      it is sent ``value`` seconds late (real seconds)
duplicate  it is sent twice
reorder    it is held back and sent after the next message (which, in a request/response
           protocol, usually never comes: the peer's timers have to notice)
corrupt    ``value`` bits of its EXI are flipped (deterministic positions, see :func:`flip_bits`)
replace    a field is replaced: ``value`` = (path, new value), path like
           ``SessionSetupReq.EVCCID`` (below the body) or ``Header.SessionID``; encoded
           unchecked, so out-of-range values go out as they are
code       (SECC) the response carries ResponseCode ``value`` instead
header     the V2GTP header is malformed: ``value`` = dict(version=, inverse=, payload_type=,
           length=) (the fields not given stay right)
close      the TCP connection is closed instead of sending it
skip       (EVCC) the request is not sent; the EV goes on as if it had been answered OK
           (SECC) the answer is the response of the request that would come next
repeat     (EVCC) instead of this request, the previous one is sent again
           (SECC) instead of this response, the previous response is sent again
========== ==============================================================================

Connection faults (``message`` None): ``fail_tls`` makes the side's TLS handshake fail
(the EVSE presents a certificate the EV cannot trust, or its chain with a catalogue fault; the EV
trusts no V2G root).
"""

from __future__ import annotations

import asyncio
import copy
import random
from dataclasses import dataclass, field
from typing import Any

from harness import exi
from harness.trace import Layer, Recorder
from harness.v2g import messages, recording
from harness.v2g.machine import Send
from harness.v2g.v2gtp import encode as v2gtp_encode

KINDS = ("drop", "delay", "duplicate", "reorder", "corrupt", "replace", "code", "header", "close",
         "skip", "repeat", "fail_tls")


@dataclass(frozen=True)
class Fault:
    kind: str
    message: str | None = None
    #: which occurrence of ``message`` it strikes (1: the first); 0 strikes every one
    occurrence: int = 1
    value: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind != "fail_tls" and not self.message:
            raise ValueError(f"a {self.kind} fault names the message it strikes")

    def describe(self) -> str:
        which = "" if self.occurrence == 1 else (" (every one)" if self.occurrence == 0 else f" #{self.occurrence}")
        value = f" {self.value!r}" if self.value is not None else ""
        return f"{self.kind} {self.message or 'connection'}{which}{value}"


# shorthands tests read well with
def drop(message: str, occurrence: int = 1) -> Fault:
    return Fault("drop", message, occurrence)


def delay(message: str, seconds: float, occurrence: int = 1) -> Fault:
    return Fault("delay", message, occurrence, seconds)


def duplicate(message: str, occurrence: int = 1) -> Fault:
    return Fault("duplicate", message, occurrence)


def reorder(message: str, occurrence: int = 1) -> Fault:
    return Fault("reorder", message, occurrence)


def corrupt(message: str, bits: int = 8, occurrence: int = 1) -> Fault:
    return Fault("corrupt", message, occurrence, bits)


def replace(message: str, path: str, value: Any, occurrence: int = 1) -> Fault:
    return Fault("replace", message, occurrence, (path, value))


def response_code(message: str, code: str, occurrence: int = 1) -> Fault:
    return Fault("code", message, occurrence, code)


def bad_header(message: str, occurrence: int = 1, **fields: int) -> Fault:
    return Fault("header", message, occurrence, dict(fields))


def close(message: str, occurrence: int = 1) -> Fault:
    return Fault("close", message, occurrence)


def skip(message: str, occurrence: int = 1) -> Fault:
    return Fault("skip", message, occurrence)


def repeat(message: str, occurrence: int = 1) -> Fault:
    return Fault("repeat", message, occurrence)


def fail_tls(chain_fault: str | None = None, generation: str = "iso2") -> Fault:
    """The TLS handshake is made to fail: the SECC presents a -2 chain from a V2G root no EV
    trusts, or, with ``chain_fault`` (a fault id of harness.pki.faults.CATALOGUE), its own chain
    of ``generation`` ("iso2", "iso20") with that fault."""
    return Fault("fail_tls", value=None if chain_fault is None else (generation, chain_fault))


@dataclass
class Transmit:
    frame: bytes
    name: str
    send: Send | None = None  # the message as the session built it (None: bytes changed)


@dataclass
class Wait:
    seconds: float


@dataclass
class CloseConnection:
    reason: str


Action = Transmit | Wait | CloseConnection


def flip_bits(data: bytes, bits: int, seed: int = 15118) -> bytes:
    """``data`` with ``bits`` bits flipped at positions drawn from a fixed seed (reproducible),
    never in the EXI header byte (so the damage is in the message, not in the stream format)."""
    if len(data) < 2:
        return bytes(b ^ 0xFF for b in data)
    buffer = bytearray(data)
    chooser = random.Random(seed)
    for _ in range(bits):
        position = chooser.randrange(8, len(buffer) * 8)
        buffer[position // 8] ^= 0x80 >> (position % 8)
    return bytes(buffer)


def set_path(message: dict, path: str, value: Any) -> dict:
    """A copy of ``message`` with the field at ``path`` replaced. Paths start below the root's
    body (``SessionSetupReq.EVCCID``) or at the header (``Header.SessionID``)."""
    changed = copy.deepcopy(message)
    root = changed["V2G_Message"] if "V2G_Message" in changed else next(iter(changed.values()))
    parts = path.split(".")
    if parts[0] == "Header":
        node = root["Header"]
        parts = parts[1:]
    else:
        node = root["Body"] if "Body" in root else changed
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is REMOVE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return changed


REMOVE = object()


@dataclass
class FaultPlan:
    """The faults one side will commit, with the bookkeeping of what it has sent."""

    faults: list[Fault] = field(default_factory=list)
    recorder: Recorder | None = None
    side: str = "ev"
    _seen: dict[str, int] = field(default_factory=dict)
    _held: list[Transmit] = field(default_factory=list)
    _previous: Send | None = None
    fired: list[str] = field(default_factory=list)

    def add(self, *faults: Fault) -> "FaultPlan":
        self.faults.extend(faults)
        return self

    def clear(self) -> None:
        self.faults.clear()
        self._seen.clear()
        self._held.clear()
        self._previous = None

    def __bool__(self) -> bool:
        return bool(self.faults)

    def _record(self, fault: Fault, what: str, session: Any = None) -> None:
        self.fired.append(fault.describe())
        if self.recorder is not None:
            keys = {}
            if session is not None:
                keys = recording.keys_of(session)
            self.recorder.emit(Layer.FAULT, f"Fault{fault.kind.capitalize()}", f"{self.side} injects "
                               f"{fault.describe()}: {what}", src=self.side, observer=self.side,
                               payload={"kind": fault.kind, "message": fault.message, "occurrence": fault.occurrence,
                                        "value": fault.value if not callable(fault.value) else repr(fault.value)},
                               keys=keys)

    def tls_fault(self) -> Fault | None:
        found = next((f for f in self.faults if f.kind == "fail_tls"), None)
        if found is not None:
            self._record(found, "the TLS handshake is made to fail")
        return found

    def state_fault(self, name: str, session: Any) -> Fault | None:
        """A skip or repeat fault for the message about to be built (counted with the others)."""
        count = self._seen.get(name, 0) + 1
        for fault in self.faults:
            if fault.kind in ("skip", "repeat") and fault.message == name and fault.occurrence in (0, count):
                self._record(fault, f"{fault.kind} {name}", session)
                return fault
        return None

    def previous(self) -> Send | None:
        return self._previous

    def on_send(self, send: Send, session: Any) -> list[Action]:
        """What to do instead of sending ``send`` as it is."""
        count = self._seen[send.name] = self._seen.get(send.name, 0) + 1
        striking = [f for f in self.faults if f.message == send.name and f.occurrence in (0, count)
                    and f.kind not in ("skip", "repeat", "fail_tls")]
        frame = v2gtp_encode(send.payload_type, send.data)
        actions: list[Action] = []
        transmit = Transmit(frame, send.name, send)
        copies = 1
        for fault in striking:
            if fault.kind == "drop":
                self._record(fault, f"{send.name} not sent", session)
                return self._release(actions)
            if fault.kind == "close":
                self._record(fault, f"connection closed instead of sending {send.name}", session)
                return [CloseConnection(f"fault: close before {send.name}")]
            if fault.kind == "delay":
                self._record(fault, f"{send.name} held {fault.value} s", session)
                actions.append(Wait(float(fault.value)))
            elif fault.kind == "duplicate":
                self._record(fault, f"{send.name} sent twice", session)
                copies = 2
            elif fault.kind == "corrupt":
                data = flip_bits(send.data, int(fault.value or 8))
                self._record(fault, f"{fault.value or 8} bits of {send.name}'s EXI flipped", session)
                transmit = Transmit(v2gtp_encode(send.payload_type, data), send.name)
            elif fault.kind in ("replace", "code"):
                path, value = (f"{send.name}.ResponseCode", fault.value) if fault.kind == "code" else fault.value
                family = session.family or "iso2"
                changed = set_path(send.message, path, value)
                data = exi.encode_unchecked(changed, messages.schema_of(family, send.name))
                self._record(fault, f"{send.name}: {path} = {value!r}", session)
                transmit = Transmit(v2gtp_encode(send.payload_type, data), send.name)
            elif fault.kind == "header":
                fields = dict(fault.value or {})
                frame = v2gtp_encode(fields.get("payload_type", send.payload_type), send.data,
                                     version=fields.get("version", 0x01), inverse=fields.get("inverse"),
                                     length=fields.get("length"))
                self._record(fault, f"{send.name} with V2GTP header {frame[:8].hex(' ').upper()}", session)
                transmit = Transmit(frame, send.name)
            elif fault.kind == "reorder":
                self._record(fault, f"{send.name} held back until the next message", session)
                self._held.append(transmit)
                self._previous = send
                return actions
        actions.extend([transmit] * copies)
        self._previous = send
        return self._release(actions)

    def _release(self, actions: list[Action]) -> list[Action]:
        if self._held and any(isinstance(a, Transmit) for a in actions):
            actions.extend(self._held)
            self._held.clear()
        return actions


async def transmit(send: Send, plan: FaultPlan | None, session: Any, connection: Any, recorder: Recorder,
                   side: str) -> bool:
    """Put ``send`` on ``connection`` as ``plan`` says (as it is when there is no plan): wait,
    send altered or not at all, or close the connection. Every step is on the timeline.
    Returns True when the connection was closed on purpose."""
    actions = plan.on_send(send, session) if plan else [Transmit(v2gtp_encode(send.payload_type, send.data),
                                                                 send.name, send)]
    for action in actions:
        if isinstance(action, Wait):
            await asyncio.sleep(action.seconds)
        elif isinstance(action, CloseConnection):
            recording.record(recorder, side, "TcpClosedByFault", action.reason, session)
            return True
        elif isinstance(action, Transmit):
            await connection.send_raw(action.frame)
            if action.send is not None:
                recording.record_message(recorder, side, action.send, session)
            else:
                recording.record(recorder, side, "FaultyMessageSent", f"{action.name} sent altered",
                                 session, payload={"frame": action.frame.hex().upper()})
    return False

