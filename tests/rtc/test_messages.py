"""The signaling protocol's pure codec: every frame parses to one message or a clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from appliance.i18n import catalog
from appliance.rtc import messages as m
from appliance.rtc.messages import SignalingError, parse_client, parse_hub, serialize

RTC = Path(m.__file__).parent


def frame(**fields: Any) -> str:
    """A client frame with the v1 envelope (UTF-8 as it is, like a browser's JSON)."""
    return json.dumps({"v": 1, **fields}, ensure_ascii=False)


def code_of(raw: str | bytes) -> SignalingError:
    """The error that parsing ``raw`` raises."""
    with pytest.raises(SignalingError) as caught:
        parse_client(raw)
    return caught.value


def test_every_client_type_parses() -> None:
    """Each client → hub type of docs/signaling.md becomes its message."""
    assert parse_client(frame(type="hello", session="s" * 16, received=3)) == m.Hello(
        session="s" * 16, received=3)
    assert parse_client(frame(type="ping", t=12.5)) == m.Ping(t=12.5)
    assert parse_client(frame(type="ping")) == m.Ping()
    assert parse_client(frame(type="ack", upto=0)) == m.Ack(upto=0)
    assert parse_client(frame(type="signal", seq=1, to="p-1", data={"kind": "x"})) == m.SignalTo(
        seq=1, to="p-1", data={"kind": "x"})
    assert parse_client(frame(type="admit", seq=2, participant="p-2")) == m.Admit(
        seq=2, participant="p-2")
    assert parse_client(frame(type="remove", seq=3, participant="p-2")) == m.Remove(
        seq=3, participant="p-2")
    assert parse_client(frame(type="end", seq=4)) == m.End(seq=4)
    assert parse_client(frame(type="restart", seq=5)) == m.Restart(seq=5)
    assert parse_client(frame(type="leave", seq=6)) == m.Leave(seq=6)


def test_client_messages_round_trip() -> None:
    """What the codec writes for a client, it reads back unchanged."""
    for message in (m.Hello(session="x" * 40, received=9), m.Ping(t=1.0), m.Ack(upto=4),
                    m.SignalTo(seq=7, to="p-3f9c", data={"sdp": "v=0", "n": [1, 2]}),
                    m.Admit(seq=1, participant="p-1"), m.End(seq=2), m.Leave(seq=3)):
        assert parse_client(serialize(message)) == message


def test_hub_messages_round_trip() -> None:
    """Every hub → client type survives serialize and parse (the test pages rely on it)."""
    who = m.ParticipantInfo(id="p-1", role="doctor", name="Dr. Maria Müller")
    seen = m.ParticipantInfo(id="p-2", role="patient", name="Erika", present=True,
                             admitted=False)
    for message in (
        m.Welcome(participant=who, received=3, heartbeat_ms=500, max_participants=4),
        m.Pong(t=2.0), m.Ack(upto=1),
        m.Room(seq=1, state="waiting", participants=(who, seen)),
        m.SignalFrom(seq=2, sender="p-1", data={"kind": "candidate"}),
        m.Admitted(seq=3, ice_servers=({"urls": "turn:x:3478", "username": "u"},)),
        m.Admitted(seq=3, ice_servers=(), ice_policy="relay"),
        m.Restart(seq=4, reason="uplink"), m.Ended(seq=5, reason="removed"),
        m.Error(code="signal_malformed", message="kaputt", ref=None),
    ):
        assert parse_hub(serialize(message)) == message


def test_admitted_ice_policy() -> None:
    """``ice_policy`` is "all" when absent (older hubs) and only ever "all" or "relay"."""
    bare = '{"v":1,"type":"admitted","seq":1,"ice_servers":[]}'
    assert parse_hub(bare) == m.Admitted(seq=1, ice_servers=(), ice_policy="all")
    with pytest.raises(m.SignalingError):
        parse_hub(bare[:-1] + ',"ice_policy":"host"}')


def test_serialized_signal_has_from_and_keeps_umlauts() -> None:
    """The hub writes ``from`` (not ``sender``) and UTF-8 text, compactly."""
    text = m.signal_frame(4, "p-1", m.data_json(
        m.SignalTo(seq=1, to="p-2", data={"name": "Jürgen"})))
    assert json.loads(text) == {"v": 1, "type": "signal", "seq": 4, "from": "p-1",
                                "data": {"name": "Jürgen"}}
    assert "Jürgen" in text and " " not in text


@pytest.mark.parametrize("raw", [
    "", "nicht json", "[]", "42", '"hello"', "null", '{"v": 1, "type": "ping"',
    b"\xff\xfe", '{"v": 1, "type": "ping", "t": NaN}', '{"v": 1, "type": "ping", "t": Infinity}',
])
def test_malformed_frames(raw: str | bytes) -> None:
    """Anything but one JSON object (no NaN, valid UTF-8) is ``signal_malformed``."""
    assert code_of(raw).code == "signal_malformed"


def test_oversized_frames() -> None:
    """Frames above 64 KiB are refused, counted in UTF-8 bytes, not characters."""
    filler = 64 * 1024 - len(frame(type="ping", pad=""))
    assert parse_client(frame(type="ping", pad="a" * filler)) == m.Ping()
    assert code_of(frame(type="ping", pad="a" * (filler + 1))).code == "signal_too_large"
    umlauts = frame(type="ping", pad="ü" * (filler // 2 + 1))  # fewer characters than bytes
    assert len(umlauts) < 64 * 1024 < len(umlauts.encode())
    assert code_of(umlauts).code == "signal_too_large"
    assert code_of(frame(type="ping", pad="a" * filler).encode() + b" ").code == (
        "signal_too_large")


def test_nesting_depth_is_limited() -> None:
    """Deeply nested data is refused without recursion errors, also at 30,000 levels."""
    shallow: Any = {}
    for _ in range(m.MAX_DEPTH - 2):
        shallow = {"a": shallow}
    assert parse_client(frame(type="signal", seq=1, to="p-1", data=shallow))
    deep: Any = []
    for _ in range(m.MAX_DEPTH):
        deep = [deep]
    assert code_of(frame(type="signal", seq=1, to="p-1", data={"x": deep})).code == (
        "signal_too_deep")
    bomb = '{"v":1,"type":"ping","x":' + "[" * 30_000 + "]" * 30_000 + "}"
    assert code_of(bomb).code == "signal_too_deep"


def test_data_is_limited_to_32_kib() -> None:
    """A signal's ``data`` above 32 KiB is refused and still takes its place in the sequence."""
    ok = m.SignalTo(seq=1, to="p-1", data={"sdp": "a" * (32 * 1024 - 20)})
    assert len(m.data_json(ok)) <= 32 * 1024
    big = m.SignalTo(seq=2, to="p-1", data={"sdp": "a" * (32 * 1024)})
    with pytest.raises(SignalingError) as caught:
        m.data_json(big)
    assert caught.value.code == "signal_data_too_large" and caught.value.ref == 2
    assert caught.value.consumes


def _outcome(raw: str) -> tuple[Any, ...]:
    """What parsing ``raw`` gives: the message and its ``data`` text, or the error's details."""
    try:
        message = parse_client(raw)
    except SignalingError as error:
        return ("error", error.code, error.ref, error.consumes)
    if not isinstance(message, m.SignalTo):
        return ("message", message)
    try:
        text = m.data_json(message)
    except SignalingError as error:
        return ("data error", message, error.code, error.ref)
    except ValueError:
        return ("data refused", message)
    return ("signal", message, json.loads(text))


AS_WRITTEN = '{"v":1,"type":"signal","seq":3,"to":"p-1","data":'
NEAR_MISSES = [
    AS_WRITTEN + '{"kind":"candidate","n":[1,2.5,-3e2],"s":"J\\u00fcrgen \\"q\\""}}',
    AS_WRITTEN + '{"name":"Jürgen","nested":{"a":[{"b":null}]}}}',
    AS_WRITTEN + '{}}',
    AS_WRITTEN + '{"a":1},"extra":2}',  # more keys after data: not spliced
    AS_WRITTEN + '{"a":1},"data":{"b":2}}',  # the last data counts (as in JSON.parse)
    AS_WRITTEN + '{"a":1} }',
    AS_WRITTEN + '{"a":1}}\n',
    AS_WRITTEN + '{"a":1}}}',
    AS_WRITTEN + '{"a":1}',
    AS_WRITTEN + '[1,2]}',
    AS_WRITTEN + '"text"}',
    AS_WRITTEN + 'null}',
    AS_WRITTEN + '{"a":NaN}}',
    AS_WRITTEN + '{"a":Infinity}}',
    AS_WRITTEN + '{"a":1e400}}',  # parses, but no serializer writes it: refused as before
    AS_WRITTEN + '{"a":01}}',
    AS_WRITTEN + '{"a":1,}}',
    AS_WRITTEN + '{"a":"\\ud800"}}',
    AS_WRITTEN + '{"a":' + "[" * 10 + "]" * 10 + '}}',
    AS_WRITTEN + '{"a":' + "[" * 11 + "]" * 11 + '}}',
    AS_WRITTEN + '{"a":' + "[" * 30_000 + "]" * 30_000 + '}}',
    AS_WRITTEN + '{"sdp":"' + "a" * (32 * 1024) + '"}}',
    AS_WRITTEN + '{"sdp":"' + "\\u00e4" * (6 * 1024) + '"}}',  # 36 KiB as written, 12 compact
    AS_WRITTEN + '{"sdp":"' + "ä" * (20 * 1024) + '"}}',  # 40 KiB in UTF-8
    AS_WRITTEN + '{"sdp":"' + "a" * (64 * 1024) + '"}}',
    AS_WRITTEN + '{"sdp":"' + "€" * (11 * 1024) + '"}}',  # 33 KiB in UTF-8
    AS_WRITTEN + '{"sdp":' + " " * (3 * 1024) + '"' + "€" * (10 * 1024) + '"}}',  # 33, 30
    '{"v":1,"type":"signal","seq":9007199254740991,"to":"p-1","data":{}}',
    '{"v":1,"type":"signal","seq":9007199254740992,"to":"p-1","data":{}}',
    '{"v":1,"type":"signal","seq":1,"to":"' + "a" * 65 + '","data":{}}',
    '{"v":1,"type":"signal","seq":1,"to":"p 1","data":{}}',
    '{"v":1,"type":"signal","seq":1,"to":"p-\\u0031","data":{}}',
    '{"v":1,"type":"signal","seq":1.0,"to":"p-1","data":{}}',
    '{"v":1,"type":"signal","seq":1,"to":"p-1"}',
]


@pytest.mark.parametrize("raw", NEAR_MISSES)
def test_signals_as_pages_write_them_mean_what_the_general_parser_makes_of_them(
        raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path for compact ``signal`` frames agrees with the general parser on everything.

    Same message or same error (code, ``ref``, whether it consumes its seq), same ``data``
    relayed and the same size limit on it; only the text of ``data`` may be the sender's own.
    """
    fast = _outcome(raw)
    monkeypatch.setattr(m, "_SIGNAL_HEAD", re.compile(r"(?!)"))  # the general path only
    assert _outcome(raw) == fast


def test_signal_data_is_relayed_as_the_page_wrote_it() -> None:
    """A compact frame's ``data`` is relayed as its own (checked) text, escapes and all."""
    data = '{"kind":"candidate","candidate":{"candidate":"J\\u00fcrgen","sdpMLineIndex":0}}'
    message = parse_client(AS_WRITTEN + data + "}")
    assert isinstance(message, m.SignalTo) and message.raw_data == data
    assert m.data_json(message) == data
    assert message == m.SignalTo(seq=3, to="p-1", data=json.loads(data))
    with pytest.raises(AttributeError):  # frozen like any other message
        message.seq = 4  # type: ignore[misc]
    relayed = json.loads(m.signal_frame(8, "p-2", m.data_json(message)))
    assert relayed == {"v": 1, "type": "signal", "seq": 8, "from": "p-2", "data": json.loads(data)}
    spaced = parse_client(frame(type="signal", seq=3, to="p-1", data=json.loads(data)))
    assert isinstance(spaced, m.SignalTo) and spaced.raw_data is None
    assert m.data_json(spaced) == json.dumps(json.loads(data), ensure_ascii=False,
                                             separators=(",", ":"))


def test_unknown_type_and_wrong_version() -> None:
    """Unknown types and versions other than 1 have their own codes; ``ref`` echoes ``seq``."""
    unknown = code_of(frame(type="chat-presence", seq=5))
    assert unknown.code == "signal_unknown_type" and unknown.ref == 5 and unknown.consumes
    assert not code_of(frame(type="chat-presence")).consumes
    for version in (2, 0, "1", True, None):
        error = code_of(json.dumps({"v": version, "type": "ping", "seq": 3}))
        assert error.code == "signal_version"
    assert code_of(json.dumps({"type": "ping"})).code == "signal_version"
    assert code_of(frame(type=7)).code == "signal_bad_field"
    # hub → client types are not accepted from a client
    assert code_of(frame(type="welcome")).code == "signal_unknown_type"
    assert code_of(frame(type="admitted", seq=1, ice_servers=[])).code == "signal_unknown_type"


@pytest.mark.parametrize("seq", [None, 0, -1, 1.5, "1", True, 2**53])
def test_reliable_messages_need_a_good_seq(seq: Any) -> None:
    """A reliable message without a positive integer ``seq`` is ``signal_bad_seq``."""
    fields = {"type": "end"} if seq is None else {"type": "end", "seq": seq}
    error = code_of(frame(**fields))
    assert error.code == "signal_bad_seq" and not error.consumes


def test_control_messages_carry_no_seq() -> None:
    """``hello``, ``ping`` and ``ack`` with a ``seq`` are refused."""
    assert code_of(frame(type="ping", seq=1)).code == "signal_bad_seq"


@pytest.mark.parametrize(("fields", "field"), [
    ({"type": "hello", "session": "short", "received": 0}, "session"),
    ({"type": "hello", "session": "a b" * 10, "received": 0}, "session"),
    ({"type": "hello", "session": "s" * 65, "received": 0}, "session"),
    ({"type": "hello", "session": "s" * 16, "received": -1}, "received"),
    ({"type": "hello", "session": "s" * 16}, "received"),
    ({"type": "ack", "upto": "3"}, "upto"),
    ({"type": "ping", "t": "now"}, "t"),
    ({"type": "signal", "seq": 1, "to": "../p", "data": {}}, "to"),
    ({"type": "signal", "seq": 1, "to": "p-1", "data": [1]}, "data"),
    ({"type": "signal", "seq": 1, "to": "p-1"}, "data"),
    ({"type": "admit", "seq": 1}, "participant"),
])
def test_bad_fields_are_named(fields: dict[str, Any], field: str) -> None:
    """A missing or invalid field is ``signal_bad_field`` naming the field."""
    error = code_of(frame(**fields))
    assert error.code == "signal_bad_field" and error.params["field"] == field
    assert error.consumes == ("seq" in fields)


def test_error_frames_speak_german() -> None:
    """An error frame carries the code, a German message and the ``ref``."""
    text = m.error_frame(SignalingError("signal_room_full", limit=4, ref=7))
    assert json.loads(text) == {"v": 1, "type": "error", "code": "signal_room_full",
                                "message": "Das Gespräch ist voll: Es können höchstens 4 "
                                "Personen teilnehmen.", "ref": 7}


def test_every_signaling_code_has_a_message_in_both_languages() -> None:
    """Each code the rtc modules raise has a German and an English message."""
    codes = set()
    for path in RTC.glob("*.py"):
        codes |= set(re.findall(r'SignalingError\(\s*"(\w+)"', path.read_text("utf-8")))
    codes |= set(re.findall(r'SignalingError\(\s*"(\w+)"',
                            (RTC.parent / "web" / "sockets.py").read_text("utf-8")))
    assert len(codes) >= 15
    for lang in ("de", "en"):
        missing = sorted(c for c in codes if f"error.{c}" not in catalog(lang))
        assert missing == [], lang
