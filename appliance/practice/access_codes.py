"""Link tokens and access codes for patients: generation, normalisation, constant-time checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from appliance.errors import InvalidInput

#: 128 bit of randomness per link token (R9)
TOKEN_BYTES: Final = 16
#: no 0/O/Q, 1/I/L, 2/Z, 5/S, 8/B, and of the pairs 6/G and U/V only one: readable on a phone
CODE_ALPHABET: Final = "34679ACDEFHJKMNPRTUWXY"
CODE_GROUPS: Final = 3
CODE_GROUP_LENGTH: Final = 3
CODE_LENGTH: Final = CODE_GROUPS * CODE_GROUP_LENGTH
#: letters a patient may read for one of ours; every other character outside the alphabet is
#: rejected rather than guessed (0/O/Q could be D as well as nothing)
_LOOKALIKES: Final = {"G": "6", "V": "U"}
_SEPARATORS: Final = frozenset(" \t-‐‑‒–—_.")


def new_link_token() -> str:
    """A fresh link token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_access_code() -> str:
    """A fresh access code, shaped ``XXX-XXX-XXX`` from ``CODE_ALPHABET``."""
    chars = [secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)]
    groups = (
        "".join(chars[i : i + CODE_GROUP_LENGTH]) for i in range(0, CODE_LENGTH, CODE_GROUP_LENGTH)
    )
    return "-".join(groups)


def normalize_code(text: str) -> str:
    """The code as typed, reduced to its nine characters; ``InvalidInput`` if it cannot be one."""
    chars = []
    for char in text.upper():
        if char in _SEPARATORS:
            continue
        char = _LOOKALIKES.get(char, char)
        if char not in CODE_ALPHABET:
            raise InvalidInput(field="access_code", detail="enthält ein Zeichen, das nie vorkommt")
        chars.append(char)
    if len(chars) != CODE_LENGTH:
        raise InvalidInput(field="access_code", detail=f"hat nicht {CODE_LENGTH} Zeichen")
    return "".join(chars)


def codes_match(stored: str, entered: str) -> bool:
    """Whether ``entered`` is the ``stored`` code, compared in constant time (R9)."""
    try:
        candidate = normalize_code(entered)
    except InvalidInput:
        candidate = ""
    expected = normalize_code(stored)
    # compare digests, so the comparison takes the same time whatever was typed
    return hmac.compare_digest(
        hashlib.sha256(expected.encode()).digest(), hashlib.sha256(candidate.encode()).digest()
    )


def new_token_key() -> bytes:
    """A fresh 256-bit key for ``token_digest``."""
    return secrets.token_bytes(32)


def token_digest(key: bytes, token: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) by which the public site finds an appointment."""
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
