"""One side of an OCPP-J connection, over any message transport (a websockets connection).

Both the mock CSMS (one endpoint per connected station) and the station emulator use this class:
it records every frame in and out on the timeline, answers malformed frames with the CALLERROR
the version prescribes (keeping the connection up), runs each incoming CALL in its own task so a
slow handler never blocks the receive loop, and matches responses to the calls it sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from harness.ocpp import frames
from harness.ocpp.correlation import frame_event, message_keys
from harness.ocpp.frames import Call, CallError, CallResult, CallResultError, FrameError, Send, Violation
from harness.ocpp.versions import OcppVersion
from harness.trace import Layer, Recorder
from harness.trace.limits import BadInputLimit

log = logging.getLogger(__name__)


class MessageTransport(Protocol):
    """What an endpoint needs from a connection; websockets' connections are such transports."""

    async def send(self, message: str | bytes) -> None: ...  # bytes: a raw frame (send_raw)

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


# -- what a handler may answer ----------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """Answer with a CALLRESULT carrying ``payload``; ``then`` runs once the answer is sent
    (what a station does after accepting a request, such as starting the transaction)."""

    payload: dict[str, Any]
    then: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Error:
    """Answer with a CALLERROR."""

    code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoReply:
    """Say nothing: the caller will time out."""


@dataclass(frozen=True)
class Disconnect:
    """Drop the connection instead of answering (abort: no WebSocket close handshake)."""

    abort: bool = True


Reply = Result | Error | NoReply | Disconnect


@dataclass(frozen=True)
class IncomingCall:
    """A validated CALL (or 2.1 SEND) as a handler sees it."""

    endpoint: "OcppEndpoint"
    message_id: str
    action: str
    payload: dict[str, Any]

    @property
    def version(self) -> OcppVersion:
        return self.endpoint.version

    @property
    def station_id(self) -> str:
        return self.endpoint.station_id


Handler = Callable[[IncomingCall], Awaitable[Reply]]


# -- what a caller may get back ---------------------------------------------------------------

class OcppCallFailed(Exception):
    """A call this endpoint sent did not get a usable CALLRESULT."""


class CallErrorReceived(OcppCallFailed):
    def __init__(self, action: str, error: CallError) -> None:
        super().__init__(f"{action}: peer answered CALLERROR {error.code} ({error.description})")
        self.error = error


class CallTimeout(OcppCallFailed):
    pass


#: calls from the peer an endpoint holds unanswered at once, at most (OCPP-J lets a peer have one
#: outstanding CALL; this leaves room for slow handlers and bounds a peer that never reads)
MAX_UNANSWERED = 64


class ConnectionLost(OcppCallFailed):
    pass


class InvalidResponse(OcppCallFailed):
    def __init__(self, action: str, problem: FrameError) -> None:
        super().__init__(f"{action}: response violates the schema: {problem.detail}")
        self.problem = problem


@dataclass
class _Pending:
    action: str
    payload: dict[str, Any]
    future: asyncio.Future


class OcppEndpoint:
    """One OCPP-J peer. ``local`` and ``peer`` name the participants for the timeline
    ("csms", "evse"); ``handlers(action)`` returns the handler for an incoming action or None
    when this side does not support it."""

    def __init__(self, transport: MessageTransport, *, version: OcppVersion, station_id: str,
                 local: str, peer: str, recorder: Recorder,
                 handlers: Callable[[str], Handler | None], response_timeout: float = 30.0,
                 validate_requests: bool = True) -> None:
        self.transport = transport
        self.version = version
        self.station_id = station_id
        self.local = local
        self.peer = peer
        self.recorder = recorder
        self.response_timeout = response_timeout
        self.validate_requests = validate_requests
        self._handlers = handlers
        self._pending: dict[str, _Pending] = {}
        self._call_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._ids = (f"{uuid.uuid4().hex[:8]}-{n}" for n in itertools.count(1))
        self.closed = asyncio.Event()
        self.close_reason = ""
        #: the peer went over MAX_UNANSWERED and the connection is being closed
        self._cut_off = False
        #: refused frames (malformed, unknown action, invalid payload): each is still answered, as
        #: OCPP-J says, but a flood is recorded as its first frames and a count
        self._bad_input = BadInputLimit(self._suppressed)

    # -- receiving ------------------------------------------------------------------------

    async def run(self) -> None:
        """Receive until the connection closes; then fail whatever calls are still pending."""
        try:
            while True:
                try:
                    message = await self.transport.recv()
                except Exception as exc:  # websockets.ConnectionClosed and transport failures
                    self.close_reason = _describe_close(exc)
                    break
                await self._receive(message)
        finally:
            self._bad_input.flush()
            self.closed.set()
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ConnectionLost(
                        f"{pending.action}: connection closed before the response ({self.close_reason})"))
            self._pending.clear()
            for task in list(self._tasks):
                task.cancel()

    async def _receive(self, message: str | bytes) -> None:
        try:
            frame = frames.parse(message, self.version)
        except FrameError as problem:
            quiet = not self._bad_input.admit()
            if not quiet:
                self._record_in(message, None, problem)
            if problem.violation is Violation.UNKNOWN_MESSAGE_TYPE and self.version is OcppVersion.V16:
                return  # OCPP-J 1.6 §4.1.3: a message with an unknown message type SHALL be ignored
            if problem.frame_type in (frames.MessageType.CALLRESULT, frames.MessageType.CALLERROR,
                                      frames.MessageType.CALLRESULTERROR):
                # Responses are never answered (OCPP-J 1.6 §4.2, 2.0.1 Part 4 §4.2); the call
                # they belonged to, if any, fails with what was wrong.
                self._fail_pending(problem.message_id, InvalidResponse("?", problem))
                return
            await self._send_frame(problem.call_error(self.version), action="malformed",
                                   note=problem.violation.name, quiet=quiet)
            return
        if isinstance(frame, Call):  # CALL or 2.1 SEND
            if self._cut_off:
                return  # closing: what still arrives is not taken in
            if len(self._tasks) >= MAX_UNANSWERED:
                self._cut_off = True
                # OCPP-J has a peer wait for the answer to its CALL before the next one; a peer that
                # floods calls without reading the answers is cut off here, not held in memory
                self._record_in(message, frame, None, note="over the limit of unanswered calls")
                self._emit(Layer.FAULT, "TooManyCalls", f"{self.peer} has {len(self._tasks)} calls unanswered "
                           f"(it does not read the answers); {self.local} closes the connection",
                           src=self.local, dst=self.peer, keys={"station_id": self.station_id},
                           payload={"unanswered": len(self._tasks), "limit": MAX_UNANSWERED})
                self._spawn(self.disconnect(code=1008, reason="too many calls unanswered"))
                return
            handler, refusal = self._admit(frame)
            quiet = refusal is not None and not self._bad_input.admit()
            if not quiet:
                self._record_in(message, frame, refusal)
            if refusal is not None:
                if not isinstance(frame, Send):
                    await self._send_frame(refusal.call_error(self.version), action=frame.action,
                                           note=refusal.violation.name, quiet=quiet)
                return
            assert handler is not None
            self._spawn(self._handle_call(frame, handler))
        elif isinstance(frame, CallResult):
            self._handle_result(message, frame)
        else:
            pending = self._pending.pop(frame.message_id, None)
            self._record_in(message, frame, None, action=pending.action if pending else None)
            if pending and not pending.future.done():
                pending.future.set_exception(CallErrorReceived(pending.action, frame))

    def _handle_result(self, message: str | bytes, frame: CallResult) -> None:
        pending = self._pending.pop(frame.message_id, None)
        if pending is None:
            self._record_in(message, frame, None, action=None, note="no call with this messageId is pending")
            return
        try:
            frames.validate(pending.action, frame.payload, self.version, request=False,
                            message_id=frame.message_id)
        except FrameError as problem:
            self._record_in(message, frame, problem, action=pending.action)
            if not pending.future.done():
                pending.future.set_exception(InvalidResponse(pending.action, problem))
            if self.version is OcppVersion.V21:
                self._spawn(self._send_frame(CallResultError(frame.message_id, problem.error_code(self.version),
                                                             problem.detail[:255])))
            return
        self._record_in(message, frame, None, action=pending.action,
                        extra_keys=message_keys(pending.action, pending.payload))
        if not pending.future.done():
            pending.future.set_result(frame.payload)

    def _admit(self, call: Call) -> tuple[Handler | None, FrameError | None]:
        """The handler for a received CALL, or what is wrong with it (checked before recording,
        so the timeline shows each frame once, with its verdict)."""
        try:
            if not frames.is_known_action(call.action, self.version):
                raise FrameError(Violation.UNKNOWN_ACTION, f"{call.action!r} is not an OCPP {self.version} action",
                                 message_id=call.message_id, action=call.action)
            handler = self._handlers(call.action)
            if handler is None:
                raise FrameError(Violation.UNSUPPORTED_ACTION, f"{self.local} does not handle {call.action}",
                                 message_id=call.message_id, action=call.action)
            if self.validate_requests:
                frames.validate(call.action, call.payload, self.version, request=True,
                                message_id=call.message_id)
        except FrameError as problem:
            return None, problem
        return handler, None

    async def _handle_call(self, call: Call, handler: Handler) -> None:
        try:
            reply = await handler(IncomingCall(self, call.message_id, call.action, call.payload))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._emit(Layer.FAULT, "handler-crashed", f"{self.local} handler for {call.action} raised {exc!r}",
                               src=self.local, payload={"traceback": traceback.format_exc()},
                               keys={"station_id": self.station_id, "message_id": call.message_id})
            reply = Error("InternalError", f"{type(exc).__name__} while handling {call.action}")
        if not isinstance(call, Send):  # nobody answers a 2.1 SEND
            await self._answer(call, reply)

    async def _answer(self, call: Call, reply: Reply) -> None:
        if isinstance(reply, Result):
            await self._send_frame(CallResult(call.message_id, reply.payload), action=call.action,
                                   extra_keys=message_keys(call.action, call.payload))
            if reply.then is not None:
                try:
                    await reply.then()
                except Exception as exc:
                    self._emit(Layer.FAULT, "follow-up-crashed",
                                       f"{self.local} failed after answering {call.action}: {exc!r}",
                                       src=self.local, payload={"traceback": traceback.format_exc()},
                                       keys={"station_id": self.station_id, "message_id": call.message_id})
        elif isinstance(reply, Error):
            await self._send_frame(CallError(call.message_id, reply.code, reply.description, reply.details),
                                   action=call.action)
        elif isinstance(reply, Disconnect):
            self._emit(Layer.OCPP, "Disconnect", f"{self.local} drops the connection instead of answering "
                               f"{call.action}", src=self.local, dst=self.peer,
                               keys={"station_id": self.station_id, "message_id": call.message_id})
            await self.disconnect(abort=reply.abort)
        else:
            self._emit(Layer.OCPP, call.action, f"{self.local} stays silent on {call.action}",
                               src=self.local, keys={"station_id": self.station_id, "message_id": call.message_id})

    def _emit(self, layer: Layer, name: str, summary: str, **fields: Any) -> None:
        self.recorder.emit(layer, name, summary, observer=self.local, **fields)

    def note(self, name: str, summary: str, **fields: Any) -> None:
        """A decision of this side's own (not a frame) on the timeline, e.g. the CSMS's verdict
        on a contract certificate."""
        self._emit(Layer.OCPP, name, summary, src=self.local, **fields)

    def _fail_pending(self, message_id: str, error: Exception) -> None:
        pending = self._pending.pop(message_id, None)
        if pending and not pending.future.done():
            pending.future.set_exception(error)

    # -- sending --------------------------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                   validate: bool = True) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload.

        One call at a time per endpoint, as OCPP-J requires of a sender; calls from the peer are
        still received and answered meanwhile. ``validate=False`` sends a payload that violates
        the schema on purpose.
        """
        if validate:
            frames.validate(action, payload, self.version, request=True)
        async with self._call_lock:
            if self.closed.is_set():
                raise ConnectionLost(f"{action}: not connected")
            message_id = next(self._ids)
            future = asyncio.get_running_loop().create_future()
            self._pending[message_id] = _Pending(action, payload, future)
            try:
                await self._send_frame(Call(message_id, action, payload), action=action)
                async with asyncio.timeout(timeout if timeout is not None else self.response_timeout):
                    return await future
            except asyncio.TimeoutError:
                self._emit(Layer.OCPP, action, f"no response to {action} within "
                                   f"{timeout if timeout is not None else self.response_timeout:g} s",
                                   src=self.peer, dst=self.local,
                                   keys={"station_id": self.station_id, "message_id": message_id})
                raise CallTimeout(f"{action}: no response from {self.peer}") from None
            except Exception as exc:
                if isinstance(exc, OSError) or type(exc).__name__.startswith("ConnectionClosed"):
                    raise ConnectionLost(f"{action}: {exc}") from None
                raise
            finally:
                self._pending.pop(message_id, None)

    async def send_raw(self, text: str | bytes) -> None:
        """Send any text as a frame, well-formed or not (fault injection); recorded as sent."""
        self._emit(Layer.OCPP, "raw", f"{self.local} sends a raw frame ({len(text)} bytes)",
                           src=self.local, dst=self.peer,
                           payload={"frame": text if isinstance(text, str) else text.hex()},
                           keys={"station_id": self.station_id})
        await self.transport.send(text)

    async def disconnect(self, *, abort: bool = False, code: int = 1000, reason: str = "") -> None:
        transport = getattr(self.transport, "transport", None)
        if abort and transport is not None:
            transport.abort()
        else:
            await self.transport.close(code, reason)

    async def _send_frame(self, frame: frames.Frame, *, action: str | None = None, note: str = "",
                          extra_keys: dict[str, str] | None = None, quiet: bool = False) -> None:
        text = frames.serialize(frame)
        if not quiet:
            self._record(frame, text, outgoing=True, action=action, note=note, extra_keys=extra_keys)
        try:
            await self.transport.send(text)
        except Exception as exc:  # the peer went away while we answered: recorded, not raised
            self._emit(Layer.OCPP, action or "send-failed", f"{self.local} could not send: {exc!r}",
                               src=self.local, dst=self.peer, keys={"station_id": self.station_id})
            if isinstance(frame, Call):
                raise

    def _suppressed(self, suppressed: int, recorded: int, window_s: float) -> None:
        self._emit(Layer.OCPP, "BadInputSuppressed", f"{suppressed} more refused frame(s) from {self.peer} "
                   f"within {window_s:g} s, answered but not recorded one by one", src=self.peer,
                   dst=self.local, keys={"station_id": self.station_id},
                   payload={"suppressed": suppressed, "recorded": recorded, "window_s": window_s})

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- recording ------------------------------------------------------------------------

    def _record_in(self, raw: str | bytes, frame: frames.Frame | None, problem: FrameError | None, *,
                   action: str | None = None, note: str = "", extra_keys: dict[str, str] | None = None) -> None:
        self._record(frame, raw, outgoing=False, action=action, problem=problem, note=note, extra_keys=extra_keys)

    def _record(self, frame: frames.Frame | None, raw: str | bytes, *, outgoing: bool, action: str | None,
                problem: FrameError | None = None, note: str = "", extra_keys: dict[str, str] | None = None) -> None:
        src, dst = (self.local, self.peer) if outgoing else (self.peer, self.local)
        name, summary, body, keys = frame_event(frame, raw, station_id=self.station_id, action=action,
                                                problem=problem, note=note, extra_keys=extra_keys)
        self._emit(Layer.OCPP, name, summary, src=src, dst=dst, payload=body, keys=keys)


def _describe_close(exc: BaseException) -> str:
    code = getattr(getattr(exc, "rcvd", None), "code", None)
    return f"closed ({code})" if code is not None else f"{type(exc).__name__}: {exc}"
