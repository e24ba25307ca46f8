"""Emulated rig parts: the reference EVSE (stands in for a DUT), the EVs, the power flow between
them, the Green PHY modem and the power analyzer simulators. Fakes exist only where hardware is
physically absent; the pilot line they share is :mod:`harness.iec61851.pilot`."""
