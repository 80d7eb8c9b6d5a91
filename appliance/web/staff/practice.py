"""The practice: its profile, the vault's keys and locking the box (admins)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from appliance.errors import NotFound
from appliance.practice.models import DEFAULT_TIMEZONE, PracticeProfile, StaffMember
from appliance.practice.profile import KV_REGIONS
from appliance.web.api import Endpoint, read_body
from appliance.web.auth import current_staff
from appliance.web.context import BOX_LOCK, STAFF_SESSIONS
from appliance.web.schema import array, boolean, obj, string
from appliance.web.staff.common import (
    OK,
    PROFILE,
    PROFILE_OUT,
    TOTP_PROOF,
    login_source,
    reauthentication,
    services_of,
)

BOX_LOCK_ANSWER = obj({"locked": boolean(), "pending": boolean()}, required=("locked", "pending"))


def _profile_json(profile: PracticeProfile) -> dict[str, Any]:
    return {
        "name": profile.name, "bsnr": profile.bsnr, "street": profile.street,
        "postal_code": profile.postal_code, "city": profile.city,
        "kv_region": profile.kv_region, "timezone": profile.timezone,
        "public_urls": list(profile.public_urls),
    }


async def _get_practice(request: web.Request) -> web.Response:
    current_staff(request)
    profile = services_of(request).office.profile()
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
    saved = services_of(request).office.save_profile(member.username, profile)
    return web.json_response(_profile_json(saved))


async def _kv_regions(request: web.Request) -> web.Response:
    return web.json_response([{"code": c, "name": n} for c, n in KV_REGIONS.items()])


async def proven_admin(request: web.Request) -> StaffMember:
    """An admin who confirmed a change of the vault's keys with password (and code)."""
    actor, data = await reauthentication(request, TOTP_PROOF)
    services_of(request).staff.reauthenticate(actor.username, data["password"],
                                              data.get("totp") or None, login_source(request))
    return actor


async def _rotate_recovery_key(request: web.Request) -> web.Response:
    actor = await proven_admin(request)
    key = services_of(request).staff.rotate_recovery_key(actor.username)
    session = request.app[STAFF_SESSIONS].get(request)
    if session is not None:  # the new sheet (/notfallblatt) until the admin confirms it
        session.pending_recovery_key = str(key)
    return web.json_response({"recovery_key": str(key)})


async def _rekey(request: web.Request) -> web.Response:
    actor = await proven_admin(request)
    services_of(request).staff.rekey(actor.username)
    return web.json_response({"ok": True})


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


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/kv-regions", handler=_kv_regions, access="public",
             summary="Die 17 Kassenärztlichen Vereinigungen",
             response=array(obj({"code": string(), "name": string()}))),
    Endpoint(method="GET", path="/api/practice", handler=_get_practice,
             summary="Stammdaten der Praxis", response=PROFILE_OUT),
    Endpoint(method="PUT", path="/api/practice", handler=_put_practice, access="admin",
             body=PROFILE, summary="Stammdaten der Praxis ändern", response=PROFILE_OUT),
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
)
