"""The appointment book: scheduling, links and codes, guests, and where each appointment stands.

The patient's side (link, code, waiting room) is the reception (``reception.py``), the call's
membership is ``calls.py``. Both change appointments only through the book's ways of changing
one (``move``, ``save_holder``, ``save`` and ``notify``), so every change is stored and told to
the state listeners alike.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final

from msgspec.structs import replace
from tinydb import Query
from tinydb.table import Table

from appliance.clock import Clock
from appliance.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from appliance.practice import store
from appliance.practice.access_codes import (
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
    Guest,
    Role,
    StaffMember,
    new_id,
)
from appliance.practice.patients import (
    PatientRegistry,
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
        self.require_staff(actor)
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
        self.require_staff(actor)
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
        self.save(changed)
        self._audit.record(actor, "appointment.edit", appointment_id)
        self.notify(changed)
        return changed

    def cancel(self, actor: str, appointment_id: str) -> Appointment:
        """Cancel the appointment; its link then only says so."""
        self.require_staff(actor)
        return self.move("cancel", actor, self.get(appointment_id))

    def mark_no_show(self, actor: str, appointment_id: str) -> Appointment:
        """Record that the patient did not come."""
        self.require_staff(actor)
        return self.move("no_show", actor, self.get(appointment_id))

    def reissue(self, actor: str, appointment_id: str) -> Appointment:
        """Hand out a new link and code: the old ones stop working at once; unlocks the link."""
        self.require_staff(actor)
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
        self.save(changed)
        self._index.pop(self._digest(appointment.link_token), None)
        self._index[self._digest(changed.link_token)] = (changed.id, None)
        self._audit.record(actor, "appointment.reissue", appointment_id)
        self.notify(changed)
        return changed

    # --- guests (further participants, each with an own link and code) -------------------------

    def invite_guest(self, actor: str, appointment_id: str, *, label: str) -> Guest:
        """Invite a further participant: a fresh link and code; at most ``MAX_GUESTS``."""
        self.require_staff(actor)
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
        self.save(changed)
        self._index[self._digest(guest.link_token)] = (appointment.id, guest.id)
        self._audit.record(actor, "guest.invite", Visitor(appointment=changed,
                                                          guest=guest).audit_target)
        self.notify(changed)
        return guest

    def guests(self, appointment_id: str) -> tuple[Guest, ...]:
        """The guests invited to the appointment, in the order of invitation."""
        return self.get(appointment_id).guests

    def reissue_guest(self, actor: str, appointment_id: str, guest_id: str) -> Guest:
        """A new link and code for one guest: the old ones stop at once; unlocks, checks out."""
        self.require_staff(actor)
        visitor = self.guest_visitor(appointment_id, guest_id)
        if visitor.appointment.state not in OPEN_STATES:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[visitor.appointment.state]}")
        old = visitor.guest
        assert old is not None
        guest = replace(old, link_token=new_link_token(),
                        access_code=new_access_code(), code_failures=0, link_locked=False,
                        checked_in_name=None, checked_in_at=None, admitted_at=None)
        visitor = self.save_holder(visitor, guest)
        key = visitor.key
        if key in visitor.appointment.removed_from_call:
            appointment = replace(visitor.appointment, removed_from_call=_let_back(
                visitor.appointment.removed_from_call, key))
            self.save(appointment)
            visitor = Visitor(appointment=appointment, guest=guest)
        self._index.pop(self._digest(old.link_token), None)
        self._index[self._digest(guest.link_token)] = (appointment_id, guest.id)
        self._audit.record(actor, "guest.reissue", visitor.audit_target)
        self.notify(visitor.appointment)
        return guest

    def remove_guest(self, actor: str, appointment_id: str, guest_id: str) -> Appointment:
        """Uninvite a guest: their link stops working at once."""
        self.require_staff(actor)
        visitor = self.guest_visitor(appointment_id, guest_id)
        appointment = visitor.appointment
        changed = replace(
            appointment, guests=tuple(g for g in appointment.guests if g.id != guest_id),
            updated_at=self._clock.now())
        self.save(changed)
        self._index.pop(self._digest(visitor.holder.link_token), None)
        self._audit.record(actor, "guest.remove", visitor.audit_target)
        self.notify(changed)
        return changed

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

    # --- the book's ways of changing an appointment (the reception's and the calls' too) -----

    def move(
        self, event: str, actor: str, appointment: Appointment, **changes: Any
    ) -> Appointment:
        """Move ``appointment`` by ``event`` of ``TRANSITIONS``: saved, audited, told."""
        sources, target = TRANSITIONS[event]
        if appointment.state not in sources:
            raise Conflict(detail=f"der Termin ist {STATE_WORDS[appointment.state]}")
        changed = replace(appointment, state=target, updated_at=self._clock.now(), **changes)
        self.save(changed)
        self._audit.record(actor, f"appointment.{event}", appointment.id)
        self.notify(changed)
        return changed

    def save(self, appointment: Appointment) -> None:
        """Store a changed appointment (the caller audits and tells the listeners)."""
        self._table().update(appointment.to_dict(), Query().id == appointment.id)

    def save_holder(self, visitor: Visitor, holder: Appointment | Guest) -> Visitor:
        """Store a changed link holder (the appointment itself, or one of its guests)."""
        now = self._clock.now()
        if isinstance(holder, Appointment):
            appointment, guest = replace(holder, updated_at=now), None
        else:
            guests = tuple(holder if g.id == holder.id else g for g in visitor.appointment.guests)
            appointment, guest = replace(visitor.appointment, guests=guests, updated_at=now), holder
        self.save(appointment)
        return Visitor(appointment=appointment, guest=guest)

    def notify(self, appointment: Appointment) -> None:
        """Tell the state listeners (the dashboards' event stream) of a change."""
        for listener in list(self._listeners):
            try:
                listener(appointment)
            except Exception:
                _LOGGER.exception("appointment state listener failed")

    def guest_visitor(self, appointment_id: str, guest_id: str) -> Visitor:
        """One guest of the appointment, with it; ``NotFound`` if not invited (any more)."""
        appointment = self.get(appointment_id)
        guest = appointment.guest(guest_id)
        if guest is None:
            raise NotFound()
        return Visitor(appointment=appointment, guest=guest)

    def own_appointment(self, actor: str, appointment_id: str) -> Appointment:
        """The appointment, if ``actor`` is its doctor (O3); else ``PermissionDenied``."""
        member = self.require_staff(actor)
        appointment = self.get(appointment_id)
        if Role.DOCTOR not in member.roles or appointment.doctor != actor:  # O3
            raise PermissionDenied()
        return appointment

    def require_staff(self, actor: str) -> StaffMember:
        """The staff member ``actor``; ``PermissionDenied`` for anyone else."""
        try:
            return self._staff.get(actor)
        except NotFound:
            raise PermissionDenied() from None

    # --- internals ----------------------------------------------------------------------------

    def _on_unseal(self, *_: Any) -> None:
        self.rebuild_index()

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


def guest_key(guest_id: str) -> str:
    """A guest's key in the call."""
    return f"{GUEST_KEY_PREFIX}{guest_id}"


def _let_back(removed: tuple[str, ...], key: str) -> tuple[str, ...]:
    """``removed`` without ``key``: a new link lets that person back."""
    return tuple(k for k in removed if k != key)




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
