"""Security of both sites: headers, German error pages without stack traces, CSRF, rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.errors import RateLimited
from appliance.web.security import RateLimiter, setup_security

from .conftest import ADMIN_PASSWORD, Box
from .test_patient_flow import _appointment, _token


async def test_headers_on_both_sites(practice: Box) -> None:
    """Strict CSP, no framing, no referrer, nosniff on pages and API of both sites (R9, R11)."""
    for client, path in ((practice.staff, "/"), (practice.staff, "/api/status"),
                         (practice.public, "/datenschutz"), (practice.public, "/v/x" * 1)):
        response = await client.get(path)
        headers = response.headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in headers  # plain HTTP on loopback


async def test_unexpected_error_is_german_without_stack_trace(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> None:
    """A crashing handler gives a German page, no traceback, and the headers still apply."""
    app = web.Application()
    setup_security(app)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app.router.add_get("/boom", boom)
    app.router.add_get("/api/boom", boom)
    client = await aiohttp_client(app)
    page = await client.get("/boom", headers={"Accept-Language": "de-DE,de;q=0.9"})
    text = await page.text()
    assert page.status == 500
    assert "unerwarteter Fehler" in text
    assert "secret internal detail" not in text and "Traceback" not in text
    assert page.headers["X-Frame-Options"] == "DENY"
    api = await client.get("/api/boom")
    assert (await api.json())["error"] == "error"


async def test_not_found_page_speaks_german_or_english(practice: Box) -> None:
    """Unknown paths get a 404 page in the browser's language."""
    german = await practice.staff.get("/gibt-es-nicht", headers={"Accept-Language": "de"})
    assert german.status == 404 and "nicht gefunden" in (await german.text()).lower()
    english = await practice.staff.get("/nope", headers={"Accept-Language": "en-GB"})
    assert english.status == 404 and "not found" in (await english.text()).lower()


async def test_change_without_csrf_token_is_refused(practice: Box) -> None:
    """A logged-in change without the session's CSRF token is refused (R9 A01)."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    response = await practice.staff.post("/api/patients", json={"full_name": "Erika Muster"})
    assert response.status == 403
    assert (await response.json())["error"] == "csrf_failed"
    wrong = await practice.staff.post("/api/patients", json={"full_name": "Erika Muster"},
                                      headers={"X-CSRF-Token": "guess"})
    assert wrong.status == 403
    ok = await practice.staff.post("/api/patients", json={"full_name": "Erika Muster"},
                                   headers=headers)
    assert ok.status == 201


async def test_change_from_another_origin_is_refused(practice: Box) -> None:
    """A cross-site request fails even with a valid token (Origin check, R9 A01)."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    response = await practice.staff.post(
        "/api/patients", json={"full_name": "Erika Muster"},
        headers={**headers, "Origin": "https://evil.example"},
    )
    assert response.status == 403
    login = await practice.staff.post("/api/login", json={"username": "admin",
                                                          "password": ADMIN_PASSWORD},
                                      headers={"Origin": "https://evil.example"})
    assert login.status == 403


async def test_session_cookie_is_http_only_and_strict(practice: Box) -> None:
    """The staff session cookie is HttpOnly and SameSite=Strict."""
    response = await practice.staff.post("/api/login", json={
        "username": "admin", "password": ADMIN_PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_malformed_json_is_a_clear_400(practice: Box) -> None:
    """Broken JSON, unknown fields and oversized bodies get a 400 naming the problem."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    broken = await practice.staff.post("/api/patients", data=b"{nope", headers={
        **headers, "Content-Type": "application/json"})
    assert broken.status == 400 and "JSON" in (await broken.json())["message"]
    extra = await practice.staff.post("/api/patients", json={"full_name": "Erika Muster",
                                                             "diagnosis": "x"}, headers=headers)
    body = await extra.json()
    assert extra.status == 400 and body["field"] == "diagnosis"
    huge = await practice.staff.post("/api/patients", json={"full_name": "x" * 100_000},
                                     headers=headers)
    assert huge.status in (400, 413)


def test_rate_limiter_refills() -> None:
    """The token bucket refuses above the burst and refills with time."""
    limiter = RateLimiter(60, 3)
    for _ in range(3):
        limiter.hit("a", now=0.0)
    with pytest.raises(RateLimited):
        limiter.hit("a", now=0.0)
    limiter.hit("b", now=0.0)  # other addresses are not affected
    limiter.hit("a", now=1.0)  # one token per second came back


async def test_login_rate_limit_per_address(practice: Box) -> None:
    """More than 10 login attempts a minute from one address are refused with 429 (R9 A07)."""
    statuses = []
    for _ in range(12):
        response = await practice.staff.post("/api/login", json={
            "username": f"user{_}", "password": "falsch-falsch"})
        statuses.append(response.status)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


def test_rate_limiter_holds_new_keys_under_a_flood() -> None:
    """A flood of addresses cannot reset everyone's limits; idle buckets are forgotten (R9)."""
    limiter = RateLimiter(60, 1, max_keys=2)
    limiter.hit("a", now=0.0)
    limiter.hit("b", now=0.0)
    with pytest.raises(RateLimited):
        limiter.hit("c", now=0.0)
    with pytest.raises(RateLimited):
        limiter.hit("a", now=0.0)  # a's own limit still holds
    limiter.hit("c", now=5.0)  # a and b refilled and were forgotten


@pytest.mark.parametrize(("remote", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
])
def test_client_address_groups_ipv6_by_64(remote: str, key: str) -> None:
    """Rate limits count an IPv6 /64 as one client (one subscriber holds a whole /64)."""
    from aiohttp.test_utils import make_mocked_request

    from appliance.web.security import client_address

    request = make_mocked_request("GET", "/", headers={})
    request._transport_peername = (remote, 1234)  # noqa: SLF001 - the peer of the mock
    assert client_address(request) == key


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8080", True), ("192.168.1.10", True), ("[::1]:8080", True),
    ("localhost:8080", True), ("sprechzimmer.local", True), ("SPRECHZIMMER.LOCAL.", True),
    ("evil.example", False), ("evil.example:8080", False), ("sprechzimmer.local.evil.de", False),
    ("", False),
])
def test_staff_host_names(host: str, allowed: bool) -> None:
    """Only IPs, localhost and .local names reach the staff site (DNS rebinding, R9 A01)."""
    from appliance.web.security import staff_host_allowed

    assert staff_host_allowed(host) is allowed


async def test_rebound_host_cannot_reach_onboarding(box: Box) -> None:
    """A page that rebinds its own name to the box gets 421, not the onboarding (R9 A01)."""
    response = await box.staff.post("/api/onboarding", json={},
                                    headers={"Host": "evil.example"})
    assert response.status == 421
    assert (await box.staff.get("/api/status")).status == 200


@pytest.mark.parametrize("site", ["public", "staff"])
async def test_deeply_nested_body_is_a_clear_400(
    practice: Box, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    """R9 (OWASP A04/A05): a 2 KB body of 1,100 nested brackets, sent to the patient's code
    endpoint or to the login, is refused as 400 in the documented error format, and no traceback
    reaches the log (it was a 500 with a RecursionError before). A body deeper than the API's
    forms but shallow enough to parse is refused the same way."""
    if site == "public":
        client, path = practice.public, f"/v/{_token(practice, _appointment(practice))}/code"
    else:
        client, path = practice.staff, "/api/login"
    for depth in (1100, 20):
        response = await client.post(path, data="[" * depth + "]" * depth,
                                     headers={"Content-Type": "application/json"})
        assert response.status == 400, await response.text()
        answer = await response.json()
        assert answer["error"] == "invalid_input" and "verschachtelt" in answer["message"]
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
