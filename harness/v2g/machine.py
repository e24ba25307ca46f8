"""The parts every V2G session machine is made of: the events it returns to its adapter, a
protocol's transition table, what one step says, the session context the rules keep, and the
:class:`Rules` interface each protocol (:mod:`harness.v2g.din`, :mod:`harness.v2g.iso2`,
:mod:`harness.v2g.iso20`) implements for both sides. The machines themselves are in
:mod:`harness.v2g.session`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, TypeVar

from harness.v2g.messages import body_of

if TYPE_CHECKING:  # the machines hand themselves to their rules
    from harness.v2g.session import EvccSession, SeccSession

START = "Start"  # the state before the first request of the protocol (after the handshake)


# -- events ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` (EXI) with V2GTP ``payload_type``."""

    name: str
    message: dict
    data: bytes
    payload_type: int
    schema: str


@dataclass(frozen=True, slots=True)
class Received:
    """A message that arrived and decoded."""

    name: str
    message: dict
    data: bytes
    payload_type: int
    schema: str


@dataclass(frozen=True, slots=True)
class Undecodable:
    data: bytes
    payload_type: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a line on the timeline that is not a message (a timeout, a refusal)."""

    name: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetCp:
    """The EV switches the control pilot (B, C) before what follows."""

    state: str


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: "Outcome"


@dataclass(frozen=True, slots=True)
class Deferred:
    """The SECC answers ``request`` once a secondary actor has (a CSMS asked for the EV's
    contract): the adapter awaits ``answer()`` and hands the Reply to ``SeccSession.resume``."""

    request: str
    answer: Callable[[], Awaitable["Reply"]]


Event = Send | Received | Undecodable | Notice | SetCp | Close | Finished | Deferred


@dataclass(frozen=True)
class Outcome:
    """How a session ended. ``ok``: it ended as the side wanted (SessionStop answered OK)."""

    ok: bool
    reason: str
    protocol: str | None = None
    session_id: str | None = None
    #: the response code that ended it, if one did
    response_code: str | None = None
    #: the session was paused (SessionStop with Pause) and may be resumed
    paused: bool = False
    messages: int = 0


# -- the session context ------------------------------------------------------------------------

@dataclass
class Context:
    """What a session machine keeps between messages, as its protocol's rules write it.

    Each protocol family extends it once for what its table's guards read (both sides keep that
    alike: the SECC from the requests, the EVCC from the responses) and then once per side
    (:class:`harness.v2g.din.DinSecc`, :class:`harness.v2g.iso2.Iso2Evcc`, ...), so that a
    misspelt field is a type error instead of a silent default. A session holds a bare
    :class:`Context` until the handshake chose the protocol.
    """

    #: EVSEProcessing of the last response that carried it ("Ongoing": the request is repeated)
    processing: str = "Finished"
    #: charge loop rounds so far (ChargingStatus/CurrentDemand/ChargeLoop)
    loops: int = 0
    #: the SECC: the power (W, signed) its last charge-loop response offered or set
    target_w: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # the type checker refuses a misspelt field; this refuses it at run time too (the
        # subclasses combine several bases, which __slots__ would not allow)
        if name not in self.__dataclass_fields__:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, name, value)


C = TypeVar("C", bound=Context)


def target_notice(context: Context, target_w: float) -> tuple[Notice, ...]:
    """A TargetPower notice when the power a charge-loop response carries (a target or a
    maximum, W; negative: discharge) differs from the one before: the moment a new limit or
    setpoint reaches the EV, for the grid latencies (:mod:`harness.correlation.latency`)."""
    if context.target_w is not None and abs(context.target_w - target_w) < 1.0:
        return ()
    context.target_w = target_w
    return (Notice("TargetPower", f"SECC target {target_w / 1000:.2f} kW", {"target_w": target_w}),)


def schedule_notice(upper_w: float, lower_w: float | None = None) -> Notice:
    """A SchedulePower notice: the bounds of the schedule a response offers (W)."""
    summary = f"SECC schedule: {upper_w / 1000:.2f} kW at most"
    if lower_w is not None:
        summary += f", {lower_w / 1000:.2f} kW at least"
    return Notice("SchedulePower", summary, {"upper_w": upper_w, "lower_w": 0.0 if lower_w is None else lower_w})


def context_of(session: Any, kind: type[C]) -> C:
    """``session.context`` as the ``kind`` its rules made it (a mix-up is a harness bug, loudly)."""
    context = session.context
    if not isinstance(context, kind):
        raise TypeError(f"{type(session).__name__} has a {type(context).__name__} context, "
                        f"not the {kind.__name__} of these rules")
    return context


# -- the transition table --------------------------------------------------------------------

Guard = Callable[[Any], bool]


@dataclass(frozen=True)
class Table:
    """What may follow what. ``next[state]`` maps each request allowed after the response
    ``state`` (or after the handshake, :data:`START`) to the name of its guard; guards are
    predicates over the session (they read its :class:`Context`), named in ``guards`` so the
    table reads as text. Both sides check against it: the SECC each request it receives, the
    EVCC the request each response it receives answers.
    """

    protocol: str
    next: Mapping[str, Mapping[str, str]]
    guards: Mapping[str, Guard]

    def allowed(self, state: str, request: str, context: Any) -> bool:
        guard = self.next.get(state, {}).get(request)
        return guard is not None and self.guards[guard](context)

    def followers(self, state: str, context: Any) -> list[str]:
        return [r for r, g in self.next.get(state, {}).items() if self.guards[g](context)]

    def check(self) -> None:
        """Every guard a row names exists (a table naming an unknown guard fails at import)."""
        for state, row in self.next.items():
            for request, guard in row.items():
                if guard not in self.guards:
                    raise ValueError(f"{self.protocol} table: {state} -> {request}: no guard {guard!r}")


# -- what the protocol modules provide ----------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """The SECC's answer to a request: the response body and what happens after it."""

    body: dict
    #: the session ends once this response is sent (SessionStopRes)
    ends: bool = False
    paused: bool = False
    #: sign these elements of the response (CertificateInstallationRes, SalesTariff) with this key
    sign: tuple[Any, tuple[str, ...]] | None = None
    #: what the SECC noticed about the request without refusing it (a rule the EV broke), for the timeline
    notices: tuple["Notice", ...] = ()
    #: the whole response as a secondary actor built and signed it, sent as it is (``body`` is its body)
    message: dict | None = None
    #: answer later: the adapter awaits this for the real Reply (see :class:`Deferred`)
    later: Callable[[], Awaitable["Reply"]] | None = None


@dataclass(frozen=True)
class Request:
    """The EVCC's next request, sent after ``delay`` seconds (the rig's waits), after ``cp``."""

    name: str
    body: dict
    delay: float = 0.0
    cp: str | None = None
    sign: tuple[Any, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Stop:
    """The EVCC ends the session without a further request."""

    ok: bool
    reason: str
    cp: str | None = None
    paused: bool = False
    #: the response code that made the EV stop (a -20 WARNING it does not go on after)
    code: str | None = None


class Rules:
    """A protocol's rules for both sides. Subclasses fill in the table and the steps."""

    family: str = ""
    table: Table

    # SECC
    def secc_start(self, session: "SeccSession") -> None:
        """Called once after the handshake chose this protocol."""

    def secc_handle(self, session: "SeccSession", name: str, body: dict, message: dict) -> Reply:
        raise NotImplementedError

    def secc_failure(self, session: "SeccSession", request: str, code: str) -> dict:
        """The response body to ``request`` carrying ``code``: the mandatory parameters only."""
        raise NotImplementedError

    def secc_timestamp(self, session: "SeccSession") -> int | None:
        return None

    def secc_relayed(self, session: "SeccSession", request: str, message: dict, schema: str,
                     unavailable: str) -> Reply | None:
        """A charger that asks a secondary actor (OCPP Get15118EVCertificate) for the answer to
        the EV's certificate ``request`` answers with the response message it gets, as it is, and
        with ``unavailable`` when none comes; None when it provisions itself."""
        relay = session.equipment.certificate_relay(request, message, schema)
        if relay is None:
            return None

        async def later() -> Reply:
            response = await relay()
            if response is None:
                return Reply(self.secc_failure(session, request, unavailable))
            return Reply(body_of(response), message=response)

        return Reply({}, later=later)

    def secc_stand_in(self, stand_in: "SeccSession", ev: "EvccSession") -> None:
        """``stand_in`` answers a request the EV's fault plan skips (:mod:`harness.v2g.evcc`):
        give it what the EV's session chose that the answer depends on. Called after
        :meth:`secc_start`."""

    # EVCC
    def evcc_first(self, session: "EvccSession") -> Request:
        raise NotImplementedError

    def evcc_next(self, session: "EvccSession", name: str, body: dict, message: dict) -> Request | Stop:
        raise NotImplementedError


def failed(code: str | None) -> bool:
    return code is not None and code.upper().startswith("FAILED")
