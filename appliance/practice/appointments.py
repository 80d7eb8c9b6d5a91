"""The appointment book: scheduling, the patient's way in by link and code, the call's states."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
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
    Appointment,
    AppointmentState,
    ConsentMethod,
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
#: states in which link and code no longer let the patient in
CLOSED_STATES: Final = frozenset({_S.ENDED, _S.CANCELLED, _S.NO_SHOW})
OPEN_STATES: Final = frozenset({_S.SCHEDULED, _S.WAITING, _S.IN_CALL})
#: a new link and code can be handed out in these states (not during a call, not when gone)
REISSUE_STATES: Final = frozenset({_S.SCHEDULED, _S.WAITING, _S.ENDED})
#: the fifth wrong code locks the link until the practice reissues it (R9)
MAX_CODE_FAILURES: Final = 5
MIN_DURATION: Final = 5
MAX_DURATION: Final = 180
#: an appointment may be entered late, but not for a start longer ago than this
MAX_START_IN_PAST: Final = timedelta(hours=1)
#: and not further ahead than this (a typo in the year would keep data far beyond R8)
MAX_START_AHEAD: Final = timedelta(days=2 * 366)
TOKEN_KEY_SETTING: Final = "link_token_key"
DEFAULT_PUBLIC_URL: Final = "http://127.0.0.1:8081"

StateListener = Callable[[Appointment], None]


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
        *,
        default_public_url: str = DEFAULT_PUBLIC_URL,
    ) -> None:
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._staff = staff
        self._patients = patients
        self._office = office
        self._default_public_url = default_public_url.rstrip("/")
        #: token digest → appointment id; the tokens themselves are only in the vault
        self._index: dict[str, str] = {}
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
        self._index[self._digest(appointment.link_token)] = appointment.id
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
        if appointment.state is not _S.SCHEDULED:
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
            updated_at=self._clock.now(),
        )
        self._save(changed)
        self._index.pop(self._digest(appointment.link_token), None)
        self._index[self._digest(changed.link_token)] = changed.id
        self._audit.record(actor, "appointment.reissue", appointment_id)
        self._notify(changed)
        return changed

    def link(self, appointment: Appointment) -> str:
        """The patient's link: the practice's first public address, ``/v/``, the token."""
        base = self._office.public_url() or self._default_public_url
        return f"{base.rstrip('/')}/v/{appointment.link_token}"

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

    def end(self, actor: str, appointment_id: str) -> Appointment:
        """End the call: only the appointment's doctor (O3)."""
        appointment = self._own_appointment(actor, appointment_id)
        return self._move("end", actor, appointment, ended_at=self._clock.now())

    def reopen(self, actor: str, appointment_id: str) -> Appointment:
        """Put an ended appointment back into the waiting room: only its doctor."""
        appointment = self._own_appointment(actor, appointment_id)
        return self._move("reopen", actor, appointment, ended_at=None)

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

    def find_by_token(self, token: str) -> Appointment | None:
        """The appointment whose link carries ``token``, or ``None``."""
        if not token or len(token) > 256:
            return None
        digest = self._digest(token)
        appointment_id = self._index.get(digest)
        if appointment_id is None:
            return None
        doc = self._table().get(Query().id == appointment_id)
        if doc is None or not hmac.compare_digest(doc["link_token"].encode(), token.encode()):
            self._index.pop(digest, None)  # purged or reissued behind the index's back
            return None
        return Appointment.from_dict(doc)

    def verify_code(self, token: str, code: str) -> Appointment:
        """Check the patient's access code for the link ``token``; counts and locks on failures."""
        appointment = self.find_by_token(token)
        if appointment is None:
            raise NotFound()
        if appointment.link_locked:
            raise LinkLocked()
        now = self._clock.now()
        if appointment.state in CLOSED_STATES or now > appointment.code_expires_at:
            raise AppointmentClosed()
        if not codes_match(appointment.access_code, code):
            failures = appointment.code_failures + 1
            locked = failures >= MAX_CODE_FAILURES
            self._save(replace(appointment, code_failures=failures, link_locked=locked,
                               updated_at=now))
            action = "appointment.link_locked" if locked else "appointment.code_failed"
            self._audit.record(PATIENT_ACTOR, action, appointment.id)
            _LOGGER.info("wrong access code%s", "; link locked" if locked else "")
            if locked:
                raise LinkLocked()
            raise WrongAccessCode(remaining=MAX_CODE_FAILURES - failures)
        if appointment.code_failures:
            appointment = replace(appointment, code_failures=0, updated_at=now)
            self._save(appointment)
        return appointment

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
        appointment = self.verify_code(token, code)
        name = clean_full_name(full_name)
        if consent_confirmed is not True:
            raise InvalidInput(field="consent_confirmed", detail="bitte bestätigen")
        if rules_confirmed is not True:
            raise InvalidInput(field="rules_confirmed", detail="bitte bestätigen")
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

    # --- index and retention ------------------------------------------------------------------

    def rebuild_index(self) -> None:
        """Recompute the token index from the vault (after unseal)."""
        key = self._token_key()
        self._index = {
            token_digest(key, doc["link_token"]): doc["id"] for doc in self._table().all()
        }

    def forget(self, appointment_ids: Iterable[str]) -> None:
        """Drop deleted appointments from the token index."""
        gone = set(appointment_ids)
        self._index = {digest: i for digest, i in self._index.items() if i not in gone}

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


def _valid_duration(minutes: int) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidInput(field="duration_minutes", detail="ganze Minuten")
    if not MIN_DURATION <= minutes <= MAX_DURATION:
        raise InvalidInput(field="duration_minutes",
                           detail=f"{MIN_DURATION} bis {MAX_DURATION} Minuten")
    return minutes
