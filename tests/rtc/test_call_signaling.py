"""Calls through the real signaling: both aiohttp sites, aiortc peers, the box relays only JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp

from appliance.practice.models import Appointment, AppointmentState, Guest, Role
from appliance.rtc import messages as m
from appliance.rtc.signaling import Member
from appliance.web.context import EVENTS, HUB
from tests.web import conftest as web_fixtures
from tests.web.conftest import ASSISTANT_PASSWORD, DOCTOR_PASSWORD, Box

from .peers import CallPeer, SignalingPage, eventually

# the web tests' fixtures: a real box with both sites, onboarded, with a doctor and an assistant
settings, services, box, practice = (
    web_fixtures.settings, web_fixtures.services, web_fixtures.box, web_fixtures.practice)

SECOND_DOCTOR_PASSWORD = "zweit-passwort-123"


def _token(box: Box, appt: Appointment) -> str:
    return appt.link_token


async def waiting_patient(box: Box, client: Any = None, name: str = "Erika Mustermann",
                          doctor: str = "dr.mueller") -> tuple[Appointment, str]:
    """An appointment whose patient entered code, name and consent (in the waiting room)."""
    services = box.services
    patient = services.patients.add("admin", full_name=name)
    appt = services.appointments.create(
        "admin", doctor=doctor, patient_id=patient.id,
        start=services.clock.now() + timedelta(minutes=5))
    token = _token(box, appt)
    client = client or box.public
    ok = await client.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert ok.status == 200, await ok.text()
    checked = await client.post(f"/v/{token}/check-in", json={
        "full_name": name, "consent": True, "rules": True})
    assert checked.status == 200, await checked.text()
    return appt, token


def doctor_page(box: Box, appt: Appointment) -> SignalingPage:
    """The doctor's page for ``appt`` on the staff site (log in first)."""
    return SignalingPage(lambda: box.staff.ws_connect(f"/api/appointments/{appt.id}/signal"),
                         name="doctor")


def patient_page(client: Any, token: str) -> SignalingPage:
    """The patient's page of link ``token`` on the public site."""
    return SignalingPage(lambda: client.ws_connect(f"/v/{token}/signal"), name="patient")


def is_room(predicate: Callable[[m.Room], bool]) -> Callable[[m.HubMessage], bool]:
    """Match ``room`` messages."""
    return lambda msg: isinstance(msg, m.Room) and predicate(msg)


def note(text: str) -> Callable[[m.HubMessage], bool]:
    """Match a relayed note with ``text``."""
    return lambda msg: isinstance(msg, m.SignalFrom) and msg.data.get("text") == text


class FrameSpy:
    """Every frame that reaches the hub from any socket of the box."""

    def __init__(self, box: Box) -> None:
        hub = box.staff.app[HUB]
        self.frames: list[str | bytes] = []
        original = hub.receive

        def receive(sock: Any, frame: str | bytes) -> None:
            self.frames.append(frame)
            original(sock, frame)

        hub.receive = receive  # type: ignore[method-assign]

    def assert_only_signaling_json(self) -> int:
        """Each frame is a v1 JSON object of a client type; the total size in bytes."""
        for frame in self.frames:
            obj = json.loads(frame)
            assert obj["v"] == 1
            assert obj["type"] in m.RELIABLE_CLIENT_TYPES | m.CONTROL_CLIENT_TYPES
        return sum(len(f.encode() if isinstance(f, str) else f) for f in self.frames)


@contextlib.asynccontextmanager
async def call(box: Box, client: Any = None) -> AsyncIterator[tuple[CallPeer, CallPeer]]:
    """Doctor and patient of a fresh appointment, admitted, media flowing both ways."""
    appt, token = await waiting_patient(box, client)
    await box.login("dr.mueller", DOCTOR_PASSWORD)
    doctor = CallPeer(doctor_page(box, appt))
    patient = CallPeer(patient_page(client or box.public, token))
    try:
        await doctor.page.open()
        await patient.page.open()
        await doctor.page.wait_for(is_room(lambda r: any(
            p.role == "patient" and p.present for p in r.participants)))
        await doctor.page.send("admit", participant=patient.page.id)
        await doctor.wait_media(patient.page.id)
        await patient.wait_media(doctor.page.id)
        yield doctor, patient
    finally:
        await patient.close()
        await doctor.close()


async def test_one_to_one_call_is_direct_and_the_box_sees_only_json(practice: Box) -> None:
    """R4, R7, O4: admitted by the doctor, media flows host↔host; the box saw only signaling."""
    spy = FrameSpy(practice)
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor = CallPeer(doctor_page(practice, appt))
    patient = CallPeer(patient_page(practice.public, token))
    try:
        await doctor.page.open()
        await patient.page.open()
        waiting = await patient.page.wait_for(lambda msg: isinstance(msg, m.Room))
        assert isinstance(waiting, m.Room) and waiting.state == "waiting"
        room = await doctor.page.wait_for(is_room(lambda r: len(r.participants) == 2))
        assert isinstance(room, m.Room)
        entry = next(p for p in room.participants if p.role == "patient")
        assert (entry.name, entry.present, entry.admitted) == ("Erika Mustermann", True, False)
        async with practice.staff.app[EVENTS].subscribe() as queue:
            await doctor.page.send("admit", participant=patient.page.id)
            event = await asyncio.wait_for(queue.get(), 5)  # the dashboard learns it live
        assert event == {"type": "appointment", "id": appt.id}
        assert practice.services.appointments.get(appt.id).state is AppointmentState.IN_CALL
        admitted = await patient.page.wait_for(lambda msg: isinstance(msg, m.Admitted))
        assert isinstance(admitted, m.Admitted) and admitted.ice_servers == ()  # no TURN yet
        await doctor.wait_media(patient.page.id)
        await patient.wait_media(doctor.page.id, frames=30)  # about a second of the call

        # R7: the selected pair joins the two peers' own sockets, nothing of the box
        ours, theirs = doctor.nominated_pair(patient.page.id), patient.nominated_pair(
            doctor.page.id)
        assert ours.local_candidate.type == ours.remote_candidate.type == "host"
        assert ours.remote_addr == theirs.local_addr and theirs.remote_addr == ours.local_addr
        box_ports = {practice.staff.port, practice.public.port}
        assert ours.local_addr[1] not in box_ports and theirs.local_addr[1] not in box_ports
        signaling_bytes = spy.assert_only_signaling_json()
        stats = await patient.pcs[doctor.page.id].getStats()
        packets = sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")
        assert packets > 2 * len(spy.frames)  # much media, little signaling, none of it mixed
        assert signaling_bytes < 64 * 1024

        await doctor.page.send("end")  # O3
        await patient.wait(lambda: patient.ended is not None)
        assert patient.ended is not None and patient.ended.reason == "ended"
        assert practice.services.appointments.get(appt.id).state is AppointmentState.ENDED
    finally:
        await patient.close()
        await doctor.close()


def guest_session(box: Box) -> aiohttp.ClientSession:
    """A browser of its own (own cookies) on the public site, for a guest."""
    return aiohttp.ClientSession(base_url=box.public.make_url("/"),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def waiting_guest(box: Box, appt: Appointment, client: Any, label: str,
                        name: str) -> tuple[Guest, str]:
    """A guest invited by the assistant, who entered their code, name and confirmation."""
    guest = box.services.appointments.invite_guest("mfa", appt.id, label=label)
    token = guest.link_token
    ok = await client.post(f"/v/{token}/code", json={"code": guest.access_code})
    assert ok.status == 200, await ok.text()
    checked = await client.post(f"/v/{token}/check-in", json={
        "full_name": name, "consent": True, "rules": True})
    assert checked.status == 200, await checked.text()
    assert (await checked.json()) == {"state": "waiting", "name": name}
    return guest, token


def guest_page(client: Any, token: str) -> SignalingPage:
    """A guest's page of link ``token`` on the public site."""
    return SignalingPage(lambda: client.ws_connect(f"/v/{token}/signal"), name="guest")


async def test_three_party_mesh(practice: Box) -> None:
    """O2, R1: doctor, patient and an invited interpreter by own link: everyone sees everyone.

    The conference is a full mesh of direct peer connections (product promise): media flows
    between every pair; the box relays only signaling.
    """
    appt, token = await waiting_patient(practice)
    async with guest_session(practice) as browser:
        guest_entry, guest_token = await waiting_guest(
            practice, appt, browser, "Dolmetscherin", "Aylin Demir")
        await practice.login("dr.mueller", DOCTOR_PASSWORD)
        doctor = CallPeer(doctor_page(practice, appt))
        patient = CallPeer(patient_page(practice.public, token))
        guest = CallPeer(guest_page(browser, guest_token))
        peers = (doctor, patient, guest)
        try:
            for peer in peers:
                await peer.page.open()
            room = await doctor.page.wait_for(is_room(lambda r: len(r.participants) == 3))
            assert isinstance(room, m.Room)
            listed = {(p.role, p.name) for p in room.participants}  # O2: listed by name
            assert ("guest", "Aylin Demir") in listed and ("patient", "Erika Mustermann") in listed
            waiting = await guest.page.wait_for(lambda msg: isinstance(msg, m.Room))
            assert isinstance(waiting, m.Room)  # a waiting guest sees only doctor and itself
            assert {p.role for p in waiting.participants} == {"doctor", "guest"}
            await doctor.page.send("admit", participant=patient.page.id)
            await doctor.page.send("admit", participant=guest.page.id)
            for peer in peers:
                for other in peers:
                    if other is not peer:
                        await peer.wait_media(other.page.id, frames=3, seconds=30)
            assert all(len(peer.pcs) == 2 for peer in peers)
            room = await guest.page.wait_for(is_room(lambda r: r.state == "in_call" and all(
                p.admitted for p in r.participants) and len(r.participants) == 3))
            assert isinstance(room, m.Room)
            actions = [(e.action, e.target) for e in practice.services.audit.entries(limit=20)]
            assert ("guest.admit", f"{appt.id}:{guest_entry.id}") in actions
        finally:
            for peer in peers:
                await peer.close()


async def test_a_fifth_participant_is_refused(practice: Box) -> None:
    """Four places (doctor, patient, two guests): a third guest is not invited, a fifth socket
    gets the hub's clear refusal in German."""
    appt, token = await waiting_patient(practice)
    book = practice.services.appointments
    async with guest_session(practice) as first, guest_session(practice) as second:
        _, token_1 = await waiting_guest(practice, appt, first, "Tochter", "Lena Mustermann")
        _, token_2 = await waiting_guest(practice, appt, second, "Dolmetscher", "Ali Yilmaz")
        headers = await practice.login("mfa", ASSISTANT_PASSWORD)
        refused = await practice.staff.post(f"/api/appointments/{appt.id}/guests",
                                            json={"label": "Kollege"}, headers=headers)
        assert refused.status == 409
        assert "höchstens 2 weitere Personen" in (await refused.json())["message"]
        await practice.login("dr.mueller", DOCTOR_PASSWORD)
        pages = [doctor_page(practice, appt), patient_page(practice.public, token),
                 guest_page(first, token_1), guest_page(second, token_2)]
        try:
            for page in pages:
                await page.open()
            await pages[0].wait_for(is_room(lambda r: len(r.participants) == 4))
            # the domain gives no fifth link; a fifth member (e.g. a future kind) meets the hub
            hub = practice.staff.app[HUB]
            frames: list[str] = []
            closed: list[bool] = []
            sock = hub.open(appt.id, Member(key="guest:fifth", role="guest", name="Fünfte"),
                            frames.append, lambda: closed.append(True))
            hub.receive(sock, m.serialize(m.Hello(session=secrets.token_urlsafe(18))))
            error = json.loads(frames[-1])
            assert error["code"] == "signal_room_full" and closed == [True]
            assert error["message"] == ("Das Gespräch ist voll: Es können höchstens 4 Personen "
                                        "teilnehmen.")
            assert len(hub.participants(appt.id)) == 4
        finally:
            for page in pages:
                await page.close()
    assert len(book.guests(appt.id)) == 2


async def test_uninvited_guest_leaves_the_call_at_once(practice: Box) -> None:
    """O3, R9: removing a guest ends their place in the running call; the link opens nothing."""
    async with call(practice) as (doctor, patient):
        appt = practice.services.appointments.get(appt_id(practice))
        async with guest_session(practice) as browser:
            guest, token = await waiting_guest(practice, appt, browser, "Sohn", "Jan Mustermann")
            page = guest_page(browser, token)
            try:
                await page.open()
                await doctor.page.wait_for(is_room(lambda r: len(r.participants) == 3))
                headers = await practice.login("dr.mueller", DOCTOR_PASSWORD)
                gone = await practice.staff.delete(
                    f"/api/appointments/{appt.id}/guests/{guest.id}", headers=headers)
                assert gone.status == 200, await gone.text()
                ended = await page.wait_for(lambda msg: isinstance(msg, m.Ended))
                assert isinstance(ended, m.Ended) and ended.reason == "removed"
                await doctor.page.wait_for(is_room(lambda r: len(r.participants) == 2))
                assert (await browser.get(f"/v/{token}/state")).status == 404
                assert await _handshake_status(browser.ws_connect(f"/v/{token}/signal")) in (
                    401, 404)
            finally:
                await page.close()


async def test_chat_and_file_go_peer_to_peer(practice: Box) -> None:
    """R5, R7: chat text and a 200 KB file cross the data channel intact; the box sees neither."""
    spy = FrameSpy(practice)
    payload = os.urandom(200 * 1024)
    async with call(practice) as (doctor, patient):
        did, pid = doctor.page.id, patient.page.id
        await doctor.send_chat(pid, "Guten Tag, können Sie mich hören?")
        await patient.send_chat(did, "Ja, sehr gut.")
        await patient.send_file(did, "befund.pdf", payload)
        await doctor.wait(lambda: "befund.pdf" in doctor.files and len(doctor.chat) == 1)
        await patient.wait(lambda: len(patient.chat) == 1)
    assert doctor.files["befund.pdf"] == payload
    assert doctor.chat == [(pid, "Ja, sehr gut.")]
    assert patient.chat == [(did, "Guten Tag, können Sie mich hören?")]
    size = spy.assert_only_signaling_json()
    assert size < len(payload) / 4
    seen = "".join(f if isinstance(f, str) else f.decode() for f in spy.frames)
    assert "sehr gut" not in seen and "Guten Tag" not in seen and "befund" not in seen
    assert payload[:32].hex() not in seen


async def test_call_survives_a_dead_signaling_path(practice: Box) -> None:
    """R6 (UPLINKS.md): a socket dies silently; a new one resumes and replays; the call goes on."""
    hub = practice.staff.app[HUB]
    async with call(practice) as (doctor, patient):
        did, pid = doctor.page.id, patient.page.id
        assert hub.socket_count == 2
        dead = patient.page.lines[0]
        patient.page.kill_path(dead)  # no close: the box must find out by itself
        await doctor.page.send("signal", to=pid, data={"kind": "note", "text": "verloren?"})
        await patient.page.send("signal", to=did, data={"kind": "note", "text": "unterwegs"})
        await asyncio.sleep(0.3)
        assert not any(note("verloren?")(msg) for msg in patient.page.inbox)
        video_before = patient.frames[(did, "video")]

        await patient.page.open()  # a new socket: hello with the same session and ``received``
        await patient.page.wait_for(note("verloren?"), seconds=5)  # replayed by the hub
        await doctor.page.wait_for(note("unterwegs"), seconds=5)  # replayed by the page
        await patient.page.send("signal", to=did, data={"kind": "note", "text": "danach"})
        await doctor.page.wait_for(note("danach"), seconds=5)
        assert [msg.data["text"] for msg in doctor.page.inbox
                if isinstance(msg, m.SignalFrom) and msg.data.get("kind") == "note"] == [
            "unterwegs", "danach"]  # each exactly once, in order

        await eventually(lambda: hub.socket_count == 2)  # the silent one goes after 2 s
        await patient.wait(lambda: patient.frames[(did, "video")] > video_before + 20)
        present = [p.present for p in hub.participants(appt_id(practice))]
        assert present == [True, True]


async def test_patient_back_after_leaving_is_admitted_at_once(practice: Box) -> None:
    """O4, R6: while the appointment is in the call, the patient's new page needs no new admit."""
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor, patient = doctor_page(practice, appt), patient_page(practice.public, token)
    again = patient_page(practice.public, token)
    try:
        await doctor.open()
        await patient.open()
        await doctor.wait_for(is_room(lambda r: len(r.participants) == 2))
        await doctor.send("admit", participant=patient.id)
        await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
        await patient.send("leave")  # e.g. the tab was closed for good
        await doctor.wait_for(is_room(lambda r: len(r.participants) == 1))
        await again.open()
        await again.wait_for(lambda msg: isinstance(msg, m.Admitted))
        await doctor.wait_for(is_room(lambda r: any(
            p.role == "patient" and p.present and p.admitted for p in r.participants)))
        assert practice.services.appointments.get(appt.id).state is AppointmentState.IN_CALL
    finally:
        for page in (again, patient, doctor):
            await page.close()


def appt_id(box: Box) -> str:
    """The one room of the hub (tests with a single call)."""
    (room,) = box.staff.app[HUB].room_ids()
    return room


# --- access to the sockets (R1, R2, O3) -------------------------------------------------------


async def _handshake_status(connect: Awaitable[Any]) -> int:
    try:
        ws = await connect
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def test_assistant_gets_403_before_upgrade(practice: Box) -> None:
    """R2: an assistant's login never gets a signaling socket."""
    appt, _ = await waiting_patient(practice)
    await practice.login("mfa", ASSISTANT_PASSWORD)
    status = await _handshake_status(
        practice.staff.ws_connect(f"/api/appointments/{appt.id}/signal"))
    assert status == 403
    response = await practice.staff.get(f"/api/appointments/{appt.id}/signal")
    assert response.status == 403 and (await response.json())["error"] == "permission_denied"


async def test_only_the_appointments_doctor_connects(practice: Box) -> None:
    """R1, O3: another doctor of the practice, or nobody logged in, gets no socket."""
    appt, _ = await waiting_patient(practice)
    assert await _handshake_status(
        practice.staff.ws_connect(f"/api/appointments/{appt.id}/signal")) == 401
    practice.services.staff.add("admin", username="drschmidt", display_name="Dr. Schmidt",
                                roles={Role.DOCTOR}, password=SECOND_DOCTOR_PASSWORD,
                                lanr="123456702")
    await practice.login("drschmidt", SECOND_DOCTOR_PASSWORD)
    assert await _handshake_status(
        practice.staff.ws_connect(f"/api/appointments/{appt.id}/signal")) == 403
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert await _handshake_status(
        practice.staff.ws_connect("/api/appointments/nope/signal")) == 404
    assert await _handshake_status(practice.staff.ws_connect(
        f"/api/appointments/{appt.id}/signal", origin="https://evil.example")) == 403
    assert await _handshake_status(
        practice.staff.ws_connect(f"/api/appointments/{appt.id}/signal")) == 101


async def test_patient_of_a_cannot_open_the_socket_of_b(practice: Box) -> None:
    """R1: a patient's session opens only the socket of their own link."""
    _, token_a = await waiting_patient(practice)
    async with aiohttp.ClientSession(
        base_url=practice.public.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True),
    ) as other:
        _, token_b = await waiting_patient(practice, other, name="Max Muster")
        assert await _handshake_status(other.ws_connect(f"/v/{token_a}/signal")) == 401
        assert await _handshake_status(other.ws_connect(f"/v/{token_b}/signal")) == 101
    assert await _handshake_status(practice.public.ws_connect(f"/v/{token_b}/signal")) == 401
    assert await _handshake_status(
        practice.public.ws_connect("/v/AAAAAAAAAAAAAAAAAAAAAA/signal")) == 401


async def test_patient_socket_needs_check_in(practice: Box) -> None:
    """O4: only a checked-in patient (waiting or in the call) gets a socket."""
    services = practice.services
    patient = services.patients.add("admin", full_name="Erika Mustermann")
    appt = services.appointments.create("admin", doctor="dr.mueller", patient_id=patient.id,
                                        start=services.clock.now() + timedelta(minutes=5))
    token = _token(practice, appt)
    await practice.public.post(f"/v/{token}/code", json={"code": appt.access_code})
    assert await _handshake_status(practice.public.ws_connect(f"/v/{token}/signal")) == 409
    services.appointments.cancel("admin", appt.id)
    assert await _handshake_status(practice.public.ws_connect(f"/v/{token}/signal")) == 410


async def test_routes_stay_on_their_site(practice: Box) -> None:
    """Two surfaces: the doctor's socket does not exist on the public site, nor vice versa."""
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    assert (await practice.public.get(f"/api/appointments/{appt.id}/signal")).status == 404
    assert (await practice.staff.get(f"/v/{token}/signal")).status == 404


async def test_garbage_gets_errors_and_the_socket_keeps_working(practice: Box) -> None:
    """Malformed frames are answered with ``error``; the same socket then works normally."""
    appt, token = await waiting_patient(practice)
    page = patient_page(practice.public, token)
    try:
        await page.open()
        for raw in ("kein json", "[1]", '{"v":1,"type":"teleport","seq":1}',
                    '{"v":2,"type":"ping"}', b"\x00\x01binary", json.dumps(
                        {"v": 1, "type": "signal", "seq": 2, "to": "p-x", "data": {}})):
            await page.send_raw(raw)
        for code in ("signal_malformed", "signal_unknown_type", "signal_version",
                     "signal_not_admitted"):
            error = await page.wait_error(code)
            assert error.message and error.message[0].isupper()
        assert len(page.errors) == 6 and not page.lines[0].ws.closed
        page.seq = 2  # the raw frames took seq 1 and 2 (the unknown type, too: no gap stays)
        await page.send("leave")
        await eventually(lambda: page.lines[0].ws.closed)
        assert practice.staff.app[HUB].participants(appt.id) == []
    finally:
        await page.close()


async def test_a_lone_surrogate_in_data_reaches_the_other_side(practice: Box) -> None:
    """JSON allows an escape of half a UTF-16 pair ("\\ud800"); relayed, it must stay an escape:
    as text it cannot be encoded for the receiving socket, whose writer would die. Both the
    pages' compact form and a spaced one (the general parser) are relayed and the socket goes on.
    """
    appt, token = await waiting_patient(practice)
    await practice.login("dr.mueller", DOCTOR_PASSWORD)
    doctor, patient = doctor_page(practice, appt), patient_page(practice.public, token)
    try:
        await doctor.open()
        await patient.open()
        await doctor.wait_for(is_room(lambda r: len(r.participants) == 2))
        await doctor.send("admit", participant=patient.id)
        await patient.wait_for(lambda msg: isinstance(msg, m.Admitted))
        compact = (f'{{"v":1,"type":"signal","seq":1,"to":"{doctor.id}",'
                   '"data":{"kind":"note","text":"a\\ud800"}}')
        spaced = (f'{{"v": 1, "type": "signal", "seq": 2, "to": "{doctor.id}", '
                  '"data": {"kind": "note", "text": "b\\ud800"}}')
        for raw in (compact, spaced):
            await patient.send_raw(raw)
        patient.seq = 2
        for text in ("a\ud800", "b\ud800"):
            await doctor.wait_for(lambda msg, t=text: isinstance(msg, m.SignalFrom)
                                  and msg.data.get("text") == t)
        await patient.send("signal", to=doctor.id, data={"kind": "note", "text": "danach"})
        await doctor.wait_for(note("danach"))
    finally:
        await doctor.close()
        await patient.close()


async def test_sockets_are_not_compressed(practice: Box) -> None:
    """Browsers offer permessage-deflate; the box declines it (memory and CPU per socket for
    small JSON frames: measured ~100 KiB of zlib state per socket)."""
    _, token = await waiting_patient(practice)
    ws = await practice.public.ws_connect(f"/v/{token}/signal", compress=15)
    try:
        assert ws.compress == 0
    finally:
        await ws.close()


async def test_oversized_frame_closes_only_that_socket(practice: Box) -> None:
    """A frame above 64 KiB ends its socket (aiohttp, code 1009); a new socket resumes."""
    _, token = await waiting_patient(practice)
    page = patient_page(practice.public, token)
    try:
        first = await page.open()
        await page.send_raw("x" * (64 * 1024 + 1))
        await eventually(lambda: first.ws.closed)
        assert first.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        again = await page.open()
        assert not again.ws.closed and page.me is not None
    finally:
        await page.close()


async def test_doctor_in_a_call_cannot_admit_another_patient(practice: Box) -> None:
    """R3: while in one call, the doctor's admit of another waiting patient is refused."""
    async with aiohttp.ClientSession(
        base_url=practice.public.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True),
    ) as other_client:
        async with call(practice):
            appt_b, token_b = await waiting_patient(practice, other_client, name="Max Muster")
            doctor_b = doctor_page(practice, appt_b)
            patient_b = patient_page(other_client, token_b)
            try:
                await doctor_b.open()
                await patient_b.open()
                await doctor_b.wait_for(is_room(lambda r: len(r.participants) == 2))
                seq = await doctor_b.send("admit", participant=patient_b.id)
                error = await doctor_b.wait_error("conflict")
                assert error.ref == seq and "bereits in einer Videosprechstunde" in error.message
                assert practice.services.appointments.get(appt_b.id).state is (
                    AppointmentState.WAITING)
                assert not any(isinstance(msg, m.Admitted) for msg in patient_b.inbox)
            finally:
                await patient_b.close()
                await doctor_b.close()


async def test_withdrawn_patient_link_leaves_the_room_at_once(practice: Box) -> None:
    """R9 A01: after a reissue or a cancellation the old link's open socket is let go."""
    for action in ("reissue", "cancel"):
        appt, token = await waiting_patient(practice)
        patient = patient_page(practice.public, token)
        try:
            await patient.open()
            headers = await practice.login("admin", "admin-passwort-123")
            done = await practice.staff.post(f"/api/appointments/{appt.id}/{action}",
                                             headers=headers)
            assert done.status == 200, await done.text()
            ended = await patient.wait_for(lambda msg: isinstance(msg, m.Ended))
            assert ended.reason == "removed"
            hub = practice.staff.app[HUB]
            assert all(p.role != "patient" for p in hub.participants(appt.id)), action
            gone = await _handshake_status(practice.public.ws_connect(f"/v/{token}/signal"))
            assert gone != 101, action  # and the old link opens no new socket
        finally:
            await patient.close()
