"""Scripted behaviour: how a test makes the mock CSMS (or the station) answer differently.

    csms.script.when("Authorize").reject()
    csms.script.when("BootNotification", times=2).reply({"status": "Pending", ...})
    csms.script.when("Heartbeat").default(delay=2.0)
    csms.script.when("StatusNotification").error("InternalError")
    csms.script.when("MeterValues").silent()
    csms.script.when("TransactionEvent", where=lambda p: p["eventType"] == "Ended").drop()

The newest matching rule wins; a rule with ``times`` is used that many times and then retires.
Rules are thread-safe: tests add them from the test thread while the rig's event loop reads them.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harness.ocpp.endpoint import Disconnect, Error, Handler, IncomingCall, NoReply, Reply, Result
from harness.ocpp.versions import OcppVersion

PayloadPredicate = Callable[[Mapping[str, Any]], bool]
PayloadFactory = Callable[[IncomingCall], Mapping[str, Any]]


# Where the verdict of a response lives, per action: (path to the status field, accepted value,
# rejected value). One table for what "accept" and "reject" mean to each action.
_STATUS_FIELDS: dict[str, dict[OcppVersion | None, tuple[tuple[str, ...], str, str]]] = {
    "BootNotification": {None: (("status",), "Accepted", "Rejected")},
    "Authorize": {OcppVersion.V16: (("idTagInfo", "status"), "Accepted", "Invalid"),
                  None: (("idTokenInfo", "status"), "Accepted", "Invalid")},
    "StartTransaction": {None: (("idTagInfo", "status"), "Accepted", "Invalid")},
    "StopTransaction": {None: (("idTagInfo", "status"), "Accepted", "Invalid")},
    "TransactionEvent": {None: (("idTokenInfo", "status"), "Accepted", "Invalid")},
    "DataTransfer": {None: (("status",), "Accepted", "Rejected")},
    "NotifyEVChargingNeeds": {None: (("status",), "Accepted", "Rejected")},
    "NotifyEVChargingSchedule": {None: (("status",), "Accepted", "Rejected")},
    "SignCertificate": {None: (("status",), "Accepted", "Rejected")},
    "Get15118EVCertificate": {None: (("status",), "Accepted", "Failed")},
    "GetCertificateStatus": {None: (("status",), "Accepted", "Failed")},
}


def with_status(action: str, version: OcppVersion, payload: Mapping[str, Any], accepted: bool) -> dict[str, Any]:
    """``payload`` with the action's status field set to its accepted or rejected value."""
    table = _STATUS_FIELDS.get(action)
    if table is None:
        raise ValueError(f"{action} has no accepted/rejected status to set; script a reply instead")
    path, yes, no = table.get(version, table[None])
    result = copy.deepcopy(dict(payload))
    node = result
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = yes if accepted else no
    return result


class _Outcome(enum.Enum):
    DEFAULT = "default"
    ACCEPT = "accept"
    REJECT = "reject"
    REPLY = "reply"
    ERROR = "error"
    SILENT = "silent"
    DROP = "drop"


@dataclass
class Rule:
    action: str
    outcome: _Outcome
    station: str | None = None
    where: PayloadPredicate | None = None
    remaining: int | None = None
    delay: float = 0.0
    payload: Mapping[str, Any] | PayloadFactory | None = None
    error: Error | None = None

    def matches(self, call: IncomingCall) -> bool:
        return (self.action == call.action
                and (self.station is None or self.station == call.station_id)
                and (self.where is None or bool(self.where(call.payload))))

    async def respond(self, call: IncomingCall, default: Handler | None) -> Reply:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        outcome = self.outcome
        if outcome is _Outcome.REPLY:
            payload = self.payload(call) if callable(self.payload) else self.payload
            return Result(copy.deepcopy(dict(payload or {})))
        if outcome is _Outcome.ERROR:
            assert self.error is not None
            return self.error
        if outcome is _Outcome.SILENT:
            return NoReply()
        if outcome is _Outcome.DROP:
            return Disconnect(abort=True)
        if default is None:
            return Error("NotSupported", f"no default answer for {call.action}; script a reply")
        reply = await default(call)
        if outcome is _Outcome.DEFAULT or not isinstance(reply, Result):
            return reply
        return Result(with_status(call.action, call.version, reply.payload, outcome is _Outcome.ACCEPT))


class RuleBuilder:
    """Returned by :meth:`Script.when`; each method installs the rule and returns it."""

    def __init__(self, script: "Script", action: str, station: str | None, where: PayloadPredicate | None,
                 times: int | None) -> None:
        self._script, self._action, self._station, self._where, self._times = script, action, station, where, times

    def _install(self, outcome: _Outcome, delay: float, **fields: Any) -> Rule:
        if delay < 0:
            raise ValueError("delay must not be negative")
        rule = Rule(self._action, outcome, self._station, self._where, self._times, delay, **fields)
        self._script._add(rule)
        return rule

    def default(self, *, delay: float = 0.0) -> Rule:
        """The usual answer, after ``delay`` seconds."""
        return self._install(_Outcome.DEFAULT, delay)

    def accept(self, *, delay: float = 0.0) -> Rule:
        return self._install(_Outcome.ACCEPT, delay)

    def reject(self, *, delay: float = 0.0) -> Rule:
        return self._install(_Outcome.REJECT, delay)

    def reply(self, payload: Mapping[str, Any] | PayloadFactory, *, delay: float = 0.0) -> Rule:
        """Answer with exactly ``payload`` (or what ``payload(call)`` returns); not validated,
        so a test may send a non-conforming response on purpose."""
        return self._install(_Outcome.REPLY, delay, payload=payload)

    def error(self, code: str, description: str = "", details: Mapping[str, Any] | None = None, *,
              delay: float = 0.0) -> Rule:
        return self._install(_Outcome.ERROR, delay, error=Error(code, description, dict(details or {})))

    def silent(self) -> Rule:
        """Never answer."""
        return self._install(_Outcome.SILENT, 0.0)

    def drop(self, *, delay: float = 0.0) -> Rule:
        """Drop the connection instead of answering."""
        return self._install(_Outcome.DROP, delay)


class Script:
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def when(self, action: str, *, station: str | None = None, where: PayloadPredicate | None = None,
             times: int | None = None) -> RuleBuilder:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        return RuleBuilder(self, action, station, where, times)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def scripts(self, action: str) -> bool:
        with self._lock:
            return any(rule.action == action for rule in self._rules)

    def take(self, call: IncomingCall) -> Rule | None:
        """The newest rule matching ``call``, counting one use of it."""
        with self._lock:
            for rule in reversed(self._rules):
                if rule.matches(call):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def handler(self, action: str, default: Handler | None) -> Handler | None:
        """The handler for ``action``: scripted rules first, then ``default``."""
        if default is None and not self.scripts(action):
            return None

        async def scripted(call: IncomingCall) -> Reply:
            rule = self.take(call)
            if rule is None:
                if default is None:
                    return Error("NotSupported", f"{call.action} is only scripted for other calls")
                return await default(call)
            return await rule.respond(call, default)

        return scripted
