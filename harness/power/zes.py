"""ZES Zimmer LMG (LMG500/LMG600 family) in its SCPI command language.

Seen working on an LMG670 in public measurement code: per-channel values ``:FETC:VOLT<n>?``,
``:FETC:CURR<n>?``, ``:FETC:POW<n>?`` (the channel is the numeric suffix), grouping of channels with
``:SENS:GRO:LIST <n>``, the error list ``:SYST:ERR:ALL?``, ``*ZLANG SCPI|SHORT`` to switch the command
language, TCP port 5025 and GTL to return to local. NOT confirmed against the ZES manuals: the
energy queries ``:FETCh:ENERgy:POSitive<n>?`` / ``:NEGative<n>?``, the integrator commands
``:INTegral:STARt|STOP|RESet`` and ``:INTegral:STATe?`` with its answers, and GTL in SCPI mode. A lab
whose LMG answers differently can describe it in a generic command map (harness.power.generic)
without changing code.
"""

from __future__ import annotations

import re

from harness.power.analyzer import InstrumentError, IntegrationState, Wiring
from harness.power.driver import ScpiAnalyzer


class ZesLmg(ScpiAnalyzer):
    model = "zes-lmg600"
    integration_states = {"RESet": IntegrationState.RESET, "STARt": IntegrationState.RUNNING,
                          "RUNning": IntegrationState.RUNNING, "STOP": IntegrationState.STOPPED,
                          "HOLD": IntegrationState.STOPPED}

    def __init__(self, resource: str, *, model: str = "zes-lmg600", **options) -> None:
        self.model = model
        super().__init__(resource, **options)

    def wiring_commands(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        return [f":SENS:GRO:LIST {len(channels)}"]

    def _queries(self) -> list[str]:
        queries = []
        for c in self.channels:
            queries += [f":FETC:VOLT{c}?", f":FETC:CURR{c}?", f":FETC:POW{c}?"]
        for c in self.channels:
            queries += [f":FETCh:ENERgy:POSitive{c}?", f":FETCh:ENERgy:NEGative{c}?"]
        return queries

    def reading_query(self) -> str:
        return ";".join(self._queries())

    def fields(self) -> list[str]:
        names = [f"{q}{c}" for c in self.channels for q in "UIP"]
        return names + [f"E{sign}{c}" for c in self.channels for sign in "+-"]

    def read(self):
        reading = super().read()
        imported = sum(v for k, v in reading.extras.items() if k.startswith("E+"))
        exported = sum(abs(v) for k, v in reading.extras.items() if k.startswith("E-"))
        return type(reading)(reading.channels, reading.power, imported, exported, reading.at, {})

    def integration_state_query(self) -> str:
        return ":INTegral:STATe?"

    def start_integration(self) -> None:
        self._command(":INTegral:STARt")

    def stop_integration(self) -> None:
        self._command(":INTegral:STOP")

    def reset_integration(self) -> None:
        self._command(":INTegral:RESet")

    def errors(self) -> list[str]:
        reply = self.session.query(":SYST:ERR:ALL?")
        entries = re.findall(r'([+-]?\d+)\s*,\s*"([^"]*)"', reply)
        if not entries and not re.match(r"^\s*[+-]?0\b", reply):
            raise InstrumentError(self.name, ":SYST:ERR:ALL?", f"not an error list: {reply[:80]!r}")
        return [f"{code} {text}" for code, text in entries if int(code) != 0]

    def go_local(self) -> None:
        self.session.write("GTL")
