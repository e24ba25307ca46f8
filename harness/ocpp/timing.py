"""OCPP timers, in one place.

Values are what a charging station uses when its configuration does not say otherwise. Where a
configuration variable governs a value its name is given (2.0.1 name / 1.6 key). The emulated
rigs multiply them by the rig's time scale; lab rigs use them as they are.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class OcppTimers:
    #: heartbeat interval used until the CSMS's BootNotification response sets one
    heartbeat_interval: float = 300.0
    #: wait before re-sending a BootNotification that got no answer or a CALLERROR
    boot_retry_interval: float = 60.0
    #: how long to wait for a CALLRESULT (OCPPCommCtrlr.MessageTimeout)
    message_timeout: float = 30.0
    #: TransactionEvent / transaction-related message attempts and interval
    #: (OCPPCommCtrlr.MessageAttempts / MessageAttemptInterval; 1.6 TransactionMessageAttempts /
    #: TransactionMessageRetryInterval)
    transaction_message_attempts: int = 3
    transaction_message_retry_interval: float = 60.0
    #: reconnect back-off (OCPPCommCtrlr.RetryBackOffWaitMinimum / RetryBackOffRandomRange /
    #: RetryBackOffRepeatTimes): the wait doubles on each failed attempt up to the repeat count
    reconnect_wait_minimum: float = 10.0
    reconnect_random_range: float = 10.0
    reconnect_repeat_times: int = 5
    #: periodic meter values during a transaction (SampledDataCtrlr.TxUpdatedInterval /
    #: MeterValueSampleInterval)
    meter_value_interval: float = 60.0
    #: how long a station keeps trying to reach the CSMS before giving up on one attempt
    connect_timeout: float = 10.0
    #: the factor every duration above was multiplied by (1.0 on lab rigs)
    scale: float = 1.0

    def scaled(self, scale: float) -> "OcppTimers":
        """Every duration multiplied by ``scale`` (counts stay as they are)."""
        if scale <= 0:
            raise ValueError("time scale must be positive")
        return replace(self, scale=self.scale * scale,
                       **{f.name: getattr(self, f.name) * scale for f in fields(self)
                          if f.name != "scale" and isinstance(getattr(self, f.name), float)})

    def wait(self, protocol_seconds: float) -> float:
        """How long to really wait for an interval that arrived in a message (a heartbeat
        interval from the CSMS, say): the protocol's value under this rig's time scale."""
        return protocol_seconds * self.scale


def timestamp(offset_s: float = 0.0) -> str:
    """Now (``offset_s`` seconds off), as OCPP's dateTime fields carry it: UTC, milliseconds, the Z
    suffix."""
    moment = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
