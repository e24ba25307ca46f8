"""The timeline: one recorder every layer of the harness writes to.

Every message, sample, fault and verdict becomes an :class:`Event` with monotonic and wall
timestamps, a layer, the participants it travelled between, a one-line summary, the full payload
and correlation keys (station id, transaction id, SessionID, EVCCID, ...). Events are appended to
``trace.jsonl`` as they happen, so a crash loses nothing; queries over the recorder are what tests
and reports use.
"""

from harness.trace.event import Event, Layer
from harness.trace.recorder import Recorder, TraceTimeout

__all__ = ["Event", "Layer", "Recorder", "TraceTimeout"]
