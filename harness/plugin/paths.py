"""The charging paths as pytest parameters, each needing its capability:
``@pytest.mark.parametrize("path", charging_paths())`` and ``ev.plug_in(path=path)``."""

from __future__ import annotations

import pytest

from harness.rig.ev import CHARGING_PATHS


def charging_paths() -> list:
    """One parameter per way an EV takes energy (:data:`harness.rig.ev.CHARGING_PATHS`); a rig
    without the path's capability skips it with that reason."""
    return [pytest.param(name, marks=pytest.mark.requires(path.capability), id=name)
            for name, path in CHARGING_PATHS.items()]
