"""The box's long-lived parts, and the typed keys under which both sites find them.

:class:`Box` is built once, by :func:`appliance.runtime.build_box` (the composition root); both
site factories take it (``appliance/web/app.py``). A part both sites use is a field here, never
something one site reads off the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from appliance.backup.service import BackupService
from appliance.config import Settings
from appliance.discovery import Announcer
from appliance.practice.services import PracticeServices
from appliance.rtc.echo_peer import EchoService
from appliance.rtc.signaling import SignalingHub
from appliance.rtc.turn import TurnRelay
from appliance.tls.sites import BoxTls
from appliance.uplinks import UplinkMonitor
from appliance.web.box_lock import BoxLock
from appliance.web.devices import KnownDevices
from appliance.web.events import EventHub
from appliance.web.security import RateLimiter
from appliance.web.sessions import PatientSession, SessionKeeper, SessionStore, StaffSession

#: the TURN servers a device check's page of a role ("patient", "doctor") uses, bound to a key
PageIceServers = Callable[[str, str], list[dict[str, Any]]]


@dataclass(frozen=True, kw_only=True, eq=False)
class Box:
    """Every long-lived part of the box."""

    settings: Settings
    services: PracticeServices
    #: live updates for open pages: the dashboard sees what patients do
    events: EventHub
    #: one signaling hub for both sites (calls span the LAN and the internet)
    hub: SignalingHub
    relay: TurnRelay
    #: device checks' echo peers: one cap for the whole box
    echo: EchoService
    page_ice_servers: PageIceServers
    staff_sessions: SessionStore[StaffSession]
    patient_sessions: SessionStore[PatientSession]
    #: both sites' sessions, kept for a restart of the process
    session_keeper: SessionKeeper
    #: practice PCs that signed in before (their logins are not held by the lockout's backstop)
    known_devices: KnownDevices
    #: locks the box (seals the vault, ends every session) on an admin's word or by the clock
    lock: BoxLock
    #: which addresses serve HTTPS, the practice CA and the certificates
    tls: BoxTls
    #: the practice's internet lines, probed; the hub and the relay follow their state
    uplinks: UplinkMonitor
    #: the off-site copies of the vault's ciphertext, their schedule and state
    backup: BackupService
    #: the mDNS announcement on the LAN (None: the staff site is not on the LAN over HTTPS)
    discovery: Announcer | None = None


SERVICES: Final = web.AppKey("services", PracticeServices)
EVENTS: Final = web.AppKey("events", EventHub)
STAFF_SESSIONS: Final = web.AppKey("staff_sessions", SessionStore[StaffSession])
PATIENT_SESSIONS: Final = web.AppKey("patient_sessions", SessionStore[PatientSession])
#: both sites' sessions, kept for a restart of the process
SESSION_KEEPER: Final = web.AppKey("session_keeper", SessionKeeper)
LOGIN_LIMIT: Final = web.AppKey("login_limit", RateLimiter)
#: ``[web] public_urls``: what the onboarding wizard proposes as the patient site's addresses
PROPOSED_PUBLIC_URLS: Final = web.AppKey("proposed_public_urls", tuple)
#: practice PCs that signed in before (their logins are not held by the lockout's backstop)
KNOWN_DEVICES: Final = web.AppKey("known_devices", KnownDevices)
CODE_LIMIT: Final = web.AppKey("code_limit", RateLimiter)
PUBLIC_LIMIT: Final = web.AppKey("public_limit", RateLimiter)
#: one signaling hub for both sites (calls span the LAN and the internet)
HUB: Final = web.AppKey("signaling_hub", SignalingHub)
#: locks the box (seals the vault, ends every session) on an admin's word or by the clock
BOX_LOCK: Final = web.AppKey("box_lock", BoxLock)
#: which addresses serve HTTPS, the practice CA and the certificates
TLS: Final = web.AppKey("tls", BoxTls)
#: the practice's internet lines
UPLINKS: Final = web.AppKey("uplinks", UplinkMonitor)
#: the backups
BACKUP: Final = web.AppKey("backup", BackupService)
