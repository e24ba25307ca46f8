"""EVCC and SECC session machines talking directly, without sockets (deterministic, for the
vector replays): the sans-IO cores are all that is needed to run a session."""

from __future__ import annotations

from typing import Callable

from harness.v2g.machine import Send
from harness.v2g.session import EvccSession, SeccSession

Intercept = Callable[[Send], tuple[int, bytes] | None]


def first_send(events) -> Send | None:
    return next((e for e in events if isinstance(e, Send)), None)


def run(evcc: EvccSession, secc: SeccSession, *, response: Intercept | None = None,
        limit: int = 2000) -> list[tuple[Send, Send]]:
    """Run both machines until the EVCC finishes; ``response`` may replace what the SECC sends.
    Returns the exchanged (request, response) pairs as the machines built them."""
    now = 0.0
    exchanged: list[tuple[Send, Send]] = []
    events = evcc.start(now)
    for _ in range(limit):
        if evcc.finished:
            return exchanged
        request = first_send(events)
        if request is None:
            if evcc.deadline is None:
                return exchanged
            now = max(now, evcc.deadline)
            events = evcc.poll(now)
            continue
        answer = first_send(secc.receive(request.payload_type, request.data, now))
        if answer is None:
            return exchanged
        exchanged.append((request, answer))
        replaced = response(answer) if response is not None else None
        payload_type, data = replaced if replaced is not None else (answer.payload_type, answer.data)
        events = evcc.receive(payload_type, data, now)
    raise AssertionError("lockstep session did not end")


class Randomness:
    """The SECC's random bytes, chosen: first the SessionID, then the GenChallenges."""

    def __init__(self, *values: bytes) -> None:
        self.values = list(values)

    def __call__(self, size: int) -> bytes:
        for index, value in enumerate(self.values):
            if len(value) == size:
                return self.values.pop(index)
        return bytes(size)
