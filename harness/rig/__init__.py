"""Rigs: rig files, their roles and drivers, and the lifecycle that always leaves the rig safe.

Importing this package loads nothing heavy: reading a rig file (:mod:`harness.rig.config`) does
not start or import the emulators; :class:`harness.rig.rig.Rig` does when it comes up.
"""
