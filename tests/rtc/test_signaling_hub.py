"""The signaling hub with fake sockets and a clock the tests move: rooms, rules, reliability."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest

from appliance.errors import Conflict, PermissionDenied
from appliance.rtc.signaling import (
    DEAD_AFTER_S,
    GRACE_S,
    MAX_OUTBOX,
    HubSocket,
    Member,
    SignalingHub,
)

ROOM = "appt-a"
OTHER_ROOM = "appt-b"
TURN = [{"urls": "turn:box.local:3478", "username": "1:p", "credential": "x"}]
DOCTOR = Member(key="doctor:dr.mueller", role="doctor", name="Dr. Maria Müller",
                username="dr.mueller", admitted=True)
PATIENT = Member(key="patient", role="patient", name="Erika Mustermann")


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSocket:
    """What the adapter would hand the hub: records frames, notes the close."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    handle: HubSocket | None = None

    def send(self, text: str) -> None:
        """The hub's ``send``."""
        assert not self.closed, "frame written after close"
        self.frames.append(json.loads(text))

    def close(self) -> None:
        """The hub's ``close``."""
        self.closed = True

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Frames of type ``kind``, oldest first."""
        return [f for f in self.frames if f["type"] == kind]

    def last(self, kind: str) -> dict[str, Any]:
        """The newest frame of type ``kind``."""
        found = self.of(kind)
        assert found, f"no {kind} frame among {[f['type'] for f in self.frames]}"
        return found[-1]

    def errors(self) -> list[str]:
        """The codes of the error frames."""
        return [f["code"] for f in self.of("error")]


class Page:
    """A page of one participant: its session, its seq counter, its sockets."""

    def __init__(self, hub: SignalingHub, member: Member, room: str = ROOM) -> None:
        self.hub = hub
        self.member = member
        self.room = room
        self.session = secrets.token_urlsafe(18)
        self.seq = 0
        self.sockets: list[FakeSocket] = []

    def connect(self, received: int = 0) -> FakeSocket:
        """Open a socket and say hello."""
        sock = FakeSocket()
        sock.handle = self.hub.open(self.room, self.member, sock.send, sock.close)
        self.sockets.append(sock)
        self.raw(sock, {"v": 1, "type": "hello", "session": self.session, "received": received})
        return sock

    @property
    def id(self) -> str:
        """The hub's id for this participant (from the welcome)."""
        return self.sockets[0].of("welcome")[0]["participant"]["id"]

    def raw(self, sock: FakeSocket, payload: dict[str, Any] | str | bytes) -> None:
        """Feed any frame to the hub."""
        assert sock.handle is not None
        text = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        self.hub.receive(sock.handle, text)

    def send(self, kind: str, sock: FakeSocket | None = None, **payload: Any) -> int:
        """Send a reliable message with the next seq (on every socket unless one is named)."""
        self.seq += 1
        frame = {"v": 1, "type": kind, "seq": self.seq, **payload}
        for target in [sock] if sock else [s for s in self.sockets if not s.closed]:
            self.raw(target, frame)
        return self.seq

    def ping(self, sock: FakeSocket) -> None:
        """A heartbeat."""
        self.raw(sock, {"v": 1, "type": "ping", "t": 1})

    def ack(self, sock: FakeSocket, upto: int) -> None:
        """Acknowledge hub messages up to ``upto``."""
        self.raw(sock, {"v": 1, "type": "ack", "upto": upto})


@dataclass
class Domain:
    """The appointment book's part, as callbacks that record and may refuse."""

    admitted: list[tuple[str, str, str]] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)
    refuse: Exception | None = None

    def on_admit(self, room: str, doctor: str, member: Member) -> list[dict[str, Any]]:
        """Record an admission (or refuse it like the book would)."""
        if self.refuse is not None:
            raise self.refuse
        self.admitted.append((room, doctor, member.key))
        return TURN

    def on_end(self, room: str, doctor: str) -> None:
        """Record the end of the call."""
        self.ended.append((room, doctor))


@pytest.fixture
def clock() -> FakeClock:
    """The hub's clock."""
    return FakeClock()


@pytest.fixture
def domain() -> Domain:
    """The domain callbacks."""
    return Domain()


@pytest.fixture
def hub(clock: FakeClock, domain: Domain) -> SignalingHub:
    """A hub with fake domain callbacks and no TURN."""
    return SignalingHub(on_admit=domain.on_admit, on_end=domain.on_end, clock=clock,
                        ice_servers=lambda room, member: [{"urls": "stun:box.local"}])


def call(hub: SignalingHub) -> tuple[Page, FakeSocket, Page, FakeSocket]:
    """Doctor and admitted patient in ROOM."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock, psock = doctor.connect(), patient.connect()
    doctor.send("admit", participant=patient.id)
    assert psock.of("admitted"), psock.frames
    return doctor, dsock, patient, psock


async def tick(hub: SignalingHub, clock: FakeClock, seconds: float) -> None:
    """Move the clock and let the hub's periodic work run."""
    clock.now += seconds
    await hub.async_tick()


# --- joining and the rules --------------------------------------------------------------------


def test_patient_waits_until_the_doctor_admits(hub: SignalingHub, domain: Domain) -> None:
    """The patient joins waiting; only the doctor's admit lets them in, with ICE servers (O4)."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock = doctor.connect()
    welcome = dsock.of("welcome")[0]
    assert welcome["participant"] == {"id": doctor.id, "role": "doctor",
                                      "name": "Dr. Maria Müller"}
    assert welcome["received"] == 0 and welcome["heartbeat_ms"] == 500
    assert welcome["max_participants"] == 4  # the page takes its limit from here
    small = Page(SignalingHub(clock=FakeClock(), max_participants=3), DOCTOR).connect()
    assert small.of("welcome")[0]["max_participants"] == 3
    assert dsock.of("admitted")[0]["ice_servers"] == [{"urls": "stun:box.local"}]
    psock = patient.connect()
    assert not psock.of("admitted")
    room = dsock.last("room")
    assert room["state"] == "waiting"
    assert {"id": patient.id, "role": "patient", "name": "Erika Mustermann", "present": True,
            "admitted": False} in room["participants"]
    doctor.send("admit", participant=patient.id)
    assert domain.admitted == [(ROOM, "dr.mueller", "patient")]
    assert psock.last("admitted")["ice_servers"] == TURN
    assert dsock.last("room")["state"] == "in_call" == psock.last("room")["state"]
    assert hub.room_state(ROOM) == "in_call"


def test_each_member_gets_its_ice_policy(clock: FakeClock, domain: Domain) -> None:
    """The hub tells each admitted member its ICE transport policy (the doctor "relay" when the
    box hides the doctor PC's addresses); "all" when nobody says otherwise."""
    hub = SignalingHub(on_admit=domain.on_admit, clock=clock,
                       ice_policy=lambda member: "relay" if member.role == "doctor" else "all")
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock, psock = doctor.connect(), patient.connect()
    doctor.send("admit", participant=patient.id)
    assert dsock.of("admitted")[0]["ice_policy"] == "relay"
    assert psock.last("admitted")["ice_policy"] == "all"
    plain = Page(SignalingHub(clock=clock), DOCTOR).connect()
    assert plain.of("admitted")[0]["ice_policy"] == "all"


def test_member_admitted_by_the_domain_joins_the_call(hub: SignalingHub,
                                                     domain: Domain) -> None:
    """A patient whose appointment is already in the call is admitted without a new admit."""
    doctor = Page(hub, DOCTOR)
    dsock = doctor.connect()
    psock = Page(hub, Member(key="patient", role="patient", name="Erika", admitted=True)).connect()
    assert psock.of("admitted") and domain.admitted == []
    assert dsock.last("room")["state"] == "in_call"


def test_patient_cannot_admit_themselves(hub: SignalingHub, domain: Domain) -> None:
    """O3: admit, remove, end and restart from a patient are refused; nothing happens."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    doctor.connect()
    psock = patient.connect()
    for kind, payload in (("admit", {"participant": patient.id}),
                          ("admit", {"participant": doctor.id}),
                          ("remove", {"participant": doctor.id}), ("end", {}), ("restart", {})):
        seq = patient.send(kind, **payload)
        error = psock.last("error")
        assert (error["code"], error["ref"]) == ("signal_not_allowed", seq), kind
        assert "Ärztin oder der Arzt" in error["message"]
    assert domain.admitted == [] and domain.ended == []
    assert not psock.of("admitted") and hub.room_state(ROOM) == "waiting"


def test_waiting_patient_cannot_signal(hub: SignalingHub) -> None:
    """Before admission a patient reaches nobody (O4)."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock, psock = doctor.connect(), patient.connect()
    patient.send("signal", to=doctor.id, data={"kind": "description"})
    assert psock.errors() == ["signal_not_admitted"]
    assert not dsock.of("signal")


def test_waiting_patient_does_not_see_others(hub: SignalingHub) -> None:
    """A waiting participant sees the doctor and itself, not the names of others (R1)."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    guest = Page(hub, Member(key="guest:1", role="guest", name="Dolmetscherin"))
    doctor.connect()
    psock, gsock = patient.connect(), guest.connect()
    assert {p["role"] for p in gsock.last("room")["participants"]} == {"doctor", "guest"}
    doctor.send("admit", participant=patient.id)
    doctor.send("admit", participant=guest.id)
    assert {p["role"] for p in gsock.last("room")["participants"]} == {
        "doctor", "guest", "patient"}
    assert {p["role"] for p in psock.last("room")["participants"]} == {
        "doctor", "guest", "patient"}


def test_from_is_set_by_the_hub(hub: SignalingHub) -> None:
    """A forged ``from`` is replaced by the sender's id; ``data`` arrives unchanged."""
    doctor, dsock, patient, psock = call(hub)
    data = {"kind": "description", "connection": 1,
            "description": {"type": "answer", "sdp": "v=0\r\n"}}
    patient.send("signal", to=doctor.id, data=data, **{"from": doctor.id})
    relayed = dsock.last("signal")
    assert relayed["from"] == patient.id and relayed["data"] == data
    assert set(relayed) == {"v", "type", "seq", "from", "data"}


def test_patient_of_room_a_cannot_reach_room_b(hub: SignalingHub) -> None:
    """R1: ids of another room are unknown; nothing crosses rooms."""
    _, _, patient_a, psock_a = call(hub)
    doctor_b, patient_b = Page(hub, DOCTOR, OTHER_ROOM), Page(hub, PATIENT, OTHER_ROOM)
    dsock_b, psock_b = doctor_b.connect(), patient_b.connect()
    doctor_b.send("admit", participant=patient_b.id)
    before = len(dsock_b.frames), len(psock_b.frames)
    patient_a.send("signal", to=doctor_b.id, data={"kind": "x"})
    patient_a.send("signal", to=patient_b.id, data={"kind": "x"})
    assert psock_a.errors() == ["signal_unknown_participant"] * 2
    assert (len(dsock_b.frames), len(psock_b.frames)) == before
    assert {p["id"] for p in psock_a.last("room")["participants"]}.isdisjoint(
        {doctor_b.id, patient_b.id})


def test_assistant_cannot_connect(hub: SignalingHub) -> None:
    """R2: a member without a call role gets an error and is closed at once."""
    sock = FakeSocket()
    hub.open(ROOM, Member(key="mfa", role="assistant", name="Tom MFA"), sock.send, sock.close)
    assert sock.errors() == ["signal_no_call_role"] and sock.closed
    assert hub.participants(ROOM) == [] and hub.socket_count == 0


def test_fifth_participant_is_refused(hub: SignalingHub) -> None:
    """At most four in a call; a place is kept for the doctor whoever comes first."""
    others = [Page(hub, Member(key=f"guest:{i}", role="guest", name=f"Gast {i}"))
              for i in range(4)]
    socks = [page.connect() for page in others]
    assert [s.closed for s in socks] == [False, False, False, True]
    assert socks[3].errors() == ["signal_room_full"]
    assert "höchstens 4" in socks[3].last("error")["message"]
    dsock = Page(hub, DOCTOR).connect()
    assert not dsock.closed and len(hub.participants(ROOM)) == 4
    late = Page(hub, PATIENT).connect()
    assert late.closed and late.errors() == ["signal_room_full"]


def test_domain_refusals_are_forwarded(hub: SignalingHub, domain: Domain) -> None:
    """R3/R2: when the book refuses an admission, the doctor reads its message; no one is in."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock, psock = doctor.connect(), patient.connect()
    domain.refuse = Conflict(detail="Sie sind bereits in einer Videosprechstunde")
    seq = doctor.send("admit", participant=patient.id)
    error = dsock.last("error")
    assert error == {"v": 1, "type": "error", "code": "conflict", "ref": seq,
                     "message": "Das geht in diesem Zustand nicht: Sie sind bereits in einer "
                                "Videosprechstunde"}
    domain.refuse = PermissionDenied()
    doctor.send("admit", participant=patient.id)
    assert dsock.errors()[-1] == "permission_denied"
    assert not psock.of("admitted") and hub.room_state(ROOM) == "waiting"


def test_a_failing_callback_does_not_stop_the_hub(hub: SignalingHub, domain: Domain) -> None:
    """An unexpected exception in a callback is an error frame; the next admit works."""
    doctor, patient = Page(hub, DOCTOR), Page(hub, PATIENT)
    dsock, psock = doctor.connect(), patient.connect()
    domain.refuse = RuntimeError("bug")
    doctor.send("admit", participant=patient.id)
    assert dsock.errors() == ["signal_failed"]
    domain.refuse = None
    doctor.send("admit", participant=patient.id)
    assert psock.of("admitted")


def test_end_ends_the_call_for_everyone(hub: SignalingHub, domain: Domain) -> None:
    """O3: the doctor's end goes to the book, every page learns it, patients are let go."""
    doctor, dsock, patient, psock = call(hub)
    doctor.send("end")
    assert domain.ended == [(ROOM, "dr.mueller")]
    assert psock.last("ended")["reason"] == "ended" and psock.closed
    assert dsock.last("ended")["reason"] == "ended"
    assert dsock.last("room")["state"] == "ended"
    assert [p.role for p in hub.participants(ROOM)] == ["doctor"]
    doctor.send("restart")
    assert dsock.errors() == ["signal_call_ended"]


def test_remove_keeps_a_participant_out(hub: SignalingHub) -> None:
    """O3: a removed participant is told so and cannot come back into this room."""
    doctor, dsock, _, _ = call(hub)
    guest = Page(hub, Member(key="guest:1", role="guest", name="Gast"))
    gsock = guest.connect()
    doctor.send("remove", participant=guest.id)
    assert gsock.last("ended")["reason"] == "removed" and gsock.closed
    assert guest.id not in {p["id"] for p in dsock.last("room")["participants"]}
    guest.session = secrets.token_urlsafe(18)
    again = guest.connect()
    assert again.errors() == ["signal_removed"] and again.closed


def test_remove_goes_to_the_domain_and_survives_a_new_hub(clock: FakeClock,
                                                           domain: Domain) -> None:
    """O3: the doctor's ``remove`` is recorded by the domain (so that it outlasts the hub); a
    hub started anew keeps the removed key out of the call it takes up again."""
    removed: list[tuple[str, str, str]] = []
    hub = SignalingHub(on_admit=domain.on_admit, clock=clock,
                       on_remove=lambda room, doctor, m: removed.append((room, doctor, m.key)))
    doctor, _, patient, psock = call(hub)
    doctor.send("remove", participant=patient.id)
    assert removed == [(ROOM, "dr.mueller", "patient")]
    assert psock.last("ended")["reason"] == "removed"

    fresh = SignalingHub(on_admit=domain.on_admit, clock=clock)
    fresh.keep_places(ROOM, [DOCTOR], removed=("patient",))
    back = Page(fresh, Member(key="patient", role="patient", name="Erika Mustermann",
                              admitted=True)).connect()
    assert back.errors() == ["signal_removed"] and back.closed
    alone = SignalingHub(clock=clock)
    alone.keep_places(OTHER_ROOM, [], removed=("patient",))  # even with nobody else known
    late = Page(alone, Member(key="patient", role="patient", name="Erika Mustermann",
                              admitted=True), room=OTHER_ROOM).connect()
    assert late.errors() == ["signal_removed"]


def test_leave_frees_the_place_at_once(hub: SignalingHub) -> None:
    """``leave`` takes the participant out without a grace period."""
    _, dsock, patient, psock = call(hub)
    patient.send("leave")
    assert psock.closed
    assert [p["role"] for p in dsock.last("room")["participants"]] == ["doctor"]


def test_line_failover_reaches_every_call_with_someone_outside(clock: FakeClock,
                                                              domain: Domain) -> None:
    """Issue 12: when a line dies the box tells every admitted page of each call with a patient
    or guest: first fresh ICE servers (``admitted``, the healthy lines' TURN), then ``restart``
    (reason ``uplink``). The doctor's ``restart`` still says ``doctor``. Not told: a waiting
    patient, a room with only the doctor, an ended call."""
    served: list[str] = []

    def healthy_lines(room: str, member: Member) -> list[dict[str, Any]]:
        served.append(member.key)
        return [{"urls": f"turn:healthy-line:3478?for={member.role}"}]

    hub = SignalingHub(on_admit=domain.on_admit, clock=clock, ice_servers=healthy_lines)
    doctor, dsock, _, psock = call(hub)
    waiting = Page(hub, Member(key="guest:1", role="guest", name="Gast")).connect()
    alone = Page(hub, DOCTOR, room=OTHER_ROOM).connect()
    served.clear()
    assert hub.push_line_failover() == 2
    assert sorted(served) == sorted([DOCTOR.key, PATIENT.key])
    for sock, role in ((psock, "patient"), (dsock, "doctor")):
        kinds = [f["type"] for f in sock.frames]
        assert kinds[-2:] == ["admitted", "restart"], kinds
        assert sock.last("admitted")["ice_servers"][0]["urls"].endswith(role)
        assert sock.last("restart")["reason"] == "uplink"
    assert not waiting.of("restart") and not alone.of("restart")
    # the line is back: the calls hear of the servers again, and nothing restarts
    restarts = len(psock.of("restart"))
    assert hub.push_ice_servers() == 2
    assert psock.frames[-1]["type"] == "admitted" and len(psock.of("restart")) == restarts
    doctor.send("restart")
    assert psock.last("restart")["reason"] == "doctor"
    doctor.send("end")
    assert hub.push_line_failover() == 0


# --- reliability ------------------------------------------------------------------------------


def test_replay_after_reconnect(hub: SignalingHub) -> None:
    """What the page did not acknowledge is replayed on its new socket, after ``received``."""
    doctor, dsock, patient, psock = call(hub)
    last_seen = psock.frames[-1]["seq"]
    patient.ack(psock, last_seen)
    lost = [doctor.send("signal", to=patient.id, data={"n": n}) for n in range(3)]
    assert len(lost) == 3
    missed = [f for f in psock.frames if f.get("seq", 0) > last_seen]  # lost with the path
    again = patient.connect(received=last_seen)
    welcome = again.of("welcome")[0]
    assert welcome["participant"]["id"] == patient.id
    replayed = [f for f in again.frames if "seq" in f]
    assert [f["seq"] for f in replayed][:3] == [f["seq"] for f in missed]
    assert [f["data"]["n"] for f in replayed if f["type"] == "signal"] == [0, 1, 2]
    # the page processed them: acknowledged, they are not replayed again
    patient.ack(again, replayed[-1]["seq"])
    third = patient.connect(received=replayed[-1]["seq"])
    assert [f for f in third.frames if f["type"] == "signal"] == []


def test_page_learns_what_the_hub_processed(hub: SignalingHub, clock: FakeClock) -> None:
    """``welcome.received`` and ``ack`` tell the page which of its messages may be dropped."""
    doctor, dsock, patient, psock = call(hub)
    doctor.send("signal", to=patient.id, data={"n": 1})
    doctor.send("signal", to=patient.id, data={"n": 2})
    doctor.ping(dsock)
    assert dsock.last("ack")["upto"] == doctor.seq == 3
    again = doctor.connect(received=0)
    assert again.of("welcome")[0]["received"] == 3


async def test_acks_are_flushed_by_the_tick(hub: SignalingHub, clock: FakeClock) -> None:
    """Without a ping, the periodic tick sends the due cumulative ack."""
    doctor, dsock, patient, _ = call(hub)
    doctor.send("signal", to=patient.id, data={})
    await tick(hub, clock, 0.25)
    assert dsock.last("ack")["upto"] == 2
    count = len(dsock.of("ack"))
    await tick(hub, clock, 0.25)
    assert len(dsock.of("ack")) == count  # nothing new, no ack


def test_duplicates_are_dropped(hub: SignalingHub) -> None:
    """The same seq on two sockets (one per uplink) and replays are delivered once."""
    doctor, dsock, patient, psock = call(hub)
    second = patient.connect(received=0)
    assert not second.closed
    patient.send("signal", to=doctor.id, data={"n": 1})  # goes out on both sockets
    patient.raw(psock, {"v": 1, "type": "signal", "seq": patient.seq, "to": doctor.id,
                        "data": {"n": 1}})  # and a replay
    assert [f["data"] for f in dsock.of("signal")] == [{"n": 1}]
    assert psock.errors() == [] and second.errors() == []


def test_two_sockets_at_once(hub: SignalingHub) -> None:
    """A participant with two sockets gets every reliable message on both, same seq."""
    doctor, dsock, patient, psock = call(hub)
    second = patient.connect(received=psock.frames[-1]["seq"])
    doctor.send("signal", to=patient.id, data={"kind": "candidate"})
    first_copy, second_copy = psock.last("signal"), second.last("signal")
    assert first_copy == second_copy
    assert [p["present"] for p in dsock.last("room")["participants"]] == [True, True]


def test_out_of_order_frames_are_applied_in_order(hub: SignalingHub) -> None:
    """A frame that overtakes an earlier one waits for it (a gap means wait)."""
    doctor, dsock, patient, psock = call(hub)
    base = patient.seq
    for seq, n in ((base + 3, 3), (base + 2, 2)):
        patient.raw(psock, {"v": 1, "type": "signal", "seq": seq, "to": doctor.id,
                            "data": {"n": n}})
    assert dsock.of("signal") == []
    patient.raw(psock, {"v": 1, "type": "signal", "seq": base + 1, "to": doctor.id,
                        "data": {"n": 1}})
    assert [f["data"]["n"] for f in dsock.of("signal")] == [1, 2, 3]
    assert psock.errors() == []


def test_bad_seqs_are_answered(hub: SignalingHub) -> None:
    """A seq far ahead of the sequence, or a bad one, is refused with ``ref``."""
    doctor, _, patient, psock = call(hub)
    patient.raw(psock, {"v": 1, "type": "signal", "seq": patient.seq + 1000, "to": doctor.id,
                        "data": {}})
    patient.raw(psock, {"v": 1, "type": "signal", "seq": 0, "to": doctor.id, "data": {}})
    errors = psock.of("error")
    assert [e["code"] for e in errors] == ["signal_bad_seq"] * 2
    assert errors[0]["ref"] == patient.seq + 1000


def test_a_bad_payload_still_takes_its_place(hub: SignalingHub) -> None:
    """A well-numbered but invalid message is answered once and does not block later ones."""
    doctor, dsock, patient, psock = call(hub)
    patient.send("signal", to="not a valid id", data={})
    patient.send("signal", to=doctor.id, data={"x": "y" * (40 * 1024)})
    patient.send("signal", to=doctor.id, data={"n": "ok"})
    assert psock.errors() == ["signal_bad_field", "signal_data_too_large"]
    assert [f["data"] for f in dsock.of("signal")] == [{"n": "ok"}]


def test_hub_keeps_working_after_garbage(hub: SignalingHub) -> None:
    """Each garbage frame gets one error; the socket and the call go on."""
    doctor, dsock, patient, psock = call(hub)
    garbage: list[Any] = [
        "", "}{", "[1,2]", b"\xff", b'{"v":1,"type":"ping"}' * 5000, "x" * 70_000,
        '{"v":1,"type":"ping","x":' + "[" * 5000 + "]" * 5000 + "}",
        {"v": 2, "type": "ping"}, {"v": 1, "type": "teleport", "seq": 1000},
        {"v": 1, "type": "signal", "seq": "one", "to": doctor.id, "data": {}},
        {"v": 1, "type": "hello", "session": "x" * 20, "received": 0},
        {"v": 1, "type": "ack", "upto": -5}, {"v": 1}, {"type": None, "v": 1},
    ]
    for payload in garbage:
        patient.raw(psock, payload)
    assert len(psock.errors()) == len(garbage) and not psock.closed
    patient.send("signal", to=doctor.id, data={"still": "here"})
    assert dsock.last("signal")["data"] == {"still": "here"}
    patient.ping(psock)
    assert psock.last("pong")["t"] == 1


def test_frames_before_hello_are_refused(hub: SignalingHub) -> None:
    """The first frame must be ``hello``; a ping is answered but does not join."""
    sock = FakeSocket()
    handle = hub.open(ROOM, PATIENT, sock.send, sock.close)
    hub.receive(handle, json.dumps({"v": 1, "type": "end", "seq": 1}))
    hub.receive(handle, json.dumps({"v": 1, "type": "ping"}))
    assert sock.errors() == ["signal_hello_first"] and sock.of("pong")
    assert hub.participants(ROOM) == []


def test_unknown_session_with_history_must_start_afresh(hub: SignalingHub) -> None:
    """A page that remembers hub messages the hub does not know (box restarted) is told so."""
    page = Page(hub, PATIENT)
    sock = page.connect(received=12)
    assert sock.errors() == ["signal_session_unknown"] and sock.closed
    page.session = secrets.token_urlsafe(18)
    fresh = page.connect(received=0)
    assert fresh.of("welcome") and not fresh.closed


def test_new_session_rejoins_as_the_same_participant(hub: SignalingHub) -> None:
    """A reloaded page (new session) is the same participant, admitted, with fresh sequences."""
    doctor, dsock, patient, psock = call(hub)
    old_id = patient.id
    patient.session, patient.seq = secrets.token_urlsafe(18), 0
    fresh = patient.connect(received=0)
    assert psock.closed and psock.errors() == ["signal_replaced"]
    welcome = fresh.of("welcome")[0]
    assert welcome["participant"]["id"] == old_id and welcome["received"] == 0
    assert fresh.of("admitted") and fresh.of("admitted")[0]["seq"] == 1
    patient.send("signal", to=doctor.id, data={"n": "after reload"})
    assert dsock.last("signal")["data"] == {"n": "after reload"}


def test_outbox_is_bounded(hub: SignalingHub) -> None:
    """A page that never acknowledges loses its session, not the box's memory."""
    doctor, _, patient, psock = call(hub)
    for n in range(MAX_OUTBOX + 1):
        doctor.send("signal", to=patient.id, data={"n": n})
    assert psock.closed and psock.errors() == ["signal_backlog"]
    assert patient.connect(received=5).errors() == ["signal_session_unknown"]


# --- heartbeat and grace ----------------------------------------------------------------------


async def test_dead_socket_is_dropped_after_two_seconds(hub: SignalingHub,
                                                        clock: FakeClock) -> None:
    """A socket without any frame for 2 s is closed and the others see the page absent."""
    doctor, dsock, patient, psock = call(hub)
    for _ in range(8):  # the doctor keeps pinging, the patient's path is dead
        doctor.ping(dsock)
        await tick(hub, clock, 0.25)
    assert clock.now - 1000.0 == pytest.approx(DEAD_AFTER_S)
    assert not psock.closed
    doctor.ping(dsock)
    await tick(hub, clock, 0.05)
    assert psock.closed and not dsock.closed
    entry = next(p for p in dsock.last("room")["participants"] if p["id"] == patient.id)
    assert entry["present"] is False and entry["admitted"] is True


async def test_unjoined_socket_dies_even_when_pinging(hub: SignalingHub,
                                                      clock: FakeClock) -> None:
    """A socket that never says hello cannot be held open with pings."""
    sock = FakeSocket()
    handle = hub.open(ROOM, PATIENT, sock.send, sock.close)
    for _ in range(9):
        hub.receive(handle, json.dumps({"v": 1, "type": "ping"}))
        await tick(hub, clock, 0.25)
    assert sock.closed and hub.socket_count == 0


async def test_grace_period_keeps_the_place(hub: SignalingHub, clock: FakeClock) -> None:
    """Without sockets a participant stays 60 s and resumes; afterwards it is gone."""
    doctor, dsock, patient, psock = call(hub)
    hub.closed(psock.handle)  # type: ignore[arg-type]
    doctor.send("signal", to=patient.id, data={"n": "while away"})
    for _ in range(int((GRACE_S - 1) / 0.5)):
        doctor.ping(dsock)
        await tick(hub, clock, 0.5)
    assert patient.id in {p.id for p in hub.participants(ROOM)}
    back = patient.connect(received=psock.frames[-1]["seq"])
    assert back.last("signal")["data"] == {"n": "while away"}
    assert all(p.present for p in hub.participants(ROOM))
    hub.closed(back.handle)  # type: ignore[arg-type]
    for _ in range(int((GRACE_S + 1) / 0.5)):
        doctor.ping(dsock)
        await tick(hub, clock, 0.5)
    assert [p.role for p in hub.participants(ROOM)] == ["doctor"]
    assert [p["role"] for p in dsock.last("room")["participants"]] == ["doctor"]


async def test_room_disappears_with_its_last_participant(hub: SignalingHub,
                                                         clock: FakeClock) -> None:
    """No participants, no room: nothing stays in memory."""
    _, dsock, _, psock = call(hub)
    hub.closed(dsock.handle)  # type: ignore[arg-type]
    hub.closed(psock.handle)  # type: ignore[arg-type]
    await tick(hub, clock, GRACE_S + 1)
    assert hub.room_ids() == [] and hub.socket_count == 0


def test_close_all_closes_every_socket(hub: SignalingHub) -> None:
    """Shutdown closes every socket, joined or not."""
    _, dsock, _, psock = call(hub)
    loose = FakeSocket()
    hub.open(ROOM, PATIENT, loose.send, loose.close)
    hub.close_all()
    assert dsock.closed and psock.closed and loose.closed and hub.room_ids() == []


# --- a restart of the process -------------------------------------------------------------------


async def test_a_new_hub_keeps_the_places_of_a_running_call(clock: FakeClock,
                                                            domain: Domain) -> None:
    """Issue 3 (restart): a hub started anew gives everyone the id they had; a running call's
    members get their places back as away, so whoever re-attaches first sees the others away
    (their page keeps its peer connection), not gone; places not taken up end with the grace."""
    old = SignalingHub(on_admit=domain.on_admit, clock=clock)
    _, _, patient, _ = call(old)
    doctor_id = Page(old, DOCTOR).connect().of("welcome")[0]["participant"]["id"]
    patient_id = patient.id

    hub = SignalingHub(on_admit=domain.on_admit, clock=clock)
    hub.keep_places(ROOM, [DOCTOR, Member(key="patient", role="patient",
                                          name="Erika Mustermann", admitted=True)])
    returning = Page(hub, Member(key="patient", role="patient", name="Erika Mustermann",
                                 admitted=True))
    sock = returning.connect()
    assert returning.id == patient_id
    room = sock.last("room")
    assert room["state"] == "in_call"
    assert {"id": doctor_id, "role": "doctor", "name": "Dr. Maria Müller", "present": False,
            "admitted": True} in room["participants"]
    hub.keep_places(ROOM, [])  # a room that exists is left alone
    hub.keep_places(ROOM, [DOCTOR])
    assert len(hub.participants(ROOM)) == 2
    assert len(domain.admitted) == 1  # nobody was admitted anew
    for _ in range(int(GRACE_S) + 1):
        returning.ping(sock)
        await tick(hub, clock, 1)
    assert [p.role for p in hub.participants(ROOM)] == ["patient"]
    assert sock.last("room")["participants"] == [
        {"id": patient_id, "role": "patient", "name": "Erika Mustermann", "present": True,
         "admitted": True}]


def test_the_practice_record_lets_a_removed_person_back(hub: SignalingHub) -> None:
    """O3: whom the doctor removed stays out while the practice's record says so; a new link or
    a reopening (the record no longer names them) lets them back into the same running room."""
    doctor, _, _, _ = call(hub)
    guest = Page(hub, Member(key="guest:1", role="guest", name="Gast"))
    guest.connect()
    doctor.send("remove", participant=guest.id)
    hub.keep_places(ROOM, [DOCTOR], removed=("guest:1",))  # a socket opens: record still says so
    guest.session = secrets.token_urlsafe(18)
    assert guest.connect().errors() == ["signal_removed"]
    hub.keep_places(ROOM, [DOCTOR], removed=())  # staff gave the guest a new link
    guest.session = secrets.token_urlsafe(18)
    back = guest.connect()
    assert back.errors() == [] and back.of("welcome")
