"""What the staff API's resources share: the API form of the practice's records, times in the
practice's zone, the password check's work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from appliance.errors import InvalidInput, NotFound
from appliance.practice.models import (
    DEFAULT_TIMEZONE,
    Appointment,
    AppointmentState,
    Guest,
    PracticeProfile,
    StaffMember,
)
from appliance.practice.profile import KV_REGIONS
from appliance.practice.services import PracticeServices
from appliance.web.api import read_body
from appliance.web.auth import PASSWORD_WORK, current_staff
from appliance.web.context import (
    BOX_LOCK,
    EVENTS,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PROPOSED_PUBLIC_URLS,
    SERVICES,
)
from appliance.web.public import link_of
from appliance.web.schema import DisplayName, Form, Password, TotpCode, View
from appliance.web.security import client_address

T = TypeVar("T")


#: one of the 17 Kassenärztliche Vereinigungen, by its code
KvRegion = Literal[tuple(KV_REGIONS)]  # type: ignore[valid-type]
#: where patients reach the box, as typed in (at least eight characters that are not spaces)
PublicUrl = Annotated[str, msgspec.Meta(min_length=8, max_length=300,
                                        pattern=r"\S[\s\S]{6,}\S")]


class ProfileForm(Form, frozen=True, kw_only=True):
    """The practice's profile as the onboarding and the settings send it."""

    name: DisplayName
    bsnr: Annotated[str, msgspec.Meta(min_length=9, max_length=9)]
    street: Annotated[str, msgspec.Meta(max_length=200)]
    postal_code: Annotated[str, msgspec.Meta(max_length=5)]
    city: Annotated[str, msgspec.Meta(max_length=100)]
    kv_region: KvRegion
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = ""
    public_urls: Annotated[list[PublicUrl], msgspec.Meta(max_length=8)]

    def profile(self) -> PracticeProfile:
        """The profile as typed (the practice office cleans and checks it when saving)."""
        return PracticeProfile(
            name=self.name.strip(), bsnr=self.bsnr.strip(), street=self.street.strip(),
            postal_code=self.postal_code.strip(), city=self.city.strip(),
            kv_region=self.kv_region, timezone=self.timezone.strip() or DEFAULT_TIMEZONE,
            public_urls=tuple(url.strip().rstrip("/") for url in self.public_urls))


class PasswordProof(Form, frozen=True, kw_only=True):
    """A change that asks for the member's password again."""

    password: Password


class TotpProof(PasswordProof, frozen=True, kw_only=True):
    """The password and, while a second factor is on, a current code: to set up, replace or
    switch off the second factor, or to change the vault's keys."""

    totp: TotpCode = ""


F = TypeVar("F", bound=PasswordProof)


class GuestView(View, frozen=True, kw_only=True):
    """A guest as staff see them: link and code to hand on, like the patient's."""

    id: str
    label: str
    link: str
    access_code: str
    code_failures: int
    link_locked: bool
    checked_in_name: str | None
    checked_in_at: datetime | None
    created_at: datetime


class AppointmentView(View, frozen=True, kw_only=True):
    """An appointment as staff see it: with link and code (they live in the vault), names of
    doctor and patient, and times in the practice's zone."""

    id: str
    doctor: str
    doctor_name: str
    patient_id: str
    patient_name: str
    patient_has_consent: bool
    start: datetime
    end: datetime
    duration_minutes: int
    state: AppointmentState
    link: str
    access_code: str
    code_failures: int
    link_locked: bool
    checked_in_name: str | None
    checked_in_at: datetime | None
    code_expires_at: datetime
    guests: list[GuestView]


def services_of(request: web.Request) -> PracticeServices:
    return request.app[SERVICES]


def practice_timezone(services: PracticeServices) -> ZoneInfo:
    """The practice's zone; the default while sealed (the profile is in the vault)."""
    return ZoneInfo(DEFAULT_TIMEZONE) if services.vault.sealed else services.office.timezone()


def parse_start(text: str, tz: ZoneInfo) -> datetime:
    """A :data:`LocalTime`; without an offset it is the practice's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # the form's pattern passed it: e.g. the 30th of February
        raise InvalidInput(field="start", detail="kein gültiges Datum") from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def local(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    """``moment`` in the practice's zone."""
    return moment.astimezone(tz) if moment else None


def patient_site(request: web.Request) -> str:
    """Where patients' links point: the practice's first public address, else the configured."""
    return services_of(request).office.public_url() or request.app[PROPOSED_PUBLIC_URLS][0]


def appointment_view(request: web.Request, appt: Appointment) -> AppointmentView:
    """An appointment as staff see it."""
    services = services_of(request)
    tz = practice_timezone(services)
    doctor = maybe(services.staff.get, appt.doctor)
    patient = maybe(services.patients.get, appt.patient_id)
    return AppointmentView(
        id=appt.id, doctor=appt.doctor,
        doctor_name=doctor.display_name if doctor else appt.doctor,
        patient_id=appt.patient_id, patient_name=patient.full_name if patient else "",
        patient_has_consent=bool(patient and patient.consent),
        start=appt.start.astimezone(tz), end=appt.end.astimezone(tz),
        duration_minutes=appt.duration_minutes, state=appt.state,
        link=link_of(patient_site(request), appt), access_code=appt.access_code,
        code_failures=appt.code_failures, link_locked=appt.link_locked,
        checked_in_name=appt.checked_in_name, checked_in_at=local(appt.checked_in_at, tz),
        code_expires_at=appt.code_expires_at.astimezone(tz),
        guests=[guest_view(request, guest) for guest in appt.guests],
    )


def guest_view(request: web.Request, guest: Guest) -> GuestView:
    """A guest as staff see them."""
    tz = practice_timezone(services_of(request))
    return GuestView(
        id=guest.id, label=guest.label, link=link_of(patient_site(request), guest),
        access_code=guest.access_code, code_failures=guest.code_failures,
        link_locked=guest.link_locked, checked_in_name=guest.checked_in_name,
        checked_in_at=local(guest.checked_in_at, tz), created_at=guest.created_at.astimezone(tz),
    )


def maybe(getter: Callable[[str], T], key: str) -> T | None:
    """``getter(key)``, or None where it is gone (e.g. a removed member)."""
    try:
        return getter(key)
    except NotFound:
        return None


def publish(request: web.Request, appt: Appointment) -> None:
    request.app[EVENTS].publish({"type": "appointment", "id": appt.id})


async def prepare_password_check(request: web.Request, username: str, password: str) -> None:
    """Argon2id (~0.25 s, 128 MiB) in a worker thread, not on the event loop that carries every
    page's signaling; at most two at once, so that a flood of logins cannot exhaust memory;
    none at all for a name locked from this address."""
    staff = services_of(request).staff
    staff.check_not_locked(username, source=login_source(request))
    await asyncio.get_running_loop().run_in_executor(
        PASSWORD_WORK, staff.prepare_password_check, username, password)


def login_source(request: web.Request) -> str:
    """Where a password is tried from, for the lockout: the known PC, else the address."""
    return request.app[KNOWN_DEVICES].source(request) or client_address(request)


class BoxLockState(View, frozen=True, kw_only=True):
    """Whether an admin's lock waits, and when the box locks itself."""

    pending: bool
    #: the night's span in practice time, e.g. "22:00–06:00" (null: not by the clock)
    hours: str | None
    #: hours without any staff session after which the box locks (0: never)
    idle_hours: int


def box_lock_state(request: web.Request) -> BoxLockState:
    """Whether an admin's lock waits, and when the box locks itself."""
    lock = request.app[BOX_LOCK]
    hours = None if lock.hours is None else "–".join(
        moment.strftime("%H:%M") for moment in lock.hours)
    return BoxLockState(pending=lock.pending, hours=hours, idle_hours=lock.idle_hours)


async def reauthentication(request: web.Request, form: type[F]) -> tuple[StaffMember, F]:
    """The actor and the body of a change that asks for the password again: limited and
    locked out like a login, the Argon2id work off the event loop."""
    _, actor = current_staff(request)
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, form)
    await prepare_password_check(request, actor.username, data.password)
    return actor, data
