"""Status, onboarding, login and the session: how a member of the staff gets in (and out)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec
from aiohttp import web

from appliance import __version__
from appliance.errors import InvalidInput
from appliance.practice.appointments import EDIT_STATES, MAX_GUESTS, REISSUE_STATES, TRANSITIONS
from appliance.practice.models import (
    CLOSED_STATES,
    DEFAULT_TIMEZONE,
    OPEN_STATES,
    AppointmentState,
    Role,
    StaffMember,
)
from appliance.practice.onboarding import onboard
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import PASSWORD_WORK, current_staff
from appliance.web.context import (
    BOX_LOCK,
    KNOWN_DEVICES,
    LOGIN_LIMIT,
    PROPOSED_PUBLIC_URLS,
    STAFF_SESSIONS,
    TLS,
)
from appliance.web.schema import (
    NOT_BLANK,
    OK,
    DisplayName,
    Form,
    Lanr,
    Ok,
    Password,
    TotpCode,
    Username,
    View,
)
from appliance.web.security import LANG_COOKIE, client_address, request_language
from appliance.web.sessions import StaffSession
from appliance.web.staff.common import (
    BoxLockState,
    ProfileForm,
    box_lock_state,
    login_source,
    practice_timezone,
    prepare_password_check,
    services_of,
)

RULED_ACTIONS: Final = ("edit", "reissue", "cancel", "no_show", "reopen")


class ActionRules(View, frozen=True, kw_only=True):
    """In which states each of staff's actions on an appointment is allowed."""

    edit: list[AppointmentState]
    reissue: list[AppointmentState]
    cancel: list[AppointmentState]
    no_show: list[AppointmentState]
    reopen: list[AppointmentState]


class AppointmentRules(View, frozen=True, kw_only=True):
    """The appointment book's rules, for the pages to offer only what the book allows."""

    open: list[AppointmentState]
    closed: list[AppointmentState]
    actions: ActionRules
    max_guests: int


class PublicCertificate(View, frozen=True, kw_only=True):
    """The patient site's certificate: where it comes from, until when, what went wrong."""

    #: "files", "acme" or "stand-in" (self-signed: patients' browsers warn)
    source: str
    not_after: datetime | None
    #: why the last ACME attempt failed (null: it worked, or no ACME)
    error: str | None


class SessionView(View, frozen=True, kw_only=True):
    """The member's own session: who, the CSRF token, and what the pages need to know."""

    user: StaffMember
    csrf_token: str
    practice_name: str | None
    timezone: str
    recovery_key_pending: bool
    password_weak: bool
    box_lock: BoxLockState
    appointment_rules: AppointmentRules
    #: null while the patient site is plain HTTP (on loopback)
    public_certificate: PublicCertificate | None = None


class Locked(View, frozen=True, kw_only=True):
    """When and why the box locked itself."""

    at: datetime
    reason: str


class Status(View, frozen=True, kw_only=True):
    """The box's state, for every page before login."""

    initialized: bool
    sealed: bool
    version: str
    language: str
    logged_in: bool
    locked: Locked | None
    #: what the onboarding proposes (only before it)
    public_urls: list[str] | msgspec.UnsetType = msgspec.UNSET


class LoginForm(Form, frozen=True, kw_only=True):
    """A member's name, password and, while the second factor is on, its code."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NOT_BLANK)]
    password: Password
    totp: TotpCode = ""


class FirstAdmin(Form, frozen=True, kw_only=True):
    """The practice's first admin, named in the onboarding."""

    username: Username
    display_name: DisplayName
    password: Password
    is_doctor: bool = False
    lanr: Lanr | None = None


class OnboardingForm(Form, frozen=True, kw_only=True):
    """The onboarding: the practice and its first admin."""

    practice: ProfileForm
    admin: FirstAdmin


class Onboarded(View, frozen=True, kw_only=True):
    """The onboarding's answer: the recovery key, shown this once."""

    ok: bool
    recovery_key: str


class RecoveryKeyStored(Form, frozen=True, kw_only=True):
    """The admin confirms the emergency sheet is stored safely."""

    stored: bool


class LanguageChoice(Form, frozen=True, kw_only=True):
    """The interface's language."""

    language: Literal["de", "en"]


async def _status(request: web.Request) -> web.Response:
    services = services_of(request)
    session = request.app[STAFF_SESSIONS].get(request)
    return reply(Status(
        initialized=services.vault.initialized, sealed=services.vault.sealed,
        version=__version__, language=request_language(request),
        logged_in=session is not None and not services.vault.sealed,
        locked=_locked(request),
        # the onboarding wizard proposes them
        public_urls=msgspec.UNSET if services.vault.initialized else list(
            request.app[PROPOSED_PUBLIC_URLS]),
    ))


async def _onboarding(request: web.Request) -> web.Response:
    data = await read_body(request, OnboardingForm)
    admin = data.admin
    roles = {Role.ADMIN} | ({Role.DOCTOR} if admin.is_doctor else set())
    recovery_key = onboard(
        services_of(request), profile=data.practice.profile(), username=admin.username,
        display_name=admin.display_name, password=admin.password, roles=roles,
        lanr=admin.lanr or None,
    )
    response = reply(Onboarded(ok=True, recovery_key=str(recovery_key)))
    session = StaffSession(username=admin.username, pending_recovery_key=str(recovery_key))
    request.app[STAFF_SESSIONS].create(response, request, session)
    return response


async def _recovery_confirmed(request: web.Request) -> web.Response:
    session, _ = current_staff(request)
    data = await read_body(request, RecoveryKeyStored)
    if data.stored is not True:
        raise InvalidInput(field="stored", detail="bitte bestätigen")
    session.pending_recovery_key = None
    services_of(request).audit.record(session.username, "recovery_key.confirmed")
    return reply(OK)


async def _login(request: web.Request) -> web.Response:
    request.app[LOGIN_LIMIT].hit(client_address(request))
    data = await read_body(request, LoginForm)
    services = services_of(request)
    await prepare_password_check(request, data.username, data.password)
    member = services.staff.login(data.username.strip().lower(), data.password,
                                  data.totp or None, source=login_source(request))
    weak = await asyncio.get_running_loop().run_in_executor(
        PASSWORD_WORK, services.staff.password_is_weak, member.username, data.password)
    session = StaffSession(username=member.username, password_weak=weak)
    response = reply(_session_view(request, session, member))
    request.app[STAFF_SESSIONS].create(response, request, session)
    request.app[KNOWN_DEVICES].remember(request, response)
    return response


async def _logout(request: web.Request) -> web.Response:
    current_staff(request)
    response = reply(OK)
    request.app[STAFF_SESSIONS].drop(request, response)
    return response


def _appointment_rules() -> AppointmentRules:
    """In which states the book allows what (``appointments.py`` is the one place of these)."""
    def names(states: frozenset[AppointmentState]) -> list[AppointmentState]:
        return [state for state in AppointmentState if state in states]

    return AppointmentRules(
        open=names(OPEN_STATES), closed=names(CLOSED_STATES), max_guests=MAX_GUESTS,
        actions=ActionRules(edit=names(EDIT_STATES), reissue=names(REISSUE_STATES),
                            cancel=names(TRANSITIONS["cancel"][0]),
                            no_show=names(TRANSITIONS["no_show"][0]),
                            reopen=names(TRANSITIONS["reopen"][0])))


def _session_view(request: web.Request, session: StaffSession,
                  member: StaffMember) -> SessionView:
    profile = services_of(request).office.profile()
    return SessionView(
        user=member, csrf_token=session.csrf,
        practice_name=profile.name if profile else None,
        timezone=profile.timezone if profile else DEFAULT_TIMEZONE,
        recovery_key_pending=session.pending_recovery_key is not None,
        password_weak=session.password_weak, box_lock=box_lock_state(request),
        appointment_rules=_appointment_rules(), public_certificate=_public_certificate(request),
    )


def _public_certificate(request: web.Request) -> PublicCertificate | None:
    state = request.app[TLS].public_state() if TLS in request.app else None
    if state is None:
        return None
    return PublicCertificate(source=state.source, not_after=state.not_after, error=state.error)


def _locked(request: web.Request) -> Locked | None:
    """When and why the box locked itself, until the next login unseals it."""
    locked = request.app[BOX_LOCK].locked
    if locked is None or not services_of(request).vault.sealed:
        return None
    return Locked(at=locked.at.astimezone(practice_timezone(services_of(request))),
                  reason=locked.reason.value)


async def _session(request: web.Request) -> web.Response:
    session, member = current_staff(request)
    return reply(_session_view(request, session, member))


async def _language(request: web.Request) -> web.Response:
    data = await read_body(request, LanguageChoice)
    response = reply(OK)
    response.set_cookie(LANG_COOKIE, data.language, samesite="Strict", path="/",
                        max_age=365 * 86400, secure=request.secure)
    return response


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/status", handler=_status, access="public",
             summary="Zustand der Box: eingerichtet, Tresor offen, angemeldet", response=Status),
    Endpoint(method="POST", path="/api/onboarding", handler=_onboarding, access="public",
             summary="Ersteinrichtung: Praxis, erster Admin, Wiederherstellungsschlüssel",
             body=OnboardingForm,
             response=Onboarded),
    Endpoint(method="POST", path="/api/onboarding/recovery-key-stored",
             handler=_recovery_confirmed, access="admin", body=RecoveryKeyStored,
             summary="Der Admin bestätigt, das Notfallblatt sicher verwahrt zu haben",
             response=Ok),
    Endpoint(method="POST", path="/api/login", handler=_login, access="public", body=LoginForm,
             summary="Anmelden (öffnet nach dem Start den Tresor)", response=SessionView),
    Endpoint(method="POST", path="/api/logout", handler=_logout, summary="Abmelden",
             response=Ok),
    Endpoint(method="GET", path="/api/session", handler=_session,
             summary="Die eigene Sitzung mit CSRF-Token", response=SessionView),
    Endpoint(method="POST", path="/api/language", handler=_language, access="public",
             body=LanguageChoice,
             summary="Sprache der Oberfläche wählen", response=Ok),
)
