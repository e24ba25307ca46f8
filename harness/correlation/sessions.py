"""Charging sessions joined across protocols, from what the observers around the device under test
saw: SLAC, SDP and ISO 15118 as the EV saw them, OCPP as the CSMS saw it. Nothing here asks the
reference EVSE, so a lab charger's sessions join the same way.

The keys and how they join (each hop named in :attr:`ChargingSession.joins`):

- SLAC to ISO 15118: the EV modem's MAC that SLAC matched with (``ev_mac``) is the EVCCID of a DIN
  70121 or ISO 15118-2 session ([V2G2-879]); an ISO 15118-20 EVCCID is the VIN, so there the
  session is the first one after the match ("by time").
- SDP to ISO 15118: the SECC address SDP announced is the one the EV connected to (``secc``).
- ISO 15118 to OCPP: the session and the transaction ran at the same time (the longest together
  wins: a Plug & Charge transaction starts within its session); with Plug & Charge, the
  eMAID the EV presented is also the transaction's idToken (``idToken = eMAID``), otherwise time
  alone joins them (``by time``).

What does not join, or joins wrongly, is a finding (:attr:`ChargingSession.problems`): an EVCCID
that changes within a session, a transaction whose idToken is not the eMAID the EV presented, a
transactionId started more than once, meter values the station dated outside its transaction.
Two ISO 15118 sessions in one transaction (a pause and resume) and a transaction without an ISO
15118 session (basic charging has none) are notes.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from harness.ocpp.transactions import TransactionView, transactions_of
from harness.trace import Event, Layer
from harness.v2g.messages import is_zero_session
from harness.v2g.vehicle import mac_evccid

#: how far a station may date a meter value outside its transaction (its clock's resolution)
METER_SLACK_S = 1.0


def mac(value: str | None) -> str | None:
    """A MAC address as the EVCCID writes it (12 upper-case hex digits), however it was written
    (None if it is none)."""
    try:
        return mac_evccid(value) if value else None
    except ValueError:
        return None


@dataclass
class SlacMatch:
    run_id: str | None
    ev_mac: str | None
    evse_mac: str | None
    at: float


@dataclass
class SdpExchange:
    secc: str
    at: float


@dataclass
class V2gSession:
    session_id: str
    start: float
    end: float
    protocol: str | None = None
    evccids: list[str] = field(default_factory=list)
    evseid: str | None = None
    emaid: str | None = None
    secc: str | None = None
    messages: int = 0


@dataclass
class ChargingSession:
    """One charging session across the protocols, with how each hop joined."""

    v2g: V2gSession | None = None
    slac: SlacMatch | None = None
    sdp: SdpExchange | None = None
    transaction: TransactionView | None = None
    joins: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        v2g, tx = self.v2g, self.transaction
        return {
            "slac": None if self.slac is None else {"run_id": self.slac.run_id, "ev_mac": self.slac.ev_mac,
                                                     "evse_mac": self.slac.evse_mac},
            "sdp": None if self.sdp is None else {"secc": self.sdp.secc},
            "iso15118": None if v2g is None else {
                "session_id": v2g.session_id, "protocol": v2g.protocol, "evccid": v2g.evccids[-1] if v2g.evccids
                else None, "evseid": v2g.evseid, "emaid": v2g.emaid, "secc": v2g.secc, "messages": v2g.messages},
            "ocpp": None if tx is None else {"station_id": tx.station_id, "transaction_id": tx.transaction_id,
                                             "evse_id": tx.evse_id, "id_token": tx.id_token,
                                             "stopped_reason": tx.stopped_reason},
            "joins": dict(self.joins), "problems": list(self.problems), "notes": list(self.notes)}

    def window(self) -> tuple[float, float]:
        """From the first to the last moment any of its parts was seen (timeline clock)."""
        moments = [m for m in (self.slac.at if self.slac else None, self.sdp.at if self.sdp else None)
                   if m is not None]
        if self.v2g is not None:
            moments += [self.v2g.start, self.v2g.end]
        if self.transaction is not None and self.transaction.messages:
            moments += [self.transaction.messages[0].mono, self.transaction.messages[-1].mono]
        return (min(moments), max(moments)) if moments else (0.0, 0.0)

    def describe(self) -> str:
        parts = []
        if self.slac is not None:
            parts.append(f"SLAC run {self.slac.run_id} EV {self.slac.ev_mac}")
        if self.sdp is not None:
            parts.append(f"SDP SECC {self.sdp.secc}")
        if self.v2g is not None:
            v2g = self.v2g
            parts.append(f"ISO 15118 {v2g.protocol or '?'} session {v2g.session_id} EVCCID "
                         f"{v2g.evccids[-1] if v2g.evccids else '?'}" + (f" eMAID {v2g.emaid}" if v2g.emaid else ""))
        if self.transaction is not None:
            tx = self.transaction
            parts.append(f"OCPP {tx.station_id} transaction {tx.transaction_id} (EVSE {tx.evse_id}, idToken "
                         f"{tx.id_token})")
        return " -> ".join(parts) or "(nothing)"


def _v2g_sessions(events: Sequence[Event], observer: str) -> list[V2gSession]:
    found: dict[str, V2gSession] = {}
    pending_secc: str | None = None  # from the connection, before the session had an id
    for event in events:
        if event.layer is not Layer.V2G or event.observer != observer:
            continue
        keys = event.keys
        session_id = keys.get("session_id")
        if not session_id or is_zero_session(session_id):
            pending_secc = keys.get("secc", pending_secc)
            continue
        session = found.get(session_id)
        if session is None:
            session = found[session_id] = V2gSession(session_id, event.mono, event.mono, secc=pending_secc)
            pending_secc = None
        session.end = event.mono
        session.messages += 1
        evccid = keys.get("evccid")
        if evccid and (not session.evccids or session.evccids[-1] != evccid):
            session.evccids.append(evccid)
        session.evseid = keys.get("evseid", session.evseid)
        session.emaid = keys.get("emaid", session.emaid)
        session.secc = session.secc or keys.get("secc")
        if session.protocol is None and isinstance(event.payload, dict):
            session.protocol = event.payload.get("protocol") if event.payload.get("protocol") != "sap" else None
    return sorted(found.values(), key=lambda s: s.start)


def _slac_matches(events: Sequence[Event], observer: str) -> list[SlacMatch]:
    return [SlacMatch(e.keys.get("run_id"), mac(e.keys.get("ev_mac")), mac(e.keys.get("evse_mac")), e.mono)
            for e in events if e.layer is Layer.SLAC and e.observer == observer and e.name == "SlacMatched"]


def _sdp_exchanges(events: Sequence[Event], observer: str) -> list[SdpExchange]:
    return [SdpExchange(e.keys["secc"], e.mono) for e in events
            if e.layer is Layer.SDP and e.observer == observer and e.name == "SdpResponse" and "secc" in e.keys]


def _window(tx: TransactionView) -> tuple[float, float]:
    start = tx.messages[0].mono if tx.messages else float("-inf")
    end = tx.messages[-1].mono if tx.messages and tx.ended else float("inf")
    return start, end


def _overlap(session: V2gSession, tx: TransactionView) -> float:
    """How long (s) a session and a transaction ran together (negative: not at all)."""
    start, end = _window(tx)
    return min(session.end, end) - max(session.start, start)


def _time(value: str | None) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def join(events: Iterable[Event], *, ev_observer: str = "ev", csms_observer: str = "csms") -> list[ChargingSession]:
    """The charging sessions in ``events`` (a timeline, or part of one), each ISO 15118 session
    joined to its SLAC match, SDP exchange and OCPP transaction, and the transactions without one.
    A parallel run's timeline (events keyed ``worker``) is joined rig by rig: its rigs ran side by
    side, and one rig's sessions never belong to another's transactions."""
    timeline = list(events)
    workers = sorted({e.keys["worker"] for e in timeline if "worker" in e.keys})
    if workers:
        return [session for worker in workers
                for session in _join([e for e in timeline if e.keys.get("worker") == worker], ev_observer,
                                     csms_observer)]
    return _join(timeline, ev_observer, csms_observer)


def _join(timeline: list[Event], ev_observer: str, csms_observer: str) -> list[ChargingSession]:
    v2g = _v2g_sessions(timeline, ev_observer)
    slac = _slac_matches(timeline, ev_observer)
    sdp = _sdp_exchanges(timeline, ev_observer)
    txs = transactions_of(timeline, observer=csms_observer)
    sessions: list[ChargingSession] = []
    claimed: dict[str, list[ChargingSession]] = {}
    for session in v2g:
        joined = ChargingSession(v2g=session)
        if len(session.evccids) > 1:
            joined.problems.append(f"the EVCCID changed within ISO 15118 session {session.session_id}: "
                                   f"{' -> '.join(session.evccids)}")
        before = [m for m in slac if m.at <= session.start]
        evccid = mac(session.evccids[-1]) if session.evccids else None
        by_mac = [m for m in before if evccid is not None and m.ev_mac == evccid]
        if by_mac:
            joined.slac, joined.joins["slac"] = by_mac[-1], "ev_mac = EVCCID"
        elif before and (session.protocol or "").startswith("iso20"):
            joined.slac, joined.joins["slac"] = before[-1], "by time (the -20 EVCCID is the VIN)"
        elif before and evccid is not None:
            joined.notes.append(f"EVCCID {evccid} is not the MAC SLAC matched ({before[-1].ev_mac})")
        exchanges = [x for x in sdp if x.at <= session.start and (session.secc is None or x.secc == session.secc)]
        if exchanges:
            joined.sdp = exchanges[-1]
            joined.joins["sdp"] = "secc address" if session.secc else "by time"
        # the transactions that ran while the session ran, the longest together first; an eMAID
        # picks among them (the same contract charges again in later transactions)
        during = sorted((t for t in txs if _overlap(session, t) >= 0.0), key=lambda t: _overlap(session, t))
        by_token = [t for t in during if session.emaid and t.id_token == session.emaid]
        if by_token:
            joined.transaction, joined.joins["ocpp"] = by_token[-1], "idToken = eMAID"
        elif during:
            joined.transaction, joined.joins["ocpp"] = during[-1], "by time"
            if session.emaid and during[-1].id_token != session.emaid:
                joined.problems.append(f"transaction {during[-1].transaction_id} has idToken {during[-1].id_token}; "
                                       f"the EV presented eMAID {session.emaid}")
        if joined.transaction is not None:
            claimed.setdefault(joined.transaction.transaction_id, []).append(joined)
        sessions.append(joined)
    for tx_id, claimants in claimed.items():
        if len(claimants) > 1:
            ids = ", ".join(c.v2g.session_id for c in claimants if c.v2g is not None)
            for claimant in claimants:
                claimant.notes.append(f"{len(claimants)} ISO 15118 sessions ({ids}) lie in transaction {tx_id}")
    for tx in txs:
        if tx.transaction_id not in claimed:
            sessions.append(ChargingSession(transaction=tx, notes=["no ISO 15118 session in it (basic charging, or none was established)"]))
    for joined in sessions:
        if joined.transaction is None:
            continue
        tx_ = joined.transaction
        if len(tx_.starts) > 1:
            joined.problems.append(f"transaction {tx_.transaction_id} was started {len(tx_.starts)} times "
                                   f"({', '.join(str(t) for t in tx_.starts)}): one transactionId names more than "
                                   "one transaction, so its sessions cannot be told apart")
        start, end = _time(tx_.started_at), _time(tx_.ended_at)
        outside = [s for s in tx_.samples if (t := _time(s.timestamp)) is not None
                   and ((start is not None and (start - t).total_seconds() > METER_SLACK_S)
                        or (end is not None and (t - end).total_seconds() > METER_SLACK_S))]
        if outside:
            joined.problems.append(f"transaction {tx_.transaction_id}: {len(outside)} meter value(s) dated outside "
                                   f"it ({outside[0].timestamp}; it ran {tx_.started_at} .. {tx_.ended_at or 'on'})")
    return sessions
