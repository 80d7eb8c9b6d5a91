"""The staff's accounts: members, roles, passwords and the second factor."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from aiohttp import web

from appliance.errors import InvalidInput, PermissionDenied
from appliance.practice.models import Role, StaffMember
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import current_staff
from appliance.web.context import STAFF_SESSIONS
from appliance.web.schema import OK, DisplayName, Form, Lanr, Ok, Password, Username, View
from appliance.web.staff.common import (
    PasswordProof,
    TotpProof,
    login_source,
    prepare_password_check,
    reauthentication,
    services_of,
)

Roles = Annotated[list[Role], msgspec.Meta(max_length=3)]


class NewMember(Form, frozen=True, kw_only=True):
    """A new member of the staff with a first password."""

    username: Username
    display_name: DisplayName
    roles: Roles
    password: Password
    lanr: Lanr | None = None


class MemberChange(Form, frozen=True, kw_only=True):
    """Another name, roles or LANR (what is left out stays)."""

    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    roles: Roles | msgspec.UnsetType = msgspec.UNSET
    lanr: Lanr | None | msgspec.UnsetType = msgspec.UNSET


class TotpConfirm(PasswordProof, frozen=True, kw_only=True):
    """The first code of a new second factor, with the password."""

    code: Annotated[str, msgspec.Meta(min_length=6, max_length=10)]


class PasswordChange(Form, frozen=True, kw_only=True):
    """A new password; one's own needs the old one too."""

    new_password: Password
    old_password: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class TotpSecret(View, frozen=True, kw_only=True):
    """A new second factor's secret, as text and as the authenticator app's link."""

    secret: str
    otpauth_uri: str


async def _list_staff(request: web.Request) -> web.Response:
    current_staff(request)
    return reply(services_of(request).staff.list())


async def _add_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NewMember)
    member = services_of(request).staff.add(
        actor.username, username=data.username.strip().lower(),
        display_name=data.display_name.strip(), roles=frozenset(data.roles),
        password=data.password, lanr=data.lanr or None,
    )
    return reply(member, status=201)


async def _update_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, MemberChange)
    changes: dict[str, Any] = {}
    if data.display_name is not msgspec.UNSET:
        changes["display_name"] = data.display_name.strip()
    if data.roles is not msgspec.UNSET:
        changes["roles"] = frozenset(data.roles)
    if data.lanr is not msgspec.UNSET:
        changes["lanr"] = data.lanr or None
    member = services_of(request).staff.update(
        actor.username, request.match_info["username"], **changes
    )
    return reply(member)


async def _remove_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    username = request.match_info["username"]
    services_of(request).staff.remove(actor.username, username)
    request.app[STAFF_SESSIONS].drop_where(lambda s: s.username == username)
    return reply(OK)


async def _set_password(request: web.Request) -> web.Response:
    session, actor = current_staff(request)
    username = request.match_info["username"]
    own = username == actor.username
    if not own and Role.ADMIN not in actor.roles:
        raise PermissionDenied()
    data = await read_body(request, PasswordChange)
    if own and not data.old_password:
        raise InvalidInput(field="old_password", detail="fehlt")
    if own:
        await prepare_password_check(request, username, data.old_password)
    services_of(request).staff.set_password(
        actor.username, username, data.new_password,
        old_password=data.old_password if own else None,
        source=login_source(request),
    )
    request.app[STAFF_SESSIONS].drop_where(
        lambda s: s.username == username and s is not session
    )
    if own:
        session.password_weak = False  # the new one passed today's rules
    return reply(OK)


async def _begin_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TotpProof)
    secret, uri = services_of(request).staff.begin_totp(
        actor.username, password=data.password, totp_code=data.totp or None,
        source=login_source(request))
    return reply(TotpSecret(secret=secret, otpauth_uri=uri))


async def _confirm_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TotpConfirm)
    services_of(request).staff.confirm_totp(
        actor.username, data.code, password=data.password, source=login_source(request))
    return reply(OK)


async def _disable_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TotpProof)
    services_of(request).staff.disable_totp(
        actor.username, actor.username, password=data.password,
        totp_code=data.totp or None,
        source=login_source(request),
    )
    return reply(OK)


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/staff", handler=_list_staff,
             summary="Mitarbeiterinnen und Mitarbeiter", response=list[StaffMember]),
    Endpoint(method="POST", path="/api/staff", handler=_add_staff, access="admin",
             body=NewMember, summary="Mitarbeiter anlegen", response=StaffMember, status=201),
    Endpoint(method="PATCH", path="/api/staff/{username}", handler=_update_staff,
             access="admin", body=MemberChange, summary="Mitarbeiter ändern", response=StaffMember),
    Endpoint(method="DELETE", path="/api/staff/{username}", handler=_remove_staff,
             access="admin", summary="Mitarbeiter entfernen (der Tresor wird neu verschlüsselt)",
             response=Ok),
    Endpoint(method="POST", path="/api/staff/{username}/password", handler=_set_password,
             body=PasswordChange,
             summary="Passwort ändern (eigenes mit altem Passwort, fremdes nur als Admin)",
             response=Ok),
    Endpoint(method="POST", path="/api/me/totp", handler=_begin_totp, body=TotpProof,
             summary="Zwei-Faktor-Anmeldung (TOTP) einrichten oder ersetzen: nur mit dem eigenen "
                     "Passwort und, wenn sie an ist, einem aktuellen Code",
             response=TotpSecret),
    Endpoint(method="POST", path="/api/me/totp/confirm", handler=_confirm_totp,
             body=TotpConfirm, summary="TOTP mit einem Code und dem Passwort bestätigen",
             response=Ok),
    Endpoint(method="DELETE", path="/api/me/totp", handler=_disable_totp, body=TotpProof,
             summary="TOTP abschalten: nur mit dem eigenen Passwort und einem aktuellen Code "
                     "(Fehlversuche zählen wie bei der Anmeldung)", response=Ok),
)
