"""The cost of checking what comes in: the API's request bodies and the signaling frames (issue 10).

The API's bodies are ``msgspec`` structs (``web/schema.py``): one declaration is the check, the
answer's encoding and the published JSON schema. Measured per body (the median of 7 rounds of
20,000): the whole check as ``api.read_body`` does it after reading (parse, depth check,
``msgspec.convert`` into the form) against the floor of merely parsing it (``json.loads``), in
the same run; "check / parse" is the ratio.

The signaling frames keep their own codec (``rtc/messages.py``): it decodes a page's frame once
and relays ``data`` as written. The alternative measured is a codec in ``msgspec`` structs (a
tagged union, ``data`` kept raw): "msgspec / ours" is its time against ours for the same frame,
below 1 where msgspec would be faster. The hub's whole cost per relayed message (sockets,
sequence numbers, outbox) is in ``signaling_bench``; the frame check is a small part of it.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from appliance.json_depth import nested_deeper_than
from appliance.rtc import messages
from appliance.web.api import MAX_BODY_DEPTH
from appliance.web.schema import decode
from appliance.web.staff.appointments import NewAppointment
from appliance.web.staff.patients import NewPatient
from appliance.web.staff.session import LoginForm

ROUNDS = 7
CALLS = 20_000

BODIES: dict[str, tuple[type, bytes]] = {
    "login": (LoginForm, json.dumps(
        {"username": "dr.weber", "password": "ein langes Passwort 2026"}).encode()),
    "new appointment": (NewAppointment, json.dumps(
        {"doctor": "dr.weber", "patient_id": "0123456789abcdef", "start": "2026-03-02T10:15",
         "duration_minutes": 20}).encode()),
    "new patient with consent": (NewPatient, json.dumps(
        {"full_name": "Erika Mustermann", "email": "erika@example.de", "phone": "0351 123456",
         "consent": {"given_on": "2026-03-01", "method": "written"}}).encode()),
}

_CANDIDATE = ('{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.10 46154 typ srflx '
              'raddr 10.0.0.5 rport 46154 generation 0 ufrag sK9d network-cost 999",'
              '"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"sK9d"}')
FRAMES: dict[str, str] = {
    "signal (ICE candidate)": ('{"v":1,"type":"signal","seq":17,"to":"patient","data":'
                               + _CANDIDATE + "}"),
    "ping": '{"v":1,"type":"ping","t":1733328000123.5}',
    "hello": '{"v":1,"type":"hello","session":"' + "a" * 32 + '","received":41}',
}

Seq = Annotated[int, msgspec.Meta(ge=1, le=messages.MAX_SEQ)]


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    v: Literal[1]


class _Signal(_Frame, tag="signal", frozen=True):
    seq: Seq
    to: Annotated[str, msgspec.Meta(pattern=messages.PARTICIPANT_PATTERN.pattern)]
    data: msgspec.Raw


class _Ping(_Frame, tag="ping", frozen=True):
    t: float | None = None


class _Hello(_Frame, tag="hello", frozen=True):
    session: Annotated[str, msgspec.Meta(pattern=messages.SESSION_PATTERN.pattern)]
    received: Annotated[int, msgspec.Meta(ge=0)] = 0


_MSGSPEC_DECODER = msgspec.json.Decoder(_Signal | _Ping | _Hello)


def _median_s(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            call()
        times.append((time.perf_counter() - started) / CALLS)
    return statistics.median(times)


def _check_body(form: type, raw: bytes) -> Any:
    data = json.loads(raw)
    if nested_deeper_than(data, MAX_BODY_DEPTH):
        raise AssertionError("too deep")
    return decode(data, form)


def run() -> list[dict[str, Any]]:
    """One row per body and per frame."""
    rows: list[dict[str, Any]] = []
    for name, (form, raw) in BODIES.items():
        _check_body(form, raw)  # must pass
        parse = _median_s(lambda raw=raw: json.loads(raw))
        check = _median_s(lambda form=form, raw=raw: _check_body(form, raw))
        rows.append({"what": f"body: {name}", "bytes": len(raw),
                     "floor µs": parse * 1e6, "ours µs": check * 1e6,
                     "check / parse": check / parse})
    for name, frame in FRAMES.items():
        ours_message = messages.parse_client(frame)
        candidate = _MSGSPEC_DECODER.decode(frame)
        assert type(candidate).__name__.lower().lstrip("_") in type(
            ours_message).__name__.lower().replace("signalto", "signal")
        ours = _median_s(lambda frame=frame: messages.parse_client(frame))
        other = _median_s(lambda frame=frame: _MSGSPEC_DECODER.decode(frame))
        rows.append({"what": f"frame: {name}", "bytes": len(frame), "ours µs": ours * 1e6,
                     "msgspec µs": other * 1e6, "msgspec / ours": other / ours})
    return rows
