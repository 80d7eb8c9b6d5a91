"""Fuzzing the call's signaling (docs/signaling.md): the parsers and both sites' WebSockets (R9).

Two layers:

- The pure parsers: ``parse_client`` (client → hub) and ``parse_hub`` (hub → client) get frames
  of every shape — JSON texts written by a grammar rather than by ``json.dumps`` (so numbers
  like ``1e400``, ``-0``, 30-digit integers, invalid escapes, ``NaN``, trailing garbage and
  lone surrogates, escaped or raw, all occur), envelopes with every field of the protocol in any
  order and with any value, the pages' compact ``signal`` form that the hot path splices,
  nesting thousands of levels deep, frames around the 64 KiB limit, invalid UTF-8 and arbitrary
  bytes. Only :class:`SignalingError` may come out; what parses serializes back to the same
  message, and a signal's ``data`` either becomes sendable UTF-8 text or is refused with a
  :class:`SignalingError`. The hot path for compact signals must agree with the general parser.
  (A Python string with raw lone surrogates cannot come off a socket — aiohttp decodes text
  frames strictly — so for those only the first rule is checked.)
- The sockets: in a running call (Dr. Müller admitted the patient), a fresh socket — the
  patient's after ``hello``, the doctor's after ``hello``, or a patient's socket that never
  says hello — gets a few generated frames as text (valid or invalid UTF-8, the latter raw on
  the wire) or binary frames; the peer's and its own participant ids are put in where the
  generator wrote ``"@peer"`` and ``"@me"``, so that signals, admits and removes reach the
  hub's actions. The socket must answer with parseable hub frames (errors with a code and a
  message, never ``signal_failed``) or close cleanly (not 1006/1011); then a new socket on the
  box still gets a pong for a ping, and the log has no ERROR record or traceback.

A call is set up once per test and made anew when an example ended it (the doctor's ``end``, a
``remove``), or replaced the doctor's page (a doctor's ``hello`` takes over the session). This
module's box has no rate limits (each example opens sockets; 429s would hide the frames).

Found by this fuzzing and fixed (``messages.data_json``): a ``signal`` whose ``data`` holds a
number beyond a double (``1e400`` parses as ``inf``) was accepted, but relaying it raised
``ValueError`` inside the hub — a traceback in the log and ``signal_failed`` to the sender. It
is now refused as ``signal_bad_field`` (``data``), consuming its seq; ``REGRESSIONS`` keeps the
frames as explicit examples for the parser and the socket test.

Default run: derandomized, four times ``SZ_FUZZ_EXAMPLES`` (12) socket examples and ten times as
many parser examples. Deep run: ``make fuzz`` (``SZ_FUZZ_PROFILE=deep``: 2,000 and 5,000, random
seeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from datetime import timedelta
from typing import Any, Final
from unittest import mock

import aiohttp
import pytest
from hypothesis import assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from appliance.practice.models import AppointmentState
from appliance.rtc import messages as m
from appliance.rtc.messages import SignalingError, parse_client, parse_hub
from appliance.web.context import PATIENT_SESSIONS, STAFF_SESSIONS
from appliance.web.sessions import PATIENT_COOKIE, STAFF_COOKIE, PatientSession, StaffSession
from appliance.web.sockets import PROTOCOL
from tests.rtc.peers import SignalingPage, eventually
from tests.web.conftest import Box

from .conftest import EXAMPLES, FUZZ, LogWatch, new_session_id

FUZZ_PARSER: Final = hypothesis_settings(FUZZ, max_examples=EXAMPLES * 10)
#: a socket example costs a few milliseconds (all in this process, over loopback)
FUZZ_SOCKETS: Final = hypothesis_settings(FUZZ, max_examples=EXAMPLES * 4)
CLIENT_MESSAGES: Final = (m.Hello, m.Ping, m.Ack, m.SignalTo, m.Admit, m.Remove, m.End,
                          m.Restart, m.Leave)
HUB_MESSAGES: Final = (m.Welcome, m.Pong, m.Ack, m.Room, m.SignalFrom, m.Admitted, m.Restart,
                       m.Ended, m.Error)
#: close codes of a socket that ended in order (1006: no close frame, 1011: server error)
UNCLEAN_CLOSES: Final = frozenset({None, 1006, 1011})
PEER, ME = '"@peer"', '"@me"'
#: this module's box has no rate limits: each example opens sockets, and 429s would end the
#: examples before their frames (connection limits are tested in tests/web and tests/rtc)
RATE_LIMITS: Final = "wide"

# --- frames ---------------------------------------------------------------------------------------

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
CHARS = st.one_of(st.characters(), SURROGATES)
TEXT = st.text(CHARS, max_size=16)
NUMBER_TEXTS = st.one_of(
    st.sampled_from([
        "0", "-0", "-0.0", "1e400", "-1e400", "1E+309", "2e308", "1e-400", "4.9e-324",
        "9007199254740991", "9007199254740992", "123456789012345678901234567890", "1.0", "01",
        "1.", ".5", "+1", "0x10", "1_000",
    ]),
    st.integers(4290, 4310).map(lambda digits: "1" * digits),  # Python's int limit: 4300
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
STRING_TEXTS = st.one_of(
    TEXT.map(json.dumps),  # lone surrogates as escapes ("\ud800"), as JSON.stringify writes them
    st.text(max_size=16).map(lambda s: json.dumps(s, ensure_ascii=False)),  # UTF-8 as it is
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"\\x41"', '"\\u12"',
                     '"offen', '"\\"']),
)
ATOM_TEXTS = st.one_of(NUMBER_TEXTS, STRING_TEXTS, st.sampled_from(
    ["true", "false", "null", "NaN", "Infinity", "-Infinity", "nul", "", "[", "}"]))


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


def _containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Arrays and objects of ``inner`` texts."""
    return st.one_of(st.lists(inner, max_size=4).map(_array),
                     st.lists(st.tuples(STRING_TEXTS, inner), max_size=4).map(_object))


JSON_TEXTS = st.recursive(ATOM_TEXTS, _containers, max_leaves=10)
OBJECT_TEXTS = st.lists(st.tuples(STRING_TEXTS, JSON_TEXTS), max_size=4).map(_object)
PARTICIPANT_TEXTS = st.one_of(
    st.sampled_from([PEER, PEER, ME]),
    st.from_regex(m.PARTICIPANT_PATTERN, fullmatch=True).map(json.dumps),
    JSON_TEXTS,
)
PARTICIPANT_OBJECTS = st.dictionaries(
    st.sampled_from(["id", "role", "name", "present", "admitted"]),
    st.one_of(PARTICIPANT_TEXTS, st.sampled_from(['"doctor"', '"patient"', '"guest"', "true"]),
              JSON_TEXTS),
).map(lambda fields: _object([(json.dumps(k), v) for k, v in fields.items()]))
SEQ_TEXTS = st.one_of(st.integers(-2, 70).map(str), NUMBER_TEXTS, JSON_TEXTS)
TYPES: Final = sorted(m.RELIABLE_CLIENT_TYPES | m.CONTROL_CLIENT_TYPES | m.RELIABLE_HUB_TYPES
                      | m.CONTROL_HUB_TYPES)
FIELD_VALUES: Final = {
    "to": PARTICIPANT_TEXTS,
    "participant": st.one_of(PARTICIPANT_TEXTS, PARTICIPANT_OBJECTS),
    "from": PARTICIPANT_TEXTS,
    "data": st.one_of(OBJECT_TEXTS, OBJECT_TEXTS, JSON_TEXTS),
    "session": st.one_of(st.from_regex(m.SESSION_PATTERN, fullmatch=True).map(json.dumps),
                         STRING_TEXTS),
    "received": SEQ_TEXTS,
    "upto": SEQ_TEXTS,
    "t": st.one_of(NUMBER_TEXTS, JSON_TEXTS),
    "reason": st.one_of(st.sampled_from(['"ended"', '"removed"', '"ice"']), STRING_TEXTS),
    "state": st.one_of(st.sampled_from(['"waiting"', '"in_call"', '"ended"']), STRING_TEXTS),
    "participants": st.one_of(st.lists(PARTICIPANT_OBJECTS, max_size=3).map(_array),
                              JSON_TEXTS),
    "ice_servers": st.one_of(st.lists(OBJECT_TEXTS, max_size=3).map(_array), JSON_TEXTS),
    "ice_policy": st.one_of(st.sampled_from(['"all"', '"relay"']), STRING_TEXTS),
    "heartbeat_ms": SEQ_TEXTS,
    "code": STRING_TEXTS,
    "message": STRING_TEXTS,
    "ref": SEQ_TEXTS,
}


@st.composite
def envelopes(draw: st.DrawFn) -> str:
    """A JSON object shaped like a frame of the protocol (either direction), any values."""
    fields = [('"v"', draw(st.one_of(st.sampled_from(["1", "1", "1", "2", "0", "1.0", "true",
                                                          '"1"', "null"]), JSON_TEXTS))),
              ('"type"', draw(st.one_of(st.sampled_from(TYPES).map(json.dumps), STRING_TEXTS)))]
    if draw(st.booleans()):
        fields.append(('"seq"', draw(SEQ_TEXTS)))
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4, unique=True)):
        fields.append((json.dumps(name), draw(FIELD_VALUES[name])))
    if draw(st.integers(0, 3)) == 0:
        fields.append((json.dumps(draw(TEXT)), draw(JSON_TEXTS)))  # a field of nobody's
    fields = draw(st.permutations(fields))
    separator = draw(st.sampled_from([",", ",", ", ", " ,\n\t"]))
    return "{" + separator.join(f"{key}:{value}" for key, value in fields) + "}"


@st.composite
def compact_signals(draw: st.DrawFn) -> str:
    """A ``signal`` as pages write it (``JSON.stringify``): what the hot path splices."""
    seq = draw(st.one_of(st.integers(1, 70), st.integers(1, 2**53 + 2)))
    to = draw(st.one_of(st.sampled_from([PEER, PEER, ME]),
                        st.from_regex(m.PARTICIPANT_PATTERN, fullmatch=True).map(json.dumps)))
    data = draw(st.one_of(OBJECT_TEXTS, OBJECT_TEXTS, JSON_TEXTS))
    tail = draw(st.sampled_from(["}", "}", "}", "} ", "}\n", "}}", ',"x":1}', "", ',"data":{}}']))
    return f'{{"v":1,"type":"signal","seq":{seq},"to":{to},"data":{data}{tail}'


def _frame_size(text: str) -> int:
    """``text``'s length in UTF-8 (lone surrogates as the three bytes they would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _from_the_wire(frame: str | bytes) -> bool:
    """Whether a socket can hand the hub ``frame``: bytes, or text without lone surrogates
    (aiohttp decodes text frames as strict UTF-8)."""
    return isinstance(frame, bytes) or not any("\ud800" <= c <= "\udfff" for c in frame)


def _nested(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    return opener * depth + "0" + closer * depth


NESTED = st.one_of(
    st.builds(_nested, st.integers(1, 5000), st.sampled_from(["[", '{"a":'])),
    st.builds(lambda n: '{"v":1,"type":"signal","seq":1,"to":"@peer","data":{"a":'
              + "[" * n + "]" * n + "}}", st.integers(1, 3000)),
)
#: frames around the 64 KiB limit, counted in UTF-8 bytes (and escapes in characters)
LARGE = st.builds(
    lambda size, fill, kind: (
        '{"v":1,"type":"ping","pad":"' + fill * (size // _frame_size(fill)) + '"}'
        if kind == "ping" else
        '{"v":1,"type":"signal","seq":1,"to":"@peer","data":{"sdp":"'
        + fill * (size // _frame_size(fill)) + '"}}'),
    st.integers(m.MAX_DATA_BYTES - 64, m.MAX_FRAME_BYTES + 64),
    st.sampled_from(["a", "ü", "€", "\\u00e4", "\ud800"]),
    st.sampled_from(["ping", "signal"]),
)
TEXT_FRAMES = st.one_of(envelopes(), envelopes(), compact_signals(), JSON_TEXTS,
                        st.text(CHARS, max_size=64), NESTED, LARGE)
FRAMES = st.one_of(
    TEXT_FRAMES,
    TEXT_FRAMES.map(lambda text: text.encode("utf-8", "surrogatepass")),  # raw surrogates: bad
    st.binary(max_size=256),
)


# --- the parsers ----------------------------------------------------------------------------------


def _check_error(error: SignalingError) -> None:
    """A refusal the hub can answer: a code with a message in both languages."""
    assert isinstance(error, SignalingError)
    assert error.code.startswith("signal_")
    for lang in ("de", "en"):
        text = error.message(lang)
        assert text and not text.startswith("error."), (error.code, lang)


REGRESSIONS: Final = (
    # a number beyond float range parses (as inf) but cannot be written again: relaying it
    # raised ValueError inside the hub (traceback in the log, "signal_failed")
    '{"v":1,"type":"signal","seq":1,"to":"p-1","data":{"a":1e400}}',
    '{"v": 1, "type": "signal", "seq": 2, "to": "p-1", "data": {"a": [-1E+999]}}',
)


@FUZZ_PARSER
@given(frame=FRAMES)
@example(frame=REGRESSIONS[0])
@example(frame=REGRESSIONS[1])
@example(frame='{"v":1,"type":"signal","seq":3,"to":"p-1","data":{"a":"\\ud800"}}')
@example(frame=b'{"v":1,"type":"ping","t":"\xed\xa0\x80"}')
@example(frame="[" * 100_000)
def test_parse_client_refuses_only_with_signaling_errors(frame: str | bytes) -> None:
    """R9 (A03 injection, A04): any client frame either parses to a client message or is refused
    with a :class:`SignalingError` (nothing else may escape to the hub); a parsed signal's
    ``data`` is either sendable UTF-8 text or refused the same way; what parses, serialized
    again, parses to the same message."""
    try:
        message = parse_client(frame)
    except SignalingError as error:
        _check_error(error)
        return
    assert isinstance(message, CLIENT_MESSAGES)
    if isinstance(message, m.SignalTo):
        try:
            text = m.data_json(message)
        except SignalingError as error:
            _check_error(error)
            assert error.consumes and error.ref == message.seq
            return
        if _from_the_wire(frame):
            text.encode("utf-8")  # what the receiving socket's writer must be able to send
        assert json.loads(text) == message.data
    again = m.serialize(message)
    if _frame_size(again) <= m.MAX_FRAME_BYTES:
        assert parse_client(again) == message


@FUZZ_PARSER
@given(frame=FRAMES)
def test_parse_hub_refuses_only_with_signaling_errors(frame: str | bytes) -> None:
    """R9 (A03, A04): the pages' parser of hub frames (Python pages, e.g. the tests') likewise
    raises nothing but :class:`SignalingError`, and what parses serializes back to itself."""
    try:
        message = parse_hub(frame)
    except SignalingError as error:
        _check_error(error)
        return
    assert isinstance(message, HUB_MESSAGES)
    again = m.serialize(message)
    if _frame_size(again) <= m.MAX_FRAME_BYTES:
        assert parse_hub(again) == message


def _outcome(raw: str) -> tuple[Any, ...]:
    """What parsing ``raw`` gives: the message and its relayed data, or the error's details."""
    try:
        message = parse_client(raw)
    except SignalingError as error:
        return ("error", error.code, error.ref, error.consumes)
    if not isinstance(message, m.SignalTo):
        return ("message", message)
    try:
        return ("signal", message, json.loads(m.data_json(message)))
    except SignalingError as error:
        return ("data error", message, error.code, error.ref, error.consumes)


@FUZZ_PARSER
@given(frame=compact_signals())
def test_hot_path_agrees_with_the_general_parser(frame: str) -> None:
    """R9 (A04): the spliced fast path for the pages' compact signals means exactly what the
    general parser makes of the same frame — same message, same data, same refusal — for
    every frame a socket can deliver (text without lone surrogates: aiohttp decodes strictly;
    a surrogate pair written as two raw halves is relayed differently, but never arrives)."""
    assume(_from_the_wire(frame))
    fast = _outcome(frame)
    with mock.patch.object(m, "_SIGNAL_HEAD", re.compile(r"(?!)")):  # the general path only
        assert _outcome(frame) == fast


# --- the sockets ----------------------------------------------------------------------------------


class CallRoom:
    """A running call (Dr. Müller and an admitted patient) on the box, made anew when needed."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self.appointment_id = ""
        self.token = ""
        self.doctor_cookie = ""
        self.patient_cookie = ""
        self.doctor_id = ""
        self.patient_id = ""
        self._doctor_page: SignalingPage | None = None
        self._dirty = True

    def staff_socket(self, *, autoclose: bool = True) -> Any:
        """Connect a socket as the doctor (autoclose off: see the close code the box sent)."""
        return self.box.staff.ws_connect(
            f"/api/appointments/{self.appointment_id}/signal", protocols=(PROTOCOL,),
            headers={"Cookie": f"{STAFF_COOKIE}={self.doctor_cookie}"}, autoclose=autoclose)

    def patient_socket(self, *, autoclose: bool = True) -> Any:
        """Connect a socket as the patient."""
        return self.box.public.ws_connect(
            f"/v/{self.token}/signal", protocols=(PROTOCOL,),
            headers={"Cookie": f"{PATIENT_COOKIE}={self.patient_cookie}"}, autoclose=autoclose)

    def changed(self) -> None:
        """An example may have ended the call or taken the doctor's page over."""
        self._dirty = True

    def running(self) -> bool:
        """Whether the call still runs as set up."""
        if self._dirty or self._doctor_page is None or not self._doctor_page.live_lines():
            return False
        appointment = self.box.services.appointments.get(self.appointment_id)
        return appointment.state is AppointmentState.IN_CALL and not (
            appointment.removed_from_call)

    async def ensure(self) -> None:
        """A running call, set up anew if an example ended or took it over."""
        if self.running():
            return
        await self.close()
        services = self.box.services
        book = services.appointments
        if self.appointment_id and book.get(self.appointment_id).state is (
                AppointmentState.IN_CALL):  # one call at a time per doctor (R3)
            services.calls.end("dr.mueller", self.appointment_id)
        patient = services.patients.add("admin", full_name="Erika Mustermann")
        appointment = book.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                  start=services.clock.now() + timedelta(minutes=5))
        services.reception.check_in(appointment.link_token, appointment.access_code,
                                    full_name="Erika Mustermann", consent_confirmed=True,
                                    rules_confirmed=True)
        self.appointment_id, self.token = appointment.id, appointment.link_token
        self.doctor_cookie = new_session_id()
        assert self.box.staff.app[STAFF_SESSIONS].restore(
            self.doctor_cookie, StaffSession(username="dr.mueller"), 0.0, 0.0)
        self.patient_cookie = new_session_id()
        assert self.box.public.app[PATIENT_SESSIONS].restore(
            self.patient_cookie, PatientSession(appointment_id=appointment.id,
                                                token=appointment.link_token,
                                                code=appointment.access_code), 0.0, 0.0)
        doctor = SignalingPage(self.staff_socket, name="doctor")
        patient = SignalingPage(self.patient_socket, name="patient")
        self._doctor_page = doctor
        await doctor.open()
        try:
            await patient.open()
            await doctor.wait_for(lambda msg: isinstance(msg, m.Room) and any(
                p.role == "patient" and p.present for p in msg.participants))
            await doctor.send("admit", participant=patient.id)
            await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
            self.doctor_id, self.patient_id = doctor.id, patient.id
        finally:
            await patient.close()
        await eventually(lambda: book.get(appointment.id).state is AppointmentState.IN_CALL)
        self._dirty = False

    async def close(self) -> None:
        """Close the doctor's page."""
        if self._doctor_page is not None:
            await self._doctor_page.close()
            self._doctor_page = None


@pytest.fixture
async def call(practice: Box) -> Any:
    """The running call of a socket test (closed at its end)."""
    room = CallRoom(practice)
    yield room
    await room.close()


async def _send(ws: aiohttp.ClientWebSocketResponse, kind: str, frame: str | bytes) -> None:
    """Put ``frame`` on the wire: text frames raw (invalid UTF-8 too), or a binary frame."""
    data = frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")
    if kind == "binary":
        await ws.send_bytes(data)
    else:
        await ws.send_frame(data, aiohttp.WSMsgType.TEXT)


async def _answers_until_pong(ws: aiohttp.ClientWebSocketResponse, marker: float,
                              ) -> list[m.HubMessage]:
    """Every hub frame until the pong to ``marker`` (or the close)."""
    answers: list[m.HubMessage] = []
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(m.serialize(m.Ping(t=marker)))
    async with asyncio.timeout(5):
        async for raw in ws:
            assert raw.type is aiohttp.WSMsgType.TEXT, f"hub sent {raw.type}: {raw.data!r}"
            message = parse_hub(raw.data)  # the hub's own frames always parse
            answers.append(message)
            if isinstance(message, m.Pong) and message.t == marker:
                break
    return answers


async def _pong_on_a_new_socket(call: CallRoom) -> None:
    """The box still signals: a new socket (the doctor's, unbound) gets a pong for a ping."""
    async with asyncio.timeout(5):
        ws = await call.staff_socket()
        try:
            await ws.send_str(m.serialize(m.Ping(t=42.5)))
            raw = await ws.receive()
            assert raw.type is aiohttp.WSMsgType.TEXT, raw
            assert parse_hub(raw.data) == m.Pong(t=42.5)
        finally:
            await ws.close()


WIRE_FRAMES = st.one_of(
    st.tuples(st.just("text"), FRAMES),
    st.tuples(st.just("binary"), FRAMES),
)


@FUZZ_SOCKETS
@given(sender=st.sampled_from(["patient", "patient", "patient", "doctor", "unbound"]),
       frames=st.lists(WIRE_FRAMES, min_size=1, max_size=5))
@example(sender="patient", frames=[("text", REGRESSIONS[0].replace('"p-1"', PEER))])
@example(sender="doctor", frames=[("binary", REGRESSIONS[1].replace('"p-1"', PEER))])
async def test_signaling_socket_answers_any_frames_and_stays_healthy(
        call: CallRoom, log_watch: LogWatch, sender: str,
        frames: list[tuple[str, str | bytes]]) -> None:
    """R9 (A03, A04, A09): in a running call, generated frames on a socket of the patient's or
    the doctor's (joined with hello, or not) are answered with error frames in the protocol or
    end the socket cleanly; the box keeps signaling (a new socket gets its pong) and logs no
    error or traceback."""
    await call.ensure()
    log_watch.mark()
    connect = call.staff_socket if sender == "doctor" else call.patient_socket
    ws = await connect(autoclose=False)
    try:
        me, peer = call.doctor_id, call.patient_id
        if sender != "doctor":
            me, peer = peer, me
        if sender != "unbound":
            session = secrets.token_urlsafe(18)
            await ws.send_str(m.serialize(m.Hello(session=session)))
            welcome = await ws.receive(timeout=5)
            assert isinstance(parse_hub(welcome.data), m.Welcome), welcome
        if sender == "doctor":
            call.changed()  # the doctor's page was replaced by this session
        for kind, frame in frames:
            if isinstance(frame, bytes):
                frame = frame.replace(PEER.encode(), json.dumps(peer).encode()).replace(
                    ME.encode(), json.dumps(me).encode())
            else:
                frame = frame.replace(PEER, json.dumps(peer)).replace(ME, json.dumps(me))
            try:
                await _send(ws, kind, frame)
            except (ConnectionError, RuntimeError):
                break  # the box closed the socket (e.g. a frame above 64 KiB): checked below
        answers = await _answers_until_pong(ws, marker=-7.25)
        ponged = any(isinstance(a, m.Pong) and a.t == -7.25 for a in answers)
        for answer in answers:
            if isinstance(answer, m.Error):
                assert answer.code != "signal_failed", answers  # an internal failure
                assert answer.message.strip(), answer
            if isinstance(answer, m.Ended):
                call.changed()
        if not ponged:  # then the box ended the socket: in order, with a close frame
            assert ws.close_code not in UNCLEAN_CLOSES, (ws.close_code, answers)
    finally:
        await ws.close()
    await _pong_on_a_new_socket(call)
    log_watch.assert_clean(f"{sender}: {frames!r}"[:2000])
