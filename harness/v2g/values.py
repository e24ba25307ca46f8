"""Physical values as the V2G schemas carry them.

DIN 70121 and ISO 15118-2: ``PhysicalValueType`` = Multiplier (10^-3 .. 10^3), Unit, Value
(a 16-bit signed integer). ISO 15118-20: ``RationalNumberType`` = Exponent (-128 .. 127), Value
(16-bit signed). :func:`physical` and :func:`rational` pick the smallest exponent that keeps the
value in 16 bits, so precision is lost only where 16 bits force it.
"""

from __future__ import annotations

SHORT_MAX = 32767


def _scaled(value: float, low: int, high: int) -> tuple[int, int]:
    for exponent in range(low, high + 1):
        mantissa = round(value / 10 ** exponent)
        if -SHORT_MAX - 1 <= mantissa <= SHORT_MAX:
            return exponent, mantissa
    raise ValueError(f"{value} does not fit a 16-bit value with exponent up to {high}")


def physical(value: float, unit: str | None = None, *, low: int = 0) -> dict:
    """A -2/DIN PhysicalValue; ``low`` is the smallest multiplier wanted (0: whole units)."""
    multiplier, mantissa = _scaled(value, max(low, -3), 3)
    result: dict = {"Multiplier": multiplier}
    if unit is not None:
        result["Unit"] = unit
    result["Value"] = mantissa
    return result


def physical_value(value: dict | int | float | None, default: float = 0.0) -> float:
    """The number a PhysicalValue (or a DIN bare short such as PMax) stands for."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    return value["Value"] * 10.0 ** value.get("Multiplier", 0)


def rational(value: float, *, low: int = 0) -> dict:
    """A -20 RationalNumber."""
    exponent, mantissa = _scaled(value, low, 127)
    return {"Exponent": exponent, "Value": mantissa}


def rational_value(value: dict | None, default: float = 0.0) -> float:
    if value is None:
        return default
    return value["Value"] * 10.0 ** value.get("Exponent", 0)


def percent(fraction: float) -> int:
    """A state of charge 0..1 as the schemas' percentValueType (0..100)."""
    return max(0, min(100, int(round(fraction * 100))))
