"""The appointment book: scheduling, the ways in by link and code (patient, guests), the call."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final

from tinydb import Query
from tinydb.table import Table

from appliance.clock import Clock
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
from appliance.practice.access_codes import (
    codes_match,
    new_access_code,
    new_link_token,
    new_token_key,
    token_digest,
)
from appliance.practice.audit import AuditLog
from appliance.practice.models import (
    CLOSED_STATES,
    OPEN_STATES,
    Appointment,
    AppointmentState,
    ConsentMethod,
    Guest,
    Role,
    StaffMember,
    new_id,
)
from appliance.practice.patients import (
    CONSENT_FORM_VERSION,
    PATIENT_ACTOR,
    PatientRegistry,
    clean_full_name,
)
from appliance.practice.profile import PracticeOffice
from appliance.practice.staff import StaffDirectory

if TYPE_CHECKING:
    from appliance.vault import Vault

_LOGGER = logging.getLogger(__name__)

_S = AppointmentState
#: every move an appointment can make: event → (states it may start from, state it ends in)
TRANSITIONS: Final[dict[str, tuple[frozenset[AppointmentState], AppointmentState]]] = {
    "check_in": (frozenset({_S.SCHEDULED, _S.WAITING}), _S.WAITING),
    "admit": (frozenset({_S.WAITING}), _S.IN_CALL),
    "end": (frozenset({_S.IN_CALL}), _S.ENDED),
    "leave_waiting_room": (frozenset({_S.WAITING}), _S.SCHEDULED),
    "cancel": (frozenset({_S.SCHEDULED, _S.WAITING}), _S.CANCELLED),
    "no_show": (frozenset({_S.SCHEDULED, _S.WAITING}), _S.NO_SHOW),
    "reopen": (frozenset({_S.ENDED}), _S.WAITING),
}
#: how the conflict messages name a state
STATE_WORDS: Final[dict[AppointmentState, str]] = {
    _S.SCHEDULED: "geplant",
    _S.WAITING: "im Wartezimmer",
    _S.IN_CALL: "im Gespräch",
    _S.ENDED: "beendet",
    _S.CANCELLED: "abgesagt",
    _S.NO_SHOW: "nicht wahrgenommen",
}
#: an appointment can be moved (doctor, time, length) only before the patient arrives
EDIT_STATES: Final = frozenset({_S.SCHEDULED})
#: a new link and code can be handed out in these states (not during a call, not when gone)
REISSUE_STATES: Final = frozenset({_S.SCHEDULED, _S.WAITING, _S.ENDED})
#: the fifth wrong code locks the link until the practice reissues it (R9)
MAX_CODE_FAILURES: Final = 5
#: participants of one call (the signaling hub's limit): doctor, patient and two guests
MAX_CALL_PARTICIPANTS: Final = 4
MAX_GUESTS: Final = MAX_CALL_PARTICIPANTS - 2
MAX_GUEST_LABEL: Final = 60
#: who is who in a call: the patient's key, and a guest's (``guest:<id>``)
PATIENT_KEY: Final = "patient"
GUEST_KEY_PREFIX: Final = "guest:"
GUEST_ACTOR: Final = "guest"
MIN_DURATION: Final = 5
MAX_DURATION: Final = 180
#: an appointment may be entered late, but not for a start longer ago than this
MAX_START_IN_PAST: Final = timedelta(hours=1)
#: and not further ahead than this (a typo in the year would keep data far beyond R8)
MAX_START_AHEAD: Final = timedelta(days=2 * 366)
TOKEN_KEY_SETTING: Final = "link_token_key"

StateListener = Callable[[Appointment], None]


@dataclass(frozen=True, kw_only=True)
class Visitor:
    """Whose link a token opens: the appointment's patient (``guest`` None) or one of its guests."""

    appointment: Appointment
    guest: Guest | None = None

    @property
    def key(self) -> str:
        """The participant's stable key in the call: ``patient`` or ``guest:<id>``."""
        return PATIENT_KEY if self.guest is None else guest_key(self.guest.id)

    @property
    def holder(self) -> Appointment | Guest:
        """The record carrying this link's token, code and failure count."""
        return self.appointment if self.guest is None else self.guest

    @property
    def name(self) -> str | None:
        """The full name typed in at check-in."""
        return self.holder.checked_in_name

    @property
    def state(self) -> AppointmentState:
        """The state as this visitor's page follows it.

        A guest waits once checked in; their way into the call is the doctor's admission in
        the signaling hub, not the appointment's state.
        """
        appointment = self.appointment
        if self.guest is None or appointment.state in CLOSED_STATES:
            return appointment.state
        return _S.SCHEDULED if self.guest.checked_in_at is None else _S.WAITING

    @property
    def removed(self) -> bool:
        """Whether the doctor sent this visitor out of the call (until reopened or reissued)."""
        return self.key in self.appointment.removed_from_call

    @property
    def in_call(self) -> bool:
        """Whether the doctor let this visitor into the call that is running now."""
        if self.appointment.state is not _S.IN_CALL or self.removed:
            return False
        return self.guest is None or self.guest.admitted_at is not None

    @property
    def audit_target(self) -> str:
        """What the audit log names: the appointment id, and the guest's id after a colon."""
        appointment_id = self.appointment.id
        return appointment_id if self.guest is None else f"{appointment_id}:{self.guest.id}"


class AppointmentBook:
    """Appointments in the vault, found by the public site through keyed token digests only."""

    def __init__(
        self,
        vault: Vault,
        audit: AuditLog,
        clock: Clock,
        staff: StaffDirectory,
        patients: PatientRegistry,
        office: PracticeOffice,
    ) -> None:
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._staff = staff
        self._patients = patients
        self._office = office
        #: token digest → (appointment id, guest id or None for the patient's link);
        #: the tokens themselves are only in the vault
        self._index: dict[str, tuple[str, str | None]] = {}
        self._listeners: list[StateListener] = []
        vault.add_unseal_listener(self._on_unseal)
        if not vault.sealed:
            self.rebuild_index()

    # --- staff side ---------------------------------------------------------------------------

    def create(
        self,
        actor: str,
        *,
        doctor: str,
        patient_id: str,
        start: datetime,
        duration_minutes: int = 15,
    ) -> Appointment:
        """Book a video consultation; it gets a fresh link token and access code."""
        self._require_staff(actor)
        self._require_doctor_field(doctor)
        try:
            self._patients.get(patient_id)
        except NotFound:
            raise InvalidInput(field="patient_id", detail="unbekannter Patient") from None
        now = self._clock.now()
        appointment = Appointment(
            id=new_id(),
            doctor=doctor,
            patient_id=patient_id,
            start=self._valid_start(start, now),
            duration_minutes=_valid_duration(duration_minutes),
            link_token=new_link_token(),
            access_code=new_access_code(),
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        self._table().insert(appointment.to_dict())
        self._index[self._digest(appointment.link_token)] = (appointment.id, None)
        self._audit.record(actor, "appointment.create", appointment.id)
        return appointment

    def get(self, appointment_id: str) -> Appointment:
        """The appointment with ``appointment_id``; ``NotFound`` if there is none."""
        doc = self._table().get(Query().id == appointment_id)
        if doc is None:
            raise NotFound()
        return Appointment.from_dict(doc)

    def edit(
        self,
        actor: str,
        appointment_id: str,
        *,
        doctor: str | None = None,
        start: datetime | None = None,
        duration_minutes: int | None = None,
    ) -> Appointment:
        """Change doctor, start or duration, while the appointment is still only scheduled."""
        self._require_staff(actor)
        appointment = self.get(appointment_id)
        if appointment.state not in EDIT_STATES:
            raise Conflict(detail="nur ein geplanter Termin kann geändert werden")
        now = self._clock.now()
        if doctor is not None:
            self._require_doctor_field(doctor)
        changed = replace(
            appointment,
            doctor=appointment.doctor if doctor is None else doctor,
            start=appointment.start if start is None else self._valid_start(start, now),
            duration_minutes=appointment.duration_minutes if duration_minutes is None
            else _valid_duration(duration_minutes),
            updated_at=now,
        )
        self._save(changed)
        self._audit.record(actor, "appointment.edit", appointment_id)
        self._notify(changed)
        return changed

    def cancel(self, actor: str, appointment_id: str) -> Appointment:
        """Cancel the appointment; its link then only says so."""
        self._require_staff(actor)
        return self._move("cancel", actor, self.get(appointment_id))

    def mark_no_show(self, actor: str, appointment_id: str) -> Appointment:
        """Record that the patient did not come."""
        self._require_staff(actor)
        return self._move("no_show", actor, self.get(appointment_id))

    def reissue(self, actor: str, appointment_id: str) -> Appointment:
        """Hand out a new link and code: the old ones stop working at once; unlocks the link."""
        self._require_staff(actor)
        appointment = self.get(appointment_id)
        if appointment.state not in REISSUE_STATES:
            raise Conflict(detail="für diesen Termin kann kein neuer Link erstellt werden")
        changed = replace(
            appointment,
            link_token=new_link_token(),
            access_code=new_access_code(),
            code_failures=0,
            link_locked=False,
            removed_from_call=_let_back(appointment.removed_from_call, "patient"),
            updated_at=self._clock.now(),
        )
        self._save(changed)
        self._index.pop(self._digest(appointment.link_token), None)
        self._index[self._digest(changed.link_token)] = (changed.id, None)
        self._audit.record(actor, "appointment.reissue", appointment_id)
        self._notify(changed)
        return changed

    # --- guests (further participants, each with an own link and code) -------------------------

    def invite_guest(self, actor: str, appointment_id: str, *, label: str) -> Guest:
        """Invite a further participant: a fresh link and code; at most ``MAX_GUESTS``."""
        self._require_staff(actor)
        appointment = self.get(appointment_id)
        if appointment.state not in OPEN_STATES:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        if len(appointment.guests) >= MAX_GUESTS:
            raise Conflict(detail=f"höchstens {MAX_GUESTS} weitere Personen: mit Ärztin/Arzt und "
                                  f"Patient sind es {MAX_CALL_PARTICIPANTS}")
        now = self._clock.now()
        guest = Guest(
            id=new_id(), appointment_id=appointment.id, label=_valid_label(label),
            link_token=new_link_token(), access_code=new_access_code(),
            created_by=actor, created_at=now,
        )
        changed = replace(appointment, guests=(*appointment.guests, guest), updated_at=now)
        self._save(changed)
        self._index[self._digest(guest.link_token)] = (appointment.id, guest.id)
        self._audit.record(actor, "guest.invite", Visitor(appointment=changed,
                                                          guest=guest).audit_target)
        self._notify(changed)
        return guest

    def guests(self, appointment_id: str) -> tuple[Guest, ...]:
        """The guests invited to the appointment, in the order of invitation."""
        return self.get(appointment_id).guests

    def reissue_guest(self, actor: str, appointment_id: str, guest_id: str) -> Guest:
        """A new link and code for one guest: the old ones stop at once; unlocks, checks out."""
        self._require_staff(actor)
        visitor = self._guest_visitor(appointment_id, guest_id)
        if visitor.appointment.state not in OPEN_STATES:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[visitor.appointment.state]}")
        old = visitor.guest
        assert old is not None
        guest = replace(old, link_token=new_link_token(),
                        access_code=new_access_code(), code_failures=0, link_locked=False,
                        checked_in_name=None, checked_in_at=None, admitted_at=None)
        visitor = self._save_holder(visitor, guest)
        key = visitor.key
        if key in visitor.appointment.removed_from_call:
            appointment = replace(visitor.appointment, removed_from_call=_let_back(
                visitor.appointment.removed_from_call, key))
            self._save(appointment)
            visitor = Visitor(appointment=appointment, guest=guest)
        self._index.pop(self._digest(old.link_token), None)
        self._index[self._digest(guest.link_token)] = (appointment_id, guest.id)
        self._audit.record(actor, "guest.reissue", visitor.audit_target)
        self._notify(visitor.appointment)
        return guest

    def remove_guest(self, actor: str, appointment_id: str, guest_id: str) -> Appointment:
        """Uninvite a guest: their link stops working at once."""
        self._require_staff(actor)
        visitor = self._guest_visitor(appointment_id, guest_id)
        appointment = visitor.appointment
        changed = replace(
            appointment, guests=tuple(g for g in appointment.guests if g.id != guest_id),
            updated_at=self._clock.now())
        self._save(changed)
        self._index.pop(self._digest(visitor.holder.link_token), None)
        self._audit.record(actor, "guest.remove", visitor.audit_target)
        self._notify(changed)
        return changed

    def admit_guest(self, actor: str, appointment_id: str, guest_id: str) -> Guest:
        """Let a checked-in guest into the call: only the appointment's doctor (O3, R2, R3)."""
        appointment = self._own_appointment(actor, appointment_id)
        running = self.current_call(actor)
        if running is not None and running.id != appointment.id:  # R3
            raise Conflict(detail="Sie sind bereits in einer Videosprechstunde")
        if appointment.state not in OPEN_STATES:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        guest = appointment.guest(guest_id)
        if guest is None:
            raise NotFound()
        if guest.checked_in_at is None:
            raise Conflict(detail="die Person hat sich nicht angemeldet")
        admitted = replace(guest, admitted_at=self._clock.now())
        self._save_holder(Visitor(appointment=appointment, guest=guest), admitted)
        self._audit.record(actor, "guest.admit", f"{appointment.id}:{guest.id}")
        return admitted

    def day(self, day: date, tz: tzinfo | None = None) -> list[Appointment]:
        """The appointments starting on ``day`` in ``tz`` (the practice's zone if not given)."""
        zone = tz or self._office.timezone()
        found = [
            appointment
            for appointment in self._all()
            if appointment.start.astimezone(zone).date() == day
        ]
        return sorted(found, key=lambda appointment: (appointment.start, appointment.id))

    def upcoming(self, doctor: str | None = None) -> list[Appointment]:
        """Open appointments not yet over (waiting and running ones always), by start."""
        now = self._clock.now()
        found = [
            appointment
            for appointment in self._all()
            if appointment.state in OPEN_STATES
            and (appointment.state is not _S.SCHEDULED or appointment.end >= now)
            and (doctor is None or appointment.doctor == doctor)
        ]
        return sorted(found, key=lambda appointment: (appointment.start, appointment.id))

    def current_call(self, doctor: str) -> Appointment | None:
        """The appointment ``doctor`` is in a call for right now, if any (R3: at most one)."""
        query = (Query().doctor == doctor) & (Query().state == str(_S.IN_CALL))
        doc = self._table().get(query)
        return None if doc is None else Appointment.from_dict(doc)

    # --- the call -----------------------------------------------------------------------------

    def admit(self, actor: str, appointment_id: str) -> Appointment:
        """Let the waiting patient in: only their own doctor, and only when not in another call."""
        member = self._require_staff(actor)
        if Role.DOCTOR not in member.roles:  # R2: organisational logins never take a call
            raise PermissionDenied()
        appointment = self.get(appointment_id)
        if appointment.doctor != actor:  # O3 and R1: the patient reaches only this doctor
            raise PermissionDenied()
        running = self.current_call(actor)
        if running is not None and running.id != appointment.id:  # R3
            raise Conflict(detail="Sie sind bereits in einer Videosprechstunde")
        return self._move("admit", actor, appointment, admitted_at=self._clock.now())

    def admit_member(self, actor: str, appointment_id: str, key: str) -> None:
        """Let ``key`` (``patient``, ``guest:<id>``) into the call: the patient starts it (unless
        it runs: a return after a drop), a guest joins the running call (O3, R3: the doctor's)."""
        if key == PATIENT_KEY:
            if self.get(appointment_id).state is not _S.IN_CALL:
                self.admit(actor, appointment_id)
        elif key.startswith(GUEST_KEY_PREFIX):
            self.admit_guest(actor, appointment_id, key.removeprefix(GUEST_KEY_PREFIX))

    def end(self, actor: str, appointment_id: str) -> Appointment:
        """End the call: only the appointment's doctor (O3)."""
        appointment = self._own_appointment(actor, appointment_id)
        return self._move("end", actor, appointment, ended_at=self._clock.now(),
                          guests=_out_of_call(appointment.guests))

    def reopen(self, actor: str, appointment_id: str) -> Appointment:
        """Put an ended appointment back into the waiting room: only its doctor."""
        appointment = self._own_appointment(actor, appointment_id)
        return self._move("reopen", actor, appointment, ended_at=None,
                          guests=_out_of_call(appointment.guests), removed_from_call=())

    def remove_from_call(self, actor: str, appointment_id: str, key: str) -> Appointment:
        """The doctor sends ``key`` (``patient``, ``guest:<id>``) out of the call (O3); they stay
        out, also after a restart of the box, until reopened or given a new link."""
        appointment = self._own_appointment(actor, appointment_id)
        if appointment.state is not _S.IN_CALL:  # nobody is kept out of a waiting room
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        if key in appointment.removed_from_call:
            return appointment
        guests = tuple(replace(g, admitted_at=None) if guest_key(g.id) == key else g
                       for g in appointment.guests)
        changed = replace(appointment, removed_from_call=(*appointment.removed_from_call, key),
                          guests=guests, updated_at=self._clock.now())
        self._save(changed)
        guest = changed.guest(key.removeprefix(GUEST_KEY_PREFIX))
        self._audit.record(actor, "appointment.remove_from_call",
                           Visitor(appointment=changed, guest=guest).audit_target)
        self._notify(changed)
        return changed

    def leave_waiting_room(self, appointment_id: str) -> Appointment:
        """The patient left the waiting room (closed the page): back to scheduled."""
        return self._move("leave_waiting_room", PATIENT_ACTOR, self.get(appointment_id))

    def add_state_listener(self, callback: StateListener) -> Callable[[], None]:
        """Call ``callback(appointment)`` after every change; returns the unsubscribe function."""
        self._listeners.append(callback)

        def remove() -> None:
            """Stop calling ``callback``."""
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    # --- patient side -------------------------------------------------------------------------

    def find_visitor(self, token: str) -> Visitor | None:
        """Whose link carries ``token`` (the patient or a guest, with the appointment), or None."""
        if not token or len(token) > 256:
            return None
        digest = self._digest(token)
        entry = self._index.get(digest)
        if entry is None:
            return None
        appointment_id, guest_id = entry
        doc = self._table().get(Query().id == appointment_id)
        appointment = None if doc is None else Appointment.from_dict(doc)
        guest = None if appointment is None or guest_id is None else appointment.guest(guest_id)
        holder = guest if guest_id is not None else appointment
        if appointment is None or holder is None or not hmac.compare_digest(
                holder.link_token.encode(), token.encode()):
            self._index.pop(digest, None)  # purged, reissued or removed behind the index's back
            return None
        return Visitor(appointment=appointment, guest=guest)

    def verify_access(self, token: str, code: str) -> Visitor:
        """Check the access code of any link (patient or guest): expiry, closed states, lockout.

        Every link counts its own wrong codes; the fifth locks that link only (R9).
        """
        visitor = self.find_visitor(token)
        if visitor is None:
            raise NotFound()
        holder = visitor.holder
        if holder.link_locked:
            raise LinkLocked()
        now = self._clock.now()
        appointment = visitor.appointment
        if appointment.state in CLOSED_STATES or now > appointment.code_expires_at:
            raise AppointmentClosed()
        actor, prefix = (PATIENT_ACTOR, "appointment") if visitor.guest is None else (
            GUEST_ACTOR, "guest")
        if not codes_match(holder.access_code, code):
            failures = holder.code_failures + 1
            locked = failures >= MAX_CODE_FAILURES
            self._save_holder(visitor, replace(holder, code_failures=failures,
                                               link_locked=locked))
            action = f"{prefix}.link_locked" if locked else f"{prefix}.code_failed"
            self._audit.record(actor, action, visitor.audit_target)
            _LOGGER.info("wrong access code%s", "; link locked" if locked else "")
            if locked:
                raise LinkLocked()
            raise WrongAccessCode(remaining=MAX_CODE_FAILURES - failures)
        if holder.code_failures:
            visitor = self._save_holder(visitor, replace(holder, code_failures=0))
        return visitor

    def check_in(
        self,
        token: str,
        code: str,
        *,
        full_name: str,
        consent_confirmed: bool,
        rules_confirmed: bool,
    ) -> Appointment:
        """The patient enters the waiting room with their full name (R1) and consent (O1)."""
        visitor = self.verify_access(token, code)
        if visitor.guest is not None:  # a guest's link: ``guest_check_in``
            raise NotFound()
        appointment = visitor.appointment
        name = _confirmed_name(full_name, consent_confirmed, rules_confirmed)
        patient = self._patients.get(appointment.patient_id)
        now = self._clock.now()
        if patient.consent is None:
            self._patients.record_consent(
                PATIENT_ACTOR,
                patient.id,
                given_on=now.astimezone(self._office.timezone()).date(),
                form_version=CONSENT_FORM_VERSION,
                method=ConsentMethod.ONLINE,
            )
        return self._move(
            "check_in",
            PATIENT_ACTOR,
            appointment,
            checked_in_name=name,
            checked_in_at=appointment.checked_in_at
            if appointment.state is _S.WAITING else now,
        )

    def guest_check_in(
        self,
        token: str,
        code: str,
        *,
        full_name: str,
        consent_confirmed: bool,
        rules_confirmed: bool,
    ) -> Visitor:
        """A guest enters the waiting room: full name (O2), consent to take part and the rules.

        Their confirmation is kept as the check-in time only; the patient's consent record
        (O1) is not touched.
        """
        visitor = self.verify_access(token, code)
        if visitor.guest is None:
            raise NotFound()
        name = _confirmed_name(full_name, consent_confirmed, rules_confirmed)
        guest = visitor.guest
        visitor = self._save_holder(visitor, replace(
            guest, checked_in_name=name,
            checked_in_at=guest.checked_in_at or self._clock.now()))
        self._audit.record(GUEST_ACTOR, "guest.check_in", visitor.audit_target)
        self._notify(visitor.appointment)
        return visitor

    def guest_leave(self, appointment_id: str, guest_id: str) -> Visitor:
        """The guest left the waiting room: they check in again to come back."""
        visitor = self._guest_visitor(appointment_id, guest_id)
        assert visitor.guest is not None
        visitor = self._save_holder(visitor, replace(
            visitor.guest, checked_in_name=None, checked_in_at=None))
        self._audit.record(GUEST_ACTOR, "guest.leave", visitor.audit_target)
        self._notify(visitor.appointment)
        return visitor

    # --- index and retention ------------------------------------------------------------------

    def rebuild_index(self) -> None:
        """Recompute the token index from the vault (after unseal): patients' and guests' links."""
        key = self._token_key()
        index: dict[str, tuple[str, str | None]] = {}
        for doc in self._table().all():
            index[token_digest(key, doc["link_token"])] = (doc["id"], None)
            for guest in doc.get("guests", ()):
                index[token_digest(key, guest["link_token"])] = (doc["id"], guest["id"])
        self._index = index

    def forget(self, appointment_ids: Iterable[str]) -> None:
        """Drop deleted appointments (with their guests' links) from the token index."""
        gone = set(appointment_ids)
        self._index = {digest: e for digest, e in self._index.items() if e[0] not in gone}

    # --- internals ----------------------------------------------------------------------------

    def _on_unseal(self, *_: Any) -> None:
        self.rebuild_index()

    def _move(
        self, event: str, actor: str, appointment: Appointment, **changes: Any
    ) -> Appointment:
        sources, target = TRANSITIONS[event]
        if appointment.state not in sources:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        changed = replace(appointment, state=target, updated_at=self._clock.now(), **changes)
        self._save(changed)
        self._audit.record(actor, f"appointment.{event}", appointment.id)
        self._notify(changed)
        return changed

    def _notify(self, appointment: Appointment) -> None:
        for listener in list(self._listeners):
            try:
                listener(appointment)
            except Exception:
                _LOGGER.exception("appointment state listener failed")

    def _own_appointment(self, actor: str, appointment_id: str) -> Appointment:
        member = self._require_staff(actor)
        appointment = self.get(appointment_id)
        if Role.DOCTOR not in member.roles or appointment.doctor != actor:  # O3
            raise PermissionDenied()
        return appointment

    def _require_staff(self, actor: str) -> StaffMember:
        try:
            return self._staff.get(actor)
        except NotFound:
            raise PermissionDenied() from None

    def _require_doctor_field(self, username: str) -> None:
        try:
            member = self._staff.get(username)
        except NotFound:
            member = None
        if member is None or Role.DOCTOR not in member.roles:
            raise InvalidInput(field="doctor", detail="kein Arzt dieser Praxis")

    def _valid_start(self, start: datetime, now: datetime) -> datetime:
        if start.tzinfo is None or start.utcoffset() is None:
            raise InvalidInput(field="start", detail="Zeitangabe ohne Zeitzone")
        if start < now - MAX_START_IN_PAST:
            raise InvalidInput(field="start", detail="liegt mehr als eine Stunde zurück")
        if start > now + MAX_START_AHEAD:
            raise InvalidInput(field="start", detail="liegt mehr als zwei Jahre in der Zukunft")
        return start

    def _token_key(self) -> bytes:
        stored = store.get_setting(self._vault, TOKEN_KEY_SETTING)
        if stored is None:
            key = new_token_key()
            store.put_setting(self._vault, TOKEN_KEY_SETTING, key.hex())
            return key
        return bytes.fromhex(stored)

    def _digest(self, token: str) -> str:
        return token_digest(self._token_key(), token)

    def _table(self) -> Table:
        return self._vault.db.table(store.APPOINTMENTS)

    def _all(self) -> list[Appointment]:
        return [Appointment.from_dict(doc) for doc in self._table().all()]

    def _save(self, appointment: Appointment) -> None:
        self._table().update(appointment.to_dict(), Query().id == appointment.id)

    def _save_holder(self, visitor: Visitor, holder: Appointment | Guest) -> Visitor:
        """Store a changed link holder (the appointment itself, or one of its guests)."""
        now = self._clock.now()
        if isinstance(holder, Appointment):
            appointment, guest = replace(holder, updated_at=now), None
        else:
            guests = tuple(holder if g.id == holder.id else g for g in visitor.appointment.guests)
            appointment, guest = replace(visitor.appointment, guests=guests, updated_at=now), holder
        self._save(appointment)
        return Visitor(appointment=appointment, guest=guest)

    def _guest_visitor(self, appointment_id: str, guest_id: str) -> Visitor:
        appointment = self.get(appointment_id)
        guest = appointment.guest(guest_id)
        if guest is None:
            raise NotFound()
        return Visitor(appointment=appointment, guest=guest)


def guest_key(guest_id: str) -> str:
    """A guest's key in the call."""
    return f"{GUEST_KEY_PREFIX}{guest_id}"


def _let_back(removed: tuple[str, ...], key: str) -> tuple[str, ...]:
    """``removed`` without ``key``: a new link lets that person back."""
    return tuple(k for k in removed if k != key)


def _out_of_call(guests: tuple[Guest, ...]) -> tuple[Guest, ...]:
    """The guests with their admission to a call that is over."""
    return tuple(replace(g, admitted_at=None) for g in guests)


def _confirmed_name(full_name: str, consent_confirmed: bool, rules_confirmed: bool) -> str:
    """The cleaned full name, once consent and rules are confirmed (patient and guests alike)."""
    name = clean_full_name(full_name)
    if consent_confirmed is not True:
        raise InvalidInput(field="consent_confirmed", detail="bitte bestätigen")
    if rules_confirmed is not True:
        raise InvalidInput(field="rules_confirmed", detail="bitte bestätigen")
    return name


def _valid_label(label: str) -> str:
    """What staff call a guest ("Tochter", "Dolmetscher"): short, one line."""
    text = " ".join(label.split()) if isinstance(label, str) else ""
    if not 1 <= len(text) <= MAX_GUEST_LABEL:
        raise InvalidInput(field="label", detail=f"1 bis {MAX_GUEST_LABEL} Zeichen")
    return text


def _valid_duration(minutes: int) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidInput(field="duration_minutes", detail="ganze Minuten")
    if not MIN_DURATION <= minutes <= MAX_DURATION:
        raise InvalidInput(field="duration_minutes",
                           detail=f"{MIN_DURATION} bis {MAX_DURATION} Minuten")
    return minutes
