"""The one error hierarchy: every error has a stable ``code`` and a message an admin understands.

Messages live in the message catalogs (``appliance/locales``) under ``error.<code>``; an error
carries only its code and the parameters the message needs, never personal data.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SprechzimmerError(Exception):
    """Base of every error the box reports to a person."""

    code: ClassVar[str] = "error"
    #: the HTTP status the web layer answers with
    status: ClassVar[int] = 500

    def __init__(self, code: str | None = None, /, **params: Any) -> None:
        self.code = code or type(self).code
        self.params = params
        super().__init__(self.code)

    def message(self, lang: str = "de") -> str:
        """The message in ``lang`` from the catalogs."""
        from appliance.i18n import translate

        return translate(f"error.{self.code}", lang, **self.params)

    def __str__(self) -> str:
        return self.message("de")


class ConfigError(SprechzimmerError):
    """A setting has a value that is not allowed."""

    code = "config_invalid"


# --- vault ------------------------------------------------------------------------------------


class VaultError(SprechzimmerError):
    """Something is wrong with the encrypted store."""

    code = "vault_error"
    status = 503


class VaultSealed(VaultError):
    """The vault is sealed: a staff member must log in first."""

    code = "vault_sealed"


class VaultNotInitialized(VaultError):
    """There is no vault yet: onboarding has not happened."""

    code = "vault_not_initialized"


class VaultAlreadyInitialized(VaultError):
    """A vault exists already; onboarding cannot run twice."""

    code = "vault_already_initialized"
    status = 409


class WrongCredentials(VaultError):
    """Password (or member) does not open the vault. Same error for both, on purpose."""

    code = "wrong_credentials"
    status = 401


class WrongRecoveryKey(VaultError):
    """The recovery key is well-formed but does not open this vault."""

    code = "wrong_recovery_key"
    status = 401


class MalformedRecoveryKey(VaultError):
    """The recovery key was mistyped (bad characters, length or checksum)."""

    code = "recovery_key_malformed"
    status = 400


class VaultTampered(VaultError):
    """Authentication of stored data failed: a flipped byte, a foreign file, or a wrong key."""

    code = "vault_tampered"


class StorageFull(VaultError):
    """The disk is full; the change was not stored."""

    code = "storage_full"
    status = 507


# --- practice and web -----------------------------------------------------------------------


class NotFound(SprechzimmerError):
    code = "not_found"
    status = 404


class Conflict(SprechzimmerError):
    code = "conflict"
    status = 409


class InvalidInput(SprechzimmerError):
    """A field has a value that is not allowed; ``field`` names it."""

    code = "invalid_input"
    status = 400


class PermissionDenied(SprechzimmerError):
    code = "permission_denied"
    status = 403


class AuthenticationFailed(SprechzimmerError):
    code = "authentication_failed"
    status = 401


class AccountLocked(SprechzimmerError):
    code = "account_locked"
    status = 429


class RateLimited(SprechzimmerError):
    code = "rate_limited"
    status = 429


class NotLoggedIn(SprechzimmerError):
    """A staff route was called without a valid session."""

    code = "not_logged_in"
    status = 401


class PracticeOffline(SprechzimmerError):
    """The patient page while the vault is sealed: the practice is not online yet."""

    code = "practice_offline"
    status = 503


class CsrfFailed(SprechzimmerError):
    """A change was requested without the session's CSRF token or from another origin."""

    code = "csrf_failed"
    status = 403


# --- practice ---------------------------------------------------------------------------------


class AuditChainBroken(SprechzimmerError):
    """The audit log's hash chain does not hold at entry ``seq``: someone altered the log."""

    code = "audit_chain_broken"
    status = 500


class TotpRequired(AuthenticationFailed):
    """The password is right, but this account also needs the code from the authenticator app."""

    code = "totp_required"
    status = 401


class WrongAccessCode(AuthenticationFailed):
    """The patient's access code does not match; ``remaining`` attempts are left."""

    code = "wrong_access_code"
    status = 401


class LinkLocked(SprechzimmerError):
    """The patient link is locked after too many wrong codes until the practice reissues it."""

    code = "link_locked"
    status = 423


class AppointmentClosed(SprechzimmerError):
    """The appointment is over, cancelled or missed: its link and code no longer open it."""

    code = "appointment_closed"
    status = 410


class TotpReused(AuthenticationFailed):
    """A second-factor code that was already used (replay protection)."""

    code = "totp_reused"
