"""Server-side sessions: staff logins and verified patient links, kept in memory only."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from aiohttp import web

STAFF_COOKIE: Final = "sz_staff"
PATIENT_COOKIE: Final = "sz_patient"


@dataclass(kw_only=True)
class StaffSession:
    """A logged-in staff member; ``csrf`` must accompany every change."""

    username: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: shown once after onboarding until the admin confirms they stored it
    pending_recovery_key: str | None = None


@dataclass(kw_only=True)
class PatientSession:
    """A patient (or a guest) who entered the right access code of one link of an appointment."""

    appointment_id: str
    token: str
    code: str
    #: the guest whose link this is; None for the patient's own link
    guest_id: str | None = None


S = TypeVar("S")


@dataclass
class _Entry(Generic[S]):
    value: S
    created: float
    seen: float


class SessionStore(Generic[S]):
    """Sessions by random id with an idle and an absolute lifetime."""

    def __init__(self, cookie: str, *, idle_s: float, max_s: float) -> None:
        self.cookie = cookie
        self._idle_s = idle_s
        self._max_s = max_s
        self._entries: dict[str, _Entry[S]] = {}

    def create(self, response: web.StreamResponse, request: web.Request, value: S) -> str:
        """Store ``value`` under a new id and set the cookie on ``response``."""
        self._expire()
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._entries[session_id] = _Entry(value, now, now)
        response.set_cookie(
            self.cookie, session_id, httponly=True, samesite="Strict", secure=request.secure,
            path="/", max_age=int(self._max_s),
        )
        return session_id

    def get(self, request: web.Request) -> S | None:
        """The session of ``request``, if any and still valid."""
        session_id = request.cookies.get(self.cookie)
        entry = self._entries.get(session_id) if session_id else None
        if entry is None:
            return None
        now = time.monotonic()
        if now - entry.seen > self._idle_s or now - entry.created > self._max_s:
            del self._entries[session_id]  # type: ignore[arg-type]
            return None
        entry.seen = now
        return entry.value

    def drop(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the session of ``request`` and clear its cookie."""
        session_id = request.cookies.get(self.cookie)
        if session_id:
            self._entries.pop(session_id, None)
        response.del_cookie(self.cookie, path="/")

    def drop_where(self, predicate) -> int:  # noqa: ANN001 - a plain callable on the value
        """End every session whose value matches ``predicate`` (e.g. a removed user)."""
        doomed = [sid for sid, entry in self._entries.items() if predicate(entry.value)]
        for sid in doomed:
            del self._entries[sid]
        return len(doomed)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [
            sid for sid, e in self._entries.items()
            if now - e.seen > self._idle_s or now - e.created > self._max_s
        ]:
            del self._entries[sid]
