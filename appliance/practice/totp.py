"""Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps), computed by
``cryptography``'s HOTP; this module adds the practice's rules: the secret's form, the window a
phone's clock may be off, and the URI an authenticator app reads."""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime
from typing import Final
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

STEP_SECONDS: Final = 30
DIGITS: Final = 6
#: codes of the neighbouring steps are accepted too: clocks of phones drift
WINDOW: Final = 1
SECRET_BYTES: Final = 20
ISSUER: Final = "Sprechzimmer"


def new_secret() -> str:
    """A fresh 160-bit shared secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.upper().replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def time_step(at: datetime) -> int:
    """The RFC 6238 counter for the moment ``at``."""
    return int(at.timestamp()) // STEP_SECONDS


def code_at_step(secret: str, step: int, digits: int = DIGITS) -> str:
    """The code for counter ``step`` (RFC 4226 HOTP)."""
    return HOTP(_key(secret), digits, SHA1(), enforce_key_length=False).generate(step).decode()


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The step within ±``WINDOW`` of ``at`` whose code is ``code``, or ``None``."""
    entered = code.replace(" ", "").strip()
    now = time_step(at)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        # check every step, so the time taken does not tell which one matched
        if hmac.compare_digest(code_at_step(secret, step).encode(), entered.encode()):
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI an authenticator app reads from a QR code."""
    label = quote(f"{issuer}:{account}")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
         "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"
