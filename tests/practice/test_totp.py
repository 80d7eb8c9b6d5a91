"""TOTP (RFC 6238) against the RFC's own test vectors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.practice import totp

#: RFC 6238 appendix B, SHA-1 seed "12345678901234567890"
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_vectors(unix_time: int, code: str) -> None:
    """The eight-digit codes of RFC 6238 appendix B come out, and their six-digit tails."""
    step = totp.time_step(datetime.fromtimestamp(unix_time, UTC))
    assert totp.code_at_step(RFC_SECRET, step, digits=8) == code
    assert totp.code_at_step(RFC_SECRET, step) == code[-6:]


def test_window_accepts_one_step_either_side() -> None:
    """A phone's clock may be one step off, but not two."""
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    secret = totp.new_secret()
    now = totp.time_step(at)
    for offset in (-1, 0, 1):
        code = totp.code_at_step(secret, now + offset)
        assert totp.matching_step(secret, code, at) == now + offset
    for offset in (-2, 2):
        code = totp.code_at_step(secret, now + offset)
        if code not in {totp.code_at_step(secret, now + d) for d in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, at) is None
    assert totp.matching_step(secret, "abcdef", at) is None


def test_secret_and_uri() -> None:
    """A 160-bit base32 secret and an otpauth URI an authenticator app reads."""
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    uri = totp.provisioning_uri(secret, "dr.weber")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Sprechzimmer%3Adr.weber"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["digits"] == ["6"] and query["period"] == ["30"]
    assert query["algorithm"] == ["SHA1"]
