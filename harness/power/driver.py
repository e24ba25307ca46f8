"""What the SCPI drivers share: one query answers one reading, described by a list of fields.

A driver says which commands set the wiring and choose what the instrument returns, which query
returns a reading, and what each value of the reply is:

    U<n>, I<n>, P<n>   voltage, current, active power of channel n
    P                  total active power (else the sum of the channels)
    E+ / E-            energy imported / exported since the integrator was reset
    -                  a value to skip

The reply is split at ',' and ';' (a list answer, or several queries in one message), a header in
front of a value (``U1 +230.00E+0``) is dropped. Anything that is not a number, or the wrong count,
is an InstrumentError naming the query; so are the instruments' markers for over-range and missing
data.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Mapping

from harness.power.analyzer import (
    ChannelReading,
    Identity,
    InstrumentError,
    IntegrationState,
    Measurement,
    PowerAnalyzer,
    Wiring,
)
from harness.power.scpi import canonical_state
from harness.power.session import DEFAULT_TIMEOUT_S, ScpiSession

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(NAN|INF|INFINITY)$", re.IGNORECASE)
#: values instruments put where a number cannot be given (Hioki PW33xx: over range, scaling
#: error, no data -- communication manual PW3335A985 "Measurement Value Output")
_MARKERS = {999.99e9: "over range", 888.88e9: "scaling error", 777.77e9: "no data",
            9999.99e9: "over range", 8888.88e9: "scaling error", 7777.77e9: "no data"}


def parse_values(reply: str, *, instrument: str, command: str) -> list[float]:
    values = []
    for token in re.split(r"[,;]", reply):
        token = token.strip().split()[-1] if token.strip() else ""
        if not _NUMBER.match(token):
            raise InstrumentError(instrument, command, f"reply {reply[:120]!r} is not a list of numbers "
                                                       f"({token[:40]!r})")
        values.append(float(token))
    return values


class ScpiAnalyzer(PowerAnalyzer):
    model = "scpi"
    #: instrument energy unit in Wh (Ws instruments: 1/3600, kWh: 1000)
    energy_scale = 1.0
    #: canonical integrator states: the instrument's words (long form, capitals = short form)
    integration_states: Mapping[str, IntegrationState] = {}

    def __init__(self, resource: str, *, backend: str = "@py", timeout: float = DEFAULT_TIMEOUT_S,
                 session: ScpiSession | None = None, clock: Callable[[], float] | None = None,
                 write_termination: str = "\n") -> None:
        super().__init__()
        self.resource = resource
        self.clock = clock
        self.session = session or ScpiSession(resource, name=self.name, backend=backend, timeout=timeout,
                                              write_termination=write_termination)

    @property
    def name(self) -> str:
        return f"{self.model} at {self.resource}"

    # -- what a driver supplies -------------------------------------------------------------

    def wiring_commands(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        return []

    def reading_setup(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        """Commands that make the reading query return :meth:`fields`."""
        return []

    def reading_query(self) -> str:
        raise NotImplementedError

    def fields(self) -> list[str]:
        raise NotImplementedError

    # -- the interface --------------------------------------------------------------------------

    def identify(self) -> Identity:
        reply = self.session.query("*IDN?")
        identity = Identity.parse(reply)
        if not identity.model:
            raise InstrumentError(self.name, "*IDN?", f"not an identification: {reply[:120]!r}")
        return identity

    def configure(self, wiring: Wiring, channels: tuple[int, ...] | None = None) -> None:
        self.wiring = Wiring(wiring)
        self.channels = tuple(channels or self.wiring.default_channels)
        self.errors()  # start from an empty queue: what follows is ours
        commands = self.wiring_commands(self.wiring, self.channels) + self.reading_setup(self.wiring, self.channels)
        for command in commands:
            self.session.write(command)
        self.check_errors(after="; ".join(commands) or "configuration")

    def read(self) -> Measurement:
        query = self.reading_query()
        reply = self.session.query(query)
        at = self.clock() if self.clock else 0.0
        values = parse_values(reply, instrument=self.name, command=query)
        names = self.fields()
        if len(values) != len(names):
            raise InstrumentError(self.name, query, f"{len(values)} values in the reply, {len(names)} expected "
                                                    f"({', '.join(names)}): {reply[:120]!r}")
        by_name: dict[str, float] = {}
        for name, value in zip(names, values):
            if name == "-":
                continue
            marker = _MARKERS.get(abs(value))
            if marker or math.isnan(value) or math.isinf(value):
                raise InstrumentError(self.name, query, f"{name}: {marker or ('no data' if math.isnan(value) else 'over range')}"
                                                        f" (reply {reply[:120]!r})")
            by_name[name] = value
        channels = tuple(ChannelReading(n, by_name.get(f"U{n}", 0.0), by_name.get(f"I{n}", 0.0), by_name.get(f"P{n}", 0.0))
                         for n in self.channels)
        total = by_name.get("P", sum(c.power for c in channels))
        return Measurement(channels, total, abs(by_name.get("E+", 0.0)) * self.energy_scale,
                           abs(by_name.get("E-", 0.0)) * self.energy_scale, at,
                           {k: v for k, v in by_name.items() if not re.match(r"^([UIP]\d*|E[+-])$", k)})

    def integration_state(self) -> IntegrationState:
        query = self.integration_state_query()
        reply = self.session.query(query)
        word = canonical_state(reply.split()[-1], tuple(self.integration_states))
        if word is None:
            raise InstrumentError(self.name, query, f"unknown integration state {reply[:60]!r}")
        return self.integration_states[word]

    def integration_state_query(self) -> str:
        raise NotImplementedError

    def _command(self, command: str) -> None:
        self.session.write(command)
        self.check_errors(after=command)

    def close(self) -> None:
        self.session.close()
