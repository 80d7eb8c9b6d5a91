"""The practice's staff: accounts, roles, passwords, second factor and login (which unseals)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from msgspec.structs import replace
from tinydb import Query
from tinydb.table import Table

from appliance.clock import Clock
from appliance.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TotpRequired,
    TotpReused,
    WrongCredentials,
)
from appliance.practice import passwords, store, totp
from appliance.practice.audit import AuditLog
from appliance.practice.models import OPEN_STATES, Role, StaffMember
from appliance.practice.profile import PROFILE_KEY
from appliance.practice.throttle import LoginThrottle

if TYPE_CHECKING:
    from appliance.vault import RecoveryKey, Vault

_LOGGER = logging.getLogger(__name__)

USERNAME: Final = re.compile(r"[a-z0-9._-]{2,32}")
LANR: Final = re.compile(r"[0-9]{9}")
MAX_DISPLAY_NAME: Final = 100
#: how long a begun second-factor set-up waits for its confirmation
TOTP_SETUP_S: Final = 600
#: the actor recorded for a failed login by a name that is not a staff member
UNKNOWN_ACTOR: Final = "unknown"



class _Keep:
    """Marker for "leave this field as it is" where ``None`` is a real value."""


KEEP: Final = _Keep()


def _username(value: str) -> str:
    if not USERNAME.fullmatch(value):
        raise InvalidInput(field="username",
                           detail="2–32 Zeichen aus a–z, 0–9, Punkt, Unterstrich, Bindestrich")
    return value


def _display_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_DISPLAY_NAME:
        raise InvalidInput(field="display_name", detail=f"1–{MAX_DISPLAY_NAME} Zeichen")
    return value


def _roles(values: Iterable[Role | str]) -> frozenset[Role]:
    try:
        roles = frozenset(Role(value) for value in values)
    except ValueError:
        raise InvalidInput(field="roles", detail="unbekannte Rolle") from None
    if not roles:
        raise InvalidInput(field="roles", detail="mindestens eine Rolle ist nötig")
    return roles


def _lanr(value: str | None, roles: frozenset[Role]) -> str | None:
    value = value.strip() if value else None
    if value is not None and not LANR.fullmatch(value):
        raise InvalidInput(field="lanr", detail="die lebenslange Arztnummer hat genau 9 Ziffern")
    if value is None and Role.DOCTOR in roles:
        raise InvalidInput(field="lanr", detail="ein Arzt braucht seine lebenslange Arztnummer")
    return value


class StaffDirectory:
    """Staff accounts in the vault; each member's password also opens the vault."""

    def __init__(
        self, vault: Vault, audit: AuditLog, clock: Clock, *, throttle: LoginThrottle | None = None
    ) -> None:
        self._vault = vault
        self._audit = audit
        self._clock = clock
        self._throttle = throttle or LoginThrottle(clock)

    # --- accounts -----------------------------------------------------------------------------

    def create_first_admin(
        self,
        *,
        username: str,
        display_name: str,
        password: str,
        roles: Iterable[Role | str] = (Role.ADMIN,),
        lanr: str | None = None,
    ) -> tuple[StaffMember, RecoveryKey]:
        """Onboarding: create the vault and its first member, an admin; gives the recovery key."""
        member = self._new_member(username, display_name, [*roles, Role.ADMIN], lanr, password)
        recovery_key = self._vault.create(member.username, password)
        self._table().insert(self._new_doc(member))
        self._audit.record(member.username, "staff.add", member.username)
        _LOGGER.info("vault created with its first staff member")
        return member, recovery_key

    def add(
        self,
        actor: str,
        *,
        username: str,
        display_name: str,
        roles: Iterable[Role | str],
        password: str,
        lanr: str | None = None,
    ) -> StaffMember:
        """Add a staff member (admins only); their password opens the vault from now on."""
        self._require_admin(actor)
        member = self._new_member(username, display_name, roles, lanr, password)
        if self._find(member.username) is not None or member.username in self._vault.members():
            raise Conflict(detail="diesen Benutzernamen gibt es schon")
        self._vault.add_member(member.username, password)
        self._table().insert(self._new_doc(member))
        self._audit.record(actor, "staff.add", member.username)
        return member

    def get(self, username: str) -> StaffMember:
        """The member called ``username``; ``NotFound`` if there is none."""
        doc = self._find(username)
        if doc is None:
            raise NotFound()
        return StaffMember.from_dict(doc)

    def list(self) -> list[StaffMember]:
        """All members, sorted by username."""
        members = [StaffMember.from_dict(doc) for doc in self._table().all()]
        return sorted(members, key=lambda member: member.username)

    def update(
        self,
        actor: str,
        username: str,
        *,
        display_name: str | None = None,
        roles: Iterable[Role | str] | None = None,
        lanr: str | None | _Keep = KEEP,
    ) -> StaffMember:
        """Change name, roles or LANR; members may rename themselves, the rest is for admins."""
        member = self.get(username)
        if actor != username or roles is not None or not isinstance(lanr, _Keep):
            self._require_admin(actor)
        new_roles = member.roles if roles is None else _roles(roles)
        changed = replace(
            member,
            display_name=member.display_name if display_name is None
            else _display_name(display_name),
            roles=new_roles,
            lanr=_lanr(member.lanr if isinstance(lanr, _Keep) else lanr, new_roles),
        )
        if Role.ADMIN in member.roles and Role.ADMIN not in new_roles:
            self._keep_an_admin(username)
        self._update_doc(username, {
            "display_name": changed.display_name,
            "roles": sorted(str(role) for role in changed.roles),
            "lanr": changed.lanr,
        })
        self._audit.record(actor, "staff.update", username)
        return changed

    def remove(self, actor: str, username: str) -> None:
        """Remove a member (admins only); the vault is re-keyed so their password opens nothing."""
        self._require_admin(actor)
        if actor == username:
            raise Conflict(detail="Sie können Ihr eigenes Konto nicht entfernen")
        member = self.get(username)
        if Role.ADMIN in member.roles:
            self._keep_an_admin(username)
        open_states = [str(state) for state in OPEN_STATES]
        appointments = self._vault.db.table(store.APPOINTMENTS)
        if appointments.contains((Query().doctor == username) & Query().state.one_of(open_states)):
            raise Conflict(detail="dieser Arzt hat noch offene Termine")
        self._vault.remove_member(username)
        self._table().remove(Query().username == username)
        self._throttle.forget(username)
        self._audit.record(actor, "staff.remove", username)

    def set_password(
        self, actor: str, username: str, new_password: str, *, old_password: str | None = None,
        source: str,
    ) -> None:
        """Set a password: one's own with the old one, someone else's as an admin.

        ``source`` is where the request comes from (client address or ``"cli"``): a wrong old
        password counts towards the same lockout as a wrong login from there.
        """
        if actor == username:
            self._throttle.check(username, source)
            if old_password is None or not self._vault.check_password(username, old_password):
                self._fail(username, source)
                raise AuthenticationFailed()
        else:
            self._require_admin(actor)
        member = self.get(username)
        new_password = passwords.check_new(new_password, self._password_context(member))
        # re-keys too: the old password with an old copy of the files opens nothing newer
        self._vault.set_password(username, new_password)
        self._audit.record(actor, "staff.password", username)

    def recover(self, recovery_key: RecoveryKey | str, username: str, new_password: str) -> None:
        """Emergency: open the vault with the recovery key and give an admin a new password."""
        self._vault.unseal_with_recovery_key(recovery_key)
        member = self.get(username)
        if Role.ADMIN not in member.roles:
            raise PermissionDenied()
        new_password = passwords.check_new(new_password, self._password_context(member))
        self._vault.set_password(username, new_password)
        self._audit.record("recovery-key", "staff.password.recovered", username)

    def rotate_recovery_key(self, actor: str) -> RecoveryKey:
        """A new recovery key (admins only): the old sheet opens nothing written after; the
        vault is re-keyed. The caller shows the new key once."""
        self._require_admin(actor)
        key = self._vault.rotate_recovery_key()
        self._audit.record(actor, "recovery_key.rotated")
        return key

    def rekey(self, actor: str) -> None:
        """A new data key now (admins only), e.g. after a suspicion that the key was copied from
        the running box: that key opens nothing written after. (Passwords and the recovery key
        stay as they are; change those separately.)"""
        self._require_admin(actor)
        self._vault.rekey()
        self._audit.record(actor, "vault.rekey")

    # --- login --------------------------------------------------------------------------------

    def check_not_locked(self, username: str, *, source: str) -> None:
        """Raise :class:`AccountLocked` if ``username`` may not try a password from ``source``
        now (before any costly work for it is done)."""
        self._throttle.check(_login_name(username), source)

    def prepare_password_check(self, username: str, password: str) -> None:
        """Do the slow part of checking ``username``'s password (Argon2id, ~0.3 s) now; a
        server calls this in a worker thread right before :meth:`login` (or a re-check)."""
        self._vault.prepare_password(_login_name(username), password)

    def login(self, username: str, password: str, totp_code: str | None = None, *,
              source: str) -> StaffMember:
        """Check a login; while the vault is sealed, these credentials unseal it.

        ``source`` is where the login comes from (the client address, or ``"cli"``): failures
        lock the name from that source, and many from anywhere lock it everywhere.
        """
        name = _login_name(username)
        self._throttle.check(name, source)
        unsealed_here = False
        if self._vault.sealed:
            try:
                self._vault.unseal(name, password)
            except WrongCredentials:
                self._fail(name, source)
                raise AuthenticationFailed() from None
            unsealed_here = True
            _LOGGER.info("vault unsealed by a staff login")
        elif not self._vault.check_password(name, password):
            self._fail(name, source, audit=True)
            raise AuthenticationFailed()
        doc = self._find(name)
        if doc is None:  # a vault member without an account: no way in
            self._fail(name, source, audit=True, reseal=unsealed_here)
            raise AuthenticationFailed()
        member = StaffMember.from_dict(doc)
        if member.totp_enabled:
            self._check_totp(doc, totp_code, source, reseal=unsealed_here)
        self._throttle.succeeded(name, source)
        self._audit.record(name, "login")
        return member

    # --- second factor ------------------------------------------------------------------------

    def begin_totp(self, username: str, *, password: str, totp_code: str | None,
                   source: str) -> tuple[str, str]:
        """Start setting up (or replacing) one's second factor: the secret (base32) and its
        ``otpauth://`` URI.

        Like switching it off, it needs the password and, while a second factor is on, a
        current code: an open session at an unattended PC must not let anyone install their own
        authenticator. Failures count like a wrong login from ``source``.
        """
        self.reauthenticate(username, password, totp_code, source)
        secret = totp.new_secret()
        self._update_doc(username, {"totp_pending": secret,
                                    "totp_pending_at": self._clock.now().timestamp()})
        self._audit.record(username, "staff.totp.begin", username)
        return secret, totp.provisioning_uri(secret, username)

    def confirm_totp(self, username: str, code: str, *, password: str, source: str) -> StaffMember:
        """Switch the (new) second factor on once the member typed a code from their app and,
        once more, their password; an unconfirmed set-up lapses after 10 minutes."""
        self._throttle.check(username, source)
        if not self._vault.check_password(username, password):
            self._fail(username, source, audit=True)
            raise AuthenticationFailed()
        doc = self._find(username)
        if doc is None:
            raise NotFound()
        pending = doc.get("totp_pending")
        started = doc.get("totp_pending_at") or 0
        if not pending or self._clock.now().timestamp() - started > TOTP_SETUP_S:
            raise Conflict(detail="die Einrichtung wurde nicht (oder vor zu langer Zeit) begonnen")
        step = totp.matching_step(pending, code, self._clock.now())
        if step is None:
            raise InvalidInput(field="totp_code", detail="der Code passt nicht")
        replaced = bool(doc.get("totp_enabled"))
        self._update_doc(username, {"totp_secret": pending, "totp_pending": None,
                                    "totp_pending_at": None, "totp_enabled": True,
                                    "totp_last_step": step})
        self._throttle.succeeded(username, source)
        self._audit.record(username, "staff.totp.replace" if replaced else "staff.totp.enable",
                           username)
        return self.get(username)

    def disable_totp(self, actor: str, username: str, *, password: str, totp_code: str | None,
                     source: str) -> StaffMember:
        """Switch the second factor off: one's own, or anyone's as an admin.

        The actor proves it is them with their password and, while their own second factor is
        on, a current code: an open session at an unattended PC is not enough. A wrong password
        or code fails and counts exactly like a wrong login from ``source``.
        """
        self.reauthenticate(actor, password, totp_code, source)
        if actor != username:
            self._require_admin(actor)
        self.get(username)
        self._update_doc(username, {"totp_secret": None, "totp_pending": None,
                                    "totp_enabled": False, "totp_last_step": None})
        self._audit.record(actor, "staff.totp.disable", username)
        return self.get(username)

    # --- internals ----------------------------------------------------------------------------

    def reauthenticate(self, actor: str, password: str, totp_code: str | None,
                       source: str) -> None:
        """A logged-in member confirms a sensitive change like a login, lockout included."""
        self._throttle.check(actor, source)
        if not self._vault.check_password(actor, password):
            self._fail(actor, source, audit=True)
            raise AuthenticationFailed()
        doc = self._find(actor)
        if doc is None:
            self._fail(actor, source, audit=True)
            raise AuthenticationFailed()
        if doc.get("totp_enabled"):
            self._check_totp(doc, totp_code, source)
        self._throttle.succeeded(actor, source)

    def _check_totp(self, doc: dict[str, Any], code: str | None, source: str, *,
                    reseal: bool = False) -> None:
        """The member's current second-factor code, used once; failures count like logins."""
        name = doc["username"]
        if not code:
            if reseal:
                self._vault.seal()
            raise TotpRequired()
        step = totp.matching_step(doc["totp_secret"], code, self._clock.now())
        last = doc.get("totp_last_step")
        if step is None:
            self._fail(name, source, audit=True, reseal=reseal)
            raise AuthenticationFailed()
        if last is not None and step <= last:  # a replayed code
            self._fail(name, source, audit=True, reseal=reseal)
            raise TotpReused()
        self._update_doc(name, {"totp_last_step": step})

    def _new_member(self, username: str, display_name: str, roles: Iterable[Role | str],
                    lanr: str | None, password: str) -> StaffMember:
        """A validated new member (the password is checked, never stored here)."""
        clean_roles = _roles(roles)
        member = StaffMember(
            username=_username(username),
            display_name=_display_name(display_name),
            roles=clean_roles,
            lanr=_lanr(lanr, clean_roles),
            created_at=self._clock.now(),
        )
        passwords.check_new(password, self._password_context(member))
        return member

    def _password_context(self, member: StaffMember) -> list[str]:
        """Words a guesser of ``member``'s password would try first: their names, the
        practice's name and place."""
        words = [member.username, member.display_name]
        if not self._vault.sealed:
            profile = store.get_setting(self._vault, PROFILE_KEY) or {}
            words += [str(profile.get(key) or "") for key in ("name", "city", "street")]
        return words

    def password_is_weak(self, username: str, password: str) -> bool:
        """Whether an existing password (just checked at a login) falls short of today's
        policy: the member is asked to change it."""
        return not passwords.assess(password, self._password_context(self.get(username))).acceptable

    def _table(self) -> Table:
        return self._vault.db.table(store.STAFF)

    def _find(self, username: str) -> dict[str, Any] | None:
        return self._table().get(Query().username == username)

    def _new_doc(self, member: StaffMember) -> dict[str, Any]:
        return {**member.to_dict(), "totp_secret": None, "totp_pending": None,
                "totp_last_step": None}

    def _update_doc(self, username: str, fields: dict[str, Any]) -> None:
        self._table().update(fields, Query().username == username)

    def _require_admin(self, actor: str) -> None:
        doc = self._find(actor)
        if doc is None or Role.ADMIN not in StaffMember.from_dict(doc).roles:
            raise PermissionDenied()

    def _keep_an_admin(self, leaving: str) -> None:
        admins = [m for m in self.list() if Role.ADMIN in m.roles and m.username != leaving]
        if not admins:
            raise Conflict(detail="die Praxis braucht mindestens einen Administrator")

    def _fail(self, name: str, source: str, *, audit: bool = False,
              reseal: bool = False) -> None:
        """Count a failed login; audit it while the vault is open; re-seal if asked."""
        if audit:
            known = self._find(name) is not None
            self._audit.record(name if known else UNKNOWN_ACTOR, "login.failed",
                               name if known else None)
        if reseal:  # before counting: a lock raised there must not leave the vault open
            self._vault.seal()
        locked = self._throttle.failed(name, source)
        _LOGGER.info("failed staff login%s", "; name locked" if locked else "")
        if locked:
            self._throttle.check(name, source)  # raises AccountLocked with the time left


def _login_name(username: str) -> str:
    """A typed user name as the login compares it."""
    return username.strip().lower()[:64]
