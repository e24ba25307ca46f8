"""One plug-in as the harness's SECC saw it: what an EV did, judged from the charger's side only.

The EV-side suites (catalogue suites with ``dut: ev``) judge an EV by what reached the reference
EVSE's SECC: its TLS handshakes, the V2G requests it sent, when and how it closed each
connection. They never read the EV's own timeline, so the same judgement holds for the
harness's EV emulator and for an EV under test the harness knows nothing of (``ev: {kind:
lab}``).

:class:`SeccView` is a pure reading of the timeline (observer ``evse``, layers V2G and FAULT)
between two marks; :func:`collect` waits until the SECC has finished what it saw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness.trace import Event, Layer, Recorder
from harness.trace.recorder import TraceTimeout

#: what ends one EV connection at the SECC: the session machine ended, or TLS never came up
ENDINGS = ("SessionEnded", "TlsHandshakeFailed")


@dataclass
class Connection:
    """One TCP or TLS connection the EV opened to the SECC."""

    #: TcpAccepted (TLS up, or plain TCP), or the TlsHandshakeFailed that ended it before that
    opened: Event
    events: list[Event] = field(default_factory=list)
    ended: Event | None = None

    @property
    def tls_refused(self) -> bool:
        return self.opened.name == "TlsHandshakeFailed"

    @property
    def tls(self) -> str | None:
        """The TLS version the connection ran (None: plain TCP, or TLS never came up)."""
        payload = self.opened.payload if isinstance(self.opened.payload, dict) else {}
        return payload.get("tls") if not self.tls_refused else None

    def requests(self) -> list[Event]:
        """The V2G messages the EV sent on this connection, oldest first."""
        return [e for e in self.events if e.layer is Layer.V2G and e.src == "ev" and _message(e) is not None]

    def responses(self) -> list[Event]:
        return [e for e in self.events if e.layer is Layer.V2G and e.src == "evse" and _message(e) is not None]

    def request_names(self) -> list[str]:
        return [e.name for e in self.requests()]

    def after(self, name: str) -> list[str] | None:
        """The EV's requests after its first ``name`` (None: it never sent ``name``)."""
        names = self.request_names()
        return names[names.index(name) + 1:] if name in names else None

    @property
    def closed(self) -> Event | None:
        """How the connection went down: the SECC's TcpClosed (the EV closed it, or the transport
        broke) or, when the SECC closed it itself, None."""
        return next((e for e in self.events if e.name == "TcpClosed"), None)

    @property
    def closed_by_ev(self) -> bool:
        closed = self.closed
        payload = closed.payload if closed is not None and isinstance(closed.payload, dict) else {}
        return closed is not None and str(payload.get("reason", "")).startswith("closed by the peer")

    @property
    def outcome(self) -> dict[str, Any]:
        """The SECC's SessionEnded payload (ok, reason, protocol, session_id, response_code)."""
        if self.ended is None or self.ended.name != "SessionEnded" or not isinstance(self.ended.payload, dict):
            return {}
        return self.ended.payload

    def describe(self) -> str:
        if self.tls_refused:
            payload = self.opened.payload if isinstance(self.opened.payload, dict) else {}
            return f"TLS refused ({payload.get('reason', '?')})"
        names = self.request_names()
        how = ("the EV closed it" if self.closed_by_ev else
               f"it ended: {self.outcome.get('reason', 'still open')}")
        return (f"{'TLS ' + self.tls if self.tls else 'TCP'}, {len(names)} request(s)"
                + (f" ({names[0]} .. {names[-1]})" if names else "") + f"; {how}")


@dataclass
class SeccView:
    """What the SECC saw from ``since`` on: the EV's connections in order, and the faults the
    SECC committed (FAULT events of the reference EVSE)."""

    events: list[Event]

    @classmethod
    def of(cls, recorder: Recorder, since: float, until: float | None = None) -> "SeccView":
        return cls([e for e in recorder.select(observer="evse", since=since, until=until)
                    if e.layer in (Layer.V2G, Layer.FAULT, Layer.SDP)])

    @cached_property
    def connections(self) -> list[Connection]:
        found: list[Connection] = []
        current: Connection | None = None
        for event in self.events:
            if event.layer is not Layer.V2G:
                continue
            if event.name == "TcpAccepted" or (event.name == "TlsHandshakeFailed" and current is None):
                current = Connection(event)
                found.append(current)
                if event.name == "TlsHandshakeFailed":
                    current.ended, current = event, None
                continue
            if event.name == "TlsHandshakeFailed":  # a second connection refused while one is open
                found.append(Connection(event, ended=event))
                continue
            if current is None:
                continue
            current.events.append(event)
            if event.name == "SessionEnded":
                current.ended, current = event, None
        return found

    @property
    def first(self) -> Connection | None:
        connections = self.connections
        return connections[0] if connections else None

    @property
    def sdp_requests(self) -> list[Event]:
        return [e for e in self.events if e.layer is Layer.SDP and e.name == "SdpRequest"]

    def faults(self, kind: str | None = None) -> list[Event]:
        """The faults the SECC committed (``kind``: "drop", "code", "corrupt", ...)."""
        return [e for e in self.events if e.layer is Layer.FAULT and e.src == "evse"
                and (kind is None or (isinstance(e.payload, dict) and e.payload.get("kind") == kind))]

    @property
    def finished(self) -> bool:
        """Every connection the EV opened has ended at the SECC, and there was one."""
        connections = self.connections
        return bool(connections) and all(c.ended is not None for c in connections)

    def describe(self) -> str:
        connections = self.connections
        if not connections:
            sdp = len(self.sdp_requests)
            return f"no connection to the SECC ({sdp} SDP request(s))"
        return "; ".join(f"connection {n}: {c.describe()}" for n, c in enumerate(connections, 1))


def collect(recorder: Recorder, since: float, *, timeout: float, settle: float = 0.0) -> SeccView:
    """The SECC's view from ``since`` once every connection the EV opened has ended there (or
    ``timeout`` seconds have passed), plus ``settle`` seconds in which the EV may still act (a
    retry, a late close)."""
    deadline = time.monotonic() + timeout
    view = SeccView.of(recorder, since)
    while not view.finished and time.monotonic() < deadline:
        seen = max((e.mono for e in view.events if e.name in ENDINGS), default=since)
        try:
            recorder.wait_for(max(0.0, deadline - time.monotonic()), observer="evse", name=ENDINGS, since=since,
                              where=lambda e, seen=seen: e.mono > seen)
        except TraceTimeout:
            break
        view = SeccView.of(recorder, since)
    if settle > 0:
        time.sleep(settle)
        view = SeccView.of(recorder, since)
    return view


def _message(event: Event) -> Any:
    return event.payload.get("message") if isinstance(event.payload, dict) else None
