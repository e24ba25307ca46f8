"""Correlation keys of OCPP messages: what ties a frame to a transaction, a token, an EVSE.

Every OCPP event on the timeline carries these keys, so "the OCPP messages of transaction X" is
one query whatever the version: 2.x carries ``transactionInfo.transactionId`` in
TransactionEvent and ``transactionId`` in RequestStopTransaction; 1.6 carries an integer
``transactionId`` that the CSMS hands out in its StartTransaction.conf.
"""

from __future__ import annotations

from typing import Any, Mapping

from harness.ocpp import frames
from harness.ocpp.frames import Call, CallResult, FrameError


def message_keys(action: str, payload: Mapping[str, Any] | None) -> dict[str, str]:
    """Keys found in one payload (request or response) of ``action``."""
    if not isinstance(payload, Mapping):
        return {}
    keys: dict[str, str] = {}
    transaction_id = _get(payload, "transactionInfo", "transactionId")
    if transaction_id is None:
        transaction_id = payload.get("transactionId")
    if isinstance(transaction_id, (str, int)) and not isinstance(transaction_id, bool):
        keys["transaction_id"] = str(transaction_id)
    token = _get(payload, "idToken", "idToken")
    if token is None:
        token = payload.get("idTag")
    if isinstance(token, str):
        keys["id_token"] = token
    evse_id = _get(payload, "evse", "id")
    if evse_id is None:
        evse_id = payload.get("evseId", payload.get("connectorId"))
    if isinstance(evse_id, int) and not isinstance(evse_id, bool):
        keys["evse_id"] = str(evse_id)
    remote_start_id = payload.get("remoteStartId", _get(payload, "transactionInfo", "remoteStartId"))
    if isinstance(remote_start_id, int) and not isinstance(remote_start_id, bool):
        keys["remote_start_id"] = str(remote_start_id)
    return keys


def frame_event(frame: frames.Frame | None, raw: str | bytes, *, station_id: str, action: str | None,
                problem: FrameError | None = None, note: str = "",
                extra_keys: Mapping[str, str] | None = None) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """(name, summary, payload, keys) of the timeline event for one frame, however it was seen (by
    an endpoint of the harness, or read from a capture): ``frame`` as :func:`frames.parse` made it
    (None when it did not parse, ``problem`` saying why), ``action`` the one a CALLRESULT answers."""
    keys: dict[str, str] = {"station_id": station_id}
    body: dict[str, Any] = {"frame": raw if isinstance(raw, str) else raw.decode("utf-8", "replace")}
    if frame is None:
        name = "malformed"
        summary = f"malformed frame: {problem}"
        if problem is not None and problem.message_id != frames.UNKNOWN_MESSAGE_ID:
            # what it answers, when it could be read: a malformed CALLERROR is still an answer
            keys["message_id"] = problem.message_id
            body["message_id"] = problem.message_id
            if problem.frame_type is not None:
                body["type"] = frames.MessageType(problem.frame_type).name \
                    if problem.frame_type in frames.MessageType._value2member_map_ else str(problem.frame_type)
    else:
        kind = frame.type.name
        action = getattr(frame, "action", None) or action or "?"
        name = action
        keys["message_id"] = frame.message_id
        body.update(type=kind, message_id=frame.message_id, action=action)
        if isinstance(frame, (Call, CallResult)):
            body["payload"] = frame.payload
            keys.update(message_keys(action, frame.payload))
            summary = f"{kind} {action}"
        else:
            body["error"] = {"code": frame.code, "description": frame.description, "details": frame.details}
            summary = f"{kind} {action} {frame.code}"
    if problem is not None:
        body["violation"] = problem.violation.name
        body["detail"] = problem.detail
        if frame is not None:
            summary += f" (invalid: {problem.detail})"
    if note:
        body["note"] = note
    if extra_keys:
        keys = {**extra_keys, **keys}
    return name, summary, body, keys


def _get(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
