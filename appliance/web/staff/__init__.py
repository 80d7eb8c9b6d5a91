"""The staff site's JSON API, cut by resource; the table of endpoints assembled from them.

Each module declares its endpoints (path, access, body and answer schemas); the OpenAPI document
and the access check (``appliance/web/auth.py``) are made from this one table.
"""

from __future__ import annotations

from typing import Final

from appliance.web import device_check, sockets
from appliance.web.api import Endpoint
from appliance.web.staff import (
    accounts,
    appointments,
    audit,
    backup,
    patients,
    practice,
    session,
    uplinks,
)

ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    *session.ENDPOINTS,
    *practice.ENDPOINTS,
    *accounts.ENDPOINTS,
    *patients.ENDPOINTS,
    *appointments.ENDPOINTS,
    device_check.STAFF_ENDPOINT,
    device_check.STAFF_ICE_ENDPOINT,
    sockets.STAFF_ENDPOINT,
    *audit.ENDPOINTS,
    *backup.ENDPOINTS,
    *uplinks.ENDPOINTS,
)

__all__ = ["ENDPOINTS", "Endpoint"]
