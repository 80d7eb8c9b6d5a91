"""The practice's records: frozen dataclasses with ``to_dict`` / ``from_dict`` for the vault."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Self

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


def _opt_to(moment: datetime | None) -> str | None:
    return None if moment is None else to_utc_text(moment)


def _opt_from(text: str | None) -> datetime | None:
    return None if text is None else from_utc_text(text)


#: the practice's time zone unless its profile says otherwise
DEFAULT_TIMEZONE: Final = "Europe/Berlin"


@dataclass(frozen=True, kw_only=True)
class PracticeProfile:
    """The practice as the KV knows it, and where patients reach the box."""

    name: str
    bsnr: str
    street: str
    postal_code: str
    city: str
    kv_region: str
    timezone: str = DEFAULT_TIMEZONE
    public_urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON data."""
        return {
            "name": self.name,
            "bsnr": self.bsnr,
            "street": self.street,
            "postal_code": self.postal_code,
            "city": self.city,
            "kv_region": self.kv_region,
            "timezone": self.timezone,
            "public_urls": list(self.public_urls),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The profile from ``to_dict`` data."""
        return cls(
            name=data["name"],
            bsnr=data["bsnr"],
            street=data["street"],
            postal_code=data["postal_code"],
            city=data["city"],
            kv_region=data["kv_region"],
            timezone=data["timezone"],
            public_urls=tuple(data["public_urls"]),
        )


@dataclass(frozen=True, kw_only=True)
class StaffMember:
    """A person of the practice with a login; ``username`` is also their vault member id."""

    username: str
    display_name: str
    roles: frozenset[Role]
    lanr: str | None = None
    totp_enabled: bool = False
    created_at: datetime

    def has_role(self, role: Role) -> bool:
        """Whether this member holds ``role``."""
        return role in self.roles

    def to_dict(self) -> dict[str, Any]:
        """The member as plain JSON data."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "roles": sorted(str(role) for role in self.roles),
            "lanr": self.lanr,
            "totp_enabled": self.totp_enabled,
            "created_at": to_utc_text(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The member from ``to_dict`` data (extra keys are ignored)."""
        return cls(
            username=data["username"],
            display_name=data["display_name"],
            roles=frozenset(Role(role) for role in data["roles"]),
            lanr=data.get("lanr"),
            totp_enabled=bool(data.get("totp_enabled", False)),
            created_at=from_utc_text(data["created_at"]),
        )


@dataclass(frozen=True, kw_only=True)
class Consent:
    """A patient's consent to video consultations: when, which form, how, and who recorded it."""

    given_on: date
    form_version: str
    method: ConsentMethod
    recorded_by: str
    recorded_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The consent as plain JSON data."""
        return {
            "given_on": self.given_on.isoformat(),
            "form_version": self.form_version,
            "method": str(self.method),
            "recorded_by": self.recorded_by,
            "recorded_at": to_utc_text(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The consent from ``to_dict`` data."""
        return cls(
            given_on=date.fromisoformat(data["given_on"]),
            form_version=data["form_version"],
            method=ConsentMethod(data["method"]),
            recorded_by=data["recorded_by"],
            recorded_at=from_utc_text(data["recorded_at"]),
        )


@dataclass(frozen=True, kw_only=True)
class Patient:
    """Who an appointment is for: contact data and consent, never medical content."""

    id: str
    full_name: str = field(repr=False)
    email: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    consent: Consent | None = None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The patient as plain JSON data."""
        return {
            "id": self.id,
            "full_name": self.full_name,
            "email": self.email,
            "phone": self.phone,
            "consent": None if self.consent is None else self.consent.to_dict(),
            "created_at": to_utc_text(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The patient from ``to_dict`` data."""
        consent = data.get("consent")
        return cls(
            id=data["id"],
            full_name=data["full_name"],
            email=data.get("email"),
            phone=data.get("phone"),
            consent=None if consent is None else Consent.from_dict(consent),
            created_at=from_utc_text(data["created_at"]),
        )


@dataclass(frozen=True, kw_only=True)
class Guest:
    """A further participant of one appointment (relative, interpreter, colleague), by own link.

    ``label`` is what staff call them ("Tochter", "Dolmetscher"); the name they type in at
    check-in is shown in the call (O2). Their confirmation of consent and rules is kept as a
    time only: it is not the patient's consent record (O1).
    """

    id: str
    appointment_id: str
    label: str
    link_token: str = field(repr=False)
    access_code: str = field(repr=False)
    code_failures: int = 0
    link_locked: bool = False
    checked_in_name: str | None = field(default=None, repr=False)
    checked_in_at: datetime | None = None
    #: when the doctor let them into the running call (cleared when the call ends)
    admitted_at: datetime | None = None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The guest as plain JSON data."""
        return {
            "id": self.id,
            "appointment_id": self.appointment_id,
            "label": self.label,
            "link_token": self.link_token,
            "access_code": self.access_code,
            "code_failures": self.code_failures,
            "link_locked": self.link_locked,
            "checked_in_name": self.checked_in_name,
            "checked_in_at": _opt_to(self.checked_in_at),
            "admitted_at": _opt_to(self.admitted_at),
            "created_by": self.created_by,
            "created_at": to_utc_text(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The guest from ``to_dict`` data."""
        return cls(
            id=data["id"],
            appointment_id=data["appointment_id"],
            label=data["label"],
            link_token=data["link_token"],
            access_code=data["access_code"],
            code_failures=int(data["code_failures"]),
            link_locked=bool(data["link_locked"]),
            checked_in_name=data.get("checked_in_name"),
            checked_in_at=_opt_from(data.get("checked_in_at")),
            admitted_at=_opt_from(data.get("admitted_at")),
            created_by=data["created_by"],
            created_at=from_utc_text(data["created_at"]),
        )


@dataclass(frozen=True, kw_only=True)
class Appointment:
    """A video consultation of one patient with one doctor, opened by link token and code."""

    id: str
    doctor: str
    patient_id: str
    start: datetime
    duration_minutes: int
    state: AppointmentState = AppointmentState.SCHEDULED
    link_token: str = field(repr=False)
    access_code: str = field(repr=False)
    code_failures: int = 0
    link_locked: bool = False
    #: the full name the patient typed in before waiting (R1: the doctor sees it)
    checked_in_name: str | None = field(default=None, repr=False)
    checked_in_at: datetime | None = None
    admitted_at: datetime | None = None
    ended_at: datetime | None = None
    #: further participants with their own links (at most ``appointments.MAX_GUESTS``)
    guests: tuple[Guest, ...] = ()
    #: whom the doctor sent out of the running call (``patient``, ``guest:<id>``): they stay out
    #: until the doctor reopens the appointment or staff issue that person a new link
    removed_from_call: tuple[str, ...] = ()
    created_by: str
    created_at: datetime
    updated_at: datetime

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

    def to_dict(self) -> dict[str, Any]:
        """The appointment as plain JSON data."""
        return {
            "id": self.id,
            "doctor": self.doctor,
            "patient_id": self.patient_id,
            "start": to_utc_text(self.start),
            "duration_minutes": self.duration_minutes,
            "state": str(self.state),
            "link_token": self.link_token,
            "access_code": self.access_code,
            "code_failures": self.code_failures,
            "link_locked": self.link_locked,
            "checked_in_name": self.checked_in_name,
            "checked_in_at": _opt_to(self.checked_in_at),
            "admitted_at": _opt_to(self.admitted_at),
            "ended_at": _opt_to(self.ended_at),
            "guests": [guest.to_dict() for guest in self.guests],
            "removed_from_call": list(self.removed_from_call),
            "created_by": self.created_by,
            "created_at": to_utc_text(self.created_at),
            "updated_at": to_utc_text(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The appointment from ``to_dict`` data."""
        return cls(
            id=data["id"],
            doctor=data["doctor"],
            patient_id=data["patient_id"],
            start=from_utc_text(data["start"]),
            duration_minutes=int(data["duration_minutes"]),
            state=AppointmentState(data["state"]),
            link_token=data["link_token"],
            access_code=data["access_code"],
            code_failures=int(data["code_failures"]),
            link_locked=bool(data["link_locked"]),
            checked_in_name=data.get("checked_in_name"),
            checked_in_at=_opt_from(data.get("checked_in_at")),
            admitted_at=_opt_from(data.get("admitted_at")),
            ended_at=_opt_from(data.get("ended_at")),
            guests=tuple(Guest.from_dict(guest) for guest in data.get("guests", ())),
            removed_from_call=tuple(data.get("removed_from_call", ())),
            created_by=data["created_by"],
            created_at=from_utc_text(data["created_at"]),
            updated_at=from_utc_text(data["updated_at"]),
        )


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One link of the audit chain: who did what to which id, when — never content."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain JSON data."""
        return {
            "seq": self.seq,
            "at": to_utc_text(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The entry from ``to_dict`` data."""
        return cls(
            seq=int(data["seq"]),
            at=from_utc_text(data["at"]),
            actor=data["actor"],
            action=data["action"],
            target=data.get("target"),
            prev_hash=data["prev_hash"],
            hash=data["hash"],
        )


def new_id() -> str:
    """A fresh random record id (64 bit, hex)."""
    return secrets.token_hex(8)
