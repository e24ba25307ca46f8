"""The SECC as a server: listens on TCP (and TLS), runs a :class:`SeccSession` per connection.

The asyncio part only moves bytes and time: it reads V2GTP messages, hands them to the session
machine, carries out what the machine says (send, close), applies the EVSE side's fault plan and
records everything on the timeline (observer ``evse``). A V2GTP header the SECC cannot accept is
ignored, or, when the stream's framing is lost with it, ends the connection
([V2G20-089] .. [V2G20-096]).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from harness.pki.clienthello import ClientHello
from harness.pki.tls import iso20_cipher_allowed
from harness.trace import Layer, Recorder
from harness.v2g import messages, recording, sap
from harness.v2g.faults import FaultPlan, transmit
from harness.v2g.machine import Close, Deferred, Finished, Notice, Outcome, Received, Send, SetCp, Undecodable
from harness.v2g.secc_tls import UNTRUSTED_CHAIN, SeccTls, TlsChoice
from harness.v2g.session import SeccSession
from harness.v2g.timers import STANDARD, Timing
from harness.v2g.transport import (
    MAX_PENDING_PER_PEER,
    ConnectionClosed,
    Listener,
    SocketFactory,
    TlsListener,
    V2gConnection,
    listen,
    listen_tls,
)
from harness.v2g.v2gtp import HeaderError, PayloadType

SIDE = recording.EVSE
#: payload types the SECC accepts on its TCP connections
ACCEPTED = frozenset({PayloadType.EXI, PayloadType.ISO20_MAIN, PayloadType.ISO20_AC, PayloadType.ISO20_DC})


@dataclass
class SeccConfig:
    host: str = "::1"
    tcp_port: int = 0
    #: the TLS port (0: a free one of the dynamic ports) when ``tls`` is given
    tls_port: int = 0
    #: the TLS material per generation and the choice among it for each EV's ClientHello
    tls: SeccTls | None = None
    protocols: Sequence[str] = ("iso20-dc", "iso20-ac", "iso2", "din")
    allow_iso20_without_tls: bool = False
    #: how long the SECC waits for the EV to close after SessionStopRes
    close_grace: float = 2.0
    #: makes the listening sockets (in the EVSE's network namespace on the netns rig); None: here
    sockets: SocketFactory | None = None


class Secc:
    """The reference SECC: as many sessions as EVs connect, one at a time in practice."""

    def __init__(self, recorder: Recorder, equipment: Any, config: SeccConfig | None = None, *,
                 timing: Timing = STANDARD, faults: FaultPlan | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.recorder = recorder
        self.equipment = equipment
        self.config = config or SeccConfig()
        self.timing = timing
        self.faults = faults if faults is not None else FaultPlan(recorder=recorder, side=SIDE)
        self.faults.recorder = self.faults.recorder or recorder
        self.faults.side = SIDE
        self.random_bytes = random_bytes
        self.supported = [sap.protocol(key) for key in self.config.protocols]
        self.paused: dict[str, dict] = {}
        self.outcomes: list[Outcome] = []
        self.listeners: list[Listener | TlsListener] = []
        self.tls: SeccTls | None = None
        self.active: set[asyncio.Task] = set()
        self.session_done = asyncio.Event()

    @property
    def tcp_port(self) -> int | None:
        return next((l.port for l in self.listeners if not l.tls), None)

    @property
    def tls_port(self) -> int | None:
        return next((l.port for l in self.listeners if l.tls), None)

    async def start(self) -> None:
        self.listeners.append(await listen(self.config.host, self.config.tcp_port,
                                           lambda c: self._serve(c, tls=False), accepted=ACCEPTED,
                                           sockets=self.config.sockets))
        if self.config.tls is not None:
            # this SECC's own copy: its protocols decide, and a fault may force a chain on it alone
            self.tls = dataclasses.replace(self.config.tls, offers_iso20=any(
                sap.pki_generation(p) == "iso20" for p in self.config.protocols))
            listener = await listen_tls(self.config.host, self.config.tls_port, lambda c: self._serve(c, tls=True),
                                        self._choose_tls, accepted=ACCEPTED, sockets=self.config.sockets,
                                        refused=self._tls_refused)
            listener.on_crowded = self._tls_crowded
            self.listeners.append(listener)
        recording.record(self.recorder, SIDE, "SeccListening", f"SECC listening on [{self.config.host}] "
                         f"TCP {self.tcp_port}" + (f", TLS {self.tls_port}" if self.tls_port else ""),
                         payload={"host": self.config.host, "tcp_port": self.tcp_port, "tls_port": self.tls_port,
                                  "protocols": list(self.config.protocols)})

    def _choose_tls(self, hello: ClientHello) -> TlsChoice:
        assert self.tls is not None
        return self.tls.choose(hello)

    def _tls_crowded(self, host: str, count: int) -> None:
        recording.record(self.recorder, SIDE, "TlsConnectionsRefused", f"SECC closes new TLS connections from "
                         f"{host} at once: it has {MAX_PENDING_PER_PEER} handshakes open ({count} refused so far)",
                         payload={"host": host, "refused": count, "limit": MAX_PENDING_PER_PEER}, peer=True)

    def _tls_refused(self, peer: str, hello: ClientHello | None, choice: TlsChoice | None, why: str) -> None:
        recording.record(self.recorder, SIDE, "TlsHandshakeFailed", f"TLS with the EV at {peer} refused: {why}",
                         payload={"peer": peer, "reason": why, "offered": hello.describe() if hello else None,
                                  "chosen": choice.why if choice else None}, peer=True)
        self.equipment.connection_failed(f"TLS handshake failed: {why}")

    def present_untrusted(self, context: ssl.SSLContext | None, why: str = UNTRUSTED_CHAIN) -> None:
        """Present ``context`` (a chain no EV should accept, for the reason ``why``) to every EV
        from now on, or, with None, choose from each ClientHello again (fault fail_tls)."""
        if self.tls is not None:
            self.tls.forced = context
            self.tls.forced_why = why

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.close()
        self.listeners.clear()
        for task in list(self.active):
            task.cancel()
        await asyncio.gather(*self.active, return_exceptions=True)

    async def _serve(self, connection: V2gConnection, *, tls: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.active.add(task)
        try:
            await self._session(connection, tls)
        finally:
            self.active.discard(task)

    async def _session(self, connection: V2gConnection, tls: bool) -> None:
        loop = asyncio.get_running_loop()
        session = SeccSession(self.equipment, supported=self.supported,
                              tls=connection.tls_version if tls else None,
                              allow_iso20_without_tls=self.config.allow_iso20_without_tls,
                              timing=self.timing, now=loop.time(), paused=self.paused,
                              random_bytes=self.random_bytes)
        choice = connection.tls_choice
        recording.record(self.recorder, SIDE, "TcpAccepted", f"EV connected from {connection.peer}"
                         + (f" ({connection.tls_version}, {connection.tls_cipher}; {choice.why})" if tls
                            else " (no TLS)"),
                         session, payload={"peer": connection.peer, "tls": connection.tls_version,
                                           "cipher": connection.tls_cipher,
                                           "offered": connection.hello.describe() if connection.hello else None,
                                           "chosen": choice.why if choice else None,
                                           "vehicle_certificate": _subject(connection.peer_certificate())},
                         peer=True, keys=_local_key(connection))
        try:
            if tls and choice is not None and choice.generation == "iso20":
                ssl_object = connection.writer.get_extra_info("ssl_object")
                if ssl_object is None or not iso20_cipher_allowed(ssl_object):
                    raise ConnectionClosed(f"SECC closed it: {connection.tls_version} {connection.tls_cipher} is not "
                                           f"an ISO 15118-20 suite (TLS_AES_256_GCM_SHA384, "
                                           f"TLS_CHACHA20_POLY1305_SHA256; [V2G20-2458])")
            while not session.finished:
                timeout = None if session.deadline is None else max(0.0, session.deadline - loop.time())
                try:
                    item = await connection.receive(timeout)
                except (TimeoutError, asyncio.TimeoutError):
                    await self._carry_out(connection, session, session.poll(loop.time()))
                    continue
                if isinstance(item, HeaderError):
                    recording.record(self.recorder, SIDE, "V2gtpHeaderRejected",
                                     f"SECC ignores a message: {item}" + (", connection closed" if item.close else ""),
                                     session, payload={"header": item.header.hex().upper(), "reason": item.reason,
                                                       "closed": item.close}, peer=True)
                    if item.close:
                        break
                    continue
                events = session.receive(item.payload_type, item.payload, loop.time())
                if await self._carry_out(connection, session, events):
                    break
            if session.finished and session.outcome is not None and session.outcome.ok:
                try:  # the EV closes the connection after SessionStopRes
                    await connection.receive(self.timing.timeout(self.config.close_grace))
                except (ConnectionClosed, TimeoutError, asyncio.TimeoutError):
                    pass
        except ConnectionClosed as exc:
            recording.record(self.recorder, SIDE, "TcpClosed", f"connection to the EV ended: {exc}", session,
                             payload={"reason": str(exc)})
        except Exception as exc:  # a bug of the harness's SECC: on the timeline, never silent
            import traceback

            recording.record(self.recorder, SIDE, "SeccError", f"the reference SECC failed: {exc!r}", session,
                             payload={"traceback": traceback.format_exc()}, layer=Layer.FAULT)
        finally:
            await connection.close()
            outcome = session.outcome
            if not session.finished or outcome is None:
                outcome = session.outcome = Outcome(False, "connection lost",
                                                    session.protocol.key if session.protocol else None,
                                                    session.session_id, None, False, session.count)
                if session.session_id is not None:
                    self.equipment.session_ended(session.session_id, "connection lost", False)
            elif not outcome.ok and session.session_id is not None:
                self.equipment.session_ended(session.session_id, outcome.reason, False)
            self.outcomes.append(outcome)
            recording.record(self.recorder, SIDE, "SessionEnded", f"SECC session ended: {outcome.reason}",
                             session, payload=_outcome_payload(outcome))
            self.session_done.set()

    async def _carry_out(self, connection: V2gConnection, session: SeccSession, events: list) -> bool:
        """Do what the session machine said; True when the connection is to be closed."""
        closing = False
        for event in events:
            if isinstance(event, Received):
                recording.record_message(self.recorder, SIDE, event, session)
            elif isinstance(event, Undecodable):
                recording.record_undecodable(self.recorder, SIDE, event, session)
            elif isinstance(event, Notice):
                recording.record_notice(self.recorder, SIDE, event, session)
            elif isinstance(event, Send):
                if await self._send(connection, session, event):
                    return True
            elif isinstance(event, Close):
                closing = True
            elif isinstance(event, Deferred):
                if await self._carry_out(connection, session, session.resume(event.request, await event.answer())):
                    return True
            elif isinstance(event, (Finished, SetCp)):
                pass
        return closing

    async def _send(self, connection: V2gConnection, session: SeccSession, send: Send) -> bool:
        fault = self.faults.state_fault(send.name, session) if self.faults else None
        if fault is not None:
            send = self._state_faulted(session, send, fault.kind)
        return await transmit(send, self.faults, session, connection, self.recorder, SIDE)

    def _state_faulted(self, session: SeccSession, send: Send, kind: str) -> Send:
        if kind == "repeat":
            previous = self.faults.previous()
            return previous if previous is not None else send
        # skip: answer with the response of the request that would come next
        rules = session.rules
        assert rules is not None
        followers = [r for r in rules.table.followers(send.name, session) if r != messages.request_name(send.name)
                     and r != "SessionStopReq"] or [messages.request_name(send.name)]
        body = rules.secc_failure(session, followers[0], "OK")
        return session._encode(messages.response_name(followers[0]), body)


def _subject(der: bytes | None) -> str | None:
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _outcome_payload(outcome: Outcome) -> dict:
    return {"ok": outcome.ok, "reason": outcome.reason, "protocol": outcome.protocol,
            "session_id": outcome.session_id, "response_code": outcome.response_code,
            "paused": outcome.paused, "messages": outcome.messages}


def _local_key(connection: V2gConnection) -> dict[str, str]:
    """The SECC's own address of a connection as the ``secc`` key (what SDP announced)."""
    local = connection.writer.get_extra_info("sockname")
    return {"secc": recording.endpoint_key(str(local[0]), int(local[1]))} if local else {}
