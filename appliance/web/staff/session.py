"""Status, onboarding, login and the session: how a member of the staff gets in (and out)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from appliance import __version__
from appliance.errors import InvalidInput
from appliance.practice.appointments import EDIT_STATES, MAX_GUESTS, REISSUE_STATES, TRANSITIONS
from appliance.practice.models import (
    CLOSED_STATES,
    DEFAULT_TIMEZONE,
    OPEN_STATES,
    AppointmentState,
    PracticeProfile,
    Role,
    StaffMember,
)
from appliance.practice.onboarding import onboard
from appliance.web.api import Endpoint, read_body
from appliance.web.auth import PASSWORD_WORK, current_staff
from appliance.web.context import (
    BOX_LOCK,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PROPOSED_PUBLIC_URLS,
    STAFF_SESSIONS,
)
from appliance.web.schema import array, boolean, integer, obj, string
from appliance.web.security import LANG_COOKIE, client_address, request_language
from appliance.web.sessions import StaffSession
from appliance.web.staff.common import (
    MEMBER,
    OK,
    PROFILE,
    STATE_NAMES,
    box_lock_json,
    iso,
    login_source,
    member_json,
    practice_timezone,
    prepare_password_check,
    services_of,
)

BOX_LOCK_STATE = obj({
    "pending": boolean(), "hours": string(nullable=True), "idle_hours": integer(),
}, required=("pending", "hours", "idle_hours"))
RULED_ACTIONS: Final = ("edit", "reissue", "cancel", "no_show", "reopen")
STATES = array(string(enum=STATE_NAMES))
#: the appointment book's rules, for the pages to offer only what the book allows
APPOINTMENT_RULES = obj({
    "open": STATES, "closed": STATES,
    "actions": obj({action: STATES for action in RULED_ACTIONS}, required=RULED_ACTIONS),
    "max_guests": integer(),
}, required=("open", "closed", "actions", "max_guests"))
SESSION = obj({
    "user": MEMBER, "csrf_token": string(), "practice_name": string(nullable=True),
    "timezone": string(), "recovery_key_pending": boolean(),
    "password_weak": boolean(), "box_lock": BOX_LOCK_STATE, "appointment_rules": APPOINTMENT_RULES,
}, required=("user", "csrf_token", "timezone", "recovery_key_pending", "password_weak",
             "box_lock", "appointment_rules"))
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


async def _status(request: web.Request) -> web.Response:
    services = services_of(request)
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
    services = services_of(request)
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
    services_of(request).audit.record(session.username, "recovery_key.confirmed")
    return web.json_response({"ok": True})


async def _login(request: web.Request) -> web.Response:
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, LOGIN)
    services = services_of(request)
    await prepare_password_check(request, data["username"], data["password"])
    member = services.staff.login(data["username"].strip().lower(), data["password"],
                                  data.get("totp") or None, source=login_source(request))
    weak = await asyncio.get_running_loop().run_in_executor(
        PASSWORD_WORK, services.staff.password_is_weak, member.username, data["password"])
    session = StaffSession(username=member.username, password_weak=weak)
    response = web.json_response(_session_json(request, session, member))
    request.app[STAFF_SESSIONS].create(response, request, session)
    request.app[KNOWN_DEVICES].remember(request, response)
    return response


async def _logout(request: web.Request) -> web.Response:
    current_staff(request)
    response = web.json_response({"ok": True})
    request.app[STAFF_SESSIONS].drop(request, response)
    return response


def _appointment_rules() -> dict[str, Any]:
    """In which states the book allows what (``appointments.py`` is the one place of these)."""
    def names(states: frozenset[AppointmentState]) -> list[str]:
        return [state.value for state in AppointmentState if state in states]

    actions = {"edit": EDIT_STATES, "reissue": REISSUE_STATES,
               **{event: TRANSITIONS[event][0] for event in ("cancel", "no_show", "reopen")}}
    return {"open": names(OPEN_STATES), "closed": names(CLOSED_STATES),
            "actions": {action: names(actions[action]) for action in RULED_ACTIONS},
            "max_guests": MAX_GUESTS}


def _session_json(request: web.Request, session: StaffSession, member: StaffMember):
    profile = services_of(request).office.profile()
    return {
        "user": member_json(member), "csrf_token": session.csrf,
        "practice_name": profile.name if profile else None,
        "timezone": profile.timezone if profile else DEFAULT_TIMEZONE,
        "recovery_key_pending": session.pending_recovery_key is not None,
        "password_weak": session.password_weak,
        "box_lock": box_lock_json(request),
        "appointment_rules": _appointment_rules(),
    }


def _locked_json(request: web.Request) -> dict[str, str] | None:
    """When and why the box locked itself, until the next login unseals it."""
    locked = request.app[BOX_LOCK].locked
    if locked is None or not services_of(request).vault.sealed:
        return None
    return {"at": iso(locked.at, practice_timezone(services_of(request))) or "",
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
)
