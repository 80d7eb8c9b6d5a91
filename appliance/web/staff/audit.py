"""The audit log: what staff did, hash-chained (read by admins)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from appliance.errors import AuditChainBroken
from appliance.web.api import Endpoint
from appliance.web.auth import current_staff
from appliance.web.schema import array, boolean, integer, obj, string
from appliance.web.staff.common import iso, practice_timezone, services_of


async def _audit(request: web.Request) -> web.Response:
    current_staff(request)
    services = services_of(request)
    tz = practice_timezone(services)
    return web.json_response([
        {"seq": e.seq, "at": iso(e.at, tz), "actor": e.actor, "action": e.action,
         "target": e.target}
        for e in services.audit.entries(limit=200)
    ])


async def _verify_audit(request: web.Request) -> web.Response:
    current_staff(request)
    try:
        checked = services_of(request).audit.verify()
    except AuditChainBroken as broken:
        return web.json_response({"ok": False, "checked": 0, "broken_at": broken.params["seq"]})
    return web.json_response({"ok": True, "checked": checked, "broken_at": None})


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
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
