"""Hioki PW33xx power meters (PW3335 single channel, PW3336 two, PW3337 three channels).

Confirmed against the PW3335 communication command manual (PW3335A985): measured values come
from ``:MEASure? <item>,<item>...`` in the order asked (U, I, P, ..., integration values WP
(sum), PWP (positive), MWP (negative)); instruments mark over range, scaling error and missing data
with +-999.99E+9, +-888.88E+9, +-777.77E+9; the integrator is driven by
``:INTEGrate:STATe START|STOP|RESET`` and queried with ``:INTEGrate:STATe?``; a START while
running, a STOP unless running and a RESET while running are device-dependent errors. Errors are
reported in the standard event status register (``*ESR?``: bit 5 command error, 4 execution error,
3 device-dependent error, 2 query error; IEEE 488.2 §11.5.1); there is no error queue. On a LAN the
instrument listens on TCP port 3300 (PW3336/PW3337 manual).

Not confirmed: the channel suffix on the PW3336/PW3337 item names (U1, PWP2...), the wiring
command ``:WIRing 1P2W|3P4W`` and ``:RECTifier DC`` for DC measurements, and whether a remote
command returns the instrument to local (the manuals describe the LOCAL key and GP-IB GTL only,
so :meth:`go_local` sends nothing).
"""

from __future__ import annotations

from harness.power.analyzer import InstrumentError, IntegrationState, Wiring
from harness.power.driver import ScpiAnalyzer

#: model -> number of channels (the PW3335 has one and no suffix on its item names)
CHANNELS = {"hioki-pw3335": 1, "hioki-pw3336": 2, "hioki-pw3337": 3}
WIRING = {Wiring.AC1: "1P2W", Wiring.AC3: "3P4W", Wiring.DC: "1P2W"}
#: *ESR? bits that mean an error (IEEE 488.2 standard event status register)
ESR_ERRORS = {32: "command error", 16: "execution error", 8: "device-dependent error", 4: "query error"}


class HiokiPw33xx(ScpiAnalyzer):
    model = "hioki-pw3337"
    integration_states = {"START": IntegrationState.RUNNING, "STOP": IntegrationState.STOPPED,
                          "RESET": IntegrationState.RESET}

    def __init__(self, resource: str, *, model: str = "hioki-pw3337", **options) -> None:
        if model not in CHANNELS:
            raise ValueError(f"unknown Hioki model {model!r} (known: {', '.join(CHANNELS)})")
        self.model = model
        options.setdefault("write_termination", "\r\n")
        super().__init__(resource, **options)

    def _suffix(self, channel: int) -> str:
        return "" if CHANNELS[self.model] == 1 else str(channel)

    def wiring_commands(self, wiring: Wiring, channels: tuple[int, ...]) -> list[str]:
        if len(channels) > CHANNELS[self.model]:
            raise InstrumentError(self.name, None, f"{len(channels)} channels asked for, the model has "
                                                   f"{CHANNELS[self.model]}")
        commands = [":HEADer OFF"]
        if CHANNELS[self.model] > 1:
            commands.append(f":WIRing {WIRING[wiring]}")
        if wiring is Wiring.DC:
            commands.append(":RECTifier DC")
        return commands

    def _items(self) -> list[str]:
        items = []
        for channel in self.channels:
            s = self._suffix(channel)
            items += [f"U{s}", f"I{s}", f"P{s}"]
        # energy per channel, summed by the driver: no sum item names to guess
        for channel in self.channels:
            s = self._suffix(channel)
            items += [f"PWP{s}", f"MWP{s}"]
        return items

    def fields(self) -> list[str]:
        names = [f"{q}{c}" for c in self.channels for q in "UIP"]
        return names + [f"E{sign}{c}" for c in self.channels for sign in "+-"]

    def reading_query(self) -> str:
        return ":MEASure? " + ",".join(self._items())

    def read(self):
        reading = super().read()
        imported = sum(v for k, v in reading.extras.items() if k.startswith("E+"))
        exported = sum(abs(v) for k, v in reading.extras.items() if k.startswith("E-"))
        extras = {k: v for k, v in reading.extras.items() if not k.startswith("E")}
        return type(reading)(reading.channels, reading.power, imported, exported, reading.at, extras)

    def integration_state_query(self) -> str:
        return ":INTEGrate:STATe?"

    def start_integration(self) -> None:
        self._command(":INTEGrate:STATe START")

    def stop_integration(self) -> None:
        self._command(":INTEGrate:STATe STOP")

    def reset_integration(self) -> None:
        self._command(":INTEGrate:STATe RESET")

    def errors(self) -> list[str]:
        reply = self.session.query("*ESR?")
        try:
            register = int(float(reply.split()[-1]))
        except ValueError:
            raise InstrumentError(self.name, "*ESR?", f"not a status register value: {reply[:60]!r}") from None
        return [f"*ESR? bit {bit.bit_length() - 1}: {text}" for bit, text in ESR_ERRORS.items() if register & bit]

    def go_local(self) -> None:
        pass  # see the module docstring: no documented LAN command
