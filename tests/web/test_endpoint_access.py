"""R9 (A01 access control, CSRF): every endpoint's declared access is enforced by one middleware,
so an endpoint whose handler checks nothing is still closed to whom its table entry shuts out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.config import Settings
from appliance.practice.models import Role
from appliance.practice.onboarding import onboard
from appliance.practice.services import PracticeServices
from appliance.runtime import build_box
from appliance.web.api import WEBSOCKET, Endpoint, add_endpoints, endpoint_of
from appliance.web.app import build_public_app, build_staff_app

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, PROFILE

FOREIGN = "http://evil.example"


def _careless(calls: list[str], name: str,
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that checks nothing at all."""

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.method)
        return web.json_response({"ok": True})

    handler.__name__ = name  # the route's name
    return handler


@pytest.fixture
async def careless(settings: Settings, services: PracticeServices,
                   aiohttp_client: Callable[..., Awaitable[TestClient]],
                   ) -> tuple[TestClient, list[str]]:
    """The staff site with three endpoints added whose handlers check nothing."""
    onboard(services, profile=PROFILE, username="admin", display_name="Anna Admin",
            password=ADMIN_PASSWORD, roles={Role.ADMIN})
    services.staff.add("admin", username="mfa", display_name="Tom MFA", roles={Role.ASSISTANT},
                       password=ASSISTANT_PASSWORD)
    calls: list[str] = []
    app = build_staff_app(build_box(settings, services))
    add_endpoints(app, (
        Endpoint(method="POST", path="/api/fake/admin", handler=_careless(calls, "fake_admin"),
                 access="admin", summary="fake"),
        Endpoint(method="POST", path="/api/fake/public", handler=_careless(calls, "fake_public"),
                 access="public", summary="fake"),
        Endpoint(method="GET", path="/api/fake/socket", handler=_careless(calls, "fake_socket"),
                 access="staff", content_type=WEBSOCKET, summary="fake"),
    ))
    return await aiohttp_client(app), calls


async def _login(client: TestClient, username: str, password: str) -> str:
    answer = await client.post("/api/login", json={"username": username, "password": password})
    assert answer.status == 200, await answer.text()
    return (await answer.json())["csrf_token"]


async def test_a_careless_admin_endpoint_is_still_closed(
        careless: tuple[TestClient, list[str]]) -> None:
    """R9: anonymous → 401, an assistant → 403, an admin without the CSRF token or from another
    site → 403; only the admin's proper request reaches the handler."""
    client, calls = careless
    own = str(client.make_url("")).rstrip("/")
    assert (await client.post("/api/fake/admin")).status == 401
    token = await _login(client, "mfa", ASSISTANT_PASSWORD)
    denied = await client.post("/api/fake/admin", headers={"X-CSRF-Token": token})
    assert denied.status == 403 and (await denied.json())["error"] == "permission_denied"
    token = await _login(client, "admin", ADMIN_PASSWORD)
    no_token = await client.post("/api/fake/admin")
    assert no_token.status == 403 and (await no_token.json())["error"] == "csrf_failed"
    foreign = await client.post("/api/fake/admin",
                                headers={"X-CSRF-Token": token, "Origin": FOREIGN})
    assert foreign.status == 403 and (await foreign.json())["error"] == "csrf_failed"
    assert calls == []
    ok = await client.post("/api/fake/admin", headers={"X-CSRF-Token": token, "Origin": own})
    assert ok.status == 200 and calls == ["POST"]


async def test_a_careless_public_change_keeps_the_same_origin_rule(
        careless: tuple[TestClient, list[str]]) -> None:
    """R9: a public change (like login or the access code) from another site is refused."""
    client, calls = careless
    refused = await client.post("/api/fake/public", headers={"Origin": FOREIGN})
    assert refused.status == 403 and calls == []
    assert (await client.post("/api/fake/public")).status == 200 and calls == ["POST"]


async def test_a_careless_socket_is_not_opened_across_sites(
        careless: tuple[TestClient, list[str]]) -> None:
    """R9: no cross-site WebSocket hijacking, even with a valid session cookie."""
    client, calls = careless
    await _login(client, "mfa", ASSISTANT_PASSWORD)
    refused = await client.get("/api/fake/socket", headers={"Origin": FOREIGN})
    assert refused.status == 403 and calls == []
    assert (await client.get("/api/fake/socket")).status == 200 and calls == ["GET"]


@pytest.mark.parametrize("site", ["staff", "public"])
async def test_every_api_route_is_in_the_table(
        site: str, settings: Settings, services: PracticeServices) -> None:
    """R9: no route of the API bypasses the table (and with it the access check)."""
    box = build_box(settings, services)
    app = build_staff_app(box) if site == "staff" else build_public_app(box)
    untabled = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        page_or_file = (path in ("/", "/notfallblatt", "/api/openapi.json", "/nutzungsbedingungen",
                                 "/datenschutz", "/v/{token}", "/locales/{lang}.json")
                        or path.startswith("/static/") or route.method == "HEAD")
        fake = type("Request", (), {"app": app,
                                    "match_info": type("Match", (), {"route": route})()})()
        if not page_or_file and endpoint_of(fake) is None:  # type: ignore[arg-type]
            untabled.append(f"{route.method} {path}")
    # the patient's socket checks its origins itself: any of the practice's public hosts
    assert untabled == ([] if site == "staff" else ["GET /v/{token}/signal"])
