"""Holding the charger's own meter against the analyzer: a reusable assertion that explains itself.

The charger reports energy over OCPP as register readings (Energy.Active.Import.Register,
Energy.Active.Export.Register; meterStart/meterStop on 1.6); the difference between its first
and last reading in a transaction is the energy it says it delivered (or took back). The analyzer
integrated the same cable over a window that contains the whole transaction. The two must agree
within:

    the charger meter's accuracy class (percent of the measured energy)
  + the analyzer's uncertainty (percent)
  + one step of the charger's register resolution (it rounds, so a delta may be off by one step)

Periodic power samples (Power.Active.Import) are held against the analyzer's power at the time the CSMS
received them, where the analyzer saw steady power around that moment (a sample taken during a
ramp says nothing about accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.ocpp.transactions import TransactionView
from harness.power.sampler import MeterRun

#: maximum permissible error in percent at reference conditions (unity power factor): EN 50470-3
#: (MID) classes A, B, C; IEC 62053-21 classes 2 and 1, IEC 62053-22 classes 0.5S and 0.2S
ACCURACY_CLASSES = {"A": 2.0, "B": 1.0, "C": 0.5, "2": 2.0, "1": 1.0, "0.5S": 0.5, "0.2S": 0.2}

IMPORT = "Energy.Active.Import.Register"
EXPORT = "Energy.Active.Export.Register"
POWER_IMPORT = "Power.Active.Import"
#: power is steady around a sample when the analyzer saw less than this relative change
STEADY = 0.02


@dataclass
class EnergyCheck:
    measurand: str
    reported_wh: float | None
    measured_wh: float
    tolerance_wh: float
    dut_class: str
    analyzer_accuracy: float
    resolution_wh: float
    readings: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def error_wh(self) -> float | None:
        return None if self.reported_wh is None else self.reported_wh - self.measured_wh

    @property
    def error_percent(self) -> float | None:
        if self.error_wh is None or self.measured_wh == 0:
            return None
        return 100.0 * self.error_wh / self.measured_wh

    @property
    def ok(self) -> bool:
        return self.error_wh is not None and abs(self.error_wh) <= self.tolerance_wh

    def explain(self) -> str:
        if self.reported_wh is None:
            head = f"{self.measurand}: the charger reported fewer than two register readings ({self.readings})"
        else:
            pct = f" ({self.error_percent:+.3f} %)" if self.error_percent is not None else ""
            head = (f"{self.measurand}: charger {self.reported_wh:.4f} Wh, analyzer {self.measured_wh:.4f} Wh, "
                    f"difference {self.error_wh:+.4f} Wh{pct}; allowed +-{self.tolerance_wh:.4f} Wh = class "
                    f"{self.dut_class} ({ACCURACY_CLASSES[self.dut_class]:g} %) + analyzer "
                    f"{self.analyzer_accuracy:g} % of {self.measured_wh:.4f} Wh + register resolution "
                    f"{self.resolution_wh:g} Wh")
        readings = ", ".join(f"{r:g}" for r in self.readings[:12]) + (" ..." if len(self.readings) > 12 else "")
        return "\n  ".join([head, f"charger register readings: {readings or '(none)'}"] + self.notes)


@dataclass
class PowerCheck:
    compared: int
    skipped: int
    worst_percent: float | None
    tolerance_percent: float
    details: list[str]

    @property
    def ok(self) -> bool:
        return self.worst_percent is None or abs(self.worst_percent) <= self.tolerance_percent

    def explain(self) -> str:
        worst = "n/a" if self.worst_percent is None else f"{self.worst_percent:+.3f} %"
        lines = [f"{POWER_IMPORT}: {self.compared} samples compared ({self.skipped} during ramps skipped), "
                 f"worst {worst}, allowed +-{self.tolerance_percent:g} %"]
        return "\n  ".join(lines + self.details[:10])


@dataclass
class MeteringCheck:
    energy: list[EnergyCheck]
    power: PowerCheck

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.energy) and self.power.ok

    def explain(self) -> str:
        return "\n".join([e.explain() for e in self.energy] + [self.power.explain()])


def register_resolution(values: list[float]) -> float:
    """The step of a register: 10^-d for the fewest decimals d (up to 3) that write every value."""
    for decimals in range(0, 4):
        if all(abs(v * 10 ** decimals - round(v * 10 ** decimals)) < 1e-6 for v in values):
            return 10.0 ** -decimals
    return 0.001


def check_energy(tx: TransactionView, run: MeterRun, measurand: str = IMPORT, *, dut_class: str = "A",
                 analyzer_accuracy: float | None = None) -> EnergyCheck:
    if dut_class not in ACCURACY_CLASSES:
        raise ValueError(f"unknown accuracy class {dut_class!r} (known: {', '.join(ACCURACY_CLASSES)})")
    accuracy = run.accuracy if analyzer_accuracy is None else analyzer_accuracy
    readings = [s.value for s in tx.values(measurand)]
    if measurand == IMPORT:
        readings = ([tx.meter_start_wh] if tx.meter_start_wh is not None else []) + readings + \
                   ([tx.meter_stop_wh] if tx.meter_stop_wh is not None else [])
    reported = tx.energy_wh(measurand)
    measured = run.imported_wh if measurand == IMPORT else run.exported_wh
    resolution = register_resolution(readings) if readings else 1.0
    if measurand == IMPORT and (tx.meter_start_wh is not None or tx.meter_stop_wh is not None):
        resolution = max(resolution, 1.0)  # OCPP 1.6 meterStart/meterStop are integers (Wh)
    tolerance = measured * (ACCURACY_CLASSES[dut_class] + accuracy) / 100.0 + resolution
    check = EnergyCheck(measurand, reported, measured, tolerance, dut_class, accuracy, resolution, readings)
    # a register read at different resolutions (1.6: meterStart in whole Wh, samples with decimals)
    # may seem to step back by less than its resolution; only more than that is going backwards
    if readings and any(b < a - resolution for a, b in zip(readings, readings[1:])):
        check.notes.append("the register went backwards")
    messages = [m for m in tx.messages]
    if len(messages) >= 2:
        inside = run.energy_between(messages[0].mono, messages[-1].mono)
        index = 0 if measurand == IMPORT else 1
        check.notes.append(f"analyzer over the span the CSMS received the transaction's messages: {inside[index]:.4f} Wh "
                           f"(whole measuring window: {measured:.4f} Wh, analyzer {run.instrument})")
    return check


def check_power(tx: TransactionView, run: MeterRun, *, dut_class: str = "A",
                analyzer_accuracy: float | None = None, window: float = 0.5, after: float = 0.25) -> PowerCheck:
    """The charger's periodic power samples against the analyzer's reading before each arrived;
    a sample is skipped (a ramp) when the analyzer's power moved in the second before it or
    within ``after`` seconds after it (a step the analyzer's next sample shows, which the charger
    may already have seen)."""
    accuracy = run.accuracy if analyzer_accuracy is None else analyzer_accuracy
    tolerance = ACCURACY_CLASSES[dut_class] + accuracy
    series = run.power_series()
    compared = skipped = 0
    worst: float | None = None
    details = []
    for message in tx.messages:
        payload = message.payload.get("payload") or {}
        for meter_value in payload.get("meterValue", []) or payload.get("transactionData", []):
            for sampled in meter_value.get("sampledValue", []):
                # samples at transaction begin/end or state changes are taken at transitions by design
                if sampled.get("measurand") != POWER_IMPORT or \
                        sampled.get("context", "Sample.Periodic") not in ("Sample.Periodic", "Sample.Clock"):
                    continue
                try:
                    reported = float(sampled["value"]) * 10 ** (sampled.get("unitOfMeasure") or {}).get("multiplier", 0)
                except (KeyError, TypeError, ValueError):
                    continue
                before = [p for t, p in series if message.mono - window - 1.0 <= t <= message.mono]
                around = before + [p for t, p in series if message.mono < t <= message.mono + after]
                if len(before) < 2 or max(before) <= 0:
                    skipped += 1
                    continue
                low, high = min(around), max(around)
                if (high - low) > STEADY * max(abs(high), 1.0):
                    skipped += 1
                    continue
                measured = before[-1]
                error = 100.0 * (reported - measured) / measured if measured else 0.0
                compared += 1
                if worst is None or abs(error) > abs(worst):
                    worst = error
                if abs(error) > tolerance:
                    details.append(f"sample {meter_value.get('timestamp')}: charger {reported:.1f} W, "
                                   f"analyzer {measured:.1f} W ({error:+.2f} %)")
    return PowerCheck(compared, skipped, worst, tolerance, details)


def check_metering(tx: TransactionView, run: MeterRun, *, dut_class: str = "A",
                   analyzer_accuracy: float | None = None) -> MeteringCheck:
    energy = [check_energy(tx, run, IMPORT, dut_class=dut_class, analyzer_accuracy=analyzer_accuracy)]
    if tx.values(EXPORT) and (run.exported_wh > 0 or (tx.energy_wh(EXPORT) or 0) > 0):
        energy.append(check_energy(tx, run, EXPORT, dut_class=dut_class, analyzer_accuracy=analyzer_accuracy))
    return MeteringCheck(energy, check_power(tx, run, dut_class=dut_class, analyzer_accuracy=analyzer_accuracy))


def assert_metering(tx: TransactionView, run: MeterRun, *, dut_class: str = "A",
                    analyzer_accuracy: float | None = None) -> MeteringCheck:
    """The charger's energy and power agree with the analyzer, or an AssertionError that says
    every number it compared and the tolerance it allowed."""
    check = check_metering(tx, run, dut_class=dut_class, analyzer_accuracy=analyzer_accuracy)
    if not check.ok:
        raise AssertionError(f"transaction {tx.transaction_id}: the charger's meter disagrees with the "
                             f"analyzer\n{check.explain()}")
    return check
