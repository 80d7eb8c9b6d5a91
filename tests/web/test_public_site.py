"""The public site exposes only patient routes, terms and privacy (two surfaces, R11)."""

from __future__ import annotations

import re

from appliance.web import staff

from .conftest import Box


def _staff_paths(box: Box) -> list[tuple[str, str]]:
    paths = []
    for route in box.staff.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path is None or route.method == "HEAD":
            continue
        concrete = re.sub(r"\{[^}]+\}", "x1234567890abcdefgh", path)
        paths.append((route.method, concrete))
    return sorted(set(paths))


async def test_every_staff_route_is_404_on_the_public_site(practice: Box) -> None:
    """Each route of the staff site answers 404 on the public site, for GET and its own method."""
    paths = _staff_paths(practice)
    assert len(paths) >= len(staff.ENDPOINTS)  # the walk really found the staff routes
    for method, path in paths:
        if path.startswith("/static/"):
            path = "/static/staff/app.js"
        for verb in {method, "GET"}:
            response = await practice.public.request(verb, path)
            assert response.status == 404, (verb, path, response.status)


async def test_staff_assets_are_not_served_publicly(practice: Box) -> None:
    """Only common and patient assets exist on the public site."""
    assert (await practice.public.get("/static/staff/app.js")).status == 404
    assert (await practice.public.get("/static/common/base.css")).status == 200
    assert (await practice.public.get("/static/../staff.html")).status == 404


async def test_terms_and_privacy_without_login(practice: Box) -> None:
    """Terms of use and privacy notice are German pages readable without login (R11)."""
    for path, word in (("/nutzungsbedingungen", "Nutzungsbedingungen"),
                       ("/datenschutz", "Datenschutz")):
        response = await practice.public.get(path)
        text = await response.text()
        assert response.status == 200
        assert word in text
        assert 'lang="de"' in text
        assert "http://" not in text.replace("http://127.0.0.1", "")
        assert "https://" not in text  # nothing from another origin


async def test_root_of_public_site_is_404(practice: Box) -> None:
    """The public site has no index: a patient needs their personal link."""
    assert (await practice.public.get("/")).status == 404
