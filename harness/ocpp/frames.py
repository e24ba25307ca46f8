"""OCPP-J frames, sans-IO: parse, validate, serialize, and the CALLERROR each problem deserves.

Everything here is a pure function of the frame text and the OCPP version. The mapping from what
is wrong with a frame to the CALLERROR code lives in one table, :data:`ERROR_CODES`, because the
versions name the same problem differently (1.6's FormationViolation is 2.0.1's FormatViolation;
2.0.1 adds RpcFrameworkError and MessageTypeNotSupported).
"""

from __future__ import annotations

import decimal
import enum
import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Union

import jsonschema
from jsonschema.exceptions import ValidationError as _SchemaError

from harness.ocpp.versions import OcppVersion

#: the messageId of a CALLERROR answering a frame whose own id could not be read
UNKNOWN_MESSAGE_ID = "-1"
#: OCPP 2.0.1 Part 4 §4.1.4: a messageId is a string of at most 36 characters
MAX_MESSAGE_ID_LENGTH = 36


class MessageType(enum.IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5  # OCPP 2.1 only
    SEND = 6  # OCPP 2.1 only


@dataclass(frozen=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]
    type = MessageType.CALL

    def to_list(self) -> list:
        return [int(self.type), self.message_id, self.action, self.payload]


@dataclass(frozen=True)
class Send(Call):
    """OCPP 2.1's unconfirmed message: like a CALL, but nobody answers it."""

    type = MessageType.SEND


@dataclass(frozen=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]
    type = MessageType.CALLRESULT

    def to_list(self) -> list:
        return [int(self.type), self.message_id, self.payload]


@dataclass(frozen=True)
class CallError:
    message_id: str
    code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    type = MessageType.CALLERROR

    def to_list(self) -> list:
        return [int(self.type), self.message_id, self.code, self.description[:255], self.details]


@dataclass(frozen=True)
class CallResultError(CallError):
    """OCPP 2.1: the answer to a CALLRESULT that could not be accepted."""

    type = MessageType.CALLRESULTERROR


Frame = Union[Call, Send, CallResult, CallError, CallResultError]


class Violation(enum.Enum):
    """What can be wrong with a received frame."""

    NOT_JSON = "frame is not valid JSON"
    NOT_RPC = "frame is not an OCPP-J RPC array"
    UNKNOWN_MESSAGE_TYPE = "message type number not supported"
    PAYLOAD_NOT_OBJECT = "payload is not a JSON object"
    UNKNOWN_ACTION = "action not known"
    UNSUPPORTED_ACTION = "action known but not supported by the receiver"
    MISSING_PROPERTY = "required property missing"
    ADDITIONAL_PROPERTY = "property not allowed"
    WRONG_TYPE = "property of the wrong type"
    BAD_VALUE = "property value out of its constraints"
    BAD_OCCURRENCE = "array with too few or too many items"


_V16, _V201, _V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21

# The CALLERROR code per violation and version. OCPP-J 1.6 §4.2.3; OCPP 2.0.1 and 2.1 Part 4
# §4.3. NotImplemented means "not known by the receiver", NotSupported "recognized but not
# supported" in every version. 1.6 spells OccurenceConstraintViolation with one r (kept in its
# errata); 2.0.1 and 2.1 spell it correctly.
ERROR_CODES: dict[Violation, dict[OcppVersion, str]] = {
    Violation.NOT_JSON: {_V16: "FormationViolation", _V201: "RpcFrameworkError", _V21: "RpcFrameworkError"},
    Violation.NOT_RPC: {_V16: "FormationViolation", _V201: "RpcFrameworkError", _V21: "RpcFrameworkError"},
    Violation.UNKNOWN_MESSAGE_TYPE: {_V16: "FormationViolation", _V201: "MessageTypeNotSupported",
                                     _V21: "MessageTypeNotSupported"},
    Violation.PAYLOAD_NOT_OBJECT: {_V16: "FormationViolation", _V201: "FormatViolation", _V21: "FormatViolation"},
    Violation.UNKNOWN_ACTION: {_V16: "NotImplemented", _V201: "NotImplemented", _V21: "NotImplemented"},
    Violation.UNSUPPORTED_ACTION: {_V16: "NotSupported", _V201: "NotSupported", _V21: "NotSupported"},
    Violation.MISSING_PROPERTY: {_V16: "ProtocolError", _V201: "OccurrenceConstraintViolation",
                                 _V21: "OccurrenceConstraintViolation"},
    Violation.ADDITIONAL_PROPERTY: {_V16: "FormationViolation", _V201: "FormatViolation", _V21: "FormatViolation"},
    Violation.WRONG_TYPE: {_V16: "TypeConstraintViolation", _V201: "TypeConstraintViolation",
                           _V21: "TypeConstraintViolation"},
    Violation.BAD_VALUE: {_V16: "PropertyConstraintViolation", _V201: "PropertyConstraintViolation",
                          _V21: "PropertyConstraintViolation"},
    Violation.BAD_OCCURRENCE: {_V16: "OccurenceConstraintViolation", _V201: "OccurrenceConstraintViolation",
                               _V21: "OccurrenceConstraintViolation"},
}

# Where the specifications leave room, a conforming peer may also answer with these codes: a
# payload missing a property is "incomplete" (ProtocolError) as much as an occurrence violation,
# an unexpected property is a FormatViolation or "not conform the PDU structure" (ProtocolError),
# and a frame that is not JSON may be reported as a FormatViolation. The mock CSMS answers with
# ERROR_CODES; the suites accept these alternatives from a DUT.
ALSO_ACCEPTED: dict[Violation, dict[OcppVersion, frozenset[str]]] = {
    Violation.NOT_JSON: {_V16: frozenset({"ProtocolError", "GenericError"}),
                         _V201: frozenset({"FormatViolation", "ProtocolError"}),
                         _V21: frozenset({"FormatViolation", "ProtocolError"})},
    Violation.MISSING_PROPERTY: {_V16: frozenset({"OccurenceConstraintViolation", "FormationViolation"}),
                                 _V201: frozenset({"ProtocolError", "FormatViolation"}),
                                 _V21: frozenset({"ProtocolError", "FormatViolation"})},
    Violation.ADDITIONAL_PROPERTY: {_V16: frozenset({"ProtocolError"}), _V201: frozenset({"ProtocolError"}),
                                    _V21: frozenset({"ProtocolError"})},
    Violation.BAD_VALUE: {_V16: frozenset({"TypeConstraintViolation"}), _V201: frozenset({"TypeConstraintViolation"}),
                          _V21: frozenset({"TypeConstraintViolation"})},
}


def acceptable_codes(violation: Violation, version: OcppVersion) -> frozenset[str]:
    """Every CALLERROR code a conforming receiver may use for ``violation``."""
    return frozenset({ERROR_CODES[violation][version]}) | ALSO_ACCEPTED.get(violation, {}).get(version, frozenset())


# JSON-schema keyword that failed -> violation
_SCHEMA_KEYWORDS: dict[str, Violation] = {
    "required": Violation.MISSING_PROPERTY,
    "additionalProperties": Violation.ADDITIONAL_PROPERTY,
    "type": Violation.WRONG_TYPE,
    "minItems": Violation.BAD_OCCURRENCE,
    "maxItems": Violation.BAD_OCCURRENCE,
}


class FrameError(ValueError):
    """A received frame that must be answered with a CALLERROR (or, for responses, dropped).

    ``message_id`` is the frame's own id when it could be read, else "-1"; ``frame_type`` the
    message type number when it could be read.
    """

    def __init__(self, violation: Violation, detail: str, *, message_id: str = UNKNOWN_MESSAGE_ID,
                 frame_type: int | None = None, action: str | None = None) -> None:
        super().__init__(f"{violation.value}: {detail}")
        self.violation = violation
        self.detail = detail
        self.message_id = message_id
        self.frame_type = frame_type
        self.action = action

    def error_code(self, version: OcppVersion) -> str:
        return ERROR_CODES[self.violation][version]

    def call_error(self, version: OcppVersion) -> CallError:
        return CallError(self.message_id, self.error_code(version), str(self)[:255],
                         {"violation": self.violation.name})


def parse(text: str | bytes, version: OcppVersion) -> Frame:
    """Parse one received frame into a Frame, or raise FrameError saying what is wrong.

    Checks the RPC structure only; payload schemas are checked by :func:`validate`.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(Violation.NOT_JSON, f"not UTF-8 at byte {exc.start}") from None
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameError(Violation.NOT_JSON, f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # over-long integer literals, absurd nesting
        raise FrameError(Violation.NOT_JSON, str(exc) or type(exc).__name__) from None
    if not isinstance(message, list) or not message:
        raise FrameError(Violation.NOT_RPC, f"expected a non-empty array, got {type(message).__name__}")
    type_id = message[0]
    message_id = message[1] if len(message) > 1 else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(Violation.NOT_RPC, "messageId missing, not a string, or longer than 36 characters",
                         frame_type=type_id if isinstance(type_id, int) else None)
    if isinstance(type_id, bool) or not isinstance(type_id, int) or type_id not in _allowed_types(version):
        raise FrameError(Violation.UNKNOWN_MESSAGE_TYPE, f"message type {type_id!r}", message_id=message_id)
    kind = MessageType(type_id)
    shape = _SHAPES[kind]
    if len(message) != len(shape):
        raise FrameError(Violation.NOT_RPC, f"a {kind.name} has {len(shape)} elements, this one {len(message)}",
                         message_id=message_id, frame_type=type_id)
    for index, (element, expected) in enumerate(zip(message, shape)):
        if index < 2:
            continue
        if not isinstance(element, expected):
            violation = Violation.PAYLOAD_NOT_OBJECT if expected is dict else Violation.NOT_RPC
            raise FrameError(violation, f"element {index} of a {kind.name} must be "
                                        f"{'an object' if expected is dict else 'a string'}",
                             message_id=message_id, frame_type=type_id,
                             action=message[2] if kind in (MessageType.CALL, MessageType.SEND)
                             and isinstance(message[2], str) else None)
    if kind is MessageType.CALL:
        return Call(message_id, message[2], message[3])
    if kind is MessageType.SEND:
        return Send(message_id, message[2], message[3])
    if kind is MessageType.CALLRESULT:
        return CallResult(message_id, message[2])
    cls = CallResultError if kind is MessageType.CALLRESULTERROR else CallError
    return cls(message_id, message[2], message[3], message[4])


_SHAPES: dict[MessageType, tuple[type, ...]] = {
    MessageType.CALL: (int, str, str, dict),
    MessageType.SEND: (int, str, str, dict),
    MessageType.CALLRESULT: (int, str, dict),
    MessageType.CALLERROR: (int, str, str, str, dict),
    MessageType.CALLRESULTERROR: (int, str, str, str, dict),
}


def _allowed_types(version: OcppVersion) -> frozenset[int]:
    base = {MessageType.CALL, MessageType.CALLRESULT, MessageType.CALLERROR}
    if version is _V21:
        base |= {MessageType.CALLRESULTERROR, MessageType.SEND}
    return frozenset(int(t) for t in base)


def serialize(frame: Frame) -> str:
    return json.dumps(frame.to_list(), separators=(",", ":"), ensure_ascii=False, default=_number)


def _number(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- payload schemas -------------------------------------------------------------------------

def is_known_action(action: str, version: OcppVersion) -> bool:
    return _schema(version, action, request=True) is not None


def validate(action: str, payload: dict[str, Any], version: OcppVersion, *, request: bool,
             message_id: str = UNKNOWN_MESSAGE_ID) -> None:
    """Check a payload against the version's JSON schema; raise FrameError naming the property."""
    validator = _schema(version, action, request=request)
    if validator is None:
        raise FrameError(Violation.UNKNOWN_ACTION, f"{action!r} is not an OCPP {version} action",
                         message_id=message_id, action=action)
    if version is _V16:
        # 1.6 schemas constrain decimals with multipleOf 0.1, which binary floats cannot meet
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is None:
        return
    raise FrameError(_SCHEMA_KEYWORDS.get(str(error.validator), Violation.BAD_VALUE),
                     f"{action}{'Request' if request else 'Response'} {_path(error)}: {error.message}",
                     message_id=message_id, action=action)


def _path(error: _SchemaError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(payload)"


def _schema(version: OcppVersion, action: str, *, request: bool) -> jsonschema.protocols.Validator | None:
    """The validator of ``action``'s request or response, None for an action the version does not
    have. What a peer names is only looked up among the version's schema files: an action name
    never becomes a path, and the cache holds at most one validator per schema file."""
    if version is _V16:
        names = [action if request else f"{action}Response"]
    else:
        names = [f"{action}Request" if request else f"{action}Response"]
        if request:
            names.append(action)  # 2.1's SEND messages (NotifyPeriodicEventStream) have no suffix
    known = _schema_names(version)
    for name in names:
        if name in known:
            return _validator(version, name)
    return None


@functools.lru_cache(maxsize=len(OcppVersion))
def _schema_names(version: OcppVersion) -> frozenset[str]:
    folder = resources.files("ocpp") / version.schema_package / "schemas"
    return frozenset(entry.name[:-len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


@functools.lru_cache(maxsize=None)  # bounded: keys are the schema files' names (_schema_names)
def _validator(version: OcppVersion, name: str) -> jsonschema.protocols.Validator:
    path = resources.files("ocpp") / version.schema_package / "schemas" / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=decimal.Decimal if version is _V16 else float)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema)


def value_at(payload: Any, path: str) -> Any:
    """The value at a dotted path in a payload (``transactionInfo.chargingState``), None where a
    part is missing."""
    for part in path.split("."):
        payload = payload.get(part) if isinstance(payload, dict) else None
    return payload
