"""Declared API endpoints: routing, request validation and the OpenAPI document from one table."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from aiohttp import web

from appliance import __version__
from appliance.errors import InvalidInput
from appliance.json_depth import nested_deeper_than
from appliance.web.schema import Form, View, decode, json_schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES: Final = 64 * 1024
#: the API's bodies are flat forms; nothing deeper is read (nor handed to the validator)
MAX_BODY_DEPTH: Final = 8
TOO_DEEP: Final = f"zu tief verschachtelt (höchstens {MAX_BODY_DEPTH} Ebenen)"
#: the content type of an endpoint that upgrades to a WebSocket
WEBSOCKET: Final = "application/websocket"
#: every route of the table with its endpoint (``appliance.web.auth`` checks the access)
_ENDPOINTS: Final = web.AppKey("endpoints_by_route", dict)

class ApiError(View, frozen=True, kw_only=True):
    """An error as every endpoint answers it (``security.error_middleware`` writes it)."""

    error: str
    message: str
    field: str | msgspec.UnsetType = msgspec.UNSET
    remaining: int | msgspec.UnsetType = msgspec.UNSET
    minutes: int | msgspec.UnsetType = msgspec.UNSET


ERROR_SCHEMA: Final = json_schema(ApiError)


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One API operation: where it lives, who may call it, what goes in and comes out."""

    method: str
    path: str
    handler: Handler
    summary: str
    #: "public" (no login), "staff" (any logged-in member) or a role name
    access: str = "staff"
    #: the request body's form (None: no body)
    body: type[Form] | None = None
    #: the answer's type (a :class:`View`, a list of them, ``str`` for a stream)
    response: Any = None
    status: int = 200
    #: a response that is not JSON (e.g. text/event-stream)
    content_type: str = "application/json"

    @property
    def operation_id(self) -> str:
        """A stable name for the operation (the handler's name)."""
        return self.handler.__name__.removeprefix("_")


async def read_body(request: web.Request, form: type[Form]) -> Any:
    """The request's JSON body as ``form``; whatever does not fit is an :class:`InvalidInput`."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise InvalidInput(field="body", detail="zu groß")
    raw = await request.read()  # the whole body, however it was split; the app caps its size
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(field="body", detail="zu groß")
    try:
        data = json.loads(raw or b"{}")
    except RecursionError:  # the parser's own stack: ~1000 levels of [ or {
        raise InvalidInput(field="body", detail=TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(field="body", detail="kein gültiges JSON") from None
    if nested_deeper_than(data, MAX_BODY_DEPTH):
        raise InvalidInput(field="body", detail=TOO_DEEP)
    return decode(data, form)


def reply(answer: Any, *, status: int = 200) -> web.Response:
    """``answer`` (a :class:`View`, a list of them, plain data) as the JSON response."""
    return web.Response(body=msgspec.json.encode(answer, order="deterministic"), status=status,
                        content_type="application/json")


def add_endpoints(app: web.Application, endpoints: Iterable[Endpoint]) -> None:
    """Register ``endpoints`` on ``app``'s router."""
    table = app.setdefault(_ENDPOINTS, {})
    for endpoint in endpoints:
        route = app.router.add_route(endpoint.method, endpoint.path, endpoint.handler,
                                     name=endpoint.operation_id)
        table[route] = endpoint


def endpoint_of(request: web.Request) -> Endpoint | None:
    """The endpoint of the table that ``request`` was routed to (None: a page, an asset ...)."""
    return request.app.get(_ENDPOINTS, {}).get(request.match_info.route)


def openapi_document(endpoints: Iterable[Endpoint], *, title: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of ``endpoints``."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        operation: dict[str, Any] = {
            "operationId": ep.operation_id,
            "summary": ep.summary,
            "x-access": ep.access,
            "responses": {
                str(ep.status): {
                    "description": "OK",
                    "content": {ep.content_type: {
                        "schema": {} if ep.response is None else json_schema(ep.response)}},
                },
                "default": {
                    "description": "Fehler (Meldung auf Deutsch oder Englisch)",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                },
            },
        }
        params = [seg[1:-1] for seg in ep.path.split("/") if seg.startswith("{")]
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in params
            ]
        if ep.access != "public":
            operation["security"] = [{"session": [], "csrf": []}]
        if ep.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": json_schema(ep.body)}},
            }
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sz_staff"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            }
        },
    }
