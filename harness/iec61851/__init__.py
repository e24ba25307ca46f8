"""IEC 61851-1: the control pilot between EV and EVSE (states, PWM duty, the simulated line)."""
