"""The hands at a lab bench: plugging the cable in and out and presenting an RFID token, where no
EV emulator or pilot hardware can.

A lab rig without EV hardware can still run the transaction cases if someone or something does
these for it. The rig file's ``operator`` section says who (one class each, chosen by ``kind``):

- ``prompt``: a person at the bench. The harness prints what to do on the terminal and waits for
  Enter (or ``s`` + Enter when it cannot be done: the case is skipped with that reason). Needs an
  interactive run; without a terminal the case is skipped and says so.
- ``command``: a program does it (a charger's test interface, a robot, an RFID emulator). Each
  action is a command line from the rig file with ``{connector}``, ``{token}`` and
  ``{station_id}`` filled in; it must exit with 0 within ``timeout`` seconds, else the case's
  verdict is error with the command's output. With an EV under test (``ev: {kind: lab}``) the
  plug-in command also gets what the case would like the EV to do and where it is
  (:data:`EV_FIELDS`), for an EV (or its emulator) that can be told; the command must return
  once the EV is plugged in, not when it has finished charging.
- ``none`` (the default): nothing can be done by hand; cases that need it are skipped.
"""

from __future__ import annotations

import shlex
import string
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from harness.trace import Layer, Recorder

#: what an operator can be asked to do, and how the harness says it to a person
ACTIONS: Mapping[str, str] = {
    "plug_in": "plug the EV (or the test cable) into connector {connector} of {station_id}",
    "unplug": "unplug the EV from connector {connector} of {station_id}",
    "present_token": "present the RFID token {token} at {station_id} (connector {connector})",
    "power_cycle": "switch the mains supply of {station_id} off, wait {off_s} s, and switch it on again",
}


#: what an EV-under-test rig (``ev: {kind: lab}``) fills in beside connector, token and
#: station_id: the case's wishes for the session (an EV that cannot be told ignores them, and the
#: case judges what it did) and where the EV is on the rig
EV_FIELDS: Mapping[str, str] = {
    "protocol": "the protocol the case is about: din, iso2, iso20-ac or iso20-dc",
    "energy": "AC, DC, AC_BPT or DC_BPT",
    "identification": "EIM or PnC",
    "tls": "yes or no: whether the case wants the EV to ask for TLS in SDP",
    "cycles": "charge-loop requests before the EV stops",
    "discharge": "yes or no: whether the EV should feed energy back (BPT)",
    "ev_iface": "the EV's interface on the link (plc0 on the netns rig, link.iface on a nic link)",
    "ev_netns": "the network namespace the EV's interface is in (netns rig; empty elsewhere)",
    "pki": "the run's ISO 15118 PKI folder (V2G roots, contracts), for an emulated EV",
    "time_scale": "the rig's time scale (1 on a lab rig)",
    "out": "a fresh folder per plug-in for the EV's own logs",
    "harness": "this harness's own command (its interpreter with -m harness), to run its EV emulator as the EV",
}

#: every placeholder a command line may use ({off_s}: power_cycle, how long the supply stays off)
PLACEHOLDERS = ("connector", "token", "station_id", "off_s", *EV_FIELDS)


def placeholders(template: str) -> list[str]:
    """The placeholders a command line names, in order (ValueError when it is no format string)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class OperatorUnavailable(Exception):
    """The action cannot be done on this rig (no operator, no terminal, the operator declined)."""


class OperatorFailed(Exception):
    """The operator's command failed: the rig did not do what the case needs (verdict error)."""


@dataclass(frozen=True)
class OperatorConfig:
    kind: str = "none"
    #: ``command``: the command line per action (ACTIONS), with {connector}, {token}, {station_id}
    commands: Mapping[str, str] = field(default_factory=dict)
    #: seconds a person or a command has for one action
    timeout: float = 120.0


class Operator:
    """Does :data:`ACTIONS` at the bench; see the module docstring. One subclass per kind."""

    kind = "none"

    def __init__(self, config: OperatorConfig, recorder: Recorder, station_id: str) -> None:
        self.config = config
        self.recorder = recorder
        self.station_id = station_id

    @classmethod
    def able(cls, config: OperatorConfig, action: str) -> bool:
        """Whether an operator of this kind, so configured, can do ``action`` (known from the rig
        file alone)."""
        return False

    def can(self, action: str) -> bool:
        return type(self).able(self.config, action)

    def perform(self, action: str, *, connector: int = 1, token: str = "", fields: Mapping[str, str] | None = None) -> None:
        """Do ``action``; ``fields``: the :data:`EV_FIELDS` of an EV under test (plug_in, unplug)."""
        what = ACTIONS[action].format(connector=connector, token=token, station_id=self.station_id,
                                      off_s=(fields or {}).get("off_s", "10"))
        self.recorder.emit(Layer.RIG, "OperatorAction", f"operator ({self.kind}): {what}", src="operator",
                           payload={"action": action, "connector": connector, "token": token or None,
                                    **({"fields": dict(fields)} if fields else {})})
        started = time.monotonic()
        self._do(action, what, connector=connector, token=token, fields=fields or {})
        self.recorder.emit(Layer.RIG, "OperatorDone", f"operator ({self.kind}) done in "
                           f"{time.monotonic() - started:.1f} s: {what}", src="operator",
                           payload={"action": action})

    def _do(self, action: str, what: str, *, connector: int, token: str, fields: Mapping[str, str]) -> None:
        raise OperatorUnavailable(f"nobody can {what} on this rig (operator.kind: none; a lab rig can name a "
                                  f"person at the bench, operator.kind: prompt, or a command, operator.kind: "
                                  f"command)")


class PromptOperator(Operator):
    """A person at the bench, asked on the terminal."""

    kind = "prompt"

    def __init__(self, config: OperatorConfig, recorder: Recorder, station_id: str,
                 terminal: Callable[[], tuple] | None = None) -> None:
        super().__init__(config, recorder, station_id)
        self._terminal = terminal or _open_terminal

    @classmethod
    def able(cls, config: OperatorConfig, action: str) -> bool:
        return True

    def _do(self, action: str, what: str, *, connector: int, token: str, fields: Mapping[str, str]) -> None:
        try:
            reader, writer = self._terminal()
        except OSError:
            raise OperatorUnavailable(f"a person must {what}, but this run has no terminal to ask on "
                                      f"(run it interactively, or use operator.kind: command)") from None
        try:
            writer.write(f"\n>>> OPERATOR: {what}, then press Enter (s + Enter: cannot be done) ")
            writer.flush()
            answer = _read_line(reader, self.config.timeout)
        finally:
            for stream in {reader, writer}:
                stream.close()
        if answer is None:
            raise OperatorFailed(f"nobody confirmed within {self.config.timeout:g} s that they did: {what}")
        if answer.strip().lower().startswith("s"):
            raise OperatorUnavailable(f"the operator could not {what}")


class CommandOperator(Operator):
    """A program that does the action, one command line per action."""

    kind = "command"

    @classmethod
    def able(cls, config: OperatorConfig, action: str) -> bool:
        return bool(config.commands.get(action))

    def _do(self, action: str, what: str, *, connector: int, token: str, fields: Mapping[str, str]) -> None:
        template = self.config.commands.get(action)
        if not template:
            raise OperatorUnavailable(f"no command to {what} (operator.{action} is not set)")
        # every value one shell word, but {harness}: a command line already quoted
        values = {name: "" for name in (*EV_FIELDS, "off_s")} | {
            name: str(value) if name == "harness" or value == "" else shlex.quote(str(value))
            for name, value in fields.items()}
        command = template.format(connector=connector, token=shlex.quote(token),
                                  station_id=shlex.quote(self.station_id), **values)
        try:
            result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=self.config.timeout)
        except subprocess.TimeoutExpired:
            raise OperatorFailed(f"operator command for {action} did not end within {self.config.timeout:g} s: "
                                 f"{command}") from None
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise OperatorFailed(f"operator command for {action} exited with {result.returncode}: {command}"
                                 + (f" ({' / '.join(output)})" if output else ""))


#: operator kinds as a rig file names them
OPERATORS: Mapping[str, type[Operator]] = {"none": Operator, "prompt": PromptOperator, "command": CommandOperator}


def operator_for(config: OperatorConfig, recorder: Recorder, station_id: str) -> Operator:
    return OPERATORS[config.kind](config, recorder, station_id)


def _open_terminal() -> tuple:
    """The controlling terminal, read and written directly: pytest captures stdin and stdout while
    a case runs. OSError when the run has none (CI, a service)."""
    tty = open("/dev/tty", "r+")
    return tty, tty


def _read_line(reader, timeout: float) -> str | None:
    import select

    ready, _, _ = select.select([reader], [], [], timeout)
    return reader.readline() if ready else None
