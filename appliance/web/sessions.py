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

    def __init__(self, cookie: str, *, idle_s: float, max_s: float) -> None:
        self.cookie = cookie
        self._idle_s = idle_s
        self._max_s = max_s
        self._entries: dict[str, _Entry[S]] = {}
        #: told after every change (the keeper saves); asked before each look-up (it may reopen)
        self.on_change: Callable[[], None] = _nothing
        self.before_get: Callable[[str], None] = _nothing

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
        self.on_change()
        return session_id

    def get(self, request: web.Request) -> S | None:
        """The session of ``request``, if any and still valid."""
        session_id = request.cookies.get(self.cookie)
        if not session_id:
            return None
        self.before_get(session_id)
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        now = time.monotonic()
        if now - entry.seen > self._idle_s or now - entry.created > self._max_s:
            del self._entries[session_id]
            self.on_change()
            return None
        entry.seen = now
        return entry.value

    def find(self, predicate: Callable[[S], bool]) -> S | None:
        """The first valid session whose value matches ``predicate`` (it counts as used)."""
        self._expire()
        now = time.monotonic()
        for entry in self._entries.values():
            if predicate(entry.value):
                entry.seen = now
                return entry.value
        return None

    def drop(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the session of ``request`` and clear its cookie."""
        session_id = request.cookies.get(self.cookie)
        if session_id and self._entries.pop(session_id, None) is not None:
            self.on_change()
        response.del_cookie(self.cookie, path="/")

    def drop_where(self, predicate: Callable[[S], bool]) -> int:
        """End every session whose value matches ``predicate`` (e.g. a removed user)."""
        doomed = [sid for sid, entry in self._entries.items() if predicate(entry.value)]
        for sid in doomed:
            del self._entries[sid]
        if doomed:
            self.on_change()
        return len(doomed)

    # --- for the keeper -----------------------------------------------------------------------

    def ids(self) -> list[str]:
        """The ids of all live sessions."""
        self._expire()
        return list(self._entries)

    def export(self) -> list[tuple[str, S, float]]:
        """Each live session as (id, value, age in seconds)."""
        self._expire()
        now = time.monotonic()
        return [(sid, e.value, now - e.created) for sid, e in self._entries.items()]

    def restore(self, session_id: str, value: S, age_s: float) -> None:
        """Take back a session saved before a restart (its age counts; its idle time starts)."""
        if session_id in self._entries or not 0 <= age_s < self._max_s:
            return
        now = time.monotonic()
        self._entries[session_id] = _Entry(value, now - age_s, now)

    def _expire(self) -> None:
        now = time.monotonic()
        doomed = [sid for sid, e in self._entries.items()
                  if now - e.seen > self._idle_s or now - e.created > self._max_s]
        for sid in doomed:
            del self._entries[sid]
        if doomed:
            self.on_change()


def _nothing(*_: object) -> None:
    return None


class SessionKeeper:
    """Keeps the sessions of both sites in the resume file while the vault is open.

    Only staff sessions may reopen the vault (a patient's cookie never unseals the practice's
    data); once any of them did — or a staff member logged in with a password — every session
    saved under the current data key comes back, the patients' included.
    """

    def __init__(self, resume: ResumeFile, vault: Vault) -> None:
        self._resume = resume
        self._vault = vault
        self._stores: dict[str, tuple[SessionStore[Any], type, bool]] = {}
        self._restoring = False
        vault.add_unseal_listener(self.restore)
        vault.add_rekey_listener(self.save)

    def keep(self, kind: str, store: SessionStore[Any], value_type: type, *,
             reopens: bool) -> None:
        """Save ``store``'s sessions as ``kind``; with ``reopens`` its cookies reopen the vault."""
        self._stores[kind] = (store, value_type, reopens)
        store.on_change = self.save
        if reopens:
            store.before_get = self._reopen

    def save(self) -> None:
        """Write every live session; remove the file when no session could reopen the vault."""
        if self._restoring or self._vault.sealed:
            return
        records: list[dict[str, Any]] = []
        secrets_: list[str] = []
        for kind, (store, _, reopens) in self._stores.items():
            for session_id, value, age_s in store.export():
                records.append({"kind": kind, "id": session_id, "age_s": age_s,
                                "saved_at": time.time(), "value": dataclasses.asdict(value)})
                if reopens:
                    secrets_.append(session_id)
        if secrets_:
            self._resume.save(records, secrets_)
        else:
            self._resume.discard()

    def restore(self) -> None:
        """Bring back the sessions saved under the vault's current key (after an unseal)."""
        restored = 0
        self._restoring = True
        try:
            for record in self._resume.load():
                entry = self._stores.get(record.get("kind", ""))
                if entry is None:
                    continue
                store, value_type, _ = entry
                try:
                    age_s = float(record["age_s"]) + max(0.0, time.time() - record["saved_at"])
                    store.restore(str(record["id"]), value_type(**record["value"]), age_s)
                    restored += 1
                except (KeyError, TypeError, ValueError):
                    _LOGGER.warning("a saved session does not fit; skipped")
        finally:
            self._restoring = False
        if restored:
            _LOGGER.info("%d sessions taken back after a restart", restored)
            self.save()

    def _reopen(self, session_id: str) -> None:
        if self._vault.sealed and self._resume.reopen(session_id):
            _LOGGER.info("vault reopened by a staff session after a restart")
