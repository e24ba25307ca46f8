"""A power analyzer described by a command map (YAML), so a lab adds a model without code.

    model: acme-pa3000                 # the name rig files use (meter.model)
    termination: {write: "\\n"}         # optional; replies end with a newline
    errors:
      query: ":SYSTem:ERRor?"          # read until the reply matches `empty`
      empty: '^\\s*[+]?0\\s*(,|$)'
    configure:                         # sent by configure(), per wiring; {channels}: "1,2,3"
      ac1: [":INPut:WIRing 1P2W"]
      ac3: [":INPut:WIRing 3P4W"]
      dc:  [":INPut:WIRing DC"]
    read:
      setup: [":DATA:ITEMS U1,I1,P1"]  # optional, sent after the wiring
      query: ":DATA:VALues?"           # one reading; {channel} templates are not expanded here
      fields: [U1, I1, P1, P, E+, E-]  # what each value of the reply is (see harness.power.driver)
      energy_unit: Wh                  # Wh | kWh | Ws
    integration:
      start: ":INTEGrate:STARt"
      stop: ":INTEGrate:STOP"
      reset: ":INTEGrate:RESet"
      state: ":INTEGrate:STATe?"
      states: {RESet: reset, STARt: running, STOP: stopped, TIMeup: timeup, ERRor: error}
    local: ":COMMunicate:REMote OFF"   # optional

Every problem of a map file is reported with its path, like a rig file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.power.analyzer import InstrumentError, IntegrationState, Wiring
from harness.power.driver import ScpiAnalyzer
from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

ENERGY_UNITS = {"Wh": 1.0, "kWh": 1000.0, "Ws": 1 / 3600.0}
FIELD = re.compile(r"^([UIP]\d+|P|E[+-]\d*|-)$")


class CommandMapError(FileProblems):
    """A command map that cannot be used; ``problems`` lists each as "path: message"."""


@dataclass(frozen=True)
class CommandMap:
    model: str
    write_termination: str
    error_query: str
    error_empty: str
    configure: Mapping[Wiring, tuple[str, ...]]
    setup: tuple[str, ...]
    query: str
    fields: tuple[str, ...]
    energy_scale: float
    start: str
    stop: str
    reset: str
    state: str
    states: Mapping[str, IntegrationState]
    local: str | None


def load_command_map(source: Path | str | Mapping[str, Any]) -> CommandMap:
    """A command map from a YAML file (path) or already-parsed data."""
    name = "<command map>"
    if isinstance(source, (str, Path)):
        name = str(source)
        data = read_yaml(source, CommandMapError)
    else:
        data = source
    problems = Problems()
    top = Reader(data, "", problems)
    model = top.str("model", required=True) or "?"
    termination = top.section("termination")
    write_termination = termination.str("write", "\n")
    termination.done()
    errors = top.section("errors", required=True)
    error_query = errors.str("query", required=True) or ""
    error_empty = errors.str("empty", r"^\s*[+]?0\s*(,|$)")
    try:
        re.compile(error_empty)
    except re.error as exc:
        problems.add("errors.empty", f"not a regular expression ({exc})")
    errors.done()
    configure_reader = top.section("configure")
    configure = {wiring: tuple(configure_reader.str_list(wiring.value, [])) for wiring in Wiring}
    configure_reader.done()
    read = top.section("read", required=True)
    setup = tuple(read.str_list("setup", []))
    query = read.str("query", required=True) or ""
    fields = tuple(read.str_list("fields", [], ))
    if not fields and "fields" not in (read.data or {}):
        problems.add("read.fields", "is required")
    for index, field in enumerate(fields):
        if not FIELD.match(field):
            problems.add(f"read.fields[{index}]", f"{field!r} is not U<n>, I<n>, P<n>, P, E+, E- or -")
    unit = read.str("energy_unit", "Wh", choices=tuple(ENERGY_UNITS))
    read.done()
    integration = top.section("integration", required=True)
    commands = {key: integration.str(key, required=True) or "" for key in ("start", "stop", "reset", "state")}
    states_raw = integration.str_map("states", {})
    states = {}
    for word, meaning in states_raw.items():
        try:
            states[word] = IntegrationState(meaning)
        except ValueError:
            problems.add(f"integration.states.{word}", f"must be one of {', '.join(s.value for s in IntegrationState)}")
    if not states_raw:
        problems.add("integration.states", "is required")
    integration.done()
    local = top.str("local")
    top.done()
    if problems:
        raise CommandMapError(name, problems.items)
    return CommandMap(model, write_termination, error_query, error_empty, configure, setup, query, fields,
                      ENERGY_UNITS[unit or "Wh"], commands["start"], commands["stop"], commands["reset"],
                      commands["state"], states, local)


class GenericScpi(ScpiAnalyzer):
    """An analyzer driven entirely by a :class:`CommandMap`."""

    def __init__(self, resource: str, command_map: CommandMap, **options) -> None:
        self.map = command_map
        self.model = command_map.model
        self.energy_scale = command_map.energy_scale
        self.integration_states = dict(command_map.states)
        options.setdefault("write_termination", command_map.write_termination)
        super().__init__(resource, **options)

    def wiring_commands(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        listing = ",".join(str(c) for c in channels)
        return [c.replace("{channels}", listing) for c in self.map.configure.get(wiring, ())]

    def reading_setup(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        return list(self.map.setup)

    def reading_query(self) -> str:
        return self.map.query

    def fields(self) -> list[str]:
        return list(self.map.fields)

    def read(self):
        reading = super().read()
        extras = reading.extras
        imported = reading.imported_wh + sum(abs(v) for k, v in extras.items() if k.startswith("E+")) * self.energy_scale
        exported = reading.exported_wh + sum(abs(v) for k, v in extras.items() if k.startswith("E-")) * self.energy_scale
        return type(reading)(reading.channels, reading.power, imported, exported, reading.at,
                             {k: v for k, v in extras.items() if not k.startswith("E")})

    def integration_state_query(self) -> str:
        return self.map.state

    def start_integration(self) -> None:
        self._command(self.map.start)

    def stop_integration(self) -> None:
        self._command(self.map.stop)

    def reset_integration(self) -> None:
        self._command(self.map.reset)

    def errors(self) -> list[str]:
        found: list[str] = []
        for _ in range(32):
            reply = self.session.query(self.map.error_query)
            if re.search(self.map.error_empty, reply):
                return found
            found.append(reply.strip())
        raise InstrumentError(self.name, self.map.error_query, "the error queue does not empty "
                                                               f"(last: {found[-1][:80]!r})")

    def go_local(self) -> None:
        if self.map.local:
            self.session.write(self.map.local)
