"""Link tokens and access codes: shape, alphabet, entropy, normalisation, constant-time checks."""

from __future__ import annotations

import re

import pytest

from appliance.errors import InvalidInput
from appliance.practice import access_codes
from appliance.practice.access_codes import (
    CODE_ALPHABET,
    codes_match,
    new_access_code,
    new_link_token,
    new_token_key,
    normalize_code,
    token_digest,
)

AMBIGUOUS = "0O1IL5S2Z8B"


def test_code_shape_is_three_groups_of_three() -> None:
    """An access code reads XXX-XXX-XXX."""
    for _ in range(200):
        assert re.fullmatch(r"[A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3}", new_access_code())


def test_alphabet_has_no_ambiguous_characters() -> None:
    """No 0/O, 1/I/L, 5/S, 2/Z, 8/B: readable for an old patient on a phone."""
    assert not set(AMBIGUOUS) & set(CODE_ALPHABET)
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) >= 20


def test_codes_use_the_whole_alphabet_and_only_it() -> None:
    """R9: codes are drawn from the full alphabet (about 40 bit per code)."""
    seen: set[str] = set()
    codes = {new_access_code() for _ in range(2000)}
    for code in codes:
        seen.update(code.replace("-", ""))
    assert seen == set(CODE_ALPHABET)
    assert len(codes) == 2000


def test_link_token_entropy() -> None:
    """R9: a link token carries at least 128 random bits, URL-safe, never repeating."""
    tokens = {new_link_token() for _ in range(5000)}
    assert len(tokens) == 5000
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", token)
    assert access_codes.TOKEN_BYTES * 8 >= 128


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("ACD-EFH-JKM", "ACDEFHJKM"),
        ("acd efh jkm", "ACDEFHJKM"),
        (" acdefhjkm ", "ACDEFHJKM"),
        ("ACD–EFH—JKM", "ACDEFHJKM"),
        ("gcd-efh-jkv", "6CDEFHJKU"),
    ],
)
def test_normalize_code_accepts_what_people_type(typed: str, normal: str) -> None:
    """Case, spaces, dashes and the lookalikes G→6, V→U do not matter."""
    assert normalize_code(typed) == normal


@pytest.mark.parametrize("typed", ["ACD-EFH-JK0", "OCD-EFH-JKM", "ACD-EFH-JK", "ACD-EFH-JKMM", ""])
def test_normalize_code_rejects_what_cannot_be_a_code(typed: str) -> None:
    """Characters that never occur, and wrong lengths, are refused rather than guessed."""
    with pytest.raises(InvalidInput):
        normalize_code(typed)


def test_codes_match() -> None:
    """The typed code matches its stored form however it was typed, and nothing else does."""
    code = new_access_code()
    assert codes_match(code, code)
    assert codes_match(code, code.lower().replace("-", " "))
    other = "".join(CODE_ALPHABET[(CODE_ALPHABET.index(c) + 1) % len(CODE_ALPHABET)]
                    if c != "-" else c for c in code)
    assert not codes_match(code, other)
    assert not codes_match(code, "")
    assert not codes_match(code, "0" * 9)


def test_codes_match_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """R9: the comparison goes through hmac.compare_digest on equal-length digests."""
    calls: list[tuple[bytes, bytes]] = []
    real = access_codes.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        """Record the compared values."""
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access_codes.hmac, "compare_digest", spy)
    codes_match("ACD-EFH-JKM", "ACD-EFH-JKN")
    codes_match("ACD-EFH-JKM", "nonsense")
    assert len(calls) == 2
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_token_digest_is_keyed() -> None:
    """The public site finds appointments by HMAC-SHA256 of the token under a vault key."""
    key = new_token_key()
    token = new_link_token()
    digest = token_digest(key, token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == token_digest(key, token)
    assert digest != token_digest(new_token_key(), token)
    assert token not in digest
