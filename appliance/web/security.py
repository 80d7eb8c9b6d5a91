"""Security of both sites: headers, errors without stack traces, CSRF and rate limits."""

from __future__ import annotations

import html
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from appliance.errors import RateLimited, SprechzimmerError
from appliance.i18n import negotiate, translate

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



def content_security_policy(connect_src: tuple[str, ...] = ()) -> str:
    """The pages' CSP: nothing from other origins, except sockets to ``connect_src`` (the
    practice's other public hosts, for the patient's signaling over every uplink)."""
    connect = " ".join(("'self'", *connect_src))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


CSP: Final = content_security_policy()
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), "
    "geolocation=(), payment=(), usb=()",
}
HSTS: Final = "max-age=31536000"
LANG_COOKIE: Final = "sz_lang"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_language(request: web.Request) -> str:
    """The UI language of a request: the chosen one (cookie), else the browser's."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in ("de", "en"):
        return chosen
    return negotiate(request.headers.get("Accept-Language"))


def wants_json(request: web.Request) -> bool:
    """Whether an error for this request is answered as JSON (API) rather than as a page."""
    path = request.path
    return path.startswith("/api/") or (path.startswith("/v/") and path.count("/") >= 3) or (
        "application/json" in request.headers.get("Accept", "")
    )


def error_response(request: web.Request, status: int, code: str, message: str, **extra: object):
    """A German (or English) error answer: JSON for the API, a small page otherwise."""
    if wants_json(request):
        return web.json_response({"error": code, "message": message, **extra}, status=status)
    lang = request_language(request)
    title = translate(f"page.error.{status}", lang) if status in (404, 500) else message
    body = _ERROR_PAGE.format(
        lang=lang, title=html.escape(title), message=html.escape(message),
        back=html.escape(translate("page.error.back", lang)),
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


_ERROR_PAGE: Final = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/common/base.css"></head>
<body class="error-page"><main><h1>{title}</h1><p>{message}</p>
<p><a href="/">{back}</a></p></main></body></html>
"""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a clear message in the user's language, never a stack trace."""
    lang = request_language(request)
    try:
        return await handler(request)
    except SprechzimmerError as exc:
        if exc.status == 503:  # "not now" (sealed, busy): expected, e.g. right after a restart
            _LOGGER.info("%s %s: %s", request.method, route_name(request), exc.code)
        elif exc.status >= 500:
            _LOGGER.error("%s %s failed: %s", request.method, route_name(request), exc.code)
        return error_response(request, exc.status, exc.code, exc.message(lang), **_safe(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return error_response(request, exc.status, code, translate(f"error.{code}", lang))
    except Exception:
        _LOGGER.exception("unexpected error on %s %s", request.method, route_name(request))
        return error_response(request, 500, "error", translate("error.error", lang))


def route_name(request: web.Request) -> str:
    """The route's template (``/v/{token}/code``), never the path: paths carry link tokens."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _safe(exc: SprechzimmerError) -> dict[str, object]:
    """Parameters that a client may see (numbers and field names; never personal data)."""
    return {k: v for k, v in exc.params.items() if k in ("remaining", "minutes", "field")}


def setup_security(app: web.Application) -> None:
    """Install errors (inner) and headers (outer) on ``app``."""
    app.middlewares.append(error_middleware)
    app.on_response_prepare.append(_add_headers)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.secure:
        response.headers["Strict-Transport-Security"] = HSTS
    if request.path.startswith(("/api/", "/v/")):
        response.headers.setdefault("Cache-Control", "no-store")


def staff_host_allowed(host: str | None) -> bool:
    """Whether a staff request's ``Host`` names the box: an IP, ``localhost`` or a ``.local``
    name. Anything else is a DNS-rebinding page trying to reach the LAN site as "same origin".
    """
    if not host:
        return False
    if host.startswith("["):  # [v6]:port
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or name.endswith(".local")
    return True


@web.middleware
async def staff_host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse staff requests for foreign host names (DNS rebinding, R9 A01)."""
    if not staff_host_allowed(request.host):
        lang = request_language(request)
        return error_response(request, 421, "host_not_allowed",
                              translate("error.host_not_allowed", lang))
    return await handler(request)


def check_same_origin(request: web.Request) -> bool:
    """Whether an unsafe request comes from a page of this very site (CSRF, first line)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == f"{request.scheme}://{request.host}"
    fetch_site = request.headers.get("Sec-Fetch-Site")
    return fetch_site in (None, "same-origin", "none")


class RateLimiter:
    """A token bucket per key (e.g. client address): ``rate`` per minute, bursts up to ``burst``."""

    def __init__(self, rate_per_minute: float, burst: int, *, max_keys: int = 10_000) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key: str, now: float | None = None) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited`."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited()
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._forget_idle(now)
            if len(self._buckets) >= self._max_keys:
                raise RateLimited()  # a flood of addresses: new ones wait, known ones go on
        self._buckets[key] = (tokens - 1.0, now)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold nothing worth remembering."""
        full_after = self._burst / self._rate
        self._buckets = {
            key: (tokens, last) for key, (tokens, last) in self._buckets.items()
            if now - last < full_after
        }


def client_address(request: web.Request) -> str:
    """The peer address used for rate limits (never logged); IPv6 by its /64 network."""
    remote = request.remote or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # one subscriber usually holds a whole /64: per address, limits would be no limit
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
