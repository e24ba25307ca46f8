"""A traction battery that integrates power into state of charge and says what it accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Battery:
    capacity_wh: float
    soc: float  # 0.0 .. 1.0
    max_charge_w: float
    max_discharge_w: float = 0.0
    #: above this SoC the charge power tapers linearly to zero at 100 % (constant-voltage phase)
    taper_from: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError(f"SoC must be between 0 and 1, not {self.soc}")
        if self.capacity_wh <= 0:
            raise ValueError("capacity must be positive")

    @property
    def full(self) -> bool:
        return self.soc >= 0.999

    def acceptance_w(self) -> float:
        """The charge power the battery takes now."""
        if self.full:
            return 0.0
        if self.soc <= self.taper_from:
            return self.max_charge_w
        return self.max_charge_w * (1.0 - self.soc) / (1.0 - self.taper_from)

    def available_discharge_w(self, min_soc: float = 0.0) -> float:
        return self.max_discharge_w if self.soc > min_soc else 0.0

    def integrate(self, power_w: float, seconds: float) -> None:
        """Apply ``power_w`` (positive charges) for ``seconds``."""
        self.soc = min(1.0, max(0.0, self.soc + power_w * seconds / 3600.0 / self.capacity_wh))
