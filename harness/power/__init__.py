"""Power analyzers: the PowerAnalyzer interface, drivers over VISA (Yokogawa WT, Hioki PW33xx,
ZES LMG, a generic SCPI driver from a YAML command map), the SCPI grammar, background sampling
onto the timeline and plots. The simulated analyzer is an emulator
(:mod:`harness.emulators.analyzer`)."""

from harness.power.analyzer import (
    ChannelReading,
    Identity,
    InstrumentError,
    IntegrationState,
    Measurement,
    PowerAnalyzer,
    Wiring,
)

__all__ = ["ChannelReading", "Identity", "IntegrationState", "InstrumentError", "Measurement", "PowerAnalyzer",
           "Wiring"]
