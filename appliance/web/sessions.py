"""Server-side sessions: staff logins and verified patient links.

They live in the web process's memory; :class:`SessionKeeper` also keeps them in the vault's
resume file (:mod:`appliance.vault.resume`), so that after a restart of the process the pages
come back where they were: a staff browser's cookie reopens the vault, and with it every session
returns (docs/restart.md).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from aiohttp import web

from appliance.vault import Vault
from appliance.vault.resume import ResumeFile

_LOGGER = logging.getLogger(__name__)

STAFF_COOKIE: Final = "sz_staff"
PATIENT_COOKIE: Final = "sz_patient"
#: a staff session lasts a working day; idle after 2 h
STAFF_IDLE_S: Final = 2 * 3600.0
STAFF_MAX_S: Final = 12 * 3600.0
PATIENT_IDLE_S: Final = 2 * 3600.0
PATIENT_MAX_S: Final = 6 * 3600.0


@dataclass(kw_only=True)
class StaffSession:
    """A logged-in staff member; ``csrf`` must accompany every change."""

    username: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: shown once after onboarding until the admin confirms they stored it
    pending_recovery_key: str | None = None
    #: the password of this login falls short of today's policy: the page asks to change it
    password_weak: bool = False


@dataclass(kw_only=True)
class PatientSession:
    """A patient (or a guest) who entered the right access code of one link of an appointment."""

    appointment_id: str
    token: str
    code: str
    #: the guest whose link this is; None for the patient's own link
    guest_id: str | None = None
    #: opens this link's signaling socket on the practice's other public hosts (one per uplink),
    #: where the cookie of this host is not sent; good for nothing else
    ticket: str = field(default_factory=lambda: secrets.token_urlsafe(32))


S = TypeVar("S")


@dataclass
class _Entry(Generic[S]):
    value: S
    created: float
    seen: float


class SessionStore(Generic[S]):
    """Sessions by random id with an idle and an absolute lifetime."""

    def __init__(self, cookie: str, *, idle_s: float, max_s: float,
                 persistent: bool = True) -> None:
        """``persistent=False``: the cookie has no Max-Age and ends with the browser (a staff
        session must not stay on the PC's disk); a site on TLS names it ``__Host-…`` (Secure,
        this host only, path /)."""
        self.cookie = cookie
        self._persistent = persistent
        self._idle_s = idle_s
        self._max_s = max_s
        self._entries: dict[str, _Entry[S]] = {}
        #: told after every change and use (the keeper saves); asked before each look-up (the
        #: keeper may reopen the vault)
        self.on_change: Callable[[], None] = _nothing
        self.on_use: Callable[[], None] = _nothing
        self.before_get: Callable[[str], None] = _nothing

    def create(self, response: web.StreamResponse, request: web.Request, value: S) -> str:
        """Store ``value`` under a new id and set the cookie on ``response``."""
        self._expire()
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._entries[session_id] = _Entry(value, now, now)
        response.set_cookie(
            self.cookie_name(request), session_id, httponly=True, samesite="Strict",
            secure=request.secure, path="/",
            max_age=int(self._max_s) if self._persistent else None,
        )
        self.on_change()
        return session_id

    def cookie_name(self, request: web.Request) -> str:
        """The cookie's name on this request's site: with the ``__Host-`` prefix on TLS."""
        return f"__Host-{self.cookie}" if request.secure else self.cookie

    def get(self, request: web.Request) -> S | None:
        """The session of ``request``, if any and still valid."""
        session_id = request.cookies.get(self.cookie_name(request))
        if not session_id:
            return None
        self.before_get(session_id)
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        now = time.monotonic()
        if not self.valid(now - entry.created, now - entry.seen):
            del self._entries[session_id]
            self.on_change()
            return None
        entry.seen = now
        self.on_use()
        return entry.value

    def find(self, predicate: Callable[[S], bool]) -> S | None:
        """The first valid session whose value matches ``predicate`` (it counts as used)."""
        self._expire()
        now = time.monotonic()
        for entry in self._entries.values():
            if predicate(entry.value):
                entry.seen = now
                self.on_use()
                return entry.value
        return None

    def drop(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the session of ``request`` and clear its cookie."""
        session_id = request.cookies.get(self.cookie_name(request))
        if session_id and self._entries.pop(session_id, None) is not None:
            self.on_change()
        response.del_cookie(self.cookie_name(request), path="/", secure=request.secure)

    def drop_where(self, predicate: Callable[[S], bool]) -> int:
        """End every session whose value matches ``predicate`` (e.g. a removed user)."""
        doomed = [sid for sid, entry in self._entries.items() if predicate(entry.value)]
        for sid in doomed:
            del self._entries[sid]
        if doomed:
            self.on_change()
        return len(doomed)

    def clear(self) -> int:
        """End every session (the box is locked); how many there were."""
        count = len(self._entries)
        self._entries.clear()
        if count:
            self.on_change()
        return count

    def __len__(self) -> int:
        """How many sessions are still good."""
        self._expire()
        return len(self._entries)

    # --- for the keeper -----------------------------------------------------------------------

    def export(self) -> list[tuple[str, S, float, float]]:
        """Each live session as (id, value, age, idle time), times in seconds."""
        self._expire()
        now = time.monotonic()
        return [(sid, e.value, now - e.created, now - e.seen) for sid, e in self._entries.items()]

    def valid(self, age_s: float, idle_s: float) -> bool:
        """Whether a session of that age and idle time is still good."""
        return 0 <= age_s < self._max_s and 0 <= idle_s < self._idle_s

    def restore(self, session_id: str, value: S, age_s: float, idle_s: float) -> bool:
        """Take back a session saved before a restart, if it is still good; whether it was."""
        if session_id in self._entries or not self.valid(age_s, idle_s):
            return False
        now = time.monotonic()
        self._entries[session_id] = _Entry(value, now - age_s, now - idle_s)
        return True

    def _expire(self) -> None:
        now = time.monotonic()
        doomed = [sid for sid, e in self._entries.items()
                  if not self.valid(now - e.created, now - e.seen)]
        for sid in doomed:
            del self._entries[sid]
        if doomed:
            self.on_change()


def staff_sessions() -> SessionStore[StaffSession]:
    """The staff's logins: a working day at most, ended by 2 h idle or the browser's end."""
    return SessionStore[StaffSession](STAFF_COOKIE, idle_s=STAFF_IDLE_S, max_s=STAFF_MAX_S,
                                      persistent=False)


def patient_sessions() -> SessionStore[PatientSession]:
    """Patients' and guests' verified links."""
    return SessionStore[PatientSession](PATIENT_COOKIE, idle_s=PATIENT_IDLE_S,
                                        max_s=PATIENT_MAX_S)


def _nothing(*_: object) -> None:
    return None


@dataclass(frozen=True)
class _Kept:
    store: SessionStore[Any]
    value_type: type
    #: its cookies reopen the vault after a restart (staff), or not (patients)
    reopens: bool
    #: whether a session still belongs (e.g. its staff member still has a key to the vault)
    belongs: Callable[[Any], bool]


class SessionKeeper:
    """Keeps the sessions of both sites in the resume file while the vault is open.

    Only staff sessions may reopen the vault (a patient's cookie never unseals the practice's
    data), and only while they are still good (age and idle time as saved, plus the time since);
    once one did — or a staff member logged in with a password — every session saved under the
    current data key comes back, the patients' included. Uses are saved at most every
    ``SAVE_USE_EVERY_S``, so that idle times after a restart are right to within that.
    """

    SAVE_USE_EVERY_S: Final = 60.0

    def __init__(self, resume: ResumeFile, vault: Vault) -> None:
        self._resume = resume
        self._vault = vault
        self._kept: dict[str, _Kept] = {}
        self._busy = False
        self._saved_at = 0.0
        vault.add_unseal_listener(self.restore)
        vault.add_rekey_listener(self.save)

    def keep(self, kind: str, store: SessionStore[Any], value_type: type, *, reopens: bool,
             belongs: Callable[[Any], bool] = lambda value: True) -> None:
        """Save ``store``'s sessions as ``kind``; with ``reopens`` its cookies reopen the vault."""
        self._kept[kind] = _Kept(store, value_type, reopens, belongs)
        store.on_change = self.save
        store.on_use = self._used
        if reopens:
            store.before_get = self._reopen

    def save(self) -> None:
        """Write every live session; remove the file when no session could reopen the vault."""
        if self._busy or self._vault.sealed:
            return
        self._busy = True  # expiring sessions while exporting must not save again meanwhile
        try:
            now = time.time()
            records: list[dict[str, Any]] = []
            secrets_: list[str] = []
            for kind, kept in self._kept.items():
                for session_id, value, age_s, idle_s in kept.store.export():
                    if not kept.belongs(value):
                        continue  # e.g. its member was just removed (the re-key saves first)
                    records.append({"kind": kind, "id": session_id, "age_s": age_s,
                                    "idle_s": idle_s, "saved_at": now,
                                    "value": dataclasses.asdict(value)})
                    if kept.reopens:
                        secrets_.append(session_id)
            self._saved_at = time.monotonic()
            if secrets_:
                self._resume.save(records, secrets_)
            else:
                self._resume.discard()
        finally:
            self._busy = False

    def end_all(self) -> None:
        """End every session of both sites and remove the file: no cookie reopens the vault."""
        self._busy = True  # nothing saves while the stores empty
        try:
            for kept in self._kept.values():
                kept.store.clear()
        finally:
            self._busy = False
        self._resume.discard()

    def restore(self) -> None:
        """Bring back the sessions saved under the vault's current key (after an unseal)."""
        restored = 0
        self._busy = True
        try:
            for record in self._resume.load():
                kept = self._kept.get(record.get("kind", ""))
                if kept is None:
                    continue
                try:
                    age_s, idle_s = _times(record)
                    value = kept.value_type(**record["value"])
                    if kept.belongs(value) and kept.store.restore(
                            str(record["id"]), value, age_s, idle_s):
                        restored += 1
                except (KeyError, TypeError, ValueError):
                    _LOGGER.warning("a saved session does not fit; skipped")
        finally:
            self._busy = False
        if restored:
            _LOGGER.info("%d sessions taken back after a restart", restored)
        self.save()  # what did not come back (expired meanwhile) leaves the file

    def _used(self) -> None:
        if time.monotonic() - self._saved_at >= self.SAVE_USE_EVERY_S:
            self.save()

    def _reopen(self, session_id: str) -> None:
        if not self._vault.sealed:
            return

        def still_good(records: list[dict[str, Any]]) -> bool:
            for record in records:
                kept = self._kept.get(record.get("kind", ""))
                if kept is not None and kept.reopens and record.get("id") == session_id:
                    try:
                        return kept.store.valid(*_times(record))
                    except (KeyError, TypeError, ValueError):
                        return False
            return False

        if self._resume.reopen(session_id, accept=still_good):
            _LOGGER.info("vault reopened by a staff session after a restart")


def _times(record: dict[str, Any]) -> tuple[float, float]:
    """A saved session's age and idle time now: as saved, plus the time since."""
    since = max(0.0, time.time() - float(record["saved_at"]))
    return float(record["age_s"]) + since, float(record["idle_s"]) + since
