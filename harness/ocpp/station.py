"""The OCPP client of a charging station: connection, registration, heartbeat and the outbox.

It keeps a station connected (reconnecting with back-off), registers it with BootNotification
(retrying while the CSMS answers Pending or Rejected, B02/B03), sends heartbeats, and delivers
transaction-related messages through an ordered outbox: generated while offline they are queued,
marked ``offline`` (2.0.1 E04 / E.FR), and delivered in order after reconnect. One the CSMS refuses
or never answers is retried up to the configured attempts and then dropped (recorded as
``TransactionMessageDropped``); one queued while offline waits as long as the process lives. What the station *does* (when it
starts a transaction, what it answers to RequestStartTransaction) belongs to the reference EVSE,
which gives this client its handlers.
"""

from __future__ import annotations

import asyncio
import collections
import random
import ssl
from dataclasses import dataclass
from typing import Any, Callable

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from harness.ocpp.endpoint import (
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    Handler,
    InvalidResponse,
    OcppCallFailed,
    OcppEndpoint,
)
from harness.ocpp.security import basic_auth_header, security_event_type
from harness.ocpp.timing import OcppTimers, timestamp
from harness.ocpp.versions import OcppVersion
from harness.trace import Layer, Recorder

STATION = "evse"
CSMS = "csms"


@dataclass(frozen=True)
class StationIdentity:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True)
class CsmsLink:
    """How the station reaches its CSMS."""

    url: str  # ws(s)://host:port/path/<station id>
    version: OcppVersion
    password: str | None = None  # Basic auth (profiles 1 and 2)
    ssl: ssl.SSLContext | None = None  # profiles 2 and 3


@dataclass
class OutboxItem:
    """A transaction-related message waiting for delivery.

    ``build`` makes the payload at delivery time (1.6 needs the transactionId the CSMS handed out
    for an earlier, possibly still queued StartTransaction); ``on_result`` sees the response.
    """

    action: str
    build: Callable[[], dict[str, Any]]
    on_result: Callable[[dict[str, Any]], None] | None = None
    attempts: int = 0


class StationClient:
    def __init__(self, recorder: Recorder, *, station_id: str, link: CsmsLink, identity: StationIdentity,
                 timers: OcppTimers, handlers: Callable[[str], Handler | None],
                 on_online: Callable[[], Any] | None = None,
                 on_offline: Callable[[], Any] | None = None,
                 boot_reason: str = "PowerUp") -> None:
        self.recorder = recorder
        self.station_id = station_id
        self.link = link
        self.identity = identity
        self.timers = timers
        self.handlers = handlers
        #: called (and awaited when a coroutine) once registered on each connection, and when a
        #: connection is lost
        self.on_online = on_online
        self.on_offline = on_offline
        self.boot_reason = boot_reason
        self.endpoint: OcppEndpoint | None = None
        self.registered = asyncio.Event()
        self.connected = asyncio.Event()
        self.heartbeat_interval = timers.heartbeat_interval
        self._heartbeat_changed = asyncio.Event()
        self._outbox: collections.deque[OutboxItem] = collections.deque()
        self._outbox_changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        #: the connection of the session now (what a power cut drops)
        self._websocket: Any = None

    @property
    def version(self) -> OcppVersion:
        return self.link.version

    @property
    def online(self) -> bool:
        return self.connected.is_set() and self.endpoint is not None and not self.endpoint.closed.is_set()

    @property
    def queued(self) -> int:
        return len(self._outbox)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"station {self.station_id}")

    async def stop(self) -> None:
        self._stopping = True
        if self.endpoint is not None and not self.endpoint.closed.is_set():
            await self.endpoint.disconnect()
        await self._end_task()

    async def power_cut(self) -> None:
        """The supply is gone: the connection drops without a close frame and nothing more is sent
        (what was queued is lost with the station's memory)."""
        self._stopping = True
        websocket = self._websocket
        if websocket is not None and websocket.transport is not None:
            websocket.transport.abort()
        await self._end_task()

    async def _end_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def reboot(self, reason: str) -> None:
        """Close the connection and register again, as after a reset (B11/B12)."""
        self.boot_reason = reason
        self.registered.clear()
        if self.endpoint is not None:
            await self.endpoint.disconnect()

    async def _run(self) -> None:
        failures = 0
        csms_certificate_reported = False
        while not self._stopping:
            try:
                async with connect(self.link.url, subprotocols=[Subprotocol(self.link.version.subprotocol)],
                                   additional_headers=self._headers(), ssl=self.link.ssl,
                                   open_timeout=self.timers.connect_timeout, ping_interval=None,
                                   max_size=4 * 1024 * 1024) as websocket:
                    failures = 0
                    csms_certificate_reported = False
                    await self._session(websocket)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, TLS failure, DNS, timeout: all recorded, then retried
                failures += 1
                if isinstance(exc, ssl.SSLCertVerificationError) and not csms_certificate_reported:
                    # once per run of failures, reported when the station is back with a good CSMS
                    csms_certificate_reported = True
                    self.security_event("csms_certificate", _reason(exc))
                self.recorder.emit(Layer.OCPP, "ConnectFailed", f"{self.station_id} could not connect to "
                                   f"{self.link.url}: {_reason(exc)}", src=STATION, dst=CSMS,
                                   payload={"url": self.link.url, "error": _reason(exc)},
                                   keys={"station_id": self.station_id})
            if self._stopping:
                break
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        doublings = min(max(failures - 1, 0), self.timers.reconnect_repeat_times)
        return (self.timers.reconnect_wait_minimum * 2 ** doublings
                + random.uniform(0, self.timers.reconnect_random_range))

    def _headers(self) -> dict[str, str]:
        if self.link.password is None:
            return {}
        return {"Authorization": basic_auth_header(self.station_id, self.link.password)}

    async def _session(self, websocket) -> None:
        self._websocket = websocket
        endpoint = OcppEndpoint(websocket, version=self.version, station_id=self.station_id, local=STATION,
                                peer=CSMS, recorder=self.recorder, handlers=self.handlers,
                                response_timeout=self.timers.message_timeout)
        self.endpoint = endpoint
        self.connected.set()
        reader = asyncio.create_task(endpoint.run())
        worker = asyncio.create_task(self._registered_session(endpoint))
        try:
            await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.connected.clear()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            if not reader.done():
                await endpoint.disconnect()
            await asyncio.gather(reader, return_exceptions=True)
            if self.on_offline is not None and not self._stopping:
                result = self.on_offline()
                if asyncio.iscoroutine(result):
                    await result

    async def _registered_session(self, endpoint: OcppEndpoint) -> None:
        # A station registers once per boot (B01); after a lost connection it just carries on.
        if not self.registered.is_set():
            await self._boot(endpoint)
        if self.on_online is not None:
            result = self.on_online()
            if asyncio.iscoroutine(result):
                await result
        heartbeat = asyncio.create_task(self._heartbeats(endpoint))
        try:
            await self._deliver_outbox(endpoint)
        finally:
            heartbeat.cancel()

    async def _boot(self, endpoint: OcppEndpoint) -> None:
        while True:
            try:
                response = await endpoint.call("BootNotification", self.boot_payload())
            except (CallErrorReceived, CallTimeout, InvalidResponse):
                await asyncio.sleep(self.timers.boot_retry_interval)
                continue
            interval = float(response.get("interval") or 0)
            if response.get("status") == "Accepted":
                if interval > 0:
                    self.set_heartbeat_interval(self.timers.wait(interval))
                self.registered.set()
                return
            # Pending or Rejected: retry after the interval the CSMS gave (B02.FR.xx / B03.FR.xx)
            await asyncio.sleep(self.timers.wait(interval) if interval > 0 else self.timers.boot_retry_interval)

    def boot_payload(self) -> dict[str, Any]:
        identity = self.identity
        if self.version is OcppVersion.V16:
            payload = {"chargePointVendor": identity.vendor, "chargePointModel": identity.model}
            if identity.serial_number:
                payload["chargePointSerialNumber"] = identity.serial_number
            if identity.firmware_version:
                payload["firmwareVersion"] = identity.firmware_version
            return payload
        station: dict[str, Any] = {"vendorName": identity.vendor, "model": identity.model}
        if identity.serial_number:
            station["serialNumber"] = identity.serial_number
        if identity.firmware_version:
            station["firmwareVersion"] = identity.firmware_version
        return {"reason": self.boot_reason, "chargingStation": station}

    def set_heartbeat_interval(self, seconds: float) -> None:
        """A new interval restarts the heartbeat timer at once."""
        self.heartbeat_interval = seconds
        self._heartbeat_changed.set()

    async def _heartbeats(self, endpoint: OcppEndpoint) -> None:
        while True:
            self._heartbeat_changed.clear()
            try:
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._heartbeat_changed.wait()
                continue  # the interval changed: start counting again
            except asyncio.TimeoutError:
                pass
            try:
                await endpoint.call("Heartbeat", {})
            except (CallErrorReceived, CallTimeout, InvalidResponse):
                continue

    # -- sending --------------------------------------------------------------------------

    async def send(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a message that is only meaningful online (StatusNotification, Authorize...).
        Raises ConnectionLost when the station is offline or not registered."""
        if not (self.online and self.registered.is_set()) or self.endpoint is None:
            raise ConnectionLost(f"{action}: {self.station_id} is not registered with the CSMS")
        return await self.endpoint.call(action, payload, timeout=timeout)

    def security_event(self, what: str, tech_info: str) -> None:
        """Record a critical security event and queue its SecurityEventNotification: it reaches the
        CSMS once the station is connected and registered, however long that takes."""
        event_type = security_event_type(what, v16=self.version is OcppVersion.V16)
        payload = {"type": event_type, "timestamp": timestamp(), "techInfo": tech_info[:255]}
        self.recorder.emit(Layer.OCPP, "SecurityEventRaised", f"{self.station_id} security event {event_type}: "
                           f"{tech_info}", src=STATION, payload=payload, keys={"station_id": self.station_id})
        self.enqueue(OutboxItem("SecurityEventNotification", build=lambda: payload))

    def enqueue(self, item: OutboxItem) -> None:
        """Queue a message that must reach the CSMS (transaction-related, security events); it is
        delivered in order, online or later."""
        self._outbox.append(item)
        self._outbox_changed.set()

    async def drained(self, timeout: float) -> None:
        """Wait until every queued message has been delivered."""
        async with asyncio.timeout(timeout):
            while self._outbox:
                await asyncio.sleep(0.01)

    async def _deliver_outbox(self, endpoint: OcppEndpoint) -> None:
        while True:
            while not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            item = self._outbox[0]
            item.attempts += 1
            payload = item.build()
            try:
                result = await endpoint.call(item.action, payload)
            except ConnectionLost:
                item.attempts -= 1  # not the CSMS's fault: resend after reconnect
                raise
            except (CallErrorReceived, CallTimeout, InvalidResponse) as exc:
                if item.attempts < self.timers.transaction_message_attempts:
                    await asyncio.sleep(self.timers.transaction_message_retry_interval * item.attempts)
                    continue
                self._outbox.popleft()
                self.recorder.emit(Layer.FAULT, "TransactionMessageDropped",
                                   f"{self.station_id} gave up {item.action} after {item.attempts} attempts: {exc}",
                                   src=STATION, payload={"action": item.action, "payload": payload},
                                   keys={"station_id": self.station_id})
                continue
            self._outbox.popleft()
            if item.on_result is not None:
                item.on_result(result)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(exc, OcppCallFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
