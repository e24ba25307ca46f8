"""Power analyzers: the PowerAnalyzer interface, drivers over VISA (Yokogawa WT, Hioki PW33xx,
ZES LMG, a generic SCPI driver from a YAML command map), the simulated analyzer and its socket
server, background sampling onto the timeline, plots, and the metering cross-check."""

from harness.power.analyzer import (ChannelReading, Identity, IntegrationState, InstrumentError, Measurement,
                                    PowerAnalyzer, Wiring)

__all__ = ["ChannelReading", "Identity", "IntegrationState", "InstrumentError", "Measurement", "PowerAnalyzer",
           "Wiring"]
