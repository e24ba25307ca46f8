"""Which driver speaks to which model: the names rig files use in ``meter.model``.

A model name ending in .yaml/.yml is a command map for the generic SCPI driver
(harness.power.generic), relative to ``base`` (the rig file's folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.power.analyzer import PowerAnalyzer
from harness.power.generic import GenericScpi, load_command_map
from harness.power.hioki import CHANNELS as HIOKI_MODELS
from harness.power.hioki import HiokiPw33xx
from harness.power.yokogawa import ENERGY_FUNCTIONS as YOKOGAWA_MODELS
from harness.power.yokogawa import YokogawaWt
from harness.power.zes import ZesLmg

DRIVERS: dict[str, Callable[..., PowerAnalyzer]] = {
    **{model: YokogawaWt for model in YOKOGAWA_MODELS},
    **{model: HiokiPw33xx for model in HIOKI_MODELS},
    "zes-lmg500": ZesLmg,
    "zes-lmg600": ZesLmg,
}


class UnknownModel(ValueError):
    pass


def is_command_map(model: str) -> bool:
    return model.endswith((".yaml", ".yml"))


def open_analyzer(resource: str, model: str, *, base: Path | None = None, **options) -> PowerAnalyzer:
    """Connect the driver for ``model`` to ``resource`` (nothing is configured yet)."""
    if is_command_map(model):
        path = Path(model).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return GenericScpi(resource, load_command_map(path), **options)
    driver = DRIVERS.get(model)
    if driver is None:
        raise UnknownModel(f"unknown analyzer model {model!r}; known: {', '.join(sorted(DRIVERS))}, "
                           "or a command map file (*.yaml)")
    return driver(resource, model=model, **options)
