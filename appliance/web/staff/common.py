"""What the staff API's resources share: the API form of the practice's records, times in the
practice's zone, the password check's work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web

from appliance.errors import NotFound
from appliance.practice.models import (
    DEFAULT_TIMEZONE,
    Appointment,
    AppointmentState,
    Guest,
    Patient,
    Role,
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
from appliance.web.schema import array, boolean, integer, obj, string
from appliance.web.security import client_address

T = TypeVar("T")


ROLE_NAMES: Final = [role.value for role in Role]
STATE_NAMES: Final = [state.value for state in AppointmentState]


PROFILE = obj({
    "name": string(min_length=1, max_length=200),
    "bsnr": string(min_length=9, max_length=9),
    "street": string(max_length=200),
    "postal_code": string(max_length=5),
    "city": string(max_length=100),
    "kv_region": string(enum=list(KV_REGIONS)),
    "timezone": string(max_length=64),
    "public_urls": array(string(min_length=8, max_length=300), max_items=8),
}, required=("name", "bsnr", "street", "postal_code", "city", "kv_region", "public_urls"))


PROFILE_OUT = {**PROFILE, "required": [*PROFILE["required"], "timezone"]}


MEMBER = obj({
    "username": string(), "display_name": string(), "roles": array(string(enum=ROLE_NAMES)),
    "lanr": string(nullable=True), "totp_enabled": boolean(),
}, required=("username", "display_name", "roles", "lanr", "totp_enabled"))


#: the password and, while a second factor is on, a current code: to set up, replace or switch
#: off the second factor
TOTP_PROOF = obj({
    "password": string(min_length=1, max_length=1000),
    "totp": string(max_length=10),
}, required=("password",))


CONSENT = obj({
    "given_on": string(fmt="date"), "form_version": string(), "method": string(),
    "recorded_by": string(), "recorded_at": string(),
}, required=("given_on", "form_version", "method", "recorded_by", "recorded_at"), nullable=True)


PATIENT = obj({
    "id": string(), "full_name": string(), "email": string(nullable=True),
    "phone": string(nullable=True), "consent": CONSENT, "created_at": string(),
}, required=("id", "full_name", "email", "phone", "consent", "created_at"))


GUEST = obj({
    "id": string(), "label": string(), "link": string(), "access_code": string(),
    "code_failures": integer(), "link_locked": boolean(),
    "checked_in_name": string(nullable=True), "checked_in_at": string(nullable=True),
    "created_at": string(fmt="date-time"),
}, required=("id", "label", "link", "access_code", "code_failures", "link_locked",
             "checked_in_name", "checked_in_at", "created_at"))


APPOINTMENT = obj({
    "id": string(), "doctor": string(), "doctor_name": string(), "patient_id": string(),
    "patient_name": string(), "patient_has_consent": boolean(),
    "start": string(fmt="date-time"), "end": string(fmt="date-time"),
    "duration_minutes": integer(), "state": string(enum=STATE_NAMES),
    "link": string(), "access_code": string(), "code_failures": integer(),
    "link_locked": boolean(), "checked_in_name": string(nullable=True),
    "checked_in_at": string(nullable=True), "code_expires_at": string(fmt="date-time"),
    "guests": array(GUEST),
}, required=("id", "doctor", "patient_id", "start", "state", "link", "access_code", "guests"))


OK = obj({"ok": boolean()}, required=("ok",))


def services_of(request: web.Request) -> PracticeServices:
    return request.app[SERVICES]


def practice_timezone(services: PracticeServices) -> ZoneInfo:
    """The practice's zone; the default while sealed (the profile is in the vault)."""
    return ZoneInfo(DEFAULT_TIMEZONE) if services.vault.sealed else services.office.timezone()


def parse_start(text: str, tz: ZoneInfo) -> datetime:
    """An ISO time; without an offset it is the practice's local time."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def iso(moment: datetime | None, tz: ZoneInfo) -> str | None:
    return moment.astimezone(tz).isoformat() if moment else None


def member_json(member: StaffMember) -> dict[str, Any]:
    """A staff member as the API shows it."""
    return {
        "username": member.username, "display_name": member.display_name,
        "roles": sorted(role.value for role in member.roles), "lanr": member.lanr,
        "totp_enabled": member.totp_enabled,
    }


def patient_json(patient: Patient) -> dict[str, Any]:
    """A patient as the API shows it."""
    consent = patient.consent
    return {
        "id": patient.id, "full_name": patient.full_name, "email": patient.email,
        "phone": patient.phone, "created_at": patient.created_at.isoformat(),
        "consent": None if consent is None else {
            "given_on": consent.given_on.isoformat(), "form_version": consent.form_version,
            "method": consent.method.value, "recorded_by": consent.recorded_by,
            "recorded_at": consent.recorded_at.isoformat(),
        },
    }


def patient_site(request: web.Request) -> str:
    """Where patients' links point: the practice's first public address, else the configured."""
    return services_of(request).office.public_url() or request.app[PROPOSED_PUBLIC_URLS][0]


def appointment_json(request: web.Request, appt: Appointment) -> dict[str, Any]:
    """An appointment as staff see it: with link and code (they live in the vault)."""
    services = services_of(request)
    tz = practice_timezone(services)
    doctor = maybe(services.staff.get, appt.doctor)
    patient = maybe(services.patients.get, appt.patient_id)
    return {
        "id": appt.id, "doctor": appt.doctor,
        "doctor_name": doctor.display_name if doctor else appt.doctor,
        "patient_id": appt.patient_id,
        "patient_name": patient.full_name if patient else "",
        "patient_has_consent": bool(patient and patient.consent),
        "start": iso(appt.start, tz), "end": iso(appt.end, tz),
        "duration_minutes": appt.duration_minutes, "state": appt.state.value,
        "link": link_of(patient_site(request), appt), "access_code": appt.access_code,
        "code_failures": appt.code_failures, "link_locked": appt.link_locked,
        "checked_in_name": appt.checked_in_name,
        "checked_in_at": iso(appt.checked_in_at, tz),
        "code_expires_at": iso(appt.code_expires_at, tz),
        "guests": [guest_json(request, guest) for guest in appt.guests],
    }


def guest_json(request: web.Request, guest: Guest) -> dict[str, Any]:
    """A guest as staff see them: link and code to hand on, like the patient's."""
    tz = practice_timezone(services_of(request))
    return {
        "id": guest.id, "label": guest.label, "link": link_of(patient_site(request), guest),
        "access_code": guest.access_code, "code_failures": guest.code_failures,
        "link_locked": guest.link_locked, "checked_in_name": guest.checked_in_name,
        "checked_in_at": iso(guest.checked_in_at, tz), "created_at": iso(guest.created_at, tz),
    }


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


def box_lock_json(request: web.Request) -> dict[str, Any]:
    """Whether an admin's lock waits, and when the box locks itself."""
    lock = request.app[BOX_LOCK]
    hours = None if lock.hours is None else "–".join(
        moment.strftime("%H:%M") for moment in lock.hours)
    return {"pending": lock.pending, "hours": hours, "idle_hours": lock.idle_hours}


async def reauthentication(request: web.Request, schema: dict[str, Any]):
    """The actor and the body of a change that asks for the password again: limited and
    locked out like a login, the Argon2id work off the event loop."""
    _, actor = current_staff(request)
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, schema)
    await prepare_password_check(request, actor.username, data["password"])
    return actor, data
