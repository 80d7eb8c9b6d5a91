"""The staff site's JSON API: onboarding, login, appointments, patients, users, settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web

from appliance import __version__
from appliance.errors import (
    AuditChainBroken,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SprechzimmerError,
)
from appliance.practice.models import (
    DEFAULT_TIMEZONE,
    Appointment,
    ConsentMethod,
    Guest,
    Patient,
    PracticeProfile,
    Role,
    StaffMember,
)
from appliance.practice.onboarding import onboard
from appliance.practice.profile import KV_REGIONS
from appliance.practice.services import PracticeServices
from appliance.web import device_check, sockets
from appliance.web.api import Endpoint, read_body
from appliance.web.auth import PASSWORD_WORK, current_staff, staff_member
from appliance.web.context import (
    BOX_LOCK,
    EVENTS,
    HUB,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PROPOSED_PUBLIC_URLS,
    SERVICES,
    STAFF_SESSIONS,
)
from appliance.web.events import stream_events
from appliance.web.schema import array, boolean, integer, obj, string
from appliance.web.security import (
    LANG_COOKIE,
    client_address,
    request_language,
)
from appliance.web.sessions import StaffSession

T = TypeVar("T")
#: where password checks derive their keys (Argon2id releases the GIL: the loop goes on)
ROLE_NAMES: Final = [role.value for role in Role]
STATE_NAMES: Final = [
    "scheduled", "waiting", "in_call", "ended", "cancelled", "no_show",
]

# --- schemas ---------------------------------------------------------------------------------

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
NEW_MEMBER = obj({
    "username": string(min_length=2, max_length=32),
    "display_name": string(min_length=1, max_length=200),
    "roles": array(string(enum=ROLE_NAMES), max_items=3),
    "password": string(min_length=1, max_length=1000),
    "lanr": string(max_length=9, nullable=True),
}, required=("username", "display_name", "roles", "password"))
MEMBER_CHANGE = obj({
    "display_name": string(min_length=1, max_length=200),
    "roles": array(string(enum=ROLE_NAMES), max_items=3),
    "lanr": string(max_length=9, nullable=True),
})
#: the password and, while a second factor is on, a current code: to set up, replace or switch
#: off the second factor
TOTP_PROOF = obj({
    "password": string(min_length=1, max_length=1000),
    "totp": string(max_length=10),
}, required=("password",))
TOTP_CONFIRM = obj({
    "code": string(min_length=6, max_length=10),
    "password": string(min_length=1, max_length=1000),
}, required=("code", "password"))
PASSWORD_CHANGE = obj({
    "new_password": string(min_length=1, max_length=1000),
    "old_password": string(max_length=1000),
}, required=("new_password",))
CONSENT = obj({
    "given_on": string(fmt="date"), "form_version": string(), "method": string(),
    "recorded_by": string(), "recorded_at": string(),
}, required=("given_on", "form_version", "method", "recorded_by", "recorded_at"), nullable=True)
PATIENT = obj({
    "id": string(), "full_name": string(), "email": string(nullable=True),
    "phone": string(nullable=True), "consent": CONSENT, "created_at": string(),
}, required=("id", "full_name", "email", "phone", "consent", "created_at"))
NEW_PATIENT = obj({
    "full_name": string(min_length=2, max_length=200),
    "email": string(max_length=254, nullable=True),
    "phone": string(max_length=40, nullable=True),
    "consent": obj({
        "given_on": string(fmt="date"),
        "form_version": string(min_length=1, max_length=40),
        "method": string(enum=[m.value for m in ConsentMethod]),
    }, required=("given_on", "method"), nullable=True),
}, required=("full_name",))
PATIENT_CHANGE = obj({
    "full_name": string(min_length=2, max_length=200),
    "email": string(max_length=254, nullable=True),
    "phone": string(max_length=40, nullable=True),
})
NEW_CONSENT = obj({
    "given_on": string(fmt="date"),
    "form_version": string(min_length=1, max_length=40),
    "method": string(enum=[m.value for m in ConsentMethod]),
}, required=("given_on", "method"))
GUEST = obj({
    "id": string(), "label": string(), "link": string(), "access_code": string(),
    "code_failures": integer(), "link_locked": boolean(),
    "checked_in_name": string(nullable=True), "checked_in_at": string(nullable=True),
    "created_at": string(fmt="date-time"),
}, required=("id", "label", "link", "access_code", "code_failures", "link_locked",
             "checked_in_name", "checked_in_at", "created_at"))
NEW_GUEST = obj({"label": string(min_length=1, max_length=60)}, required=("label",))
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
NEW_APPOINTMENT = obj({
    "doctor": string(min_length=1, max_length=32),
    "patient_id": string(min_length=1, max_length=64),
    "start": string(fmt="date-time"),
    "duration_minutes": integer(minimum=5, maximum=180),
}, required=("doctor", "patient_id", "start"))
APPOINTMENT_CHANGE = obj({
    "doctor": string(min_length=1, max_length=32),
    "start": string(fmt="date-time"),
    "duration_minutes": integer(minimum=5, maximum=180),
})
BOX_LOCK_STATE = obj({
    "pending": boolean(), "hours": string(nullable=True), "idle_hours": integer(),
}, required=("pending", "hours", "idle_hours"))
SESSION = obj({
    "user": MEMBER, "csrf_token": string(), "practice_name": string(nullable=True),
    "timezone": string(), "recovery_key_pending": boolean(),
    "password_weak": boolean(), "box_lock": BOX_LOCK_STATE,
}, required=("user", "csrf_token", "timezone", "recovery_key_pending", "password_weak",
             "box_lock"))
STATUS = obj({
    "initialized": boolean(), "sealed": boolean(), "version": string(), "language": string(),
    "logged_in": boolean(), "public_urls": array(string()),
    "locked": obj({"at": string(fmt="date-time"), "reason": string()}, required=("at", "reason"),
                  nullable=True),
}, required=("initialized", "sealed", "version", "language", "logged_in", "locked"))
LOGIN = obj({
    "username": string(min_length=1, max_length=64),
    "password": string(min_length=1, max_length=1000),
    "totp": string(max_length=10),
}, required=("username", "password"))
ONBOARDING = obj({
    "practice": PROFILE,
    "admin": obj({
        "username": string(min_length=2, max_length=32),
        "display_name": string(min_length=1, max_length=200),
        "password": string(min_length=1, max_length=1000),
        "is_doctor": boolean(),
        "lanr": string(max_length=9, nullable=True),
    }, required=("username", "display_name", "password")),
}, required=("practice", "admin"))
OK = obj({"ok": boolean()}, required=("ok",))
BOX_LOCK_ANSWER = obj({"locked": boolean(), "pending": boolean()}, required=("locked", "pending"))


# --- helpers ---------------------------------------------------------------------------------


def _services(request: web.Request) -> PracticeServices:
    return request.app[SERVICES]


def _timezone(services: PracticeServices) -> ZoneInfo:
    profile = services.office.profile() if not services.vault.sealed else None
    return ZoneInfo(profile.timezone if profile else DEFAULT_TIMEZONE)


def _parse_start(text: str, tz: ZoneInfo) -> datetime:
    """An ISO time; without an offset it is the practice's local time."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _iso(moment: datetime | None, tz: ZoneInfo) -> str | None:
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


def appointment_json(services: PracticeServices, appt: Appointment) -> dict[str, Any]:
    """An appointment as staff see it: with link and code (they live in the vault)."""
    tz = _timezone(services)
    doctor = _maybe(services.staff.get, appt.doctor)
    patient = _maybe(services.patients.get, appt.patient_id)
    return {
        "id": appt.id, "doctor": appt.doctor,
        "doctor_name": doctor.display_name if doctor else appt.doctor,
        "patient_id": appt.patient_id,
        "patient_name": patient.full_name if patient else "",
        "patient_has_consent": bool(patient and patient.consent),
        "start": _iso(appt.start, tz), "end": _iso(appt.end, tz),
        "duration_minutes": appt.duration_minutes, "state": appt.state.value,
        "link": services.appointments.link(appt), "access_code": appt.access_code,
        "code_failures": appt.code_failures, "link_locked": appt.link_locked,
        "checked_in_name": appt.checked_in_name,
        "checked_in_at": _iso(appt.checked_in_at, tz),
        "code_expires_at": _iso(appt.code_expires_at, tz),
        "guests": [guest_json(services, guest) for guest in appt.guests],
    }


def guest_json(services: PracticeServices, guest: Guest) -> dict[str, Any]:
    """A guest as staff see them: link and code to hand on, like the patient's."""
    tz = _timezone(services)
    return {
        "id": guest.id, "label": guest.label, "link": services.appointments.link(guest),
        "access_code": guest.access_code, "code_failures": guest.code_failures,
        "link_locked": guest.link_locked, "checked_in_name": guest.checked_in_name,
        "checked_in_at": _iso(guest.checked_in_at, tz), "created_at": _iso(guest.created_at, tz),
    }


def _maybe(getter: Callable[[str], T], key: str) -> T | None:
    """``getter(key)``, or None where it is gone (e.g. a removed member)."""
    try:
        return getter(key)
    except NotFound:
        return None


def _publish(request: web.Request, appt: Appointment) -> None:
    request.app[EVENTS].publish({"type": "appointment", "id": appt.id})


# --- status, onboarding, login ------------------------------------------------------------------


async def _status(request: web.Request) -> web.Response:
    services = _services(request)
    session = request.app[STAFF_SESSIONS].get(request)
    status = {
        "initialized": services.vault.initialized, "sealed": services.vault.sealed,
        "version": __version__, "language": request_language(request),
        "logged_in": session is not None and not services.vault.sealed,
        "locked": _locked_json(request),
    }
    if not services.vault.initialized:  # the onboarding wizard proposes them
        status["public_urls"] = list(request.app[PROPOSED_PUBLIC_URLS])
    return web.json_response(status)


async def _onboarding(request: web.Request) -> web.Response:
    data = await read_body(request, ONBOARDING)
    services = _services(request)
    practice, admin = data["practice"], data["admin"]
    roles = {Role.ADMIN} | ({Role.DOCTOR} if admin.get("is_doctor") else set())
    profile = PracticeProfile(
        name=practice["name"].strip(), bsnr=practice["bsnr"].strip(),
        street=practice["street"].strip(), postal_code=practice["postal_code"].strip(),
        city=practice["city"].strip(), kv_region=practice["kv_region"],
        timezone=practice.get("timezone") or DEFAULT_TIMEZONE,
        public_urls=tuple(url.strip().rstrip("/") for url in practice["public_urls"]),
    )
    recovery_key = onboard(
        services, profile=profile, username=admin["username"],
        display_name=admin["display_name"], password=admin["password"], roles=roles,
        lanr=admin.get("lanr") or None,
    )
    response = web.json_response({"ok": True, "recovery_key": str(recovery_key)})
    session = StaffSession(username=admin["username"], pending_recovery_key=str(recovery_key))
    request.app[STAFF_SESSIONS].create(response, request, session)
    return response


async def _recovery_confirmed(request: web.Request) -> web.Response:
    session, _ = current_staff(request)
    data = await read_body(request, obj({"stored": boolean()}, required=("stored",)))
    if data["stored"] is not True:
        raise InvalidInput(field="stored", detail="bitte bestätigen")
    session.pending_recovery_key = None
    _services(request).audit.record(session.username, "recovery_key.confirmed")
    return web.json_response({"ok": True})


async def _prepare_password_check(request: web.Request, username: str, password: str) -> None:
    """Argon2id (~0.25 s, 128 MiB) in a worker thread, not on the event loop that carries every
    page's signaling; at most two at once, so that a flood of logins cannot exhaust memory;
    none at all for a name locked from this address."""
    staff = _services(request).staff
    staff.check_not_locked(username, source=login_source(request))
    await asyncio.get_running_loop().run_in_executor(
        PASSWORD_WORK, staff.prepare_password_check, username, password)


async def _login(request: web.Request) -> web.Response:
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, LOGIN)
    services = _services(request)
    await _prepare_password_check(request, data["username"], data["password"])
    member = services.staff.login(data["username"].strip().lower(), data["password"],
                                  data.get("totp") or None, source=login_source(request))
    weak = await asyncio.get_running_loop().run_in_executor(
        PASSWORD_WORK, services.staff.password_is_weak, member.username, data["password"])
    session = StaffSession(username=member.username, password_weak=weak)
    response = web.json_response(_session_json(request, session, member))
    request.app[STAFF_SESSIONS].create(response, request, session)
    request.app[KNOWN_DEVICES].remember(request, response)
    return response


def login_source(request: web.Request) -> str:
    """Where a password is tried from, for the lockout: the known PC, else the address."""
    return request.app[KNOWN_DEVICES].source(request) or client_address(request)


async def _logout(request: web.Request) -> web.Response:
    current_staff(request)
    response = web.json_response({"ok": True})
    request.app[STAFF_SESSIONS].drop(request, response)
    return response


def _session_json(request: web.Request, session: StaffSession, member: StaffMember):
    profile = _services(request).office.profile()
    return {
        "user": member_json(member), "csrf_token": session.csrf,
        "practice_name": profile.name if profile else None,
        "timezone": profile.timezone if profile else DEFAULT_TIMEZONE,
        "recovery_key_pending": session.pending_recovery_key is not None,
        "password_weak": session.password_weak,
        "box_lock": _box_lock_json(request),
    }


def _box_lock_json(request: web.Request) -> dict[str, Any]:
    lock = request.app[BOX_LOCK]
    hours = None if lock.hours is None else "–".join(
        moment.strftime("%H:%M") for moment in lock.hours)
    return {"pending": lock.pending, "hours": hours, "idle_hours": lock.idle_hours}


def _locked_json(request: web.Request) -> dict[str, str] | None:
    """When and why the box locked itself, until the next login unseals it."""
    locked = request.app[BOX_LOCK].locked
    if locked is None or not _services(request).vault.sealed:
        return None
    return {"at": _iso(locked.at, _timezone(_services(request))) or "",
            "reason": locked.reason.value}


async def _session(request: web.Request) -> web.Response:
    session, member = current_staff(request)
    return web.json_response(_session_json(request, session, member))


async def _language(request: web.Request) -> web.Response:
    data = await read_body(request, obj({"language": string(enum=["de", "en"])},
                                        required=("language",)))
    response = web.json_response({"ok": True})
    response.set_cookie(LANG_COOKIE, data["language"], samesite="Strict", path="/",
                        max_age=365 * 86400, secure=request.secure)
    return response


# --- practice profile --------------------------------------------------------------------------


def _profile_json(profile: PracticeProfile) -> dict[str, Any]:
    return {
        "name": profile.name, "bsnr": profile.bsnr, "street": profile.street,
        "postal_code": profile.postal_code, "city": profile.city,
        "kv_region": profile.kv_region, "timezone": profile.timezone,
        "public_urls": list(profile.public_urls),
    }


async def _get_practice(request: web.Request) -> web.Response:
    current_staff(request)
    profile = _services(request).office.profile()
    if profile is None:
        raise NotFound()
    return web.json_response(_profile_json(profile))


async def _put_practice(request: web.Request) -> web.Response:
    _, member = current_staff(request)
    data = await read_body(request, PROFILE)
    profile = PracticeProfile(
        name=data["name"].strip(), bsnr=data["bsnr"].strip(), street=data["street"].strip(),
        postal_code=data["postal_code"].strip(), city=data["city"].strip(),
        kv_region=data["kv_region"], timezone=data.get("timezone") or DEFAULT_TIMEZONE,
        public_urls=tuple(url.strip().rstrip("/") for url in data["public_urls"]),
    )
    saved = _services(request).office.save_profile(member.username, profile)
    return web.json_response(_profile_json(saved))


async def _kv_regions(request: web.Request) -> web.Response:
    return web.json_response([{"code": c, "name": n} for c, n in KV_REGIONS.items()])


# --- staff -------------------------------------------------------------------------------------


async def _list_staff(request: web.Request) -> web.Response:
    current_staff(request)
    return web.json_response([member_json(m) for m in _services(request).staff.list()])


async def _add_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_MEMBER)
    member = _services(request).staff.add(
        actor.username, username=data["username"].strip().lower(),
        display_name=data["display_name"].strip(), roles=frozenset(Role(r) for r in data["roles"]),
        password=data["password"], lanr=(data.get("lanr") or None),
    )
    return web.json_response(member_json(member), status=201)


async def _update_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, MEMBER_CHANGE)
    changes: dict[str, Any] = {}
    if "display_name" in data:
        changes["display_name"] = data["display_name"].strip()
    if "roles" in data:
        changes["roles"] = frozenset(Role(r) for r in data["roles"])
    if "lanr" in data:
        changes["lanr"] = data["lanr"] or None
    member = _services(request).staff.update(
        actor.username, request.match_info["username"], **changes
    )
    return web.json_response(member_json(member))


async def _remove_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    username = request.match_info["username"]
    _services(request).staff.remove(actor.username, username)
    request.app[STAFF_SESSIONS].drop_where(lambda s: s.username == username)
    return web.json_response({"ok": True})


async def _set_password(request: web.Request) -> web.Response:
    session, actor = current_staff(request)
    username = request.match_info["username"]
    own = username == actor.username
    if not own and Role.ADMIN not in actor.roles:
        raise PermissionDenied()
    data = await read_body(request, PASSWORD_CHANGE)
    if own and not data.get("old_password"):
        raise InvalidInput(field="old_password", detail="fehlt")
    if own:
        await _prepare_password_check(request, username, data["old_password"])
    _services(request).staff.set_password(
        actor.username, username, data["new_password"],
        old_password=data.get("old_password") if own else None,
        source=login_source(request),
    )
    request.app[STAFF_SESSIONS].drop_where(
        lambda s: s.username == username and s is not session
    )
    if own:
        session.password_weak = False  # the new one passed today's rules
    return web.json_response({"ok": True})


async def _reauthentication(request: web.Request, schema: dict[str, Any]):
    """The actor and the body of a change that asks for the password again: limited and
    locked out like a login, the Argon2id work off the event loop."""
    _, actor = current_staff(request)
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, schema)
    await _prepare_password_check(request, actor.username, data["password"])
    return actor, data


async def _begin_totp(request: web.Request) -> web.Response:
    actor, data = await _reauthentication(request, TOTP_PROOF)
    secret, uri = _services(request).staff.begin_totp(
        actor.username, password=data["password"], totp_code=data.get("totp") or None,
        source=login_source(request))
    return web.json_response({"secret": secret, "otpauth_uri": uri})


async def _confirm_totp(request: web.Request) -> web.Response:
    actor, data = await _reauthentication(request, TOTP_CONFIRM)
    _services(request).staff.confirm_totp(
        actor.username, data["code"], password=data["password"], source=login_source(request))
    return web.json_response({"ok": True})


async def _disable_totp(request: web.Request) -> web.Response:
    actor, data = await _reauthentication(request, TOTP_PROOF)
    _services(request).staff.disable_totp(
        actor.username, actor.username, password=data["password"],
        totp_code=data.get("totp") or None,
        source=login_source(request),
    )
    return web.json_response({"ok": True})


# --- the vault's keys ----------------------------------------------------------------------------


async def _proven_admin(request: web.Request) -> StaffMember:
    """An admin who confirmed a change of the vault's keys with password (and code)."""
    actor, data = await _reauthentication(request, TOTP_PROOF)
    _services(request).staff.reauthenticate(actor.username, data["password"],
                                            data.get("totp") or None, login_source(request))
    return actor


async def _rotate_recovery_key(request: web.Request) -> web.Response:
    actor = await _proven_admin(request)
    key = _services(request).staff.rotate_recovery_key(actor.username)
    session = request.app[STAFF_SESSIONS].get(request)
    if session is not None:  # the new sheet (/notfallblatt) until the admin confirms it
        session.pending_recovery_key = str(key)
    return web.json_response({"recovery_key": str(key)})


async def _rekey(request: web.Request) -> web.Response:
    actor = await _proven_admin(request)
    _services(request).staff.rekey(actor.username)
    return web.json_response({"ok": True})


# --- locking the box --------------------------------------------------------------------------


async def _lock_box(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    lock = request.app[BOX_LOCK]
    locked = lock.request(actor.username)
    return web.json_response({"locked": locked, "pending": lock.pending})


async def _cancel_box_lock(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    lock = request.app[BOX_LOCK]
    lock.cancel(actor.username)
    return web.json_response({"locked": False, "pending": lock.pending})


# --- patients ----------------------------------------------------------------------------------


async def _list_patients(request: web.Request) -> web.Response:
    current_staff(request)
    text = request.query.get("q", "")[:200]
    return web.json_response([patient_json(p) for p in _services(request).patients.search(text)])


async def _add_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_PATIENT)
    services = _services(request)
    patient = services.patients.add(
        actor.username, full_name=data["full_name"].strip(),
        email=(data.get("email") or "").strip() or None,
        phone=(data.get("phone") or "").strip() or None,
    )
    if consent := data.get("consent"):
        patient = _record_consent(services, actor, patient.id, consent)
    return web.json_response(patient_json(patient), status=201)


def _record_consent(services: PracticeServices, actor: StaffMember, patient_id: str,
                    consent: dict[str, Any]) -> Patient:
    from appliance.practice.patients import CONSENT_FORM_VERSION

    return services.patients.record_consent(
        actor.username, patient_id, given_on=date.fromisoformat(consent["given_on"]),
        form_version=consent.get("form_version") or CONSENT_FORM_VERSION,
        method=ConsentMethod(consent["method"]),
    )


async def _get_patient(request: web.Request) -> web.Response:
    current_staff(request)
    patient = _services(request).patients.get(request.match_info["patient_id"])
    return web.json_response(patient_json(patient))


async def _update_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, PATIENT_CHANGE)
    changes = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
    patient = _services(request).patients.update(
        actor.username, request.match_info["patient_id"], **changes
    )
    return web.json_response(patient_json(patient))


async def _remove_patient(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    _services(request).patients.remove(actor.username, request.match_info["patient_id"])
    return web.json_response({"ok": True})


async def _add_consent(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_CONSENT)
    patient = _record_consent(_services(request), actor, request.match_info["patient_id"], data)
    return web.json_response(patient_json(patient))


# --- appointments ------------------------------------------------------------------------------


async def _list_appointments(request: web.Request) -> web.Response:
    current_staff(request)
    services = _services(request)
    tz = _timezone(services)
    try:
        day = date.fromisoformat(request.query["date"]) if "date" in request.query else (
            services.clock.now().astimezone(tz).date()
        )
    except ValueError:
        raise InvalidInput(field="date", detail="JJJJ-MM-TT") from None
    appts = services.appointments.day(day, tz)
    return web.json_response([appointment_json(services, a) for a in appts])


async def _add_appointment(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_APPOINTMENT)
    services = _services(request)
    appt = services.appointments.create(
        actor.username, doctor=data["doctor"], patient_id=data["patient_id"],
        start=_parse_start(data["start"], _timezone(services)),
        duration_minutes=data.get("duration_minutes", 15),
    )
    _publish(request, appt)
    return web.json_response(appointment_json(services, appt), status=201)


async def _get_appointment(request: web.Request) -> web.Response:
    current_staff(request)
    services = _services(request)
    appt = services.appointments.get(request.match_info["appointment_id"])
    return web.json_response(appointment_json(services, appt))


async def _update_appointment(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, APPOINTMENT_CHANGE)
    services = _services(request)
    changes: dict[str, Any] = {}
    if "doctor" in data:
        changes["doctor"] = data["doctor"]
    if "start" in data:
        changes["start"] = _parse_start(data["start"], _timezone(services))
    if "duration_minutes" in data:
        changes["duration_minutes"] = data["duration_minutes"]
    appt = services.appointments.edit(actor.username, request.match_info["appointment_id"],
                                      **changes)
    return web.json_response(appointment_json(services, appt))


def _appointment_action(action: str):  # noqa: ANN202 - returns a handler
    async def handler(request: web.Request) -> web.Response:
        _, actor = current_staff(request)
        services = _services(request)
        appt = getattr(services.appointments, action)(
            actor.username, request.match_info["appointment_id"]
        )  # the book's state listener tells the dashboards
        if action in _WITHDRAWS_LINKS:
            # a withdrawn link leaves the room at once; after a reissue the same patient may
            # come back with the new link, after a cancellation nobody may
            ban = _WITHDRAWS_LINKS[action]
            _let_go_patient(request, appt.id, ban=ban)
            if ban:
                for guest in services.appointments.guests(appt.id):
                    _let_go(request, appt.id, guest.id, ban=True)
        return web.json_response(appointment_json(services, appt))

    handler.__name__ = f"{action}_appointment"
    return handler


async def _invite_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)  # organisational work: any staff member (R2)
    data = await read_body(request, NEW_GUEST)
    services = _services(request)
    appointment_id = request.match_info["appointment_id"]
    guest = services.appointments.invite_guest(actor.username, appointment_id,
                                               label=data["label"])
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return web.json_response(guest_json(services, guest), status=201)


async def _list_guests(request: web.Request) -> web.Response:
    current_staff(request)
    services = _services(request)
    guests = services.appointments.guests(request.match_info["appointment_id"])
    return web.json_response([guest_json(services, guest) for guest in guests])


#: actions that withdraw the patient's link: action → whether the patient stays out of the room
_WITHDRAWS_LINKS: Final = {"reissue": False, "cancel": True, "mark_no_show": True}


def _let_go_patient(request: web.Request, appointment_id: str, *, ban: bool) -> None:
    """End the patient's sockets in the room: their link was withdrawn."""
    if HUB in request.app:
        request.app[HUB].remove_member(appointment_id, "patient", ban=ban)


def _let_go(request: web.Request, appointment_id: str, guest_id: str, *, ban: bool) -> None:
    """End the guest's place in a running call: a withdrawn link stops at once."""
    if HUB in request.app:
        request.app[HUB].remove_member(appointment_id, f"guest:{guest_id}", ban=ban)


async def _reissue_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    services = _services(request)
    appointment_id, guest_id = request.match_info["appointment_id"], request.match_info["guest_id"]
    guest = services.appointments.reissue_guest(actor.username, appointment_id, guest_id)
    _let_go(request, appointment_id, guest_id, ban=False)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return web.json_response(guest_json(services, guest))


async def _remove_guest(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    appointment_id, guest_id = request.match_info["appointment_id"], request.match_info["guest_id"]
    _services(request).appointments.remove_guest(actor.username, appointment_id, guest_id)
    _let_go(request, appointment_id, guest_id, ban=True)
    request.app[EVENTS].publish({"type": "appointment", "id": appointment_id})
    return web.json_response({"ok": True})


async def _events(request: web.Request) -> web.StreamResponse:
    current_staff(request)
    services = _services(request)

    def render(event: dict[str, Any]) -> dict[str, Any] | None:
        if event["type"] == "box-lock":
            return _box_lock_json(request)
        appt = None if services.vault.sealed else _maybe(services.appointments.get, event["id"])
        if appt is None:
            return {"id": event["id"], "removed": True}
        return appointment_json(services, appt)

    def still_allowed() -> bool:
        try:
            staff_member(request)
        except SprechzimmerError:  # logged out, removed, session expired
            return False
        return True

    return await stream_events(request, request.app[EVENTS], lambda e: True, render,
                               still_allowed)


async def _audit(request: web.Request) -> web.Response:
    current_staff(request)
    services = _services(request)
    tz = _timezone(services)
    return web.json_response([
        {"seq": e.seq, "at": _iso(e.at, tz), "actor": e.actor, "action": e.action,
         "target": e.target}
        for e in services.audit.entries(limit=200)
    ])


async def _verify_audit(request: web.Request) -> web.Response:
    current_staff(request)
    try:
        checked = _services(request).audit.verify()
    except AuditChainBroken as broken:
        return web.json_response({"ok": False, "checked": 0, "broken_at": broken.params["seq"]})
    return web.json_response({"ok": True, "checked": checked, "broken_at": None})


APPOINTMENT_LIST = array(APPOINTMENT)
ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/status", handler=_status, access="public",
             summary="Zustand der Box: eingerichtet, Tresor offen, angemeldet", response=STATUS),
    Endpoint(method="POST", path="/api/onboarding", handler=_onboarding, access="public",
             summary="Ersteinrichtung: Praxis, erster Admin, Wiederherstellungsschlüssel",
             body=ONBOARDING,
             response=obj({"ok": boolean(), "recovery_key": string()}, required=("ok",))),
    Endpoint(method="POST", path="/api/onboarding/recovery-key-stored",
             handler=_recovery_confirmed, access="admin", body=obj({"stored": boolean()}),
             summary="Der Admin bestätigt, das Notfallblatt sicher verwahrt zu haben",
             response=OK),
    Endpoint(method="POST", path="/api/login", handler=_login, access="public", body=LOGIN,
             summary="Anmelden (öffnet nach dem Start den Tresor)", response=SESSION),
    Endpoint(method="POST", path="/api/logout", handler=_logout, summary="Abmelden",
             response=OK),
    Endpoint(method="GET", path="/api/session", handler=_session,
             summary="Die eigene Sitzung mit CSRF-Token", response=SESSION),
    Endpoint(method="POST", path="/api/language", handler=_language, access="public",
             body=obj({"language": string(enum=["de", "en"])}),
             summary="Sprache der Oberfläche wählen", response=OK),
    Endpoint(method="GET", path="/api/kv-regions", handler=_kv_regions, access="public",
             summary="Die 17 Kassenärztlichen Vereinigungen",
             response=array(obj({"code": string(), "name": string()}))),
    Endpoint(method="GET", path="/api/practice", handler=_get_practice,
             summary="Stammdaten der Praxis", response=PROFILE_OUT),
    Endpoint(method="PUT", path="/api/practice", handler=_put_practice, access="admin",
             body=PROFILE, summary="Stammdaten der Praxis ändern", response=PROFILE_OUT),
    Endpoint(method="GET", path="/api/staff", handler=_list_staff,
             summary="Mitarbeiterinnen und Mitarbeiter", response=array(MEMBER)),
    Endpoint(method="POST", path="/api/staff", handler=_add_staff, access="admin",
             body=NEW_MEMBER, summary="Mitarbeiter anlegen", response=MEMBER, status=201),
    Endpoint(method="PATCH", path="/api/staff/{username}", handler=_update_staff,
             access="admin", body=MEMBER_CHANGE, summary="Mitarbeiter ändern", response=MEMBER),
    Endpoint(method="DELETE", path="/api/staff/{username}", handler=_remove_staff,
             access="admin", summary="Mitarbeiter entfernen (der Tresor wird neu verschlüsselt)",
             response=OK),
    Endpoint(method="POST", path="/api/staff/{username}/password", handler=_set_password,
             body=PASSWORD_CHANGE,
             summary="Passwort ändern (eigenes mit altem Passwort, fremdes nur als Admin)",
             response=OK),
    Endpoint(method="POST", path="/api/me/totp", handler=_begin_totp, body=TOTP_PROOF,
             summary="Zwei-Faktor-Anmeldung (TOTP) einrichten oder ersetzen: nur mit dem eigenen "
                     "Passwort und, wenn sie an ist, einem aktuellen Code",
             response=obj({"secret": string(), "otpauth_uri": string()})),
    Endpoint(method="POST", path="/api/me/totp/confirm", handler=_confirm_totp,
             body=TOTP_CONFIRM, summary="TOTP mit einem Code und dem Passwort bestätigen",
             response=OK),
    Endpoint(method="DELETE", path="/api/me/totp", handler=_disable_totp, body=TOTP_PROOF,
             summary="TOTP abschalten: nur mit dem eigenen Passwort und einem aktuellen Code "
                     "(Fehlversuche zählen wie bei der Anmeldung)", response=OK),
    Endpoint(method="POST", path="/api/vault/recovery-key", handler=_rotate_recovery_key,
             access="admin", body=TOTP_PROOF,
             summary="Neuen Wiederherstellungsschlüssel ausstellen (der alte öffnet danach "
                     "nichts mehr; Passwort und, wenn eingerichtet, Code nötig)",
             response=obj({"recovery_key": string()}, required=("recovery_key",))),
    Endpoint(method="POST", path="/api/vault/rekey", handler=_rekey, access="admin",
             body=TOTP_PROOF, summary="Den Tresor jetzt neu verschlüsseln (Passwort und, wenn "
                                      "eingerichtet, Code nötig)", response=OK),
    Endpoint(method="POST", path="/api/box/lock", handler=_lock_box, access="admin",
             summary="Die Box sperren: Tresor versiegeln, alle Sitzungen beenden – sofort oder, "
                     "solange ein Gespräch läuft oder jemand wartet, danach",
             response=BOX_LOCK_ANSWER),
    Endpoint(method="DELETE", path="/api/box/lock", handler=_cancel_box_lock, access="admin",
             summary="Eine noch wartende Sperre der Box abbrechen", response=BOX_LOCK_ANSWER),
    Endpoint(method="GET", path="/api/patients", handler=_list_patients,
             summary="Patienten suchen (?q=Name)", response=array(PATIENT)),
    Endpoint(method="POST", path="/api/patients", handler=_add_patient, body=NEW_PATIENT,
             summary="Patient anlegen, optional mit Einwilligung", response=PATIENT, status=201),
    Endpoint(method="GET", path="/api/patients/{patient_id}", handler=_get_patient,
             summary="Ein Patient", response=PATIENT),
    Endpoint(method="PATCH", path="/api/patients/{patient_id}", handler=_update_patient,
             body=PATIENT_CHANGE, summary="Patient ändern", response=PATIENT),
    Endpoint(method="DELETE", path="/api/patients/{patient_id}", handler=_remove_patient,
             summary="Patient löschen", response=OK),
    Endpoint(method="POST", path="/api/patients/{patient_id}/consent", handler=_add_consent,
             body=NEW_CONSENT, summary="Einwilligung erfassen (O1)", response=PATIENT),
    Endpoint(method="GET", path="/api/appointments", handler=_list_appointments,
             summary="Termine eines Tages (?date=JJJJ-MM-TT, Standard: heute)",
             response=APPOINTMENT_LIST),
    Endpoint(method="POST", path="/api/appointments", handler=_add_appointment,
             body=NEW_APPOINTMENT, summary="Videotermin anlegen: liefert Link und Zugangscode",
             response=APPOINTMENT, status=201),
    Endpoint(method="GET", path="/api/appointments/{appointment_id}", handler=_get_appointment,
             summary="Ein Termin mit Link und Zugangscode", response=APPOINTMENT),
    Endpoint(method="PATCH", path="/api/appointments/{appointment_id}",
             handler=_update_appointment, body=APPOINTMENT_CHANGE,
             summary="Termin verschieben oder Arzt ändern", response=APPOINTMENT),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/cancel",
             handler=_appointment_action("cancel"), summary="Termin absagen",
             response=APPOINTMENT),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/reissue",
             handler=_appointment_action("reissue"),
             summary="Neuer Link und Code (der alte gilt sofort nicht mehr)",
             response=APPOINTMENT),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/reopen",
             handler=_appointment_action("reopen"),
             summary="Beendeten Termin wieder öffnen: zurück ins Wartezimmer (nur die Ärztin "
                     "oder der Arzt des Termins)", response=APPOINTMENT),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/no-show",
             handler=_appointment_action("mark_no_show"),
             summary="Patient nicht erschienen", response=APPOINTMENT),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/guests",
             handler=_invite_guest, body=NEW_GUEST, status=201, response=GUEST,
             summary="Weitere Person einladen (Angehörige, Dolmetscher, Kollege; höchstens 2): "
                     "eigener Link und Zugangscode"),
    Endpoint(method="GET", path="/api/appointments/{appointment_id}/guests",
             handler=_list_guests, response=array(GUEST),
             summary="Eingeladene weitere Personen mit Link und Zugangscode"),
    Endpoint(method="POST", path="/api/appointments/{appointment_id}/guests/{guest_id}/reissue",
             handler=_reissue_guest, response=GUEST,
             summary="Neuer Link und Code für eine weitere Person (der alte gilt sofort nicht "
                     "mehr)"),
    Endpoint(method="DELETE", path="/api/appointments/{appointment_id}/guests/{guest_id}",
             handler=_remove_guest, response=OK,
             summary="Weitere Person ausladen: ihr Link gilt sofort nicht mehr, auch im Gespräch"),
    Endpoint(method="GET", path="/api/events", handler=_events,
             summary="Live-Änderungen der Termine (Server-Sent Events)",
             content_type="text/event-stream", response={"type": "string"}),
    device_check.STAFF_ENDPOINT,
    device_check.STAFF_ICE_ENDPOINT,
    sockets.STAFF_ENDPOINT,
    Endpoint(method="GET", path="/api/audit", handler=_audit, access="admin",
             summary="Protokoll der Mitarbeiteraktionen (ohne Inhalte)",
             response=array(obj({"seq": integer(), "at": string(), "actor": string(),
                                 "action": string(), "target": string(nullable=True)}))),
    Endpoint(method="GET", path="/api/audit/verify", handler=_verify_audit, access="admin",
             summary="Prüfkette des Protokolls nachrechnen: unverändert oder ab welchem Eintrag "
                     "verändert",
             response=obj({"ok": boolean(), "checked": integer(),
                           "broken_at": {"type": ["integer", "null"]}},
                          required=("ok", "checked", "broken_at"))),
)
