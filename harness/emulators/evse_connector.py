"""The reference EVSE's connectors: what each one is doing, and the state machine that moves it.

Each connector processes its events one at a time in its own task, so the order of what the
station reports always matches the order of what happened. The events (tuples on
:attr:`Connector.events`):

- ``("pilot", old, new)``: the pilot line changed state (the EV plugged in, got ready, left);
- ``("authorized", Authorization, trigger)``: a token was accepted (at the reader, by a remote
  start, by the ISO 15118 side); trigger is 2.x's TriggerReasonEnumType;
- ``("stop", trigger, reason)``: end the transaction (token presented again, remote stop, reset);
- ``("limit",)``: the charging profile limit changed;
- ``("iso15118_failure", Failure)``: the ISO 15118 session failed under the transaction
  (:mod:`harness.ocpp.iso15118_failures`);
- ``("trigger", requested)``: the CSMS asked for a message (TriggerMessage).

The transaction itself (what is reported, the meter values) is
:class:`harness.emulators.evse_transactions.Transactions`; this module decides when one starts
and ends, opens and closes the contactor and reports the connector's status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from harness.emulators.power import PowerFlow
from harness.iec61851.pilot import DIGITAL_COMMUNICATION, NO_PWM, CpState, SimulatedPilot, duty_for_current
from harness.ocpp.dialect import ConnectorState, StationDialect, StationTransaction
from harness.ocpp.endpoint import OcppCallFailed
from harness.ocpp.smart_charging import Limit, discharges
from harness.ocpp.station import StationClient
from harness.ocpp.timing import OcppTimers
from harness.trace import Layer, Recorder

#: the src of what the reference EVSE records
EVSE = "evse"


@dataclass
class Authorization:
    token: str
    source: str  # "local" or "remote"
    remote_start_id: int | None = None
    token_type: str = "ISO14443"


@dataclass
class Connector:
    evse_id: int
    pilot: SimulatedPilot
    line: PowerFlow
    max_current: float
    state: ConnectorState = ConnectorState.AVAILABLE
    authorization: Authorization | None = None
    transaction: StationTransaction | None = None
    #: the charging profiles' limit for this connector now, in A (None: none limits it)
    profile_limit: Callable[["Connector"], Limit | None] | None = None
    #: what the charging profiles allow over the next seconds: (seconds from now, limit) at each change
    profile_ahead: Callable[["Connector", int], list[tuple[float, Limit | None]]] | None = None
    #: RequestStartTransaction's chargingProfile, the TxProfile of the transaction it starts
    start_profile: Any = None
    available: bool = True
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    meter_task: asyncio.Task | None = None
    connection_timer: asyncio.Task | None = None
    #: ISO 15118: 5 % duty (digital communication) instead of the nominal PWM
    digital: bool = False
    #: the EV's state of charge in percent, when it tells it (ISO 15118)
    soc: float | None = None

    @property
    def plugged(self) -> bool:
        return self.pilot.state is not CpState.A

    def offered_current(self) -> float:
        if self.transaction is None or not self.available:
            return 0.0
        limit = self.profile_limit(self) if self.profile_limit is not None else None
        return self.max_current if limit is None else min(self.max_current, limit.amps)

    def energy_allowed(self) -> bool:
        """Whether energy may flow: at least 6 A offered (IEC 61851-1), or, in an ISO 15118
        session, discharge allowed by the charging profiles even where charging is not."""
        if self.offered_current() >= 6.0:
            return True
        if not self.digital or self.transaction is None or not self.available:
            return False
        limit = self.profile_limit(self) if self.profile_limit is not None else None
        return limit is not None and discharges(limit.mode) and limit.discharge_amps != 0.0


def duty(connector: Connector) -> float:
    """The PWM duty cycle the connector shows: 5 % while digital communication is asked for
    (ISO 15118-3), else the current it offers (IEC 61851-1)."""
    if connector.digital:
        return DIGITAL_COMMUNICATION
    return duty_for_current(connector.offered_current()) if connector.transaction is not None else NO_PWM


async def enqueue(connector: Connector, event: tuple[Any, ...]) -> None:
    """Hand the connector an event (see the module docstring)."""
    await connector.events.put(event)


def cancel_task(connector: Connector, attribute: str) -> None:
    """Cancel the connector's ``meter_task`` or ``connection_timer`` (unless it is the caller)."""
    task = getattr(connector, attribute)
    if task is not None and task is not asyncio.current_task():
        task.cancel()
    setattr(connector, attribute, None)


def _pilot_events(connector: Connector) -> Callable[[CpState, CpState], None]:
    """A pilot listener that turns the line's state changes into the connector's events."""

    def changed(old: CpState, new: CpState) -> None:
        connector.events.put_nowait(("pilot", old, new))

    return changed


class StatusReporter:
    """A connector's status, and the StatusNotifications that tell it."""

    def __init__(self, station: StationClient, dialect: StationDialect, connectors: Mapping[int, Connector]) -> None:
        self.station = station
        self.dialect = dialect
        self.connectors = connectors

    async def set_state(self, connector: Connector, state: ConnectorState, *, error_code: str = "NoError") -> None:
        """``error_code``: 1.6 ChargePointErrorCode of the change (2.x has none in its status)."""
        if not connector.available:
            state = ConnectorState.UNAVAILABLE
        changed = state is not connector.state or error_code != "NoError"
        connector.state = state
        if changed:
            await self.report(connector, error_code=error_code)

    async def report(self, connector: Connector, *, error_code: str = "NoError") -> None:
        action, payload = self.dialect.status(connector.evse_id, connector.state, error_code=error_code)
        try:
            await self.station.send(action, payload)
        except OcppCallFailed:
            pass  # offline: the status is reported again when the station is back (on_online)

    async def report_all(self) -> None:
        for connector in self.connectors.values():
            await self.report(connector)


class TransactionSide(Protocol):
    """What the state machine asks of the transactions (:class:`~harness.emulators.evse_transactions.Transactions`)."""

    async def start(self, connector: Connector, trigger: str) -> None: ...

    async def end(self, connector: Connector, trigger: str, reason: str) -> None: ...

    async def charging_state(self, connector: Connector, state: ConnectorState) -> None: ...

    def operation_mode(self, connector: Connector, mode: str) -> None: ...

    async def iso15118_failure(self, connector: Connector, failure: Any) -> None: ...


class HlcSide(Protocol):
    """What the state machine tells the ISO 15118 side (:class:`~harness.emulators.evse_hlc.EvseHlc`)."""

    async def plugged_in(self, connector: Connector) -> None: ...

    async def unplugged(self, connector: Connector) -> None: ...

    async def limit_changed(self, connector: Connector) -> None: ...


class ConnectorMachine:
    """Runs every connector's events (see the module docstring), one task per connector."""

    def __init__(self, recorder: Recorder, connectors: Mapping[int, Connector], *, timers: OcppTimers,
                 ev_connection_timeout: float, status: StatusReporter, transactions: TransactionSide,
                 triggered: Callable[[Connector, str], Awaitable[None]], hlc: HlcSide | None = None) -> None:
        self.recorder = recorder
        self.connectors = connectors
        self.timers = timers
        self.ev_connection_timeout = ev_connection_timeout
        self.status = status
        self.transactions = transactions
        #: sends the message a TriggerMessage asked for
        self.triggered = triggered
        self.hlc = hlc
        self._workers: list[asyncio.Task] = []

    def start(self) -> None:
        for connector in self.connectors.values():
            connector.pilot.on_state_change(_pilot_events(connector))
            self._workers.append(asyncio.create_task(self._worker(connector)))

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for connector in self.connectors.values():
            for task in (connector.meter_task, connector.connection_timer):
                if task is not None:
                    task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def _worker(self, connector: Connector) -> None:
        while True:
            event = await connector.events.get()
            try:
                await self._process(connector, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the emulator must be visible, not silent
                self.recorder.emit(Layer.FAULT, "EvseEmulatorError", f"reference EVSE failed on {event[0]}: {exc!r}",
                                   src=EVSE, keys={"evse_id": connector.evse_id})

    async def _process(self, connector: Connector, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "pilot":
            _, old, new = event
            if old is CpState.A and new is not CpState.A:
                await self._plugged_in(connector)
            elif new is CpState.A:
                await self._unplugged(connector)
            elif new in (CpState.C, CpState.D):
                await self._ev_ready(connector, True)
            elif new is CpState.B:
                await self._ev_ready(connector, False)
        elif kind == "authorized":
            _, authorization, trigger = event
            connector.authorization = authorization
            if connector.plugged:
                await self._start_transaction(connector, trigger)
            else:
                await self.status.set_state(connector, ConnectorState.PREPARING)
                self._arm_connection_timer(connector)
        elif kind == "stop":
            _, trigger, reason = event
            await self._stop_energy(connector)
            if connector.transaction is not None:
                await self.transactions.end(connector, trigger, reason)
            connector.authorization = None
            await self.status.set_state(connector, ConnectorState.FINISHING if connector.plugged
                                        else ConnectorState.AVAILABLE)
        elif kind == "limit":
            await self._apply_limit(connector)
        elif kind == "iso15118_failure":
            await self.transactions.iso15118_failure(connector, event[1])
        elif kind == "trigger":
            await self.triggered(connector, event[1])

    async def _plugged_in(self, connector: Connector) -> None:
        cancel_task(connector, "connection_timer")
        if self.hlc is not None:
            await self.hlc.plugged_in(connector)
        if connector.authorization is not None:
            await self._start_transaction(connector, "CablePluggedIn")
        else:
            await self.status.set_state(connector, ConnectorState.PREPARING)

    async def _unplugged(self, connector: Connector) -> None:
        if self.hlc is not None:
            await self.hlc.unplugged(connector)
        await self._stop_energy(connector)
        if connector.transaction is not None:
            await self.transactions.end(connector, "EVDeparted", "EVDisconnected")
        connector.authorization = None
        await self.status.set_state(connector, ConnectorState.AVAILABLE)

    async def _start_transaction(self, connector: Connector, trigger: str) -> None:
        """TxStartPoint PowerPathClosed: plugged in and authorized."""
        cancel_task(connector, "connection_timer")
        await self.transactions.start(connector, trigger)
        if connector.pilot.state in (CpState.C, CpState.D):
            await self._ev_ready(connector, True)

    async def _ev_ready(self, connector: Connector, ready: bool) -> None:
        tx = connector.transaction
        if tx is None:
            return
        allowed = connector.energy_allowed()
        if ready and allowed:
            connector.line.set(contactor_closed=True)
            await self.transactions.charging_state(connector, ConnectorState.CHARGING)
        else:
            connector.line.set(contactor_closed=False)
            await self.transactions.charging_state(connector, ConnectorState.SUSPENDED_EV if allowed
                                                   else ConnectorState.SUSPENDED_EVSE)

    @staticmethod
    async def _stop_energy(connector: Connector) -> None:
        connector.line.set(contactor_closed=False)
        await connector.pilot.set_duty(NO_PWM)

    async def _apply_limit(self, connector: Connector) -> None:
        if connector.digital and self.hlc is not None:
            await self.hlc.limit_changed(connector)
        if connector.transaction is None:
            return
        found = connector.profile_limit(connector) if connector.profile_limit is not None else None
        self.transactions.operation_mode(connector, found.mode if found is not None else "ChargingOnly")
        await connector.pilot.set_duty(duty(connector))
        await self._ev_ready(connector, connector.pilot.state in (CpState.C, CpState.D))

    def _arm_connection_timer(self, connector: Connector) -> None:
        cancel_task(connector, "connection_timer")

        async def expire() -> None:
            await asyncio.sleep(self.timers.wait(self.ev_connection_timeout))
            if connector.transaction is None and not connector.plugged:
                connector.authorization = None
                self.recorder.emit(Layer.OCPP, "EVConnectionTimeout", f"EVSE {connector.evse_id}: no EV within "
                                   "EVConnectionTimeOut, authorization dropped", src=EVSE,
                                   keys={"evse_id": connector.evse_id})
                await self.status.set_state(connector, ConnectorState.AVAILABLE)

        connector.connection_timer = asyncio.create_task(expire())
