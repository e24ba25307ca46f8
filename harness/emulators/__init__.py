"""Emulated rig parts: the reference EVSE (stands in for a DUT), the EV, the pilot line and the
power flow between them. Fakes exist only where hardware is physically absent."""
