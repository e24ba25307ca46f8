"""Rigs: rig files, their roles, and the lifecycle that always leaves the rig safe."""

from harness.rig.config import RigConfig, RigFileError, load_rig
from harness.rig.rig import Rig, RigSetupError

__all__ = ["Rig", "RigConfig", "RigFileError", "RigSetupError", "load_rig"]
