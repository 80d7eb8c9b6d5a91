"""The practice's records. Each record's fields are declared once, as a frozen ``msgspec``
struct: its stored form (``to_dict``), the check of stored data (``from_dict``) and the API's
JSON schema all derive from the declaration."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Self

import msgspec

#: the patient's code keeps working this long after the appointment's planned end
CODE_GRACE: Final = timedelta(hours=2)


class Role(StrEnum):
    """What a staff member may do (R2: only a doctor consults)."""

    DOCTOR = "doctor"
    ASSISTANT = "assistant"
    ADMIN = "admin"


class AppointmentState(StrEnum):
    """Where an appointment stands; the allowed moves are in ``appointments.TRANSITIONS``."""

    SCHEDULED = "scheduled"
    WAITING = "waiting"
    IN_CALL = "in_call"
    ENDED = "ended"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


#: states in which link and code no longer let anybody in
CLOSED_STATES: Final = frozenset({AppointmentState.ENDED, AppointmentState.CANCELLED,
                                  AppointmentState.NO_SHOW})
#: not over yet: its doctor and its patient stay
OPEN_STATES: Final = frozenset(AppointmentState) - CLOSED_STATES


class ConsentMethod(StrEnum):
    """How a patient's consent to video consultations was obtained (O1)."""

    #: a paper form signed by the patient
    WRITTEN = "written"
    #: given orally and documented by staff
    VERBAL = "verbal"
    #: confirmed by the patient on the patient page before joining
    ONLINE = "online"


def to_utc_text(moment: datetime) -> str:
    """A timezone-aware datetime as an ISO string in UTC (naive datetimes are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat()


def from_utc_text(text: str) -> datetime:
    """The timezone-aware datetime stored by ``to_utc_text``."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC)


#: a moment in time; stored in UTC, a time without a zone is refused
Moment = Annotated[datetime, msgspec.Meta(tz=True)]


def _stored(value: Any) -> Any:
    """``msgspec.to_builtins`` output with times as ``to_utc_text`` and days as ISO dates."""
    if isinstance(value, datetime):
        return to_utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(item) for item in value]
    return value


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A record of the practice, kept in the vault as plain JSON data."""

    #: fields whose values ``repr`` leaves out: names, contact data, links and codes
    _private: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data (sets sorted, times in UTC)."""
        return _stored(msgspec.to_builtins(self, builtin_types=(datetime, date),
                                           order="deterministic"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The record from ``to_dict`` data; keys it does not know are ignored.

        Raises ``msgspec.ValidationError`` (a ``ValueError``) for data of another shape."""
        return msgspec.convert(data, cls)

    def __repr__(self) -> str:
        shown = (f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__
                 if name not in self._private)
        return f"{type(self).__name__}({', '.join(shown)})"


#: the practice's time zone unless its profile says otherwise
DEFAULT_TIMEZONE: Final = "Europe/Berlin"


class PracticeProfile(Record, frozen=True, kw_only=True):
    """The practice as the KV knows it, and where patients reach the box."""

    name: str
    bsnr: str
    street: str
    postal_code: str
    city: str
    kv_region: str
    timezone: str = DEFAULT_TIMEZONE
    public_urls: tuple[str, ...] = ()


class StaffMember(Record, frozen=True, kw_only=True):
    """A person of the practice with a login; ``username`` is also their vault member id."""

    username: str
    display_name: str
    roles: frozenset[Role]
    lanr: str | None = None
    totp_enabled: bool = False
    created_at: Moment

    def has_role(self, role: Role) -> bool:
        """Whether this member holds ``role``."""
        return role in self.roles


class Consent(Record, frozen=True, kw_only=True):
    """A patient's consent to video consultations: when, which form, how, and who recorded it."""

    given_on: date
    form_version: str
    method: ConsentMethod
    recorded_by: str
    recorded_at: Moment


class Patient(Record, frozen=True, kw_only=True):
    """Who an appointment is for: contact data and consent, never medical content."""

    _private = frozenset({"full_name", "email", "phone"})

    id: str
    full_name: str
    email: str | None = None
    phone: str | None = None
    consent: Consent | None = None
    created_at: Moment


class Guest(Record, frozen=True, kw_only=True):
    """A further participant of one appointment (relative, interpreter, colleague), by own link.

    ``label`` is what staff call them ("Tochter", "Dolmetscher"); the name they type in at
    check-in is shown in the call (O2). Their confirmation of consent and rules is kept as a
    time only: it is not the patient's consent record (O1).
    """

    _private = frozenset({"link_token", "access_code", "checked_in_name"})

    id: str
    appointment_id: str
    label: str
    link_token: str
    access_code: str
    code_failures: int = 0
    link_locked: bool = False
    checked_in_name: str | None = None
    checked_in_at: Moment | None = None
    #: when the doctor let them into the running call (cleared when the call ends)
    admitted_at: Moment | None = None
    created_by: str
    created_at: Moment


class Appointment(Record, frozen=True, kw_only=True):
    """A video consultation of one patient with one doctor, opened by link token and code."""

    _private = frozenset({"link_token", "access_code", "checked_in_name"})

    id: str
    doctor: str
    patient_id: str
    start: Moment
    duration_minutes: int
    state: AppointmentState = AppointmentState.SCHEDULED
    link_token: str
    access_code: str
    code_failures: int = 0
    link_locked: bool = False
    #: the full name the patient typed in before waiting (R1: the doctor sees it)
    checked_in_name: str | None = None
    checked_in_at: Moment | None = None
    admitted_at: Moment | None = None
    ended_at: Moment | None = None
    #: further participants with their own links (at most ``appointments.MAX_GUESTS``)
    guests: tuple[Guest, ...] = ()
    #: whom the doctor sent out of the running call (``patient``, ``guest:<id>``): they stay out
    #: until the doctor reopens the appointment or staff issue that person a new link
    removed_from_call: tuple[str, ...] = ()
    created_by: str
    created_at: Moment
    updated_at: Moment

    @property
    def end(self) -> datetime:
        """The planned end."""
        return self.start + timedelta(minutes=self.duration_minutes)

    @property
    def code_expires_at(self) -> datetime:
        """When link and code stop working: the planned end plus ``CODE_GRACE``."""
        return self.end + CODE_GRACE

    def guest(self, guest_id: str) -> Guest | None:
        """The guest with ``guest_id``, if invited (and not removed)."""
        return next((guest for guest in self.guests if guest.id == guest_id), None)


class AuditEntry(Record, frozen=True, kw_only=True):
    """One link of the audit chain: who did what to which id, when — never content."""

    seq: int
    at: Moment
    actor: str
    action: str
    target: str | None
    prev_hash: str
    hash: str


def new_id() -> str:
    """A fresh random record id (64 bit, hex)."""
    return secrets.token_hex(8)
