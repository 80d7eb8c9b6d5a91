"""The signaling protocol, version 1 (docs/signaling.md): pure parse and serialize of frames."""

from __future__ import annotations

import json
import json.encoder as json_encoder
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

from appliance.errors import SprechzimmerError
from appliance.json_depth import nested_deeper_than

VERSION: Final = 1
#: one frame, UTF-8 encoded
MAX_FRAME_BYTES: Final = 64 * 1024
#: the opaque ``data`` of a signal, serialized
MAX_DATA_BYTES: Final = 32 * 1024
#: levels of objects and arrays, the envelope itself counting as one
MAX_DEPTH: Final = 12
#: the largest integer a browser's JSON numbers hold exactly
MAX_SEQ: Final = 2**53 - 1
MAX_REASON_CHARS: Final = 64
MAX_NAME_CHARS: Final = 200
MAX_ICE_SERVERS: Final = 16
#: RTCIceTransportPolicy values a page may be told
ICE_POLICIES: Final = frozenset({"all", "relay"})
SESSION_PATTERN: Final = re.compile(r"[\x21-\x7e]{16,64}")
PARTICIPANT_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROLES: Final = ("doctor", "patient", "guest")
ROOM_STATES: Final = ("waiting", "in_call", "ended")
END_REASONS: Final = ("ended", "removed")


class SignalingError(SprechzimmerError):
    """A frame the hub cannot use; answered with an ``error`` frame, never a crash."""

    code = "signal_malformed"
    status = 400

    def __init__(self, code: str | None = None, /, *, ref: int | None = None,
                 consumes: bool = False, **params: Any) -> None:
        super().__init__(code, **params)
        #: the ``seq`` of the frame the error is about (echoed as ``ref``)
        self.ref = ref
        #: the frame had a valid reliable envelope: its ``seq`` counts as processed
        self.consumes = consumes


# --- message types ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Hello:
    """Client → hub, first frame on every socket: who the page is and what it has processed."""

    TYPE: ClassVar[str] = "hello"
    session: str
    received: int = 0


@dataclass(frozen=True, kw_only=True)
class Ping:
    """Client → hub heartbeat; ``t`` is echoed in the pong."""

    TYPE: ClassVar[str] = "ping"
    t: float | None = None


@dataclass(frozen=True, kw_only=True)
class Pong:
    """Hub → client answer to a ping."""

    TYPE: ClassVar[str] = "pong"
    t: float | None = None


@dataclass(frozen=True, kw_only=True)
class Ack:
    """Both ways: every reliable message with ``seq <= upto`` was processed."""

    TYPE: ClassVar[str] = "ack"
    upto: int


@dataclass(frozen=True, kw_only=True)
class SignalTo:
    """Client → hub: opaque ``data`` (description or candidate) for participant ``to``."""

    TYPE: ClassVar[str] = "signal"
    seq: int
    to: str
    data: Mapping[str, Any]
    #: ``data``'s own text in the frame, when the parser took it from a frame as pages write it
    #: (already decoded and checked: valid JSON, an object); relayed as it is (:func:`data_json`)
    raw_data: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Admit:
    """Client → hub, doctor only: the waiting ``participant`` joins the call."""

    TYPE: ClassVar[str] = "admit"
    seq: int
    participant: str


@dataclass(frozen=True, kw_only=True)
class Remove:
    """Client → hub, doctor only: ``participant`` leaves the call."""

    TYPE: ClassVar[str] = "remove"
    seq: int
    participant: str


@dataclass(frozen=True, kw_only=True)
class End:
    """Client → hub, doctor only: the call ends for everyone."""

    TYPE: ClassVar[str] = "end"
    seq: int


@dataclass(frozen=True, kw_only=True)
class Restart:
    """Both ways: build a new peer connection (hub → client carries a ``reason``)."""

    TYPE: ClassVar[str] = "restart"
    seq: int
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Leave:
    """Client → hub: the participant leaves for good."""

    TYPE: ClassVar[str] = "leave"
    seq: int


@dataclass(frozen=True, kw_only=True)
class ParticipantInfo:
    """A participant as the pages see it; ``present``/``admitted`` only in ``room``."""

    id: str
    role: str
    name: str
    present: bool | None = None
    admitted: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The participant as a JSON object (without the unset flags)."""
        out: dict[str, Any] = {"id": self.id, "role": self.role, "name": self.name}
        if self.present is not None:
            out["present"] = self.present
        if self.admitted is not None:
            out["admitted"] = self.admitted
        return out


@dataclass(frozen=True, kw_only=True)
class Welcome:
    """Hub → client answer to ``hello``."""

    TYPE: ClassVar[str] = "welcome"
    participant: ParticipantInfo
    received: int
    #: how often the page pings (it counts a socket dead after four silent beats)
    heartbeat_ms: int
    #: how many may take part in a call, the doctor included (the page opens at most one peer
    #: connection fewer)
    max_participants: int


@dataclass(frozen=True, kw_only=True)
class Room:
    """Hub → client: the room's state and the participants this client may see."""

    TYPE: ClassVar[str] = "room"
    seq: int
    state: str
    participants: tuple[ParticipantInfo, ...]


@dataclass(frozen=True, kw_only=True)
class SignalFrom:
    """Hub → client: a relayed signal; ``sender`` is set by the hub (``from`` on the wire)."""

    TYPE: ClassVar[str] = "signal"
    seq: int
    sender: str
    data: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Admitted:
    """Hub → client: you are in the call; ICE servers with short-lived TURN credentials, and
    the ICE transport policy (``relay``: offer only relay candidates, no LAN address)."""

    TYPE: ClassVar[str] = "admitted"
    seq: int
    ice_servers: tuple[Mapping[str, Any], ...]
    ice_policy: str = "all"


@dataclass(frozen=True, kw_only=True)
class Ended:
    """Hub → client: the call is over for you (``ended`` or ``removed``)."""

    TYPE: ClassVar[str] = "ended"
    seq: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class Error:
    """Hub → client: a frame was refused; ``ref`` is its ``seq`` if it had one."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    ref: int | None = None


ClientMessage: TypeAlias = Hello | Ping | Ack | SignalTo | Admit | Remove | End | Restart | Leave
HubMessage: TypeAlias = (
    Welcome | Pong | Ack | Room | SignalFrom | Admitted | Restart | Ended | Error
)
Message: TypeAlias = ClientMessage | HubMessage
RELIABLE_CLIENT_TYPES: Final = frozenset({"signal", "admit", "remove", "end", "restart", "leave"})
CONTROL_CLIENT_TYPES: Final = frozenset({"hello", "ping", "ack"})
RELIABLE_HUB_TYPES: Final = frozenset({"room", "signal", "admitted", "restart", "ended"})
CONTROL_HUB_TYPES: Final = frozenset({"welcome", "pong", "ack", "error"})


# --- serialize --------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON


def _no_default(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON")


# built once: ``json.dumps``/``json.loads`` with options build a new coder on every call
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant)
_ASCII_ENCODER: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"),
                                         allow_nan=False)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# the C encoder itself, without the cycle check: parsed JSON has no cycles (the relay's hot path)
_C_ENCODER: Final = (
    json_encoder.c_make_encoder(None, _no_default, json_encoder.c_encode_basestring, None,
                                ":", ",", False, False, False)
    if json_encoder.c_make_encoder is not None and json_encoder.c_encode_basestring is not None
    else None
)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: the encoder refuses it, so must the splice
        raise ValueError(text)
    return value


# the same checks as ``_DECODER``, and no number that serializing would refuse (the hot path
# relays ``data`` as it came instead of serializing it anew)
_SPLICE_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
_new_signal_to: Final = object.__new__
#: a signal frame as pages write it (``JSON.stringify``: compact, keys in this order) up to the
#: value of ``data``; ``seq`` and ``to`` as the protocol allows them (checked again below)
_SIGNAL_HEAD: Final = re.compile(
    r'\{"v":1,"type":"signal","seq":([1-9][0-9]{0,15}),"to":"([A-Za-z0-9_-]{1,64})","data":')


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _dumps_parsed(obj: dict[str, Any]) -> str:
    """``obj`` (fresh from the decoder: no cycles, no NaN) as compact JSON."""
    if _C_ENCODER is None:
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODER(obj, 0))


def to_json(message: Message) -> dict[str, Any]:
    """The wire object of ``message`` (envelope included)."""
    out: dict[str, Any] = {"v": VERSION, "type": message.TYPE}
    match message:
        case Hello(session=session, received=received):
            out.update(session=session, received=received)
        case Ping(t=t) | Pong(t=t):
            if t is not None:
                out["t"] = t
        case Ack(upto=upto):
            out["upto"] = upto
        case SignalTo(seq=seq, to=to, data=data):
            out.update(seq=seq, to=to, data=data)
        case Admit(seq=seq, participant=p) | Remove(seq=seq, participant=p):
            out.update(seq=seq, participant=p)
        case End(seq=seq) | Leave(seq=seq):
            out["seq"] = seq
        case Restart(seq=seq, reason=reason):
            out["seq"] = seq
            if reason is not None:
                out["reason"] = reason
        case Welcome(participant=p, received=received, heartbeat_ms=heartbeat_ms,
                     max_participants=max_participants):
            out.update(participant=p.to_json(), received=received, heartbeat_ms=heartbeat_ms,
                       max_participants=max_participants)
        case Room(seq=seq, state=state, participants=participants):
            out.update(seq=seq, state=state, participants=[p.to_json() for p in participants])
        case SignalFrom(seq=seq, sender=sender, data=data):
            out.update(seq=seq, **{"from": sender}, data=data)
        case Admitted(seq=seq, ice_servers=servers, ice_policy=policy):
            out.update(seq=seq, ice_servers=list(servers), ice_policy=policy)
        case Ended(seq=seq, reason=reason):
            out.update(seq=seq, reason=reason)
        case Error(code=code, message=text, ref=ref):
            out.update(code=code, message=text, ref=ref)
    return out


def serialize(message: Message) -> str:
    """``message`` as one compact JSON text frame."""
    return _dumps(to_json(message))


def signal_frame(seq: int, sender: str, data_json: str) -> str:
    """A hub → client ``signal`` frame around already serialized ``data`` (the relay's hot path).

    ``sender`` is a participant id (``PARTICIPANT_PATTERN``): nothing in it needs escaping.
    """
    return f'{{"v":1,"type":"signal","seq":{seq},"from":"{sender}","data":{data_json}}}'


def error_frame(error: SignalingError, lang: str = "de") -> str:
    """The ``error`` frame answering ``error``."""
    return serialize(Error(code=error.code, message=error.message(lang), ref=error.ref))


# --- parse ------------------------------------------------------------------------------------


def _load(frame: str | bytes) -> dict[str, Any]:
    """The frame's JSON object, with size and depth checked."""
    if isinstance(frame, bytes | bytearray):
        if len(frame) > MAX_FRAME_BYTES:
            raise SignalingError("signal_too_large", limit=MAX_FRAME_BYTES // 1024)
        try:
            frame = bytes(frame).decode("utf-8")
        except UnicodeDecodeError:
            raise SignalingError("signal_malformed") from None
    elif len(frame) * 4 > MAX_FRAME_BYTES and (
        len(frame) > MAX_FRAME_BYTES or len(frame.encode("utf-8", "replace")) > MAX_FRAME_BYTES
    ):
        raise SignalingError("signal_too_large", limit=MAX_FRAME_BYTES // 1024)
    try:
        obj = _DECODER.decode(frame)
    except RecursionError:
        raise SignalingError("signal_too_deep") from None
    except ValueError:
        raise SignalingError("signal_malformed") from None
    if not isinstance(obj, dict):
        raise SignalingError("signal_malformed")
    # every level needs an opening bracket: few brackets, no deep nesting (the usual frame)
    if frame.count("{") + frame.count("[") > MAX_DEPTH and nested_deeper_than(obj, MAX_DEPTH):
        raise SignalingError("signal_too_deep")
    return obj


def _int(obj: Mapping[str, Any], name: str, *, minimum: int, ref: int | None = None,
         consumes: bool = False) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SEQ:
        raise SignalingError("signal_bad_field", field=name, ref=ref, consumes=consumes)
    return value


def _text(obj: Mapping[str, Any], name: str, pattern: re.Pattern[str], *,
          ref: int | None = None, consumes: bool = False) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SignalingError("signal_bad_field", field=name, ref=ref, consumes=consumes)
    return value


def _number(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SignalingError("signal_bad_field", field=name)
    return value


def _envelope(obj: Mapping[str, Any], reliable: frozenset[str],
              control: frozenset[str]) -> tuple[str, int | None]:
    """The frame's type and ``seq``; errors carry the ``seq`` when it is usable."""
    raw_seq = obj.get("seq")
    ref = raw_seq if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) else None
    if obj.get("v") != VERSION or isinstance(obj.get("v"), bool):
        raise SignalingError("signal_version", ref=ref)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise SignalingError("signal_bad_field", field="type", ref=ref)
    if kind in control:
        if "seq" in obj:
            raise SignalingError("signal_bad_seq", ref=ref)
        return kind, None
    valid_seq = ref is not None and 1 <= ref <= MAX_SEQ
    if kind not in reliable:
        # a well-numbered frame of an unknown type still takes its place in the sequence,
        # so the sender's later messages are not held back behind it forever
        raise SignalingError("signal_unknown_type", ref=ref, consumes=valid_seq)
    if not valid_seq:
        raise SignalingError("signal_bad_seq", ref=ref)
    return kind, ref


def parse_client(frame: str | bytes) -> ClientMessage:
    """A client → hub frame as its message; raises :class:`SignalingError` with a clear code."""
    if isinstance(frame, str) and (head := _SIGNAL_HEAD.match(frame)) is not None:
        message = _signal_as_written(frame, head)
        if message is not None:
            return message
    obj = _load(frame)
    kind, seq = _envelope(obj, RELIABLE_CLIENT_TYPES, CONTROL_CLIENT_TYPES)
    if seq is None:
        if kind == "hello":
            return Hello(session=_text(obj, "session", SESSION_PATTERN),
                         received=_int(obj, "received", minimum=0))
        if kind == "ping":
            return Ping(t=_number(obj, "t"))
        return Ack(upto=_int(obj, "upto", minimum=0))
    # from here on the envelope is sound: a bad payload still consumes its seq
    if kind == "signal":
        to = _text(obj, "to", PARTICIPANT_PATTERN, ref=seq, consumes=True)
        data = obj.get("data")
        if not isinstance(data, dict):
            raise SignalingError("signal_bad_field", field="data", ref=seq, consumes=True)
        return SignalTo(seq=seq, to=to, data=data)
    if kind in ("admit", "remove"):
        participant = _text(obj, "participant", PARTICIPANT_PATTERN, ref=seq, consumes=True)
        return (Admit if kind == "admit" else Remove)(seq=seq, participant=participant)
    if kind == "end":
        return End(seq=seq)
    if kind == "restart":
        return Restart(seq=seq)
    return Leave(seq=seq)


def _signal_as_written(frame: str, head: re.Match[str]) -> SignalTo | None:
    """The hot path: a ``signal`` frame as pages write it, with its ``data`` text kept.

    Decodes only ``data`` (the envelope up to it is ``head``, a fixed text) and accepts the
    frame only if ``data`` is a JSON object that ends right before the frame's closing brace:
    then the frame is exactly ``{"v":1,"type":"signal","seq":…,"to":…,"data":{…}}`` and means
    what :func:`_load` and :func:`_envelope` would make of it. Anything else (or anything they
    might refuse: a large or deeply nested frame, a bad number) is left to the general path
    (None), which parses it or raises the error it always did.
    """
    if len(frame) * 4 > MAX_FRAME_BYTES or frame.count("{") + frame.count("[") > MAX_DEPTH:
        return None
    start = head.end()
    try:
        data, end = _SPLICE_DECODER.raw_decode(frame, start)
    except (ValueError, RecursionError):
        return None
    seq = int(head[1])
    if end != len(frame) - 1 or frame[end] != "}" or type(data) is not dict or seq > MAX_SEQ:
        return None
    # the fields are checked: filled in directly, as the frozen dataclass's __init__ (one
    # object.__setattr__ per field) costs more than all the checks of this function together
    message = _new_signal_to(SignalTo)
    fields = message.__dict__
    fields["seq"], fields["to"], fields["data"] = seq, head[2], data
    fields["raw_data"] = frame[start:end]
    return message


def data_json(message: SignalTo) -> str:
    """The serialized ``data`` of a signal, at most ``MAX_DATA_BYTES``.

    That is the frame's own text of ``data`` where the parser kept it (valid JSON, checked),
    else ``data`` serialized compactly; a kept text above the limit is measured compactly too,
    so both paths accept the same signals.
    """
    raw = message.raw_data
    if raw is not None and (len(raw) * 4 <= MAX_DATA_BYTES
                            or len(raw.encode("utf-8", "surrogatepass")) <= MAX_DATA_BYTES):
        return raw
    try:
        text = _dumps_parsed(message.data)  # type: ignore[arg-type]
    except ValueError:  # a number beyond a double (1e400 parses as inf): no JSON can carry it
        raise SignalingError("signal_bad_field", field="data", ref=message.seq,
                             consumes=True) from None
    if _SURROGATE.search(text):
        # JSON allows an escape of half a UTF-16 pair ("\ud800"): it must stay an escape, as a
        # character it cannot be encoded for the receiving socket
        text = _ASCII_ENCODER.encode(message.data)
    if len(text) * 4 > MAX_DATA_BYTES and len(text.encode("utf-8")) > MAX_DATA_BYTES:
        raise SignalingError("signal_data_too_large", limit=MAX_DATA_BYTES // 1024,
                             ref=message.seq, consumes=True)
    return text


def parse_hub(frame: str | bytes) -> HubMessage:
    """A hub → client frame as its message (for pages written in Python, e.g. tests)."""
    obj = _load(frame)
    kind, seq = _envelope(obj, RELIABLE_HUB_TYPES, CONTROL_HUB_TYPES)
    if seq is None:
        if kind == "welcome":
            return Welcome(participant=_participant(obj.get("participant")),
                           received=_int(obj, "received", minimum=0),
                           heartbeat_ms=_int(obj, "heartbeat_ms", minimum=1),
                           max_participants=_int(obj, "max_participants", minimum=2))
        if kind == "pong":
            return Pong(t=_number(obj, "t"))
        if kind == "ack":
            return Ack(upto=_int(obj, "upto", minimum=0))
        code, text, ref = obj.get("code"), obj.get("message"), obj.get("ref")
        if not isinstance(code, str) or not isinstance(text, str) or not (
            ref is None or (isinstance(ref, int) and not isinstance(ref, bool))
        ):
            raise SignalingError("signal_bad_field", field="code")
        return Error(code=code, message=text, ref=ref)
    if kind == "room":
        state, raw = obj.get("state"), obj.get("participants")
        if state not in ROOM_STATES or not isinstance(raw, list):
            raise SignalingError("signal_bad_field", field="state", ref=seq)
        return Room(seq=seq, state=state, participants=tuple(_participant(p) for p in raw))
    if kind == "signal":
        sender = _text(obj, "from", PARTICIPANT_PATTERN, ref=seq)
        data = obj.get("data")
        if not isinstance(data, dict):
            raise SignalingError("signal_bad_field", field="data", ref=seq)
        return SignalFrom(seq=seq, sender=sender, data=data)
    if kind == "admitted":
        servers = obj.get("ice_servers")
        if not isinstance(servers, list) or len(servers) > MAX_ICE_SERVERS or not all(
            isinstance(s, dict) for s in servers
        ):
            raise SignalingError("signal_bad_field", field="ice_servers", ref=seq)
        policy = obj.get("ice_policy", "all")
        if policy not in ICE_POLICIES:
            raise SignalingError("signal_bad_field", field="ice_policy", ref=seq)
        return Admitted(seq=seq, ice_servers=tuple(servers), ice_policy=policy)
    reason = obj.get("reason")
    if kind == "restart":
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise SignalingError("signal_bad_field", field="reason", ref=seq)
        return Restart(seq=seq, reason=reason)
    if reason not in END_REASONS:
        raise SignalingError("signal_bad_field", field="reason", ref=seq)
    return Ended(seq=seq, reason=reason)


def _participant(raw: Any) -> ParticipantInfo:
    if not isinstance(raw, dict):
        raise SignalingError("signal_bad_field", field="participant")
    pid, role, name = raw.get("id"), raw.get("role"), raw.get("name")
    present, admitted = raw.get("present"), raw.get("admitted")
    if not (isinstance(pid, str) and PARTICIPANT_PATTERN.fullmatch(pid) and role in ROLES
            and isinstance(name, str) and len(name) <= MAX_NAME_CHARS
            and present in (None, True, False) and admitted in (None, True, False)):
        raise SignalingError("signal_bad_field", field="participant")
    return ParticipantInfo(id=pid, role=role, name=name, present=present, admitted=admitted)
