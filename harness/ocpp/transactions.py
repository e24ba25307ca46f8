"""Transactions as the CSMS saw them, read from the timeline, in one shape for every version.

2.x reports a transaction as TransactionEvent Started / Updated / Ended under the station's own
transactionId; 1.6 as StartTransaction (whose CALLRESULT carries the CSMS's transactionId),
MeterValues and StopTransaction. Suites and reports look at :class:`TransactionView` and need not
care which.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.trace import Event, Layer, Recorder

#: the black-box view: what the harness's CSMS received
OBSERVER = "csms"


@dataclass(frozen=True)
class SampledValue:
    timestamp: str
    measurand: str
    value: float
    unit: str
    context: str
    phase: str | None = None


@dataclass
class TransactionView:
    station_id: str
    transaction_id: str
    evse_id: int | None = None
    id_token: str | None = None
    remote_start_id: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    stopped_reason: str | None = None
    #: the CALLs that make up the transaction, in the order the CSMS received them
    messages: list[Event] = field(default_factory=list)
    samples: list[SampledValue] = field(default_factory=list)
    seq_nos: list[int] = field(default_factory=list)
    offline_flags: list[bool] = field(default_factory=list)
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    #: when each start of this transactionId was reported (more than one: the id was reused)
    starts: list[str | None] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def seq_problems(self) -> list[str]:
        """What is wrong with the 2.x seqNo sequence: numbers lost, or out of order. A number seen
        twice is a retransmission (the answer to the first copy was lost) and is allowed."""
        problems = []
        if self.seq_nos:
            lost = sorted(set(range(max(self.seq_nos) + 1)) - set(self.seq_nos))
            if lost:
                problems.append(f"seqNo {lost} never arrived")
            if any(b < a for a, b in zip(self.seq_nos, self.seq_nos[1:])):
                problems.append(f"seqNo out of order: {self.seq_nos}")
        return problems

    def values(self, measurand: str = "Energy.Active.Import.Register") -> list[SampledValue]:
        """The readings of one measurand in the order they were taken: a 1.6 StopTransaction
        carries the transaction's first reading too, after the MeterValues sent meanwhile."""
        chosen = [s for s in self.samples if s.measurand == measurand]
        order = sorted(range(len(chosen)), key=lambda i: _taken_at(chosen[i].timestamp, i))
        return [chosen[i] for i in order]

    def energy_wh(self, measurand: str = "Energy.Active.Import.Register") -> float | None:
        """Energy over the transaction from its register readings (or meterStart/meterStop)."""
        readings = [s.value for s in self.values(measurand)]
        if measurand == "Energy.Active.Import.Register":
            if self.meter_start_wh is not None:
                readings.insert(0, self.meter_start_wh)
            if self.meter_stop_wh is not None:
                readings.append(self.meter_stop_wh)
        if len(readings) < 2:
            return None
        return readings[-1] - readings[0]


def transactions(recorder: Recorder, *, station_id: str | None = None, since: float | None = None,
                 observer: str = OBSERVER) -> list[TransactionView]:
    """Every transaction seen, in the order each started."""
    keys = {"station_id": station_id} if station_id else None
    return transactions_of(recorder.select(layer=Layer.OCPP, observer=observer, since=since, keys=keys),
                           observer=observer)


def transactions_of(events: Iterable[Event], *, observer: str = OBSERVER) -> list[TransactionView]:
    """:func:`transactions` of a list of events (a trace file read back, a case's part of one)."""
    calls: list[tuple[Event, dict[str, Any]]] = []
    for event in events:
        if event.layer is not Layer.OCPP or event.observer != observer:
            continue
        payload = event.payload  # parsed once per event
        if isinstance(payload, dict) and payload.get("type") in ("CALL", "CALLRESULT") and "violation" not in payload:
            calls.append((event, payload))
    found: dict[tuple[str, str], TransactionView] = {}
    pending_starts: dict[str, tuple[Event, dict[str, Any]]] = {}  # 1.6: message id -> StartTransaction

    def view(station: str, transaction_id: str) -> TransactionView:
        key = (station, transaction_id)
        if key not in found:
            found[key] = TransactionView(station, transaction_id)
        return found[key]

    for event, payload in calls:
        body = payload.get("payload") or {}
        station = event.keys.get("station_id", "")
        action = payload.get("action")
        if payload["type"] == "CALL" and action == "TransactionEvent":
            tx = view(station, str(body["transactionInfo"]["transactionId"]))
            _add_transaction_event(tx, event, body)
        elif payload["type"] == "CALL" and action == "StartTransaction":
            pending_starts[payload["message_id"]] = (event, body)
        elif payload["type"] == "CALLRESULT" and action == "StartTransaction":
            start = pending_starts.pop(payload["message_id"], None)
            if start is None or "transactionId" not in body:
                continue
            start_event, request = start
            tx = view(station, str(body["transactionId"]))
            tx.messages.append(start_event)
            tx.evse_id = request.get("connectorId")
            tx.id_token = request.get("idTag")
            tx.started_at = request.get("timestamp")
            tx.starts.append(tx.started_at)
            tx.meter_start_wh = float(request.get("meterStart", 0))
        elif payload["type"] == "CALL" and action == "MeterValues" and "transactionId" in body:
            tx = view(station, str(body["transactionId"]))
            tx.messages.append(event)
            tx.samples.extend(_samples(body.get("meterValue", [])))
        elif payload["type"] == "CALL" and action == "StopTransaction":
            tx = view(station, str(body["transactionId"]))
            tx.messages.append(event)
            tx.ended_at = body.get("timestamp")
            tx.stopped_reason = body.get("reason", "Local")
            tx.meter_stop_wh = float(body["meterStop"])
            tx.samples.extend(_samples(body.get("transactionData", [])))
    return sorted(found.values(), key=lambda tx: tx.messages[0].seq if tx.messages else 0)


def _add_transaction_event(tx: TransactionView, event: Event, body: dict[str, Any]) -> None:
    tx.messages.append(event)
    seq_no = body.get("seqNo")
    # required by the schema; absent (or not a number) only when requests were not validated
    if isinstance(seq_no, int):
        tx.seq_nos.append(seq_no)
    tx.offline_flags.append(bool(body.get("offline", False)))
    info = body.get("transactionInfo", {})
    if body.get("evse"):
        tx.evse_id = body["evse"].get("id")
    if body.get("idToken"):
        tx.id_token = body["idToken"].get("idToken")
    if info.get("remoteStartId") is not None:
        tx.remote_start_id = info["remoteStartId"]
    if body.get("eventType") == "Started":
        tx.started_at = body.get("timestamp")
        if tx.started_at not in tx.starts:  # a retransmission repeats its timestamp
            tx.starts.append(tx.started_at)
    elif body.get("eventType") == "Ended":
        tx.ended_at = body.get("timestamp")
        tx.stopped_reason = info.get("stoppedReason", "Local")  # E06: absent means Local
    tx.samples.extend(_samples(body.get("meterValue", [])))


def _taken_at(timestamp: str, position: int) -> tuple[float, int]:
    """Sort key for a reading: its timestamp, then its order of arrival. A timestamp that cannot
    be read sorts last; the raw message is still on the timeline."""
    try:
        return datetime.datetime.fromisoformat(timestamp).timestamp(), position
    except (TypeError, ValueError):
        return float("inf"), position


def _samples(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    samples = []
    for meter_value in meter_values:
        for sampled in meter_value.get("sampledValue", []):
            unit = sampled.get("unit") or (sampled.get("unitOfMeasure") or {}).get("unit") or "Wh"
            multiplier = (sampled.get("unitOfMeasure") or {}).get("multiplier", 0)
            try:
                value = float(sampled["value"]) * (10 ** multiplier)
            except (TypeError, ValueError):
                continue  # signed/encoded 1.6 values are not numbers; kept in the raw event
            samples.append(SampledValue(meter_value.get("timestamp", ""),
                                        sampled.get("measurand", "Energy.Active.Import.Register"), value, unit,
                                        sampled.get("context", "Sample.Periodic"), sampled.get("phase")))
    return samples
