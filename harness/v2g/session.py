"""The V2G session machines, sans-IO: bytes and time in, events out.

A :class:`SeccSession` or :class:`EvccSession` lives for one TCP (or TLS) connection. It speaks
the supportedAppProtocol handshake first and then the negotiated protocol, whose rules (the
transition table and what each side says at each step) live in :mod:`harness.v2g.din`,
:mod:`harness.v2g.iso2` and :mod:`harness.v2g.iso20`. Nothing here opens a socket or sleeps: the
asyncio adapters in :mod:`harness.v2g.secc` and :mod:`harness.v2g.evcc` feed received payloads
to :meth:`receive`, call :meth:`poll` when :attr:`deadline` has passed, and carry out the events
(send these bytes, set the CP state, close the connection).

Rules both sides share, from ISO 15118-2 8.7/8.8 (DIN 70121 and -20 have the same ones):

- Both sides check what they receive against the protocol's table (:class:`machine.Table`). The
  SECC answers a request the table does not allow in its state with the response belonging to
  that request and ResponseCode FAILED_SequenceError (-2 [V2G2-538], -20 [V2G20-459]; DIN
  70121's responseCodeType has the same FAILED_SequenceError); a SessionID other than the
  session's with FAILED_UnknownSession. After any FAILED response it ends the session and closes
  the connection.
- Each request has exactly one response, the one of the same name (the message pairs of -2
  8.8.2 and -20 8.6.4, DIN 70121 likewise): the EVCC takes only the response to the request it
  sent, and only if that request may follow its state in the table. Anything else (another
  response, a response when no request is outstanding, a request) is a sequence error the EVCC
  cannot answer: it ends the session and closes the connection. On either side the error names
  the role (SECC, EVCC), the state and the message: a ``SequenceError`` :class:`Notice` on the
  timeline and the outcome's reason.
- The SECC waits at most V2G_SECC_Sequence_Timeout for the next request; then it ends the
  session and closes the connection.
- The EVCC waits at most V2G_EVCC_Msg_Timeout for each response and repeats a request answered
  EVSEProcessing=Ongoing for at most V2G_EVCC_Ongoing_Timeout; on either, and on any FAILED
  response, it ends the session and closes the connection.
- A payload that does not decode cannot be answered (its type is unknown): the receiver closes
  the connection.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from harness import exi
from harness.pki.xmldsig import sign_message
from harness.v2g import din, iso2, iso20, messages, sap
from harness.v2g.machine import (
    START,
    Close,
    Context,
    Deferred,
    Event,
    Finished,
    Notice,
    Outcome,
    Received,
    Reply,
    Request,
    Rules,
    Send,
    SetCp,
    Stop,
    Undecodable,
    failed,
)
from harness.v2g.timers import DEFAULT, STANDARD, Timing

#: the rules of each protocol family, by the family name of the handshake's protocol
RULES: Mapping[str, Rules] = {"din": din.RULES, "iso2": iso2.RULES, "iso20": iso20.RULES}


#: the rule each side's sequence check applies, by protocol family: the SECC's refusal of a request
#: out of sequence, and the message pairs by which the EVCC expects the response to its request
SEQUENCE_RULES: Mapping[str, Mapping[str, str]] = {
    "SECC": {"iso2": "[V2G2-538]", "iso20": "[V2G20-459]", "din": "(DIN 70121 FAILED_SequenceError)"},
    "EVCC": {"iso2": "(-2 8.8.2 message pairs, [V2G2-538])", "iso20": "(-20 8.6.4 message pairs, [V2G20-459])",
             "din": "(DIN 70121 message pairs)", "sap": "(supportedAppProtocolReq/Res)"},
}


def rules_for(family: str) -> Rules:
    try:
        return RULES[family]
    except KeyError:
        raise ValueError(f"no session rules for {family!r}") from None


# -- the common part of both sides -------------------------------------------------------------

class _Session:
    side = ""
    #: how the standards name this side in their requirements (SECC, EVCC)
    role = ""

    def __init__(self, *, timing: Timing = STANDARD, now: float = 0.0,
                 clock_wall: Callable[[], float] | None = None) -> None:
        self.timing = timing
        self.started = now
        self.now = now
        self.protocol: sap.AppProtocol | None = None
        self.rules: Rules | None = None
        self.session_id: str | None = None
        self.evccid: str | None = None
        self.evse_id: str | None = None
        #: the contract's eMAID once the session named one (Plug & Charge): a correlation key
        self.emaid: str | None = None
        self.state = START
        self.count = 0
        self.outcome: Outcome | None = None
        self.deadline: float | None = None
        self._deadline_reason = ""
        self._wall = clock_wall
        #: free-form notes of the session (what was negotiated, selected, granted)
        self.facts: dict[str, Any] = {}
        #: what the protocol's rules keep between messages: a :class:`Context` of their own kind
        #: once the handshake chose the protocol (see :func:`machine.context_of`)
        self.context: Context = Context()

    @property
    def family(self) -> str | None:
        return self.protocol.family if self.protocol else None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def wall_time(self) -> int:
        import time as _time

        return int(self._wall() if self._wall else _time.time())

    def _encode(self, name: str, body: dict, sign: tuple[Any, tuple[str, ...]] | None = None) -> Send:
        family = self.family
        if name.startswith("supportedAppProtocol"):
            message = body
            schema = "sap"
            data = exi.encode(message, schema)
            return Send(name, message, data, messages.payload_type_of(family or "iso2", name), schema)
        assert family is not None and self.session_id is not None
        timestamp = self.wall_time() if family == "iso20" else None
        message = messages.wrap(family, name, body, self.session_id, timestamp=timestamp)
        schema = messages.schema_of(family, name)
        if sign is not None:
            key, elements = sign
            message = sign_message(message, schema, key, elements=elements or None)
        data = exi.encode(message, schema)
        return Send(name, message, data, messages.payload_type_of(family, name), schema)

    def _decode(self, payload_type: int, data: bytes) -> Received | Undecodable:
        try:
            schema, message = messages.decode(self.family if self.rules else None, payload_type, data)
        except exi.DecodeError as exc:
            return Undecodable(data, payload_type, str(exc))
        return Received(messages.name_of(message), message, data, payload_type, schema)

    def _finish(self, ok: bool, reason: str, *, code: str | None = None, paused: bool = False) -> Finished:
        self.outcome = Outcome(ok, reason, self.protocol.key if self.protocol else None, self.session_id, code,
                               paused, self.count)
        self.deadline = None
        return Finished(self.outcome)

    def _arm(self, seconds: float | None, reason: str) -> None:
        self.deadline = None if seconds is None else self.now + seconds
        self._deadline_reason = reason

    def _sequence_rule(self) -> str:
        return SEQUENCE_RULES[self.role].get(self.family or "sap", "")

    def _violation(self, name: str, message: str, why: str, requirement: str, **details: Any) -> Notice:
        """A message this side may not take in its state: ``name`` the notice (SequenceError, ...),
        ``message`` what was received. The summary names the role, the state and the message."""
        return Notice(name, f"{self.role} in state {self.state} refuses {message}: {why}"
                      + (f" {requirement}" if requirement else ""),
                      {"role": self.role, "state": self.state, "message": message, **details})


# -- SECC ----------------------------------------------------------------------------------------

class SeccSession(_Session):
    """The charger's side of one connection.

    ``equipment`` is what the SECC asks about the charger (limits, power stage, authorization,
    see :mod:`harness.v2g.equipment`); ``paused`` is where sessions paused by the EV wait to be
    resumed (shared by the connections of one SECC).
    """

    side = "evse"
    role = "SECC"

    def __init__(self, equipment: Any, *, supported: Sequence[sap.AppProtocol], tls: str | None = None,
                 allow_iso20_without_tls: bool = False, timing: Timing = STANDARD, now: float = 0.0,
                 paused: dict[str, Any] | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom,
                 clock_wall: Callable[[], float] | None = None) -> None:
        super().__init__(timing=timing, now=now, clock_wall=clock_wall)
        self.equipment = equipment
        self.supported = list(supported)
        #: the TLS version of the connection ("TLSv1.2", "TLSv1.3") or None for plain TCP
        self.tls = tls
        self.tls13 = tls == "TLSv1.3" or allow_iso20_without_tls
        #: the contexts of the sessions paused by the EV, by SessionID (the rules' own kind)
        self.paused: dict[str, Any] = paused if paused is not None else {}
        self.random_bytes = random_bytes
        # the EVSEID this SECC names itself with (SessionSetupRes): a correlation key from the start
        capabilities = getattr(equipment, "capabilities", None)
        self.evse_id = getattr(capabilities, "evse_id", None) or getattr(equipment, "evse_id", None)
        # the EVCC must start the handshake within the sequence timeout too
        self._arm(timing.timeout(timing.of("sap").sequence(DEFAULT)), "no supportedAppProtocolReq")

    def receive(self, payload_type: int, data: bytes, now: float) -> list[Event]:
        self.now = now
        if self.finished:
            return []
        decoded = self._decode(payload_type, data)
        if isinstance(decoded, Undecodable):
            return [decoded, Close(f"undecodable message: {decoded.reason}"),
                    self._finish(False, f"undecodable message from the EV: {decoded.reason}")]
        self.count += 1
        events: list[Event] = [decoded]
        problem = exi.violation(decoded.message, decoded.schema)
        if problem is not None:
            return events + self._invalid(decoded, problem)
        if self.rules is None:
            events += self._handshake(decoded)
        else:
            events += self._request(decoded)
        return events

    def poll(self, now: float) -> list[Event]:
        self.now = now
        if self.finished or self.deadline is None or now < self.deadline:
            return []
        reason = self._deadline_reason
        return [Notice("SequenceTimeout", f"SECC: {reason} within V2G_SECC_Sequence_Timeout", {"state": self.state}),
                Close(f"sequence timeout ({reason})"),
                self._finish(False, f"V2G_SECC_Sequence_Timeout: {reason}")]

    def _invalid(self, received: Received, problem: str) -> list[Event]:
        """A request that decodes but breaks its schema (a value out of range, a required element
        left empty): refused with FAILED (Failed_NoNegotiation for the handshake), and the
        connection closed; nothing of it reaches the session's rules."""
        why = f"{received.name} breaks the {received.schema} schema: {problem}"
        if self.rules is None:
            if received.name != "supportedAppProtocolReq":
                return self._handshake(received)
            send = self._encode("supportedAppProtocolRes", {"supportedAppProtocolRes": {"ResponseCode": sap.FAILED}})
            self.facts["negotiation"] = why
            return [Notice("NegotiationFailed", why), send, Close("Failed_NoNegotiation"),
                    self._finish(False, f"Failed_NoNegotiation: {why}", code=sap.FAILED)]
        if not received.name.endswith("Req"):
            return self._request(received)  # refused as not a request
        return self._refuse(received.name, "FAILED", why)

    def _handshake(self, received: Received) -> list[Event]:
        if received.name != "supportedAppProtocolReq":
            return [Notice("HandshakeExpected", f"{received.name} before the supportedAppProtocol handshake"),
                    Close("no handshake"), self._finish(False, f"{received.name} before the handshake")]
        result = sap.negotiate(received.message, self.supported, tls13=self.tls13)
        send = self._encode("supportedAppProtocolRes", result.response)
        self.facts["negotiation"] = result.why
        if not result.ok:
            return [Notice("NegotiationFailed", result.why), send, Close("Failed_NoNegotiation"),
                    self._finish(False, f"Failed_NoNegotiation: {result.why}", code=sap.FAILED)]
        chosen = result.chosen
        assert chosen is not None  # result.ok
        self.protocol = chosen
        self.rules = rules_for(chosen.family)
        self.rules.secc_start(self)
        self._after_response("supportedAppProtocolRes")
        self.state = START
        return [Notice("ProtocolNegotiated", f"SECC chose {result.why}", {"protocol": chosen.key}), send]

    def _request(self, received: Received) -> list[Event]:
        rules = self.rules
        assert rules is not None
        name = received.name
        if not name.endswith("Req"):
            return [Notice("NotARequest", f"SECC received {name}, which is not a request"),
                    Close("not a request"), self._finish(False, f"{name} is not a request")]
        body = messages.body_of(received.message)
        incoming_id = messages.session_id_of(received.message) or ""
        if name == "SessionSetupReq":
            self.evccid = body.get("EVCCID")
        # SessionID: anything but the session's own is refused once the session exists
        if self.session_id is not None and name != "SessionSetupReq" and incoming_id != self.session_id:
            return self._refuse(name, "FAILED_UnknownSession",
                                f"SessionID {incoming_id} is not this session's ({self.session_id})")
        if not rules.table.allowed(self.state, name, self):
            return self._refuse(name, "FAILED_SequenceError", f"{name} may not follow {self.state}",
                                requirement=self._sequence_rule())
        try:
            reply = rules.secc_handle(self, name, body, received.message)
        except exi.ExiError as exc:  # a response we built that does not encode: a harness bug, loudly
            raise RuntimeError(f"SECC built an invalid {name[:-3]}Res: {exc}") from exc
        if reply.later is not None:
            return [*reply.notices, Deferred(name, reply.later)]
        return self.resume(name, reply)

    def resume(self, name: str, reply: Reply) -> list[Event]:
        """Answer request ``name`` with ``reply`` (at once, or after a :class:`Deferred`)."""
        response = messages.response_name(name)
        if reply.message is not None:
            schema = messages.schema_of(self.family or "iso2", response)
            try:
                data = exi.encode(reply.message, schema)
            except exi.ExiError as exc:
                raise RuntimeError(f"the {response} a secondary actor built does not encode: {exc}") from exc
            send = Send(response, reply.message, data, messages.payload_type_of(self.family or "iso2", response), schema)
        else:
            send = self._encode(response, reply.body, reply.sign)
        events: list[Event] = [*reply.notices, send]
        code = reply.body.get("ResponseCode")
        if failed(code):
            events += [Close(f"{response} {code}"), self._finish(False, f"{response} {code}", code=code)]
        elif reply.ends:
            events.append(self._finish(True, "paused by the EV" if reply.paused else "session stopped by the EV",
                                       paused=reply.paused))
        else:
            self._after_response(response)
        return events

    def _after_response(self, response: str) -> None:
        self.state = response
        timers = self.timing.of(self.family or "sap")
        self._arm(self.timing.timeout(timers.sequence(response)), f"no request after {response}")

    def _refuse(self, request: str, code: str, why: str, requirement: str = "") -> list[Event]:
        rules = self.rules
        assert rules is not None
        if self.session_id is None:
            self.session_id = messages.NO_SESSION[rules.family]
        body = rules.secc_failure(self, request, code)
        response = messages.response_name(request)
        notice = self._violation(code.removeprefix("FAILED_") or code, request, why, requirement, request=request)
        try:
            send = self._encode(response, body)
        except exi.ExiError as exc:  # a request type this SECC has no answer for at all
            return [notice, Notice("NoResponse", f"SECC cannot build {response} ({exc}); it closes the connection"),
                    Close(f"no {response}"), self._finish(False, f"{request} refused without a response: {why}")]
        return [notice, send, Close(f"{response} {code}"),
                self._finish(False, f"{response} {code}: {notice.summary}", code=code)]

    def new_session_id(self) -> str:
        return self.random_bytes(8).hex().upper()


# -- EVCC ----------------------------------------------------------------------------------------

class EvccSession(_Session):
    """The EV's side of one connection.

    ``ev`` is the vehicle the EVCC speaks for (:class:`harness.v2g.vehicle.Vehicle`): its
    identity, battery, limits and what this session shall do (protocols, energy mode,
    identification, how many charge loops).
    """

    side = "ev"
    role = "EVCC"

    def __init__(self, ev: Any, *, offered: Sequence[sap.AppProtocol | str], timing: Timing = STANDARD,
                 now: float = 0.0, resume_session_id: str | None = None,
                 clock_wall: Callable[[], float] | None = None) -> None:
        super().__init__(timing=timing, now=now, clock_wall=clock_wall)
        self.ev = ev
        self.offer = sap.offer(offered)
        self.resume_session_id = resume_session_id
        self.sent_name: str | None = None
        self._queued: Request | None = None
        self._ongoing_since: dict[str, float] = {}
        self._first_sent: dict[str, float] = {}
        #: V2G_EVCC_CommunicationSetup_Timeout: the connection to SessionSetupRes
        self._setup_deadline: float | None = None

    def restrict_offer(self, tls: str | None) -> list[Event]:
        """Before the handshake: leave ISO 15118-20 out of the offer on a connection below TLS 1.3
        ([V2G20-1237]; -20 Table 5 allows -20 on TLS 1.3 only). A notice says what was left out."""
        if tls == "TLSv1.3":
            return []
        kept = [p for p, _, _ in self.offer.entries if not p.tls_required]
        dropped = [p.key for p, _, _ in self.offer.entries if p.tls_required]
        if not dropped or not kept:
            return []  # nothing to leave out, or nothing left: the SECC says no in its answer
        self.offer = sap.offer(kept)
        return [Notice("OfferRestricted", f"EVCC: {', '.join(dropped)} not offered on "
                       f"{tls or 'TCP without TLS'} ([V2G20-1237]: ISO 15118-20 runs on TLS 1.3 only)",
                       {"dropped": dropped})]

    def start(self, now: float) -> list[Event]:
        """The first message: supportedAppProtocolReq."""
        self.now = now
        self.started = now
        self._setup_deadline = now + self.timing.timeout(self.timing.of("sap").communication_setup_timeout)
        return self._send(Request("supportedAppProtocolReq", sap.request(self.offer)))

    def receive(self, payload_type: int, data: bytes, now: float) -> list[Event]:
        self.now = now
        if self.finished:
            return []
        decoded = self._decode(payload_type, data)
        if isinstance(decoded, Undecodable):
            return [decoded, Close(f"undecodable message: {decoded.reason}"),
                    self._finish(False, f"undecodable message from the EVSE: {decoded.reason}")]
        self.count += 1
        events: list[Event] = [decoded]
        problem = exi.violation(decoded.message, decoded.schema)
        if problem is not None:
            why = f"{decoded.name} breaks the {decoded.schema} schema: {problem}"
            return events + [Notice("InvalidMessage", f"EVCC: {why}"), Close("invalid message"),
                             self._finish(False, f"invalid message from the EVSE: {why}")]
        refused = self._check_response(decoded)
        if refused:
            return events + refused
        self.sent_name = None
        self.deadline = None
        if self.rules is None:
            return events + self._handshake_answered(decoded)
        body = messages.body_of(decoded.message)
        code = body.get("ResponseCode")
        incoming_id = messages.session_id_of(decoded.message)
        if decoded.name == "SessionSetupRes" and not failed(code):
            self.session_id = incoming_id
            self.evse_id = body.get("EVSEID")
            self._setup_deadline = None
        elif self.session_id is not None and incoming_id != self.session_id and not failed(code):
            return events + self._stop(Stop(False, f"{decoded.name} carries SessionID {incoming_id}, "
                                                   f"not this session's {self.session_id}"))
        if failed(code):
            return events + self._stop(Stop(False, f"{decoded.name} {code}"), code=code)
        self.state = decoded.name
        processing = body.get("EVSEProcessing")
        if processing == "Ongoing":
            request = messages.request_name(decoded.name)
            since = self._ongoing_since.setdefault(request, self._first_sent.get(request, now))
            limit = self.timing.timeout(self.timing.of(self.family or "sap").ongoing_timeout)
            if now - since > limit:
                return events + [Notice("OngoingTimeout", f"EVCC: {decoded.name} still Ongoing after "
                                                           f"V2G_EVCC_Ongoing_Timeout")] + \
                    self._stop(Stop(False, f"V2G_EVCC_Ongoing_Timeout in {request}"))
        else:
            self._ongoing_since.pop(messages.request_name(decoded.name), None)
        step = self.rules.evcc_next(self, decoded.name, body, decoded.message)
        return events + self._step(step)

    def _check_response(self, received: Received) -> list[Event]:
        """Nothing if ``received`` answers the request outstanding, which the table allows in
        this state; else the sequence error that ends the session (see the module docstring)."""
        name, sent = received.name, self.sent_name
        code = messages.response_code_of(received.message) if name.endswith("Res") else None
        shown = f"{name} {code}" if code else name
        if not name.endswith("Res"):
            why, notice = "it is not a response", "NotAResponse"
        elif sent is None:
            why, notice = f"no request is outstanding (got {shown})", "SequenceError"
        elif name != messages.response_name(sent):
            why, notice = f"expected {messages.response_name(sent)}, got {shown}", "SequenceError"
        elif self.rules is not None and not self.rules.table.allowed(self.state, sent, self):
            why, notice = f"it answers {sent}, which may not follow {self.state}", "SequenceError"
        else:
            return []
        refusal = self._violation(notice, name, why, self._sequence_rule(), sent=sent)
        return [refusal] + self._stop(Stop(False, refusal.summary), code=code)

    def poll(self, now: float) -> list[Event]:
        self.now = now
        if self.finished or self.deadline is None or now < self.deadline:
            return []
        if self._queued is not None:
            request, self._queued = self._queued, None
            return self._send(request)
        if self._setup_deadline is not None and now >= self._setup_deadline:
            return [Notice("CommunicationSetupTimeout", "EVCC: no SessionSetupRes within "
                           "V2G_EVCC_CommunicationSetup_Timeout")] + \
                self._stop(Stop(False, "V2G_EVCC_CommunicationSetup_Timeout"))
        reason = self._deadline_reason
        return [Notice("MessageTimeout", f"EVCC: {reason} within V2G_EVCC_Msg_Timeout")] + \
            self._stop(Stop(False, f"V2G_EVCC_Msg_Timeout: {reason}"))

    def elapsed_since_first(self, request: str) -> float:
        """How long ago ``request`` was first sent (CableCheck and PreCharge timers)."""
        return self.now - self._first_sent.get(request, self.now)

    def _handshake_answered(self, received: Received) -> list[Event]:
        try:
            chosen = sap.accepted(received.message, self.offer)
        except sap.NegotiationError as exc:
            code = received.message["supportedAppProtocolRes"].get("ResponseCode")
            return self._stop(Stop(False, str(exc)), code=code)
        self.protocol = chosen
        self.rules = rules_for(chosen.family)
        self.session_id = self.resume_session_id or messages.NO_SESSION[chosen.family]
        self.ev.use_credentials_of(chosen.family)  # the contract of the generation the SECC chose
        self.evccid = self.ev.evccid(chosen.family)
        events: list[Event] = [Notice("ProtocolNegotiated", f"EVCC: SECC chose {chosen.key}",
                                      {"protocol": chosen.key})]
        return events + self._step(self.rules.evcc_first(self))

    def _step(self, step: Request | Stop) -> list[Event]:
        if isinstance(step, Stop):
            return self._stop(step)
        if step.delay > 0:
            self._queued = step
            self.deadline = self.now + step.delay
            self._deadline_reason = f"pause before {step.name}"
            return []
        return self._send(step)

    def _send(self, request: Request) -> list[Event]:
        events: list[Event] = []
        if request.cp:
            events.append(SetCp(request.cp))
        send = self._encode(request.name, request.body, request.sign)
        events.append(send)
        self.sent_name = request.name
        self._first_sent.setdefault(request.name, self.now)
        timers = self.timing.of(self.family or "sap")
        self._arm(self.timing.timeout(timers.msg(request.name)), f"no {messages.response_name(request.name)}")
        if self._setup_deadline is not None and self.deadline is not None and self._setup_deadline < self.deadline:
            self.deadline = self._setup_deadline
        return events

    def _stop(self, stop: Stop, code: str | None = None) -> list[Event]:
        events: list[Event] = []
        if stop.cp:
            events.append(SetCp(stop.cp))
        events.append(Close(stop.reason))
        events.append(self._finish(stop.ok, stop.reason, code=code or stop.code, paused=stop.paused))
        return events
