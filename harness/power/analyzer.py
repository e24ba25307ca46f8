"""The power analyzer as the harness sees it, whatever its make.

A :class:`PowerAnalyzer` identifies itself, takes a wiring (AC single-phase, AC three-phase, DC)
on a number of channels, reads voltage, current and active power per channel and in total, runs
its energy integrator (start, stop, reset) and reads the energy imported (to the EV) and exported
(back to the grid) since the integrator was reset. After configuring, a driver reads the
instrument's error queue so a setting the instrument refused never goes unnoticed.

Signs follow the harness's power flow: positive power flows to the EV (import), negative back
(export); exported energy is reported as a positive number of Wh.

Every failure to talk to an instrument (no answer, connection lost, a reply that is not what the
command promises, an entry in the error queue) is an :class:`InstrumentError` naming the instrument
and the command. It is not an AssertionError on purpose: a broken instrument is an error of the
rig, not a failure of the device under test.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field


class Wiring(enum.StrEnum):
    AC1 = "ac1"  # single-phase, two-wire (1P2W)
    AC3 = "ac3"  # three-phase, four-wire (3P4W)
    DC = "dc"

    @property
    def default_channels(self) -> tuple[int, ...]:
        return (1, 2, 3) if self is Wiring.AC3 else (1,)


class IntegrationState(enum.StrEnum):
    RESET = "reset"  # counters at zero, not running
    READY = "ready"  # waiting for a real-time start (Yokogawa real-time modes)
    RUNNING = "running"
    STOPPED = "stopped"  # stopped by command; counters held, may resume
    TIMEUP = "timeup"  # stopped by the integration timer; must be reset before a new start
    ERROR = "error"  # stopped abnormally (overflow, power failure)


class InstrumentError(RuntimeError):
    """The instrument could not be used: names it, the command and what went wrong."""

    def __init__(self, instrument: str, command: str | None, problem: str) -> None:
        self.instrument = instrument
        self.command = command
        self.problem = problem
        where = f" on {command!r}" if command else ""
        super().__init__(f"power analyzer {instrument}{where}: {problem}")


@dataclass(frozen=True)
class Identity:
    vendor: str
    model: str
    serial: str
    firmware: str

    @classmethod
    def parse(cls, reply: str) -> "Identity":
        """An IEEE 488.2 *IDN? reply: manufacturer, model, serial number, firmware."""
        parts = [p.strip() for p in reply.strip().split(",")]
        parts += [""] * (4 - len(parts))
        return cls(parts[0], parts[1], parts[2], ",".join(parts[3:]).strip(","))

    def __str__(self) -> str:
        return " ".join(p for p in (self.vendor, self.model, self.serial, self.firmware) if p)


@dataclass(frozen=True)
class ChannelReading:
    channel: int
    voltage: float  # V (rms for AC)
    current: float  # A (rms for AC)
    power: float  # W, active, signed


@dataclass(frozen=True)
class Measurement:
    """One reading of the instrument: per channel, in total, and its integrator."""

    channels: tuple[ChannelReading, ...]
    power: float  # W, total active power, signed (negative = export)
    imported_wh: float
    exported_wh: float  # positive
    #: when the harness got the reply (the rig timeline's monotonic clock, if known)
    at: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def voltage(self) -> float:
        """Mean of the channel voltages."""
        return sum(c.voltage for c in self.channels) / len(self.channels) if self.channels else 0.0

    @property
    def current(self) -> float:
        """Mean of the channel currents."""
        return sum(c.current for c in self.channels) / len(self.channels) if self.channels else 0.0

    def summary(self) -> str:
        return (f"P {self.power:.1f} W, U {self.voltage:.2f} V, I {self.current:.3f} A, "
                f"E+ {self.imported_wh:.4f} Wh, E- {self.exported_wh:.4f} Wh")


class PowerAnalyzer(abc.ABC):
    """What every driver offers. Methods block; they are called from the test's thread or the
    sampler's, never from the rig's event loop."""

    #: the model name the rig file uses (``meter.model``)
    model: str = "?"

    def __init__(self) -> None:
        self.wiring = Wiring.AC3
        self.channels: tuple[int, ...] = Wiring.AC3.default_channels

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """How error messages name this instrument: model and resource."""

    @abc.abstractmethod
    def identify(self) -> Identity: ...

    @abc.abstractmethod
    def configure(self, wiring: Wiring, channels: tuple[int, ...] | None = None) -> None:
        """Set the wiring and the measured channels, then check the error queue."""

    @abc.abstractmethod
    def read(self) -> Measurement: ...

    @abc.abstractmethod
    def start_integration(self) -> None: ...

    @abc.abstractmethod
    def stop_integration(self) -> None: ...

    @abc.abstractmethod
    def reset_integration(self) -> None: ...

    @abc.abstractmethod
    def integration_state(self) -> IntegrationState: ...

    def energy(self) -> tuple[float, float]:
        """(imported Wh, exported Wh) since the integrator was reset."""
        reading = self.read()
        return reading.imported_wh, reading.exported_wh

    @abc.abstractmethod
    def errors(self) -> list[str]:
        """Read the error queue (or status register) empty; returns what was in it."""

    def check_errors(self, after: str) -> None:
        """Raise an InstrumentError if the instrument recorded errors (``after`` names what
        was just sent)."""
        found = self.errors()
        if found:
            raise InstrumentError(self.name, after, "the instrument reports " + "; ".join(found))

    @abc.abstractmethod
    def go_local(self) -> None:
        """Hand the front panel back to the operator."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def make_safe(self) -> None:
        """Integration stopped, instrument local: what teardown leaves behind."""
        if self.integration_state() is IntegrationState.RUNNING:
            self.stop_integration()
        self.go_local()

    def __enter__(self) -> "PowerAnalyzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
