"""Typed keys under which both sites find the box's services."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from appliance.practice.services import PracticeServices
from appliance.rtc.signaling import SignalingHub
from appliance.web.box_lock import BoxLock
from appliance.web.devices import KnownDevices
from appliance.web.events import EventHub
from appliance.web.security import RateLimiter
from appliance.web.sessions import PatientSession, SessionKeeper, SessionStore, StaffSession

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
