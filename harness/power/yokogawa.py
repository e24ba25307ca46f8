"""Yokogawa WT series (WT1800, WT3000, WT5000) over SCPI-style commands.

Commands are those of the WT3000 communication manual (IM 760301-17E, chapter 6): the wiring
``[:INPut]:WIRing {P1W2|P1W3|P3W3|P3W4|V3A3}``, voltage/current mode ``RMS|MEAN|DC|RMEAN``, the
numeric output list ``:NUMeric[:NORMal]:NUMber``, ``:ITEM<x> <function>,<element>`` and
``:VALue?``, ``:NUMeric:FORMat ASCii``, the integrator ``:INTEGrate:MODE|TIMer|STARt|STOP|RESet``
and ``:INTEGrate:STATe?`` (answers RESet, READy, STARt, STOP, ERRor, TIMeup), the error queue
``:STATus:ERRor?`` (``0,"No error"`` when empty) and ``:COMMunicate:REMote``/``:HEADer``.

Energy function names differ by generation: the WT3000 lists WH, WHP, WHM in its command
manual; the WT1800/WT5000 (and WT500) user manuals name the same quantities WP, WP+, WP-, for
which we use WP, WPP, WPM as function names. The WT1800/WT5000 spelling was NOT confirmed against
their communication manuals. Not confirmed either: ``[:INPut]:CURRent:MODE`` (by analogy with the
confirmed ``VOLTage:MODE``) and the sigma element keyword SIGMA on the WT1800/WT5000.
"""

from __future__ import annotations

import re

from harness.power.analyzer import InstrumentError, IntegrationState, Wiring
from harness.power.driver import ScpiAnalyzer

#: model -> (WP, WP+, WP-) function names
ENERGY_FUNCTIONS = {
    "yokogawa-wt1800": ("WP", "WPP", "WPM"),
    "yokogawa-wt5000": ("WP", "WPP", "WPM"),
    "yokogawa-wt3000": ("WH", "WHP", "WHM"),
}

WIRING = {Wiring.AC1: "P1W2", Wiring.AC3: "P3W4", Wiring.DC: "P1W2"}


class YokogawaWt(ScpiAnalyzer):
    model = "yokogawa-wt1800"
    integration_states = {"RESet": IntegrationState.RESET, "READy": IntegrationState.READY,
                          "STARt": IntegrationState.RUNNING, "STOP": IntegrationState.STOPPED,
                          "ERRor": IntegrationState.ERROR, "TIMeup": IntegrationState.TIMEUP}

    def __init__(self, resource: str, *, model: str = "yokogawa-wt1800", **options) -> None:
        if model not in ENERGY_FUNCTIONS:
            raise ValueError(f"unknown Yokogawa model {model!r} (known: {', '.join(ENERGY_FUNCTIONS)})")
        self.model = model
        super().__init__(resource, **options)

    def wiring_commands(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        mode = "DC" if wiring is Wiring.DC else "RMS"
        return [":COMMunicate:REMote ON", ":COMMunicate:HEADer OFF", ":NUMeric:FORMat ASCii",
                f":INPut:WIRing {WIRING[wiring]}",
                f":INPut:VOLTage:MODE:ALL {mode};:INPut:CURRent:MODE:ALL {mode}",
                # normal mode with the timer at zero: integrate from start until stopped
                ":INTEGrate:MODE NORMal;TIMer 0,0,0"]

    def reading_setup(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        items = self._items()
        listing = ";".join(f"ITEM{i} {function},{element}" for i, (function, element) in enumerate(items, start=1))
        return [f":NUMeric:NORMal:NUMber {len(items)}", f":NUMeric:NORMal:{listing}"]

    def _items(self) -> list[tuple[str, str]]:
        _, plus, minus = ENERGY_FUNCTIONS[self.model]
        items = []
        for channel in self.channels:
            items += [("U", str(channel)), ("I", str(channel)), ("P", str(channel))]
        total = "SIGMA" if len(self.channels) > 1 else str(self.channels[0])
        return items + [("P", total), (plus, total), (minus, total)]

    def fields(self) -> list[str]:
        names = [f"{q}{c}" for c in self.channels for q in "UIP"]
        return names + ["P", "E+", "E-"]

    def reading_query(self) -> str:
        return ":NUMeric:NORMal:VALue?"

    def integration_state_query(self) -> str:
        return ":INTEGrate:STATe?"

    def start_integration(self) -> None:
        self._command(":INTEGrate:STARt")

    def stop_integration(self) -> None:
        self._command(":INTEGrate:STOP")

    def reset_integration(self) -> None:
        self._command(":INTEGrate:RESet")

    def errors(self) -> list[str]:
        found = []
        for _ in range(32):  # the queue is finite; never loop forever on a broken instrument
            reply = self.session.query(":STATus:ERRor?")
            match = re.match(r"^\s*([+-]?\d+)\s*(?:,(.*))?$", reply)
            if match is None:
                raise InstrumentError(self.name, ":STATus:ERRor?", f"not an error queue entry: {reply[:80]!r}")
            if int(match.group(1)) == 0:
                break
            found.append(f"{match.group(1)} {(match.group(2) or '').strip()}".strip())
        return found

    def go_local(self) -> None:
        self.session.write(":COMMunicate:REMote OFF")
