"""The appointment book: booking, the patient's way in, lockout, expiry and the call's states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from appliance.clock import ManualClock
from appliance.errors import (
    AppointmentClosed,
    Conflict,
    InvalidInput,
    LinkLocked,
    NotFound,
    PermissionDenied,
    WrongAccessCode,
)
from appliance.practice import store
from appliance.practice.access_codes import CODE_ALPHABET
from appliance.practice.appointments import TRANSITIONS, AppointmentBook
from appliance.practice.audit import AuditLog
from appliance.practice.calls import Calls
from appliance.practice.models import (
    Appointment,
    AppointmentState,
    ConsentMethod,
    Patient,
    StaffMember,
)
from appliance.practice.patients import PatientRegistry
from appliance.practice.profile import PracticeOffice
from appliance.practice.reception import Reception
from appliance.practice.staff import StaffDirectory

if TYPE_CHECKING:
    from appliance.vault import Vault

S = AppointmentState
MakeAppointment = Callable[..., Appointment]


def _patient_link(book, token: str):  # noqa: ANN001, ANN202 - the book under test
    """The appointment whose patient link carries ``token``, or None (a guest's link: None)."""
    visitor = book.find_visitor(token)
    return visitor.appointment if visitor is not None and visitor.guest is None else None


def _wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    first = CODE_ALPHABET[(CODE_ALPHABET.index(code[0]) + 1) % len(CODE_ALPHABET)]
    return first + code[1:]


def _check_in(reception: Reception, appointment: Appointment,
              name: str = "Erika Mustermann") -> Appointment:
    return reception.check_in(appointment.link_token, appointment.access_code, full_name=name,
                              consent_confirmed=True, rules_confirmed=True)


# --- booking ----------------------------------------------------------------------------------


def test_create(book: AppointmentBook, make_appointment: MakeAppointment, doctor: StaffMember,
                patient: Patient, clock: ManualClock, audit: AuditLog) -> None:
    """R2: an assistant books; the appointment gets a token, a code, and starts scheduled."""
    appointment = make_appointment()
    assert book.get(appointment.id) == appointment
    assert appointment.state is S.SCHEDULED
    assert (appointment.doctor, appointment.patient_id) == (doctor.username, patient.id)
    assert appointment.created_by == "mfa.klein"
    assert appointment.code_failures == 0 and not appointment.link_locked
    assert len(appointment.link_token) >= 22
    entry = audit.entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == (
        "mfa.klein", "appointment.create", appointment.id)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"doctor": "mfa.klein"}, "doctor"),
        ({"doctor": "niemand"}, "doctor"),
        ({"patient_id": "0000000000000000"}, "patient_id"),
        ({"duration_minutes": 4}, "duration_minutes"),
        ({"duration_minutes": 181}, "duration_minutes"),
        ({"start": datetime(2026, 3, 2, 6, 59, tzinfo=UTC)}, "start"),
        ({"start": datetime(2026, 3, 2, 12, 0)}, "start"),
        ({"start": datetime(9999, 12, 31, 23, 50, tzinfo=UTC)}, "start"),
        ({"start": datetime(2028, 12, 31, 12, 0, tzinfo=UTC)}, "start"),
    ],
)
def test_create_validates(book: AppointmentBook, make_appointment: MakeAppointment,
                          changes: dict, field: str) -> None:
    """A doctor, an existing patient, 5–180 minutes, a start from an hour ago to two years on.

    R8: a typo in the year must not keep an appointment (and its patient) for centuries.
    """
    with pytest.raises(InvalidInput) as raised:
        make_appointment(**changes)
    assert raised.value.params["field"] == field
    assert book.upcoming() == []


def test_create_accepts_the_edges(make_appointment: MakeAppointment, clock: ManualClock) -> None:
    """A start just under an hour ago and durations of 5 and 180 minutes are fine."""
    make_appointment(start=clock.now() - timedelta(minutes=59), duration_minutes=5)
    make_appointment(duration_minutes=180)


def test_create_needs_a_staff_member(make_appointment: MakeAppointment) -> None:
    """Only staff book appointments."""
    with pytest.raises(PermissionDenied):
        make_appointment(actor="patient")


def test_edit_only_while_scheduled(book: AppointmentBook, reception: Reception,
                                   make_appointment: MakeAppointment,
                                   doctor2: StaffMember, clock: ManualClock) -> None:
    """Doctor, start and duration change while scheduled; not once the patient waits."""
    appointment = make_appointment()
    start = clock.now() + timedelta(days=1)
    changed = book.edit("mfa.klein", appointment.id, doctor="dr.yilmaz", start=start,
                        duration_minutes=30)
    assert (changed.doctor, changed.start, changed.duration_minutes) == ("dr.yilmaz", start, 30)
    assert book.get(appointment.id) == changed
    assert _patient_link(book, appointment.link_token) == changed
    with pytest.raises(InvalidInput):
        book.edit("mfa.klein", appointment.id, doctor="mfa.klein")
    clock.set(start - timedelta(minutes=5))
    _check_in(reception, changed)
    with pytest.raises(Conflict):
        book.edit("mfa.klein", appointment.id, duration_minutes=20)


def test_day_and_upcoming(book: AppointmentBook, make_appointment: MakeAppointment,
                          doctor2: StaffMember, clock: ManualClock) -> None:
    """day() lists by local date and start; upcoming() the open ones still ahead."""
    berlin = ZoneInfo("Europe/Berlin")
    late = make_appointment(start=datetime(2026, 3, 2, 23, 30, tzinfo=berlin))
    early = make_appointment(start=datetime(2026, 3, 2, 10, 0, tzinfo=berlin), doctor="dr.yilmaz")
    next_day = make_appointment(start=datetime(2026, 3, 3, 0, 30, tzinfo=berlin))
    assert [a.id for a in book.day(date(2026, 3, 2))] == [early.id, late.id]
    assert [a.id for a in book.day(date(2026, 3, 2), UTC)] == [early.id, late.id, next_day.id]
    assert [a.id for a in book.upcoming()] == [early.id, late.id, next_day.id]
    assert [a.id for a in book.upcoming("dr.yilmaz")] == [early.id]
    book.cancel("mfa.klein", late.id)
    clock.set(datetime(2026, 3, 2, 10, 30, tzinfo=berlin))
    assert [a.id for a in book.upcoming()] == [next_day.id]


# --- the patient's way in ---------------------------------------------------------------------


def test_find_by_token(book: AppointmentBook, make_appointment: MakeAppointment) -> None:
    """The public site finds an appointment by its token, and by nothing else."""
    appointment = make_appointment()
    assert _patient_link(book, appointment.link_token) == appointment
    assert _patient_link(book, appointment.link_token[:-1]) is None
    assert _patient_link(book, "") is None
    assert _patient_link(book, "x" * 10_000) is None


def test_tokens_are_not_indexed_in_clear(book: AppointmentBook,
                                         make_appointment: MakeAppointment) -> None:
    """R9: the in-memory index holds keyed digests, never the tokens themselves."""
    appointment = make_appointment()
    assert appointment.link_token not in repr(book._index)


def test_token_index_survives_seal_and_unseal(
    book: AppointmentBook, make_appointment: MakeAppointment, vault: Vault,
    staff: StaffDirectory, passwords: dict[str, str],
) -> None:
    """After seal and the next staff login, links work again (index rebuilt on unseal)."""
    first, second = make_appointment(), make_appointment()
    vault.seal()
    staff.login("dr.weber", passwords["dr.weber"], source="192.0.2.10")
    assert _patient_link(book, first.link_token) == first
    assert _patient_link(book, second.link_token) == second


def test_token_index_after_reboot(
    make_appointment: MakeAppointment, vault: Vault, make_vault: Callable[[], Vault],
    clock: ManualClock, passwords: dict[str, str],
) -> None:
    """A book built while the vault is sealed (boot) finds old links after the first login."""
    appointment = make_appointment()
    vault.seal()
    vault.close()
    rebooted = make_vault()
    audit = AuditLog(rebooted, clock)
    staff = StaffDirectory(rebooted, audit, clock)
    patients = PatientRegistry(rebooted, audit, clock)
    office = PracticeOffice(rebooted, audit)
    book = AppointmentBook(rebooted, audit, clock, staff, patients, office)
    reception = Reception(book, audit, clock, patients, office)
    staff.login("mfa.klein", passwords["mfa.klein"], source="192.0.2.10")
    assert _patient_link(book, appointment.link_token) == appointment
    visitor = reception.verify_access(appointment.link_token, appointment.access_code)
    assert visitor.appointment == appointment and visitor.guest is None


def test_verify_code(book: AppointmentBook, reception: Reception,
                     make_appointment: MakeAppointment) -> None:
    """The right code, however typed, opens the appointment; an unknown token is NotFound."""
    appointment = make_appointment()
    typed = appointment.access_code.lower().replace("-", " ")
    assert reception.verify_access(appointment.link_token, typed).appointment == appointment
    with pytest.raises(NotFound):
        reception.verify_access("unbekannt", appointment.access_code)


def test_wrong_codes_lock_the_link_and_reissue_unlocks(
    book: AppointmentBook, reception: Reception, make_appointment: MakeAppointment,
) -> None:
    """R9: wrong codes count down; the fifth locks; a reissue unlocks with a new link and code."""
    appointment = make_appointment()
    token, code = appointment.link_token, appointment.access_code
    for remaining in (4, 3, 2, 1):
        with pytest.raises(WrongAccessCode) as raised:
            reception.verify_access(token, _wrong(code))
        assert raised.value.params == {"remaining": remaining}
    assert book.get(appointment.id).code_failures == 4
    with pytest.raises(LinkLocked):
        reception.verify_access(token, "garbage")
    assert book.get(appointment.id).link_locked
    with pytest.raises(LinkLocked):  # even the right code now
        reception.verify_access(token, code)

    fresh = book.reissue("mfa.klein", appointment.id)
    assert (fresh.code_failures, fresh.link_locked) == (0, False)
    assert fresh.link_token != token and fresh.access_code != code
    with pytest.raises(NotFound):  # the old link is dead at once
        reception.verify_access(token, code)
    assert _patient_link(book, token) is None
    with pytest.raises(WrongAccessCode):  # and so is the old code
        reception.verify_access(fresh.link_token,
                                code if code != fresh.access_code else _wrong(code))
    assert reception.verify_access(fresh.link_token,
                                   fresh.access_code).appointment.id == appointment.id


def test_right_code_resets_the_count(book: AppointmentBook, reception: Reception,
                                     make_appointment: MakeAppointment) -> None:
    """A typo or two are forgiven once the right code comes."""
    appointment = make_appointment()
    for _ in range(3):
        with pytest.raises(WrongAccessCode):
            reception.verify_access(appointment.link_token, _wrong(appointment.access_code))
    patient_link = reception.verify_access(appointment.link_token, appointment.access_code)
    assert patient_link.appointment.code_failures == 0
    with pytest.raises(WrongAccessCode) as raised:
        reception.verify_access(appointment.link_token, _wrong(appointment.access_code))
    assert raised.value.params == {"remaining": 4}


def test_code_expires_two_hours_after_the_end(book: AppointmentBook, reception: Reception,
                                              make_appointment: MakeAppointment,
                                              clock: ManualClock) -> None:
    """Link and code work until two hours after the planned end, then the appointment is closed."""
    appointment = make_appointment()
    clock.set(appointment.end + timedelta(hours=2))
    reception.verify_access(appointment.link_token, appointment.access_code)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AppointmentClosed):
        reception.verify_access(appointment.link_token, appointment.access_code)
    with pytest.raises(AppointmentClosed):  # and no failure is counted any more
        reception.verify_access(appointment.link_token, _wrong(appointment.access_code))
    assert book.get(appointment.id).code_failures == 0


@pytest.mark.parametrize("close", ["cancel", "mark_no_show"])
def test_closed_appointment_turns_the_patient_away(book: AppointmentBook, reception: Reception,
                                                   make_appointment: MakeAppointment,
                                                   close: str) -> None:
    """A cancelled or missed appointment tells the patient so (410), whatever the code."""
    appointment = make_appointment()
    getattr(book, close)("mfa.klein", appointment.id)
    with pytest.raises(AppointmentClosed) as raised:
        reception.verify_access(appointment.link_token, appointment.access_code)
    assert raised.value.status == 410
    assert "abgesagt" in raised.value.message()


def test_patient_messages_speak_plainly(book: AppointmentBook, reception: Reception,
                                       make_appointment: MakeAppointment) -> None:
    """The patient reads what went wrong and what to do, in German first."""
    appointment = make_appointment()
    with pytest.raises(WrongAccessCode) as raised:
        reception.verify_access(appointment.link_token, _wrong(appointment.access_code))
    assert "Zugangscode stimmt nicht" in raised.value.message()
    assert "4" in raised.value.message()
    assert "access code" in raised.value.message("en")


def test_check_in(book: AppointmentBook, reception: Reception, make_appointment: MakeAppointment,
                  patients: PatientRegistry, patient: Patient, clock: ManualClock) -> None:
    """R1, O1: the patient enters their name and confirms; consent is recorded online."""
    appointment = make_appointment()
    waiting = _check_in(reception, appointment, name="  Erika  Mustermann ")
    assert waiting.state is S.WAITING
    assert waiting.checked_in_name == "Erika Mustermann"  # R1: what the doctor sees
    assert waiting.checked_in_at == clock.now()
    consent = patients.get(patient.id).consent
    assert consent is not None
    assert (consent.method, consent.form_version, consent.recorded_by, consent.given_on) == (
        ConsentMethod.ONLINE, "2026-01", "patient", date(2026, 3, 2))


def test_check_in_keeps_existing_consent(book: AppointmentBook, reception: Reception,
                                         make_appointment: MakeAppointment,
                                         patients: PatientRegistry, patient: Patient) -> None:
    """O1: a written consent on file stays as it is."""
    patients.record_consent("mfa.klein", patient.id, given_on=date(2026, 2, 1),
                            form_version="2025-07", method=ConsentMethod.WRITTEN)
    _check_in(reception, make_appointment())
    consent = patients.get(patient.id).consent
    assert consent is not None and consent.method is ConsentMethod.WRITTEN


@pytest.mark.parametrize(("consent", "rules", "field"),
                         [(False, True, "consent_confirmed"), (True, False, "rules_confirmed")])
def test_check_in_needs_both_confirmations(book: AppointmentBook, reception: Reception,
                                           make_appointment: MakeAppointment,
                                           patients: PatientRegistry, patient: Patient,
                                           consent: bool, rules: bool, field: str) -> None:
    """O1, O2: without consent and the room rules confirmed, nobody waits."""
    appointment = make_appointment()
    with pytest.raises(InvalidInput) as raised:
        reception.check_in(appointment.link_token, appointment.access_code, full_name="Erika M",
                           consent_confirmed=consent, rules_confirmed=rules)
    assert raised.value.params["field"] == field
    assert book.get(appointment.id).state is S.SCHEDULED
    assert patients.get(patient.id).consent is None


def test_check_in_needs_name_and_code(book: AppointmentBook, reception: Reception,
                                      make_appointment: MakeAppointment) -> None:
    """R1: a full name is required; the code is checked again."""
    appointment = make_appointment()
    with pytest.raises(InvalidInput):
        _check_in(reception, appointment, name=" E ")
    with pytest.raises(WrongAccessCode):
        reception.check_in(appointment.link_token, _wrong(appointment.access_code),
                           full_name="Erika Mustermann", consent_confirmed=True,
                           rules_confirmed=True)


def test_check_in_again_is_fine(book: AppointmentBook, reception: Reception,
                                make_appointment: MakeAppointment,
                                clock: ManualClock) -> None:
    """A reload in the waiting room checks in again without losing the place."""
    appointment = make_appointment()
    first = _check_in(reception, appointment)
    clock.advance(timedelta(minutes=2))
    again = _check_in(reception, appointment, name="Erika Mustermann-Schmidt")
    assert again.state is S.WAITING
    assert again.checked_in_at == first.checked_in_at
    assert again.checked_in_name == "Erika Mustermann-Schmidt"


# --- the call ---------------------------------------------------------------------------------


def test_full_consultation(book: AppointmentBook, reception: Reception, calls: Calls,
                           make_appointment: MakeAppointment,
                           clock: ManualClock) -> None:
    """Scheduled → waiting → in call → ended, with the times recorded."""
    appointment = make_appointment()
    _check_in(reception, appointment)
    clock.advance(timedelta(minutes=3))
    admitted = calls.admit("dr.weber", appointment.id)
    assert (admitted.state, admitted.admitted_at) == (S.IN_CALL, clock.now())
    assert book.current_call("dr.weber") == admitted
    clock.advance(timedelta(minutes=12))
    ended = calls.end("dr.weber", appointment.id)
    assert (ended.state, ended.ended_at) == (S.ENDED, clock.now())
    assert book.current_call("dr.weber") is None


def test_assistant_cannot_admit(book: AppointmentBook, reception: Reception, calls: Calls,
                                make_appointment: MakeAppointment,
                                admin: StaffMember) -> None:
    """R2: organisational logins (assistant, admin) never take a call."""
    appointment = make_appointment()
    _check_in(reception, appointment)
    for actor in ("mfa.klein", "admin"):
        with pytest.raises(PermissionDenied):
            calls.admit(actor, appointment.id)
    assert book.get(appointment.id).state is S.WAITING


def test_only_the_appointments_doctor_admits_and_ends(
    book: AppointmentBook, reception: Reception, calls: Calls,
    make_appointment: MakeAppointment, doctor2: StaffMember,
) -> None:
    """O3, R1: another doctor cannot admit or end; the patient reaches only their doctor."""
    appointment = make_appointment()
    _check_in(reception, appointment)
    with pytest.raises(PermissionDenied):
        calls.admit("dr.yilmaz", appointment.id)
    calls.admit("dr.weber", appointment.id)
    for actor in ("dr.yilmaz", "mfa.klein", "admin"):
        with pytest.raises(PermissionDenied):
            calls.end(actor, appointment.id)
    assert book.get(appointment.id).state is S.IN_CALL


def test_one_call_per_doctor(book: AppointmentBook, reception: Reception, calls: Calls,
                             make_appointment: MakeAppointment,
                             doctor2: StaffMember) -> None:
    """R3: a doctor in a call cannot admit the next patient until the call ends."""
    first, second = make_appointment(), make_appointment()
    other = make_appointment(doctor="dr.yilmaz")
    for appointment in (first, second, other):
        _check_in(reception, appointment)
    calls.admit("dr.weber", first.id)
    with pytest.raises(Conflict):
        calls.admit("dr.weber", second.id)
    calls.admit("dr.yilmaz", other.id)  # another doctor is not disturbed
    calls.end("dr.weber", first.id)
    assert calls.admit("dr.weber", second.id).state is S.IN_CALL


def test_transition_table() -> None:
    """The state machine is one table, exactly the moves of the design."""
    moves = {(source, target) for sources, target in TRANSITIONS.values() for source in sources}
    assert moves == {
        (S.SCHEDULED, S.WAITING), (S.WAITING, S.WAITING), (S.WAITING, S.IN_CALL),
        (S.IN_CALL, S.ENDED), (S.WAITING, S.SCHEDULED), (S.SCHEDULED, S.CANCELLED),
        (S.WAITING, S.CANCELLED), (S.SCHEDULED, S.NO_SHOW), (S.WAITING, S.NO_SHOW),
        (S.ENDED, S.WAITING),
    }


def _to(book: AppointmentBook, reception: Reception, calls: Calls, appointment: Appointment,
        state: S) -> Appointment:
    """Walk a fresh appointment to ``state`` by allowed moves."""
    path = {
        S.SCHEDULED: [],
        S.WAITING: ["check_in"],
        S.IN_CALL: ["check_in", "admit"],
        S.ENDED: ["check_in", "admit", "end"],
        S.CANCELLED: ["cancel"],
        S.NO_SHOW: ["no_show"],
    }[state]
    for step in path:
        if step == "check_in":
            appointment = _check_in(reception, appointment)
        elif step in ("admit", "end"):
            appointment = getattr(calls, step)("dr.weber", appointment.id)
        elif step == "cancel":
            appointment = book.cancel("mfa.klein", appointment.id)
        else:
            appointment = book.mark_no_show("mfa.klein", appointment.id)
    assert appointment.state is state
    return appointment


def _do(book: AppointmentBook, reception: Reception, calls: Calls, appointment: Appointment,
        event: str) -> Appointment:
    if event == "check_in":
        return _check_in(reception, appointment)
    if event == "leave_waiting_room":
        return reception.leave_waiting_room(appointment.id)
    if event == "cancel":
        return book.cancel("mfa.klein", appointment.id)
    if event == "no_show":
        return book.mark_no_show("mfa.klein", appointment.id)
    return getattr(calls, event)("dr.weber", appointment.id)


ALLOWED = [(source, event) for event, (sources, _) in TRANSITIONS.items() for source in sources]
FORBIDDEN = [
    (source, event)
    for event, (sources, _) in TRANSITIONS.items()
    for source in S
    if source not in sources and event != "check_in"
]


@pytest.mark.parametrize(("source", "event"), ALLOWED,
                         ids=[f"{s}-{e}" for s, e in ALLOWED])
def test_allowed_transitions(book: AppointmentBook, reception: Reception, calls: Calls,
                             make_appointment: MakeAppointment,
                             source: S, event: str) -> None:
    """Every move of the table works and lands in its target state."""
    appointment = _to(book, reception, calls, make_appointment(), source)
    moved = _do(book, reception, calls, appointment, event)
    assert moved.state is TRANSITIONS[event][1]
    assert book.get(appointment.id).state is moved.state


@pytest.mark.parametrize(("source", "event"), FORBIDDEN,
                         ids=[f"{s}-{e}" for s, e in FORBIDDEN])
def test_forbidden_transitions(book: AppointmentBook, reception: Reception, calls: Calls,
                               make_appointment: MakeAppointment,
                               source: S, event: str) -> None:
    """Every move not in the table is a Conflict and changes nothing."""
    appointment = _to(book, reception, calls, make_appointment(), source)
    with pytest.raises(Conflict):
        _do(book, reception, calls, appointment, event)
    assert book.get(appointment.id) == appointment


@pytest.mark.parametrize("source", [S.ENDED, S.CANCELLED, S.NO_SHOW])
def test_check_in_on_a_closed_appointment(book: AppointmentBook, reception: Reception, calls: Calls,
                                          make_appointment: MakeAppointment, source: S) -> None:
    """The patient cannot check in to a closed appointment."""
    appointment = _to(book, reception, calls, make_appointment(), source)
    with pytest.raises(AppointmentClosed):
        _check_in(reception, appointment)


def test_check_in_during_the_call_is_a_conflict(book: AppointmentBook, reception: Reception,
                                                calls: Calls,
                                                make_appointment: MakeAppointment) -> None:
    """A second check-in while the call runs changes nothing."""
    appointment = _to(book, reception, calls, make_appointment(), S.IN_CALL)
    with pytest.raises(Conflict):
        _check_in(reception, appointment)


def test_reopen_is_for_the_doctor(book: AppointmentBook, reception: Reception, calls: Calls,
                                  make_appointment: MakeAppointment,
                                  doctor2: StaffMember) -> None:
    """O3: only the appointment's doctor reopens an ended consultation."""
    appointment = _to(book, reception, calls, make_appointment(), S.ENDED)
    with pytest.raises(PermissionDenied):
        calls.reopen("mfa.klein", appointment.id)
    with pytest.raises(PermissionDenied):
        calls.reopen("dr.yilmaz", appointment.id)
    reopened = calls.reopen("dr.weber", appointment.id)
    assert (reopened.state, reopened.ended_at) == (S.WAITING, None)


def test_reissue_refused_during_a_call(book: AppointmentBook, reception: Reception, calls: Calls,
                                       make_appointment: MakeAppointment) -> None:
    """A new link during the call would cut the patient off: refused, as for closed ones."""
    for state in (S.IN_CALL, S.CANCELLED):
        appointment = _to(book, reception, calls, make_appointment(), state)
        with pytest.raises(Conflict):
            book.reissue("mfa.klein", appointment.id)


def test_state_listeners(book: AppointmentBook, reception: Reception, calls: Calls,
                         make_appointment: MakeAppointment) -> None:
    """Listeners hear every change; a failing one breaks nothing; unsubscribing works."""
    heard: list[tuple[str, S]] = []
    remove = book.add_state_listener(lambda a: heard.append((a.id, a.state)))

    def broken(_: Appointment) -> None:
        """A listener with a bug."""
        raise RuntimeError("listener bug")

    book.add_state_listener(broken)
    appointment = make_appointment()
    _check_in(reception, appointment)
    calls.admit("dr.weber", appointment.id)
    remove()
    calls.end("dr.weber", appointment.id)
    assert heard == [(appointment.id, S.WAITING), (appointment.id, S.IN_CALL)]


def test_doctor_with_open_appointments_cannot_be_removed(
    book: AppointmentBook, make_appointment: MakeAppointment, staff: StaffDirectory,
) -> None:
    """An account whose patients are still booked stays until they are moved or closed."""
    appointment = make_appointment()
    with pytest.raises(Conflict):
        staff.remove("admin", "dr.weber")
    book.cancel("mfa.klein", appointment.id)
    staff.remove("admin", "dr.weber")


def test_audit_holds_ids_not_content(book: AppointmentBook, reception: Reception, calls: Calls,
                                     make_appointment: MakeAppointment,
                                     vault: Vault) -> None:
    """Who did what to which appointment — never the name, token or code."""
    appointment = make_appointment()
    with pytest.raises(WrongAccessCode):
        reception.verify_access(appointment.link_token, _wrong(appointment.access_code))
    _check_in(reception, appointment, name="Erika Geheimname")
    calls.admit("dr.weber", appointment.id)
    entries = vault.db.table(store.AUDIT).all()
    assert [(e["actor"], e["action"]) for e in entries[-4:]] == [
        ("patient", "appointment.code_failed"), ("patient", "patient.consent"),
        ("patient", "appointment.check_in"), ("dr.weber", "appointment.admit")]
    dump = str(entries)
    for secret in ("Geheimname", appointment.link_token, appointment.access_code):
        assert secret not in dump
