"""The EVCC as a client: connects to an SECC and runs one :class:`EvccSession` over it.

Like :mod:`harness.v2g.secc` it only moves bytes and time, applies the EV side's fault plan
and records every message on the timeline (observer ``ev``): what a test sees of the EVSE under
test from the EV side.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Awaitable, Callable, Sequence

from cryptography import x509

from harness import exi
from harness.pki.profiles import Generation, Role
from harness.pki.validate import key_problem, policy_for
from harness.trace import Layer, Recorder
from harness.v2g import messages, recording, sap
from harness.v2g.equipment import Equipment
from harness.v2g.faults import FaultPlan, transmit
from harness.v2g.machine import Close, Finished, Notice, Outcome, Received, Send, SetCp, Undecodable
from harness.v2g.session import EvccSession, SeccSession
from harness.v2g.timers import STANDARD, Timing
from harness.v2g.transport import ConnectionClosed, SocketFactory, TlsHandshakeAborted, V2gConnection, connect
from harness.v2g.v2gtp import HeaderError, PayloadType

SIDE = recording.EV
ACCEPTED = frozenset({PayloadType.EXI, PayloadType.ISO20_MAIN, PayloadType.ISO20_AC, PayloadType.ISO20_DC})

CpSetter = Callable[[str], Awaitable[None]]


async def run_session(recorder: Recorder, vehicle: Any, host: str, port: int, *,
                      context: ssl.SSLContext | None = None, timing: Timing = STANDARD,
                      faults: FaultPlan | None = None, resume_session_id: str | None = None,
                      set_cp: CpSetter | None = None, connect_timeout: float = 10.0,
                      on_session: Callable[[EvccSession], None] | None = None,
                      on_response: Callable[[], None] | None = None,
                      sockets: SocketFactory | None = None,
                      stand_in: Callable[[], Equipment] | None = None) -> Outcome:
    """One V2G communication session with the SECC at ``host``/``port``; returns how it ended.
    ``sockets`` makes the connection's socket (in the EV's network namespace on the netns rig);
    ``stand_in`` makes the default charger that answers a request the EV's fault plan skips;
    ``on_response`` is called after each response is taken in (the EV applies what it grants)."""
    loop = asyncio.get_running_loop()
    plan = faults or FaultPlan(side=SIDE)
    plan.recorder = plan.recorder or recorder
    plan.side = SIDE
    session = EvccSession(vehicle, offered=vehicle.plan.protocols, timing=timing, now=loop.time(),
                          resume_session_id=resume_session_id)
    if on_session is not None:
        on_session(session)
    target = f"[{host}]:{port}"
    try:
        connection = await connect(host, port, context=context, timeout=connect_timeout, accepted=ACCEPTED,
                                   sockets=sockets)
    except (OSError, ssl.SSLError, TimeoutError, asyncio.TimeoutError) as exc:
        what = ("TlsHandshakeFailed" if context is not None and isinstance(exc, (ssl.SSLError, TlsHandshakeAborted))
                else "TcpConnectFailed")
        error = str(exc) or type(exc).__name__
        recording.record(recorder, SIDE, what, f"EV could not connect to {target}"
                         f"{' with TLS' if context else ''}: {error}", session, payload={"error": repr(exc)},
                         keys={"secc": recording.endpoint_key(host, port)})
        session.outcome = Outcome(False, f"{what}: {error}")
        return session.outcome
    der = connection.tls_peer_certificate
    peer = x509.load_der_x509_certificate(der) if der is not None else None
    shown = _certificate_summary(peer)
    refusal = _secc_key_problem(peer, vehicle.plan.protocols) if context else None
    recording.record(recorder, SIDE, "TcpConnected", f"EV connected to {target}"
                     + (f" ({connection.tls_version}, {connection.tls_cipher}"
                        + (f"; SECC certificate serial {shown['serial']})" if shown else ")") if context else " (no TLS)"),
                     session, payload={"peer": target, "tls": connection.tls_version, "cipher": connection.tls_cipher,
                                       "secc_certificate": shown}, keys={"secc": recording.endpoint_key(host, port)})
    session.facts["tls"] = connection.tls_version
    if refusal is not None:
        recording.record(recorder, SIDE, "SeccCertificateRefused", f"EV refuses the SECC certificate: {refusal}",
                         session, payload={"reason": refusal, "secc_certificate": shown})
        await connection.close()
        session.outcome = Outcome(False, f"SECC certificate refused: {refusal}")
        return session.outcome
    runner = _Runner(recorder, session, connection, plan, set_cp, stand_in)
    try:
        closing = await runner.carry_out(session.restrict_offer(connection.tls_version) + session.start(loop.time()))
        while not session.finished and not closing:
            timeout = None if session.deadline is None else max(0.0, session.deadline - loop.time())
            try:
                item = await connection.receive(timeout)
            except (TimeoutError, asyncio.TimeoutError):
                closing = await runner.carry_out(session.poll(loop.time()))
                continue
            if isinstance(item, HeaderError):
                recording.record(recorder, SIDE, "V2gtpHeaderRejected", f"EV ignores a message: {item}", session,
                                 payload={"header": item.header.hex().upper(), "reason": item.reason,
                                          "closed": item.close}, peer=True)
                if item.close:
                    break
                continue
            events = session.receive(item.payload_type, item.payload, loop.time())
            if on_response is not None:
                on_response()  # what the response granted takes effect now, not at the next control tick
            closing = await runner.carry_out(events)
    except ConnectionClosed as exc:
        recording.record(recorder, SIDE, "TcpClosed", f"connection to the EVSE ended: {exc}", session,
                         payload={"reason": str(exc)})
    except Exception as exc:  # a bug of the harness's EVCC: on the timeline, never silent
        import traceback

        recording.record(recorder, SIDE, "EvccError", f"the EV emulator failed: {exc!r}", session,
                         payload={"traceback": traceback.format_exc()}, layer=Layer.FAULT)
        session.outcome = Outcome(False, f"EV emulator error: {exc!r}", session.protocol.key if session.protocol
                                  else None, session.session_id, None, False, session.count)
    finally:
        await connection.close()
    if session.outcome is None:
        session.outcome = Outcome(False, "connection lost", session.protocol.key if session.protocol else None,
                                  session.session_id, None, False, session.count)
    outcome = session.outcome
    recording.record(recorder, SIDE, "SessionEnded", f"EV session ended: {outcome.reason}"
                     + (" (ok)" if outcome.ok else ""), session,
                     payload={"ok": outcome.ok, "reason": outcome.reason, "protocol": outcome.protocol,
                              "session_id": outcome.session_id, "response_code": outcome.response_code,
                              "paused": outcome.paused, "messages": outcome.messages})
    return outcome


class _Runner:
    def __init__(self, recorder: Recorder, session: EvccSession, connection: V2gConnection, plan: FaultPlan,
                 set_cp: CpSetter | None, stand_in: Callable[[], Equipment] | None) -> None:
        self.recorder = recorder
        self.stand_in = stand_in
        self.session = session
        self.connection = connection
        self.plan = plan
        self.set_cp = set_cp

    async def carry_out(self, events: list) -> bool:
        closing = False
        for event in events:
            if isinstance(event, Received):
                recording.record_message(self.recorder, SIDE, event, self.session)
            elif isinstance(event, Undecodable):
                recording.record_undecodable(self.recorder, SIDE, event, self.session)
            elif isinstance(event, Notice):
                recording.record_notice(self.recorder, SIDE, event, self.session)
            elif isinstance(event, SetCp):
                if self.set_cp is not None:
                    await self.set_cp(event.state)
            elif isinstance(event, Send):
                if await self._send(event):
                    return True
            elif isinstance(event, Close):
                closing = True
            elif isinstance(event, Finished):
                pass
        return closing

    async def _send(self, send: Send) -> bool:
        session = self.session
        fault = self.plan.state_fault(send.name, session) if self.plan else None
        if fault is not None and fault.kind == "skip":
            return await self.carry_out(self._skipped(send))
        if fault is not None and fault.kind == "repeat":
            previous = self.plan.previous()
            if previous is not None:
                send = previous
        return await transmit(send, self.plan, session, self.connection, self.recorder, SIDE)

    def _skipped(self, send: Send) -> list:
        """The EV behaves as if ``send`` had been answered OK: a stand-in SECC (a default
        charger) answers it, the EV's machine takes that answer and produces the request after."""
        session = self.session
        rules = session.rules
        assert rules is not None
        if self.stand_in is None:
            raise ValueError(f"the EV's fault plan skips {send.name}, but the EV was given no stand-in charger "
                             "to answer it")
        stand_in = SeccSession(self.stand_in(), supported=[], tls="TLSv1.3")
        stand_in.protocol, stand_in.rules, stand_in.session_id = session.protocol, rules, session.session_id
        rules.secc_start(stand_in)
        rules.secc_stand_in(stand_in, session)  # what the EV chose (payment, DC, mode), a schedule to allow
        reply = rules.secc_handle(stand_in, send.name, messages.body_of(send.message), send.message)
        body = dict(reply.body)
        body["ResponseCode"] = "OK"
        if "EVSEProcessing" in body:
            body["EVSEProcessing"] = "Finished"
        response = messages.response_name(send.name)
        family = session.family
        assert family is not None  # the rules are set
        message = messages.wrap(family, response, body, session.session_id or "00",
                                timestamp=session.wall_time() if family == "iso20" else None)
        data = exi.encode(message, messages.schema_of(family, response))
        return session.receive(messages.payload_type_of(family, response), data, session.now)[1:]


def _secc_key_problem(certificate: x509.Certificate | None, offered: Sequence[str]) -> str | None:
    """OpenSSL has checked the SECC's chain; what it does not check is the key algorithm the PKI
    of the protocols offered prescribes (-2 and DIN: secp256r1; -20: secp521r1 or Ed448). An EV
    offering one PKI generation checks the leaf against it (offering both, the SECC picks the chain
    and the protocol together, so either fits)."""
    generations = {sap.pki_generation(p) for p in offered}
    if certificate is None or len(generations) != 1:
        return None
    generation = Generation.ISO20 if generations == {"iso20"} else Generation.ISO2
    problem = key_problem(certificate, policy_for(generation, Role.SECC))
    return f"{problem} ({generation.value} SECC certificate)" if problem else None


def _certificate_summary(certificate: x509.Certificate | None) -> dict[str, str] | None:
    """Subject, issuer and serial of the SECC certificate the EV was shown, for the timeline."""
    if certificate is None:
        return None
    return {"subject": certificate.subject.rfc4514_string(), "issuer": certificate.issuer.rfc4514_string(),
            "serial": format(certificate.serial_number, "X")}

