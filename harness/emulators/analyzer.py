"""The simulated power analyzer: an instrument model with no I/O (the socket is harness.emulators.analyzer_server).

It answers program messages the way a Yokogawa WT (``dialect="wt"``) or a Hioki PW33xx
(``dialect="hioki"``) does: long and short mnemonics in any case, compound messages, the common
commands (*IDN?, *RST, *CLS, *ESR?, *OPC?), the WT error queue (``:STATus:ERRor?``) or the Hioki
event status register, and the integrator's state rules (see :data:`INTEGRATOR`). Its readings
come from a power flow (the emulated rig's :class:`harness.emulators.power.PowerFlow`): positive
power is import, negative export; the integrator adds WP+ and WP- from the flow's exact energy.

An accuracy class makes it a calibrated-but-not-perfect instrument: one gain error drawn within
+-class % when it is built (seeded, so runs repeat) applies to every value; ``noise`` adds random
relative noise (percent rms) to instantaneous values only, never to energy. Values refresh at the
data update interval (``:RATE``), as a real instrument's do.
"""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field
from typing import Callable

from harness.power.analyzer import IntegrationState as S
from harness.power.scpi import (
    ProgramUnit,
    ScpiSyntaxError,
    boolean,
    compile_pattern,
    keyword,
    match_path,
    parse_message,
)

#: the integrator's rules, one table for both dialects: (state, action) -> next state; anything
#: else is refused with an error. Hioki PW3335A985 ":INTEGrate:STATe": START from reset or
#: stopped, STOP only while running, RESET not while running. Yokogawa WT1800 user manual
#: (IM WT1801-01EN 9-5): a stopped integration resumes on start, one stopped by the timer must be
#: reset first; WT3000 manual 6-74 names the states. That the WT refuses STOP when not running
#: was not confirmed.
INTEGRATOR: dict[tuple[S, str], S] = {
    (S.RESET, "start"): S.RUNNING,
    (S.STOPPED, "start"): S.RUNNING,
    (S.RUNNING, "stop"): S.STOPPED,
    (S.RESET, "reset"): S.RESET,
    (S.STOPPED, "reset"): S.RESET,
    (S.TIMEUP, "reset"): S.RESET,
    (S.ERROR, "reset"): S.RESET,
}

#: error kinds -> (WT error code and message, Hioki *ESR? bit). WT 102/109/113/141 are the
#: Yokogawa communication syntax errors (positive mirrors of SCPI's); 221/222 for refused
#: settings and states follow SCPI's execution errors and were not confirmed for the WT.
ERRORS = {
    "syntax": ((102, "Syntax error"), 32),
    "header": ((113, "Undefined header"), 32),
    "parameter": ((141, "Invalid character data"), 32),
    "missing": ((109, "Missing parameter"), 32),
    "range": ((222, "Data out of range"), 16),
    "conflict": ((221, "Setting conflict"), 8),
}
QUEUE_SIZE = 16


class CommandError(Exception):
    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(detail or kind)


@dataclass(frozen=True)
class Flow:
    """What the analyzer's terminals see at one instant (the shape of PowerFlow.read())."""

    voltage: float
    current: float
    phases: int  # 1 or 3 (AC), 0 (DC)
    power: float
    imported_wh: float
    exported_wh: float


@dataclass
class Integrator:
    state: S = S.RESET
    imported_wh: float = 0.0
    exported_wh: float = 0.0
    elapsed: float = 0.0
    timer: float = 0.0  # seconds; 0 = no timer
    _since: float = 0.0
    _flow_in: float = 0.0
    _flow_out: float = 0.0

    def advance(self, now: float, flow: Flow) -> None:
        if self.state is not S.RUNNING:
            return
        dt = max(0.0, now - self._since)
        d_in, d_out = flow.imported_wh - self._flow_in, flow.exported_wh - self._flow_out
        if self.timer and self.elapsed + dt >= self.timer:
            share = (self.timer - self.elapsed) / dt if dt > 0 else 0.0
            d_in, d_out, dt = d_in * share, d_out * share, self.timer - self.elapsed
            self.state = S.TIMEUP
        self.imported_wh += d_in
        self.exported_wh += d_out
        self.elapsed += dt
        self._since, self._flow_in, self._flow_out = now, flow.imported_wh, flow.exported_wh

    def apply(self, action: str, now: float, flow: Flow) -> None:
        self.advance(now, flow)
        after = INTEGRATOR.get((self.state, action))
        if after is None:
            raise CommandError("conflict", f"integration {action} refused in state {self.state.value}")
        if action == "reset":
            self.imported_wh = self.exported_wh = self.elapsed = 0.0
        if after is S.RUNNING:
            self._since, self._flow_in, self._flow_out = now, flow.imported_wh, flow.exported_wh
        self.state = after


Handler = Callable[["SimulatedAnalyzer", ProgramUnit, list[int]], "str | None"]


@dataclass
class Command:
    pattern: str
    handler: Handler
    query: bool
    #: a setting query answers with its header when headers are on
    setting: bool = False
    nodes: tuple = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = compile_pattern(self.pattern)


class SimulatedAnalyzer:
    def __init__(self, source: Callable[[], Flow], *, dialect: str = "wt", model: str | None = None,
                 accuracy: float = 0.05, noise: float = 0.0, seed: int = 1, update_interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, elements: int | None = None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})")
        self.source = source
        self.dialect = dialect
        self.model = model or ("yokogawa-wt1800" if dialect == "wt" else "hioki-pw3337")
        self.elements = elements or (4 if dialect == "wt" else 3)
        self.clock = clock
        self.accuracy = accuracy
        self.noise = noise
        self._random = random.Random(seed)
        #: the instrument's own error within its class, fixed for its life (as a calibration is)
        self.gain_error = self._random.uniform(-accuracy, accuracy) / 100.0
        self.update_interval = update_interval
        self.commands = [Command(p, h, q, s) for p, h, q, s in DIALECTS[dialect]]
        #: the latest program messages received (bounded: a simulator may run for days)
        self.log: collections.deque[str] = collections.deque(maxlen=1000)
        self.reset()

    # -- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        """*RST: settings to defaults, integrator reset, error queue kept (IEEE 488.2 §10.32)."""
        self.header = False
        self.verbose = False
        self.remote = False
        self.wiring = ["P1W2"] * self.elements if self.dialect == "wt" else "1P2W"
        self.modes = {"VOLTAGE": "RMS", "CURRENT": "RMS"}
        self.rectifier = "AC+DC"
        self.integration_mode = "NORMAL"
        self.items: list[tuple[str, str] | None] = [None] * 255
        self.item_count = 15
        self.integrator = Integrator()
        self._cached: tuple[float, Flow] | None = None
        if not hasattr(self, "errors"):
            self.errors: list[tuple[int, str]] = []
            self.esr = 0

    def flow(self) -> Flow:
        """The terminals' state, refreshed at the data update interval."""
        now = self.clock()
        if self._cached is None or now - self._cached[0] >= self.update_interval:
            self._cached = (now, self.source())
        return self._cached[1]

    def _integrator(self) -> Integrator:
        self.integrator.advance(self.clock(), self.source())
        return self.integrator

    def error(self, kind: str, detail: str = "") -> None:
        (code, message), bit = ERRORS[kind]
        self.esr |= bit
        if self.dialect == "wt":
            if len(self.errors) >= QUEUE_SIZE:
                self.errors[-1] = (350, "Queue overflow")
            else:
                self.errors.append((code, message + (f"; {detail}" if detail else "")))

    # -- program messages ----------------------------------------------------------------

    def handle(self, message: str) -> str | None:
        """One program message in, the response message out (None when nothing was asked)."""
        self.log.append(message)
        try:
            units = parse_message(message)
        except ScpiSyntaxError as exc:
            self.error("syntax", str(exc))
            return None
        answers = []
        for unit in units:
            command, suffixes = self._find(unit)
            if command is None:
                self.error("header", unit.text)
                continue
            try:
                answer = command.handler(self, unit, suffixes)
            except CommandError as exc:
                self.error(exc.kind, exc.detail)
                continue
            if unit.query and answer is not None:
                if command.setting and self.header:
                    answer = f":{':'.join(n.long for n in command.nodes)} {answer}"
                answers.append(answer)
        return ";".join(answers) if answers else None

    def _find(self, unit: ProgramUnit) -> tuple[Command | None, list[int]]:
        for command in self.commands:
            if command.query != unit.query:
                continue
            suffixes = match_path(command.nodes, unit.path)
            if suffixes is not None:
                return command, suffixes
        return None, []

    # -- measured values ------------------------------------------------------------------

    def element_values(self, element: int) -> tuple[float, float, float]:
        """Voltage, current, power on one input element (phase ``element`` of the flow)."""
        flow = self.flow()
        carries = element == 1 if flow.phases in (0, 1) else element <= flow.phases
        if not carries:
            return 0.0, 0.0, 0.0
        gain = 1.0 + self.gain_error
        u = flow.voltage * gain * self._noise()
        i = abs(flow.current) * gain * self._noise()
        share = flow.power / (flow.phases or 1)
        return u, i, share * gain * self._noise()

    def _noise(self) -> float:
        return 1.0 + self._random.gauss(0.0, self.noise / 100.0) if self.noise else 1.0

    def energy(self, element: int | None) -> tuple[float, float, float]:
        """(WP+, WP-, elapsed s) of one element, or of all (None)."""
        integrator = self._integrator()
        flow = self.flow()
        gain = 1.0 + self.gain_error
        share = 1.0
        if element is not None:
            phases = flow.phases or 1
            carries = element == 1 if flow.phases in (0, 1) else element <= flow.phases
            share = (1.0 / phases) if carries else 0.0
        return integrator.imported_wh * gain * share, -integrator.exported_wh * gain * share, integrator.elapsed

    def not_while_integrating(self, what: str) -> None:
        if self._integrator().state is S.RUNNING:
            raise CommandError("conflict", f"{what} cannot be changed during integration")


# -- helpers for the handlers ----------------------------------------------------------------

def _one(unit: ProgramUnit) -> str:
    if not unit.arguments:
        raise CommandError("missing", unit.text)
    return unit.arguments[0]


def _choice(unit: ProgramUnit, *choices: str) -> str:
    found = keyword(_one(unit), *choices)
    if found is None:
        raise CommandError("parameter", f"{_one(unit)!r} is not one of {', '.join(choices)}")
    return found.upper()


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CommandError("parameter", f"{text!r} is not a number") from None


def _hms(unit: ProgramUnit, parts: int) -> float:
    if len(unit.arguments) != parts:
        raise CommandError("missing", unit.text)
    values = [_number(a) for a in unit.arguments]
    if any(v < 0 for v in values) or (parts >= 2 and values[1] > 59) or (parts == 3 and values[2] > 59):
        raise CommandError("range", unit.text)
    return values[0] * 3600 + values[1] * 60 + (values[2] if parts == 3 else 0)


def _common(table: list) -> list:
    def idn(sim: SimulatedAnalyzer, unit, _):
        return IDN[sim.model]

    def rst(sim: SimulatedAnalyzer, unit, _):
        sim.reset()

    def cls(sim: SimulatedAnalyzer, unit, _):
        sim.errors.clear()
        sim.esr = 0

    def esr(sim: SimulatedAnalyzer, unit, _):
        value, sim.esr = sim.esr, 0
        return str(value)

    return table + [("*IDN", idn, True, False), ("*RST", rst, False, False), ("*CLS", cls, False, False),
                    ("*ESR", esr, True, False), ("*OPC", lambda sim, unit, _: "1", True, False)]


IDN = {
    "yokogawa-wt1800": "YOKOGAWA,WT1806-SIM,SIM0000001,F1.00 simulated",
    "yokogawa-wt5000": "YOKOGAWA,WT5000-SIM,SIM0000001,F1.00 simulated",
    "yokogawa-wt3000": "YOKOGAWA,760304-SIM,SIM0000001,F1.00 simulated",
    "hioki-pw3337": "HIOKI,PW3337,SIM000001,V1.00 simulated",
    "hioki-pw3336": "HIOKI,PW3336,SIM000001,V1.00 simulated",
    "hioki-pw3335": "HIOKI,PW3335,SIM000001,V1.00 simulated",
}


# -- the WT dialect ---------------------------------------------------------------------------

WT_FUNCTIONS = ("U", "I", "P", "S", "Q", "LAMBda", "FU", "FI", "TIME", "WP", "WPP", "WPM", "WH", "WHP", "WHM")


def _wt_energy_names(sim: SimulatedAnalyzer) -> tuple[str, str, str]:
    return ("WH", "WHP", "WHM") if sim.model == "yokogawa-wt3000" else ("WP", "WPP", "WPM")


def _wt_value(sim: SimulatedAnalyzer, item: tuple[str, str] | None) -> str:
    if item is None:
        return "NAN"
    function, element = item
    sigma = element == "SIGMA"
    if sigma:
        members = _wt_sigma_members(sim)
        if not members:
            return "NAN"
    else:
        members = [int(element)]
    total, plus, minus = _wt_energy_names(sim)
    if function in (total, plus, minus, "TIME"):
        values = [sim.energy(None if sigma else members[0])]
        wp_plus, wp_minus, elapsed = values[0]
        value = {total: wp_plus + wp_minus, plus: wp_plus, minus: wp_minus, "TIME": elapsed}[function]
        return str(int(value)) if function == "TIME" else f"{value:.5E}"
    if function in ("FU", "FI"):
        return "NAN" if sim.flow().phases == 0 else f"{50.0:.4E}"
    readings = [sim.element_values(e) for e in members]
    u = sum(r[0] for r in readings) / len(readings)
    i = sum(r[1] for r in readings) / len(readings)
    p = sum(r[2] for r in readings)
    value = {"U": u, "I": i, "P": p, "S": u * i * len(readings), "Q": 0.0, "LAMBDA": 1.0 if i else 0.0}[function]
    return f"{value:.5E}"


def _wt_sigma_members(sim: SimulatedAnalyzer) -> list[int]:
    """Elements of wiring unit SIGMA: the first unit if it spans more than one element."""
    width = {"P1W2": 1, "P1W3": 2, "P3W3": 2, "P3W4": 3, "V3A3": 3}[sim.wiring[0]]
    return list(range(1, width + 1)) if width > 1 else []


def _wt_wiring(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    sim.not_while_integrating("the wiring")
    matched = [keyword(a, "P1W2", "P1W3", "P3W3", "P3W4", "V3A3", "NONE") for a in unit.arguments]
    patterns = [pattern for pattern in matched if pattern is not None]
    if not patterns or len(patterns) != len(matched):
        raise CommandError("parameter", unit.text)
    width = {"P1W2": 1, "P1W3": 2, "P3W3": 2, "P3W4": 3, "V3A3": 3, "NONE": 1}
    wiring, element = [], 0
    for pattern in patterns:
        wiring.append(pattern.upper())
        element += width[pattern.upper()]
    if element > sim.elements:
        raise CommandError("range", f"{unit.text}: the model has {sim.elements} elements")
    sim.wiring = wiring + ["P1W2"] * (sim.elements - element)  # elements left over: single-phase


def _wt_mode(quantity: str):
    def handler(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
        sim.not_while_integrating(f"the {quantity.lower()} mode")
        sim.modes[quantity] = _choice(unit, "RMS", "MEAN", "DC", "RMEan")
    return handler


def _wt_item(sim: SimulatedAnalyzer, unit: ProgramUnit, suffixes: list[int]):
    index = suffixes[-1]
    if not 1 <= index <= 255:
        raise CommandError("range", unit.text)
    if len(unit.arguments) == 1 and keyword(unit.arguments[0], "NONE"):
        sim.items[index - 1] = None
        return
    if not 2 <= len(unit.arguments) <= 3:
        raise CommandError("missing", unit.text)
    function = keyword(unit.arguments[0], *WT_FUNCTIONS)
    energy = ("WH", "WHP", "WHM") if sim.model != "yokogawa-wt3000" else ("WP", "WPP", "WPM")
    if function is None or function.upper() in energy:
        raise CommandError("parameter", f"function {unit.arguments[0]!r}")
    element = unit.arguments[1].strip().upper()
    if keyword(element, "SIGMa", "SIGMA"):
        element = "SIGMA"
    elif not element.isdigit() or not 1 <= int(element) <= sim.elements:
        raise CommandError("parameter", f"element {unit.arguments[1]!r}")
    sim.items[index - 1] = (function.upper(), element)


def _wt_item_query(sim: SimulatedAnalyzer, unit: ProgramUnit, suffixes: list[int]):
    item = sim.items[suffixes[-1] - 1]
    return "NONE" if item is None else f"{item[0]},{item[1]}"


def _wt_number(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if keyword(_one(unit), "ALL"):
        sim.item_count = 255
        return
    count = _number(_one(unit))
    if not 1 <= count <= 255:
        raise CommandError("range", unit.text)
    sim.item_count = int(count)


def _wt_values(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if unit.arguments:
        index = int(_number(unit.arguments[0]))
        if not 1 <= index <= 255:
            raise CommandError("range", unit.text)
        return _wt_value(sim, sim.items[index - 1])
    return ",".join(_wt_value(sim, item) for item in sim.items[:sim.item_count])


def _wt_clear(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if keyword(_one(unit), "ALL"):
        first, last = 1, 255
    else:
        first = int(_number(unit.arguments[0]))
        last = int(_number(unit.arguments[1])) if len(unit.arguments) > 1 else 255
    for index in range(first, last + 1):
        sim.items[index - 1] = None


def _wt_integrate(action: str):
    def handler(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
        sim.integrator.apply(action, sim.clock(), sim.source())
    return handler


_WT_STATE_WORDS = {S.RESET: "RESet", S.READY: "READy", S.RUNNING: "STARt", S.STOPPED: "STOP",
                   S.ERROR: "ERRor", S.TIMEUP: "TIMeup"}


def _wt_state(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    word = _WT_STATE_WORDS[sim._integrator().state]
    # a real WT answers the short form unless :COMMunicate:VERBose is on
    return word.upper() if sim.verbose else "".join(c for c in word if c.isupper())


def _wt_integration_mode(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    sim.not_while_integrating("the integration mode")
    mode = _choice(unit, "NORMal", "CONTinuous", "RNORmal", "RCONtinuous")
    if mode.startswith("R"):
        raise CommandError("conflict", "real-time integration modes are not simulated")
    sim.integration_mode = mode


def _wt_timer(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    sim.not_while_integrating("the integration timer")
    sim.integrator.timer = _hms(unit, 3)


def _wt_error_query(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if not sim.errors:
        return '0,"No error"'
    code, message = sim.errors.pop(0)
    return f'{code},"{message}"'


def _flag(attribute: str):
    def setter(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
        value = boolean(_one(unit))
        if value is None:
            raise CommandError("parameter", unit.text)
        setattr(sim, attribute, value)

    def getter(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
        return "1" if getattr(sim, attribute) else "0"
    return setter, getter


def _format(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if _choice(unit, "ASCii", "FLOat") != "ASCII":
        raise CommandError("conflict", "the simulated analyzer answers in ASCII only")


def _wt_table() -> list:
    header, header_q = _flag("header")
    verbose, verbose_q = _flag("verbose")
    remote, remote_q = _flag("remote")
    return _common([
        (":COMMunicate:HEADer", header, False, False), (":COMMunicate:HEADer", header_q, True, True),
        (":COMMunicate:VERBose", verbose, False, False), (":COMMunicate:VERBose", verbose_q, True, True),
        (":COMMunicate:REMote", remote, False, False), (":COMMunicate:REMote", remote_q, True, True),
        (":NUMeric:FORMat", _format, False, False),
        (":NUMeric:FORMat", lambda sim, u, s: "ASCII", True, True),
        (":NUMeric[:NORMal]:NUMber", _wt_number, False, False),
        (":NUMeric[:NORMal]:NUMber", lambda sim, u, s: str(sim.item_count), True, True),
        (":NUMeric[:NORMal]:ITEM<n>", _wt_item, False, False),
        (":NUMeric[:NORMal]:ITEM<n>", _wt_item_query, True, True),
        (":NUMeric[:NORMal]:VALue", _wt_values, True, False),
        (":NUMeric[:NORMal]:CLEar", _wt_clear, False, False),
        ("[:INPut]:WIRing", _wt_wiring, False, False),
        ("[:INPut]:WIRing", lambda sim, u, s: ",".join(sim.wiring), True, True),
        ("[:INPut]:VOLTage:MODE[:ALL]", _wt_mode("VOLTAGE"), False, False),
        ("[:INPut]:CURRent:MODE[:ALL]", _wt_mode("CURRENT"), False, False),
        (":INTEGrate:MODE", _wt_integration_mode, False, False),
        (":INTEGrate:MODE", lambda sim, u, s: sim.integration_mode, True, True),
        (":INTEGrate:TIMer", _wt_timer, False, False),
        (":INTEGrate:TIMer", lambda sim, u, s: "{},{},{}".format(int(sim.integrator.timer // 3600),
                                                                  int(sim.integrator.timer % 3600 // 60),
                                                                  int(sim.integrator.timer % 60)), True, True),
        (":INTEGrate:STARt", _wt_integrate("start"), False, False),
        (":INTEGrate:STOP", _wt_integrate("stop"), False, False),
        (":INTEGrate:RESet", _wt_integrate("reset"), False, False),
        (":INTEGrate:STATe", _wt_state, True, False),
        (":STATus:ERRor", _wt_error_query, True, False),
        (":RATE", lambda sim, u, s: setattr(sim, "update_interval", _rate(u)), False, False),
    ])


def _rate(unit: ProgramUnit) -> float:
    text = _one(unit).strip().upper()
    scale = 1e-3 if text.endswith("MS") else 1.0
    value = _number(text.rstrip("MS") or "x") * scale
    if not 0.01 <= value <= 20:
        raise CommandError("range", unit.text)
    return value


# -- the Hioki dialect ------------------------------------------------------------------------

def _hioki_format(value: float, digits: int = 6) -> str:
    """PW33xx measured values: sign, `digits` characters with the decimal point, exponent 0/3/6."""
    exponent = 0
    magnitude = abs(value)
    while magnitude >= 1000 and exponent < 6:
        magnitude /= 1000
        exponent += 3
    whole = len(str(int(magnitude)))
    decimals = max(0, digits - 1 - whole)
    return f"{'-' if value < 0 else '+'}{magnitude:.{decimals}f}E+{exponent}"


def _hioki_item(sim: SimulatedAnalyzer, name: str) -> str:
    import re

    match = re.match(r"^(U|I|P|S|Q|PF|WP|PWP|MWP|TIME)(\d*)$", name.upper())
    channels = 1 if sim.model == "hioki-pw3335" else sim.elements
    if match is None or (match.group(2) and (channels == 1 or not 1 <= int(match.group(2)) <= channels)) \
            or (not match.group(2) and channels > 1):
        raise CommandError("parameter", f"output item {name!r}")
    function, channel = match.group(1), int(match.group(2) or 1)
    if function in ("WP", "PWP", "MWP", "TIME"):
        plus, minus, elapsed = sim.energy(channel)
        if function == "TIME":
            return f"{int(elapsed // 3600):05d},{int(elapsed % 3600 // 60):02d},{int(elapsed % 60):02d}"
        value = {"WP": plus + minus, "PWP": plus, "MWP": minus}[function]
        return _hioki_format(value, 7)
    u, i, p = sim.element_values(channel)
    value = {"U": u, "I": i, "P": p, "S": u * i, "Q": 0.0, "PF": 1.0 if i else 0.0}[function]
    return _hioki_format(value)


def _hioki_measure(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if not unit.arguments:
        raise CommandError("missing", "the simulated PW33xx needs the output items in the query")
    values = [_hioki_item(sim, name) for name in unit.arguments]
    if sim.header:
        return ",".join(f"{name.upper()} {value}" for name, value in zip(unit.arguments, values))
    return ",".join(values)


def _hioki_wiring(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    if sim.model == "hioki-pw3335":
        raise CommandError("header", unit.text)
    sim.not_while_integrating("the wiring")
    sim.wiring = _choice(unit, "1P2W", "1P3W", "3P3W", "3P3W2M", "3V3A", "3P4W")


def _hioki_rectifier(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    sim.not_while_integrating("the rectifier")
    sim.rectifier = _choice(unit, "AC+DC", "DC", "AC", "FND")


def _hioki_integrate(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    action = {"START": "start", "STOP": "stop", "RESET": "reset"}[_choice(unit, "START", "STOP", "RESET")]
    sim.integrator.apply(action, sim.clock(), sim.source())


_HIOKI_STATE_WORDS = {S.RESET: "RESET", S.RUNNING: "START", S.STOPPED: "STOP", S.TIMEUP: "STOP",
                      S.ERROR: "STOP", S.READY: "RESET"}


def _hioki_time(sim: SimulatedAnalyzer, unit: ProgramUnit, _):
    sim.not_while_integrating("the integration time")
    sim.integrator.timer = _hms(unit, 2)


def _hioki_table() -> list:
    header, header_q = _flag("header")
    return _common([
        (":HEADer", header, False, False), (":HEADer", header_q, True, True),
        (":WIRing", _hioki_wiring, False, False), (":WIRing", lambda sim, u, s: sim.wiring, True, True),
        (":RECTifier", _hioki_rectifier, False, False), (":RECTifier", lambda sim, u, s: sim.rectifier, True, True),
        (":MEASure[:POWer]", _hioki_measure, True, False),
        (":MEASure[:NORMal]:VALue", _hioki_measure, True, False),
        (":INTEGrate:STATe", _hioki_integrate, False, False),
        (":INTEGrate:STATe", lambda sim, u, s: _HIOKI_STATE_WORDS[sim._integrator().state], True, True),
        (":INTEGrate:TIME", _hioki_time, False, False),
        (":INTEGrate:TIME", lambda sim, u, s: "{:04d},{:02d}".format(int(sim.integrator.timer // 3600),
                                                                   int(sim.integrator.timer % 3600 // 60)), True, True),
    ])


DIALECTS = {"wt": _wt_table(), "hioki": _hioki_table()}
#: model -> dialect, for the rig file's meter.model on a simulated meter
MODEL_DIALECTS = {model: ("wt" if model.startswith("yokogawa") else "hioki") for model in IDN}


def flow_from(power_flow) -> Callable[[], Flow]:
    """A source reading a :class:`harness.emulators.power.PowerFlow`."""
    def read() -> Flow:
        r = power_flow.read()
        return Flow(r.voltage, r.current, r.phases, r.power, r.imported_wh, r.exported_wh)
    return read


def constant_flow(voltage: float = 230.0, current: float = 16.0, phases: int = 3,
                  clock: Callable[[], float] = time.monotonic) -> Callable[[], Flow]:
    """A steady flow whose energy grows with time (for `harness meter simulate` alone)."""
    start = clock()
    power = voltage * current * (phases or 1)

    def read() -> Flow:
        hours = (clock() - start) / 3600.0
        return Flow(voltage, current, phases, power, max(power, 0.0) * hours, max(-power, 0.0) * hours)
    return read


