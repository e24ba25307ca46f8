"""The recorder: appends events to trace.jsonl as they happen and answers queries over them."""

from __future__ import annotations

import bisect
import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TextIO

from harness.trace.event import Event, Layer, payload_text

Predicate = Callable[[Event], bool]
#: the most of a summary an event keeps (a summary is one line; what a peer sent can be long)
MAX_SUMMARY = 1000


class TraceTimeout(AssertionError):
    """Raised by :meth:`Recorder.wait_for` when no matching event arrived in time.

    An AssertionError on purpose: a DUT that never sends what the standard requires fails the
    test case; it is not an error of the harness.
    """


class TraceFileError(ValueError):
    """A trace.jsonl that cannot be read back; the message names the file and line."""


#: how much of the timeline a recorder with a file keeps in memory (estimated bytes): the most
#: recent events, which queries mostly ask about; older ones are read back from the file, a whole
#: scan each time. A run's recorder keeps a whole default suite (82,000 events, about 230 MB
#: estimated) so that no query of a normal run reads back; a suite many times longer, or a run
#: flooded with valid traffic, never holds more.
MEMORY_BUDGET = 384 * 1024 * 1024
#: the servers' recorders (`csms serve`, `evse serve`, `ev run`): they run for hours and their own
#: logic asks the timeline nothing, so they keep little
SERVER_MEMORY_BUDGET = 32 * 1024 * 1024
#: what an event costs in memory beside its payload and summary text (the object, its keys and
#: strings; measured on a trace of 22,000 events with 7 MB of text: 46 MB in memory)
_EVENT_OVERHEAD = 1800


class Recorder:
    """One timeline for the whole run.

    Safe to use from several threads (the rig's event loop thread writes while the test thread
    queries). Each event is written and flushed before :meth:`emit` returns, so a crash of the
    harness loses nothing that was recorded.

    The timeline streams to its file; in memory a recorder with a file keeps only the most recent
    events, up to ``memory_budget`` (estimated) bytes, so a server left running overnight does
    not grow without bound. Queries reaching further back (no ``since``, or one before the oldest
    event still in memory) read the older events back from the file, so every query answers over
    the whole run. A recorder without a file keeps everything.
    """

    def __init__(self, path: Path | str | None = None, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, memory_budget: int = MEMORY_BUDGET) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._wall_clock = wall_clock
        #: the most recent events; the ``_base`` before them are only in the file
        self._events: list[Event] = []
        self._base = 0
        self._held = 0
        self.memory_budget = memory_budget
        #: where this recorder's events start in its file (it may append to an existing one)
        self._file_start = 0
        #: whether the events are in the order of their ``mono`` (then ``since`` bisects)
        self._in_order = True
        self._changed = threading.Condition(threading.RLock())
        self._subscribers: list[Callable[[Event], None]] = []
        self._file: TextIO | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            self._file_start = self._file.tell()
        #: node id of the test case running now; the pytest plugin keeps it current.
        self.test = ""

    # -- writing ---------------------------------------------------------------------------

    def emit(self, layer: Layer | str, name: str, summary: str, *, src: str = "", dst: str = "",
             payload: Any = None, keys: Mapping[str, Any] | None = None, observer: str = "") -> Event:
        """Record one event; ``payload`` is serialized at once, so later changes to it do not
        change the record."""
        with self._changed:
            event = Event(
                seq=self._base + len(self._events),
                mono=self._clock(),
                wall=self._wall_clock(),
                layer=Layer(layer),
                name=name,
                summary=summary if len(summary) <= MAX_SUMMARY
                else f"{summary[:MAX_SUMMARY]}... ({len(summary)} characters)",
                src=src,
                dst=dst,
                payload_json=payload_text(payload),
                keys={k: str(v) for k, v in (keys or {}).items() if v is not None},
                test=self.test,
                observer=observer or src,
            )
            self._append(event)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
                self._file.flush()
            subscribers = list(self._subscribers)
            self._changed.notify_all()
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken live view must not stop the recording
                print(f"trace: subscriber {subscriber!r} failed on event {event.seq}: {exc!r}",
                      file=sys.stderr)
        return event

    def adopt(self, events: Iterable[Event], *, keys: Mapping[str, str] | None = None) -> dict[int, int]:
        """Append events another recorder made (another process's timeline), keeping their times,
        case and observer, with ``keys`` added to each; returns each one's old sequence number ->
        its new one."""
        mapping: dict[int, int] = {}
        with self._changed:
            for event in events:
                copy = dataclasses.replace(event, seq=self._base + len(self._events),
                                           keys={**event.keys, **keys} if keys else event.keys)
                mapping[event.seq] = copy.seq
                self._append(copy)
                if self._file is not None:
                    self._file.write(copy.to_json() + "\n")
            if self._file is not None:
                self._file.flush()
            self._changed.notify_all()
        return mapping

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every new event; returns the function that unsubscribes."""
        with self._changed:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._changed:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def close(self) -> None:
        with self._changed:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- reading ---------------------------------------------------------------------------

    def now(self) -> float:
        """The recorder's monotonic time, to mark "from here on" for later queries."""
        return self._clock()

    def __len__(self) -> int:
        return self._base + len(self._events)

    def __iter__(self) -> Iterator[Event]:
        with self._changed:
            return iter(self._from_file(lambda e: True) + list(self._events))

    @property
    def in_memory(self) -> int:
        """How many events are held in memory (the rest are in the file only)."""
        return len(self._events)

    def select(self, *, layer: Layer | str | None = None, name: str | Iterable[str] | None = None,
               src: str | None = None, dst: str | None = None, since: float | None = None,
               until: float | None = None, test: str | None = None, observer: str | None = None,
               keys: Mapping[str, Any] | None = None, where: Predicate | None = None) -> list[Event]:
        """All events matching every given criterion, in order.

        ``since``/``until`` are monotonic times from :meth:`now` or from another event's ``mono``;
        ``keys`` matches correlation keys by equality; ``where`` is any further predicate.
        """
        match = _matcher(layer, name, src, dst, since, until, test, observer, keys, where)
        with self._changed:
            older = self._from_file(match) if self._reaches_file(since) else []
            return older + [e for e in self._events[self._start(since):] if match(e)]

    def _append(self, event: Event) -> None:
        if self._events and event.mono < self._events[-1].mono:
            self._in_order = False
        self._events.append(event)
        self._held += len(event.payload_json) + len(event.summary) + _EVENT_OVERHEAD
        if self._held > self.memory_budget and self._file is not None:
            self._trim()

    def _trim(self) -> None:
        """Forget the oldest events (they are in the file) down to three quarters of the budget."""
        assert self._file is not None
        self._file.flush()
        dropped = 0
        while self._held > self.memory_budget * 3 // 4 and dropped < len(self._events) - 1:
            event = self._events[dropped]
            self._held -= len(event.payload_json) + len(event.summary) + _EVENT_OVERHEAD
            dropped += 1
        del self._events[:dropped]
        self._base += dropped

    def _reaches_file(self, since: float | None) -> bool:
        """Whether a query from ``since`` needs events that are no longer in memory."""
        if self._base == 0:
            return False
        return since is None or not self._in_order or not self._events or since < self._events[0].mono

    def _from_file(self, match: Predicate) -> list[Event]:
        """The events no longer in memory that ``match``, read back from the file."""
        if self._base == 0 or self.path is None:
            return []
        if self._file is not None:
            self._file.flush()
        found: list[Event] = []
        with self.path.open("r", encoding="utf-8") as stream:
            stream.seek(self._file_start)
            for count, line in enumerate(stream):
                if count >= self._base:
                    break
                event = Event.from_json(line)
                if match(event):
                    found.append(event)
        return found

    def _start(self, since: float | None) -> int:
        """The index of the first event at or after ``since``: found by bisection while the
        events are in time order, so a query about the last seconds of a long run does not read
        the whole run."""
        if since is None or not self._in_order:
            return 0
        return bisect.bisect_left(self._events, since, key=lambda e: e.mono)

    def first(self, **criteria: Any) -> Event | None:
        found = self.select(**criteria)
        return found[0] if found else None

    def last(self, **criteria: Any) -> Event | None:
        match = _matcher(**_matcher_args(criteria))
        with self._changed:
            for event in reversed(self._events[self._start(criteria.get("since")):]):
                if match(event):
                    return event
            older = self._from_file(match) if self._reaches_file(criteria.get("since")) else []
        return older[-1] if older else None

    def wait_for(self, timeout: float, **criteria: Any) -> Event:
        """The first event matching ``criteria``, waiting up to ``timeout`` seconds for it.

        Events recorded before the call count too; pass ``since=recorder.now()`` to wait only for
        what comes next.
        """
        match = _matcher(**_matcher_args(criteria))
        deadline = time.monotonic() + timeout
        with self._changed:
            if self._reaches_file(criteria.get("since")):
                older = self._from_file(match)
                if older:
                    return older[0]
            next_seq = self._base + self._start(criteria.get("since"))
            while True:
                if next_seq < self._base:  # forgotten while this waited (a burst): read them back
                    late = [e for e in self._from_file(match) if e.seq >= next_seq]
                    if late:
                        return late[0]
                    next_seq = self._base
                for event in self._events[next_seq - self._base:]:
                    if match(event):
                        return event
                next_seq = self._base + len(self._events)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TraceTimeout(f"no event matching {_describe(criteria)} within {timeout:g} s")
                self._changed.wait(remaining)

    @classmethod
    def load(cls, path: Path | str) -> "Recorder":
        """A read-only recorder over an existing trace.jsonl (for reports and offline analysis).

        A last line cut short by a crash is ignored; any other unreadable line is an error that
        names the file and the line.
        """
        path = Path(path)
        recorder = cls()
        lines = path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                recorder._append(Event.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines):
                    break  # no newline yet: the write in progress when the process died
                raise TraceFileError(f"{path}:{number}: not a trace event ({exc})") from None
        return recorder


_CRITERIA = ("layer", "name", "src", "dst", "since", "until", "test", "observer", "keys", "where")


def _matcher_args(criteria: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(criteria) - set(_CRITERIA)
    if unknown:
        raise TypeError(f"unknown trace criteria: {', '.join(sorted(unknown))}")
    return {k: criteria.get(k) for k in _CRITERIA}


def _matcher(layer=None, name=None, src=None, dst=None, since=None, until=None, test=None,
             observer=None, keys=None, where=None) -> Predicate:
    layer = Layer(layer) if layer is not None else None
    names = {name} if isinstance(name, str) else set(name) if name is not None else None
    wanted_keys = {k: str(v) for k, v in (keys or {}).items()}

    def match(event: Event) -> bool:
        return ((layer is None or event.layer is layer)
                and (names is None or event.name in names)
                and (src is None or event.src == src)
                and (dst is None or event.dst == dst)
                and (since is None or event.mono >= since)
                and (until is None or event.mono <= until)
                and (test is None or event.test == test)
                and (observer is None or event.observer == observer)
                and all(event.keys.get(k) == v for k, v in wanted_keys.items())
                and (where is None or where(event)))

    return match


def _describe(criteria: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in criteria.items() if k != "where" and v is not None}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return text + (" and the given predicate" if criteria.get("where") else "")
