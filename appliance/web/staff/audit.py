"""The audit log: what staff did, hash-chained (read by admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from aiohttp import web

from appliance.errors import AuditChainBroken
from appliance.web.api import Endpoint, reply
from appliance.web.auth import current_staff
from appliance.web.schema import View
from appliance.web.staff.common import practice_timezone, services_of


class AuditLine(View, frozen=True, kw_only=True):
    """One entry as admins read it: who did what to which id, when (practice time)."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str | None


class AuditCheck(View, frozen=True, kw_only=True):
    """The chain recomputed: unchanged, or changed from which entry on."""

    ok: bool
    checked: int
    broken_at: int | None


async def _audit(request: web.Request) -> web.Response:
    current_staff(request)
    services = services_of(request)
    tz = practice_timezone(services)
    return reply([
        AuditLine(seq=e.seq, at=e.at.astimezone(tz), actor=e.actor, action=e.action,
                  target=e.target)
        for e in services.audit.entries(limit=200)
    ])


async def _verify_audit(request: web.Request) -> web.Response:
    current_staff(request)
    try:
        checked = services_of(request).audit.verify()
    except AuditChainBroken as broken:
        return reply(AuditCheck(ok=False, checked=0, broken_at=broken.params["seq"]))
    return reply(AuditCheck(ok=True, checked=checked, broken_at=None))


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint(method="GET", path="/api/audit", handler=_audit, access="admin",
             summary="Protokoll der Mitarbeiteraktionen (ohne Inhalte)",
             response=list[AuditLine]),
    Endpoint(method="GET", path="/api/audit/verify", handler=_verify_audit, access="admin",
             summary="Prüfkette des Protokolls nachrechnen: unverändert oder ab welchem Eintrag "
                     "verändert",
             response=AuditCheck),
)
