"""The OpenAPI document at /api/openapi.json stays true: same routes, responses match schemas."""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from appliance.web import staff

from .conftest import ADMIN_PASSWORD, Box


def _api_routes(box: Box) -> set[tuple[str, str]]:
    found = set()
    for route in box.staff.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and route.method != "HEAD" and (
            path != "/api/openapi.json"
        ):
            found.add((route.method.lower(), path))
    return found


async def test_document_lists_exactly_the_api_routes(practice: Box) -> None:
    """Every /api route is documented and every documented operation exists."""
    document = await (await practice.staff.get("/api/openapi.json")).json()
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == _api_routes(practice)
    assert document["openapi"].startswith("3.1")


async def test_document_is_valid_json_schema_throughout(practice: Box) -> None:
    """Each request and response schema is a valid JSON Schema (2020-12, as OpenAPI 3.1 uses)."""
    document = await (await practice.staff.get("/api/openapi.json")).json()
    for ops in document["paths"].values():
        for op in ops.values():
            for response in op["responses"].values():
                for content in response["content"].values():
                    jsonschema.Draft202012Validator.check_schema(content["schema"])
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                jsonschema.Draft202012Validator.check_schema(schema)


def _schema_for(document: dict[str, Any], method: str, path: str, status: int) -> dict:
    for template, ops in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method in ops:
            responses = ops[method]["responses"]
            entry = responses.get(str(status)) or responses["default"]
            return entry["content"].get("application/json", {}).get("schema", {})
    raise AssertionError(f"{method} {path} is not documented")


async def test_real_responses_match_their_schemas(practice: Box) -> None:
    """A day's worth of calls: each answer validates against the documented schema."""
    document = await (await practice.staff.get("/api/openapi.json")).json()
    headers = await practice.login("admin", ADMIN_PASSWORD)
    checked = 0

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        nonlocal checked
        response = await practice.staff.request(method, path, headers=headers, **kwargs)
        body = await response.json()
        jsonschema.validate(body, _schema_for(document, method.lower(), path, response.status))
        checked += 1
        return body

    await call("GET", "/api/status")
    await call("GET", "/api/session")
    await call("GET", "/api/practice")
    await call("GET", "/api/kv-regions")
    await call("GET", "/api/staff")
    patient = await call("POST", "/api/patients", json={
        "full_name": "Erika Mustermann", "email": "erika@example.org",
        "consent": {"given_on": "2026-11-20", "method": "written"}})
    await call("GET", f"/api/patients/{patient['id']}")
    await call("GET", "/api/patients", params={"q": "erika"})
    start = practice.services.clock.now().isoformat()
    appt = await call("POST", "/api/appointments", json={
        "doctor": "dr.mueller", "patient_id": patient["id"], "start": start})
    await call("GET", f"/api/appointments/{appt['id']}")
    await call("GET", "/api/appointments")
    await call("POST", f"/api/appointments/{appt['id']}/reissue")
    await call("PATCH", f"/api/appointments/{appt['id']}", json={"duration_minutes": 30})
    await call("POST", f"/api/appointments/{appt['id']}/cancel")
    await call("POST", "/api/appointments", json={"doctor": "nobody", "patient_id": "x",
                                                  "start": start})  # an error answer
    await call("GET", "/api/audit")
    assert checked == 16
    assert len(staff.ENDPOINTS) == len(document["paths"]) + sum(
        len(ops) - 1 for ops in document["paths"].values())
