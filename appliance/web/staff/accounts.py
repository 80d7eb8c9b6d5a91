"""The staff's accounts: members, roles, passwords and the second factor."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from appliance.errors import InvalidInput, PermissionDenied
from appliance.practice.models import Role
from appliance.web.api import Endpoint, read_body
from appliance.web.auth import current_staff
from appliance.web.context import STAFF_SESSIONS
from appliance.web.schema import array, obj, string
from appliance.web.staff.common import (
    MEMBER,
    OK,
    ROLE_NAMES,
    TOTP_PROOF,
    login_source,
    member_json,
    prepare_password_check,
    reauthentication,
    services_of,
)

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


TOTP_CONFIRM = obj({
    "code": string(min_length=6, max_length=10),
    "password": string(min_length=1, max_length=1000),
}, required=("code", "password"))


PASSWORD_CHANGE = obj({
    "new_password": string(min_length=1, max_length=1000),
    "old_password": string(max_length=1000),
}, required=("new_password",))


async def _list_staff(request: web.Request) -> web.Response:
    current_staff(request)
    return web.json_response([member_json(m) for m in services_of(request).staff.list()])


async def _add_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    data = await read_body(request, NEW_MEMBER)
    member = services_of(request).staff.add(
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
    member = services_of(request).staff.update(
        actor.username, request.match_info["username"], **changes
    )
    return web.json_response(member_json(member))


async def _remove_staff(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    username = request.match_info["username"]
    services_of(request).staff.remove(actor.username, username)
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
        await prepare_password_check(request, username, data["old_password"])
    services_of(request).staff.set_password(
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


async def _begin_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TOTP_PROOF)
    secret, uri = services_of(request).staff.begin_totp(
        actor.username, password=data["password"], totp_code=data.get("totp") or None,
        source=login_source(request))
    return web.json_response({"secret": secret, "otpauth_uri": uri})


async def _confirm_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TOTP_CONFIRM)
    services_of(request).staff.confirm_totp(
        actor.username, data["code"], password=data["password"], source=login_source(request))
    return web.json_response({"ok": True})


async def _disable_totp(request: web.Request) -> web.Response:
    actor, data = await reauthentication(request, TOTP_PROOF)
    services_of(request).staff.disable_totp(
        actor.username, actor.username, password=data["password"],
        totp_code=data.get("totp") or None,
        source=login_source(request),
    )
    return web.json_response({"ok": True})


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
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
)
