"""The practice: its profile, the vault's keys and locking the box (admins)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from appliance.errors import NotFound
from appliance.practice.models import PracticeProfile, StaffMember
from appliance.practice.profile import KV_REGIONS
from appliance.web.api import Endpoint, read_body, reply
from appliance.web.auth import current_staff
from appliance.web.context import BOX_LOCK, STAFF_SESSIONS
from appliance.web.schema import OK, Ok, View
from appliance.web.staff.common import (
    ProfileForm,
    TotpProof,
    login_source,
    reauthentication,
    services_of,
)


class KvRegionView(View, frozen=True, kw_only=True):
    """A Kassenärztliche Vereinigung: its code and its name."""

    code: str
    name: str


class RecoveryKeyView(View, frozen=True, kw_only=True):
    """A new recovery key, shown once."""

    recovery_key: str


class BoxLockAnswer(View, frozen=True, kw_only=True):
    """Whether the box locked at once, or the lock waits for the last call to end."""

    locked: bool
    pending: bool


async def _get_practice(request: web.Request) -> web.Response:
    current_staff(request)
    profile = services_of(request).office.profile()
    if profile is None:
        raise NotFound()
    return reply(profile)


async def _put_practice(request: web.Request) -> web.Response:
    _, member = current_staff(request)
    data = await read_body(request, ProfileForm)
    return reply(services_of(request).office.save_profile(member.username, data.profile()))


async def _kv_regions(request: web.Request) -> web.Response:
    return reply([KvRegionView(code=code, name=name) for code, name in KV_REGIONS.items()])


async def proven_admin(request: web.Request) -> StaffMember:
    """An admin who confirmed a change of the vault's keys with password (and code)."""
    actor, data = await reauthentication(request, TotpProof)
    services_of(request).staff.reauthenticate(actor.username, data.password,
                                              data.totp or None, login_source(request))
    return actor


async def _rotate_recovery_key(request: web.Request) -> web.Response:
    actor = await proven_admin(request)
    key = services_of(request).staff.rotate_recovery_key(actor.username)
    session = request.app[STAFF_SESSIONS].get(request)
    if session is not None:  # the new sheet (/notfallblatt) until the admin confirms it
        session.pending_recovery_key = str(key)
    return reply(RecoveryKeyView(recovery_key=str(key)))


async def _rekey(request: web.Request) -> web.Response:
    actor = await proven_admin(request)
    services_of(request).staff.rekey(actor.username)
    return reply(OK)


async def _lock_box(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    lock = request.app[BOX_LOCK]
    locked = lock.request(actor.username)
    return reply(BoxLockAnswer(locked=locked, pending=lock.pending))


async def _cancel_box_lock(request: web.Request) -> web.Response:
    _, actor = current_staff(request)
    lock = request.app[BOX_LOCK]
    lock.cancel(actor.username)
    return reply(BoxLockAnswer(locked=False, pending=lock.pending))


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/kv-regions", handler=_kv_regions, access="public",
             summary="Die 17 Kassenärztlichen Vereinigungen",
             response=list[KvRegionView]),
    Endpoint(method="GET", path="/api/practice", handler=_get_practice,
             summary="Stammdaten der Praxis", response=PracticeProfile),
    Endpoint(method="PUT", path="/api/practice", handler=_put_practice, access="admin",
             body=ProfileForm, summary="Stammdaten der Praxis ändern", response=PracticeProfile),
    Endpoint(method="POST", path="/api/vault/recovery-key", handler=_rotate_recovery_key,
             access="admin", body=TotpProof,
             summary="Neuen Wiederherstellungsschlüssel ausstellen (der alte öffnet danach "
                     "nichts mehr; Passwort und, wenn eingerichtet, Code nötig)",
             response=RecoveryKeyView),
    Endpoint(method="POST", path="/api/vault/rekey", handler=_rekey, access="admin",
             body=TotpProof, summary="Den Tresor jetzt neu verschlüsseln (Passwort und, wenn "
                                      "eingerichtet, Code nötig)", response=Ok),
    Endpoint(method="POST", path="/api/box/lock", handler=_lock_box, access="admin",
             summary="Die Box sperren: Tresor versiegeln, alle Sitzungen beenden – sofort oder, "
                     "solange ein Gespräch läuft oder jemand wartet, danach",
             response=BoxLockAnswer),
    Endpoint(method="DELETE", path="/api/box/lock", handler=_cancel_box_lock, access="admin",
             summary="Eine noch wartende Sperre der Box abbrechen", response=BoxLockAnswer),
)
