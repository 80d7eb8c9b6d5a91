"""The box's one plain-HTTP site (``[tls] http_port``, 80), on the addresses of both sites.

- On a LAN address or the box's ``.local`` name: the **first-visit page** for a practice PC that
  does not trust the practice CA yet — the CA to download (PEM and DER), its SHA-256 fingerprint
  to compare with the box's console or ``sprechzimmer tls status``, and how to trust it on
  Windows, macOS, Linux and in Firefox. Nothing else: every other path redirects to the staff
  site over HTTPS.
- On a public host name: the ACME challenge (``/.well-known/acme-challenge/``); everything else
  redirects to the patient site over HTTPS.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from appliance.i18n import translate
from appliance.web.security import request_language, setup_security

#: the ACME server's HTTP-01 requests: token → key authorization (None: no ACME)
ChallengeAnswer = Callable[[str], str | None]
CA_PEM_PATH: Final = "/praxis-ca.pem"
CA_DER_PATH: Final = "/praxis-ca.crt"
CHALLENGE_PATH: Final = "/.well-known/acme-challenge/{token}"


def build_http_app(*, ca_pem: Callable[[], bytes | None], ca_der: Callable[[], bytes | None],
                   ca_fingerprint: Callable[[], str | None], staff_port: int,
                   public_urls: tuple[str, ...], challenge: ChallengeAnswer) -> web.Application:
    """The plain-HTTP site; the CA is read through callables (it may not exist yet: a box
    without HTTPS on the LAN offers no CA)."""
    app = web.Application(client_max_size=1024)
    setup_security(app)
    public_hosts = {urlsplit(url).hostname: url for url in public_urls if url.startswith("https")}

    def public_url(request: web.Request) -> str | None:
        return public_hosts.get(_host_only(request).strip("[]").lower())

    async def acme(request: web.Request) -> web.Response:
        answer = challenge(request.match_info["token"])
        if answer is None:
            raise web.HTTPNotFound()
        return web.Response(text=answer, content_type="application/octet-stream")

    async def anything(request: web.Request) -> web.StreamResponse:
        if (site := public_url(request)) is not None:
            raise web.HTTPMovedPermanently(site + request.path_qs)
        if request.method == "GET" and request.path in ("/", CA_PEM_PATH, CA_DER_PATH) and (
                ca_pem() is not None):
            if request.path == CA_PEM_PATH:
                return _download(ca_pem(), "application/x-pem-file", "praxis-ca.pem")
            if request.path == CA_DER_PATH:
                return _download(ca_der(), "application/pkix-cert", "praxis-ca.crt")
            return web.Response(text=_page(request, ca_fingerprint() or "", staff_port),
                                content_type="text/html", charset="utf-8",
                                headers={"Cache-Control": "no-store"})
        raise web.HTTPFound(f"https://{_host_only(request)}:{staff_port}{request.path_qs}")

    app.router.add_get(CHALLENGE_PATH, acme)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def _host_only(request: web.Request) -> str:
    """The request's host without its port; an IPv6 address in brackets."""
    host = request.host
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        if ipaddress.ip_address(name).version == 6:
            return f"[{name}]"
    except ValueError:
        pass
    return name


def _download(data: bytes | None, content_type: str, filename: str) -> web.Response:
    return web.Response(body=data or b"", content_type=content_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})


def _page(request: web.Request, fingerprint: str, staff_port: int) -> str:
    lang = request_language(request)

    def t(key: str, **params: object) -> str:
        return html.escape(translate(f"ui.first_visit.{key}", lang, **params))

    target = html.escape(f"https://{_host_only(request)}:{staff_port}/")
    steps = "".join(
        f"<h2>{t(system + '_title')}</h2><p>{t(system)}</p>"
        for system in ("windows", "macos", "linux", "firefox"))
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t("title")}</title>
</head><body>
<h1>{t("title")}</h1>
<p>{t("intro")}</p>
<ul><li><a href="{CA_DER_PATH}" download>{t("download_der")}</a></li>
<li><a href="{CA_PEM_PATH}" download>{t("download_pem")}</a></li></ul>
<p>{t("fingerprint")}<br><code id="fingerprint">{html.escape(fingerprint)}</code></p>
{steps}
<p>{t("then")} <a href="{target}">{target}</a></p>
</body></html>"""
