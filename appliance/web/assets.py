"""The pages' static files as the sites serve them: versioned URLs, compressed once, cached well.

A patient on a weak mobile line waits for every byte before the page shows anything, and comes
back to the same page for the call. So every file is served compressed (brotli where the
``brotli`` module is installed, else gzip; each computed once, on first use), and under a URL
that names its content: every ``'/static/…'`` string and relative import in a module, and every
``href``/``src`` in a page, gets ``?v=<hash of the content>``. Since a module's content then
holds the versions of what it imports, its own version changes whenever anything below it does
(a Merkle tree over the imports), and a versioned URL can be cached for good
(``immutable``). A request for an old or missing version is still answered, revalidated by its
``ETag``. There is no build step: this happens when the site starts, from the files as they are.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aiohttp import web

try:  # optional: brotli packs text ~15 % smaller than gzip; gzip alone is fine
    import brotli
except ImportError:  # pragma: no cover - depends on the installation
    brotli = None

PREFIX: Final = "/static/"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
#: smaller than this, compressing costs more than it saves
MIN_COMPRESS_BYTES: Final = 256
TEXT_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                     ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8",
                     ".json": "application/json; charset=utf-8"}
#: a quoted '/static/…' string, or a relative import ('./x.js', '../call/y.js')
_JS_URL: Final = re.compile(r"""(['"])(/static/[\w./-]+|\.\.?/[\w./-]+\.js)\1""")
_HTML_URL: Final = re.compile(r"""((?:href|src)=")(/static/[\w./-]+)(")""")


@dataclass
class Body:
    """Bytes to send, with their compressed forms made on first use."""

    raw: bytes
    content_type: str
    version: str = ""
    _encoded: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.version:
            self.version = hashlib.sha256(self.raw).hexdigest()[:16]

    def encoded(self, encoding: str) -> bytes:
        """The body in ``encoding`` (``br``, ``gzip`` or ``identity``)."""
        if encoding == "identity":
            return self.raw
        if encoding not in self._encoded:
            if encoding == "br" and brotli is not None:
                self._encoded[encoding] = brotli.compress(self.raw, quality=11)
            else:
                self._encoded[encoding] = gzip.compress(self.raw, compresslevel=9, mtime=0)
        return self._encoded[encoding]

    def response(self, request: web.Request, *, cache_control: str,
                 headers: dict[str, str] | None = None) -> web.Response:
        """The body for ``request``: compressed as it accepts, 304 if it has this one."""
        encoding = _encoding(request, self)
        etag = f'"{self.version}-{encoding}"'
        common = {"Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding",
                  **(headers or {})}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=common)
        if encoding != "identity":
            common["Content-Encoding"] = encoding
        return web.Response(body=self.encoded(encoding), headers=common,
                            content_type=self.content_type.partition(";")[0],
                            charset="utf-8" if "charset" in self.content_type else None)


def _encoding(request: web.Request, body: Body) -> str:
    """The best encoding both sides know for ``body``."""
    if len(body.raw) < MIN_COMPRESS_BYTES or body.content_type not in TEXT_TYPES.values():
        return "identity"
    accepted = {part.split(";")[0].strip().lower()
                for part in request.headers.get("Accept-Encoding", "").split(",")}
    if "br" in accepted and brotli is not None:
        return "br"
    return "gzip" if "gzip" in accepted else "identity"


def json_body(text: str) -> Body:
    """A JSON document to send compressed and revalidated (e.g. a text catalogue)."""
    return Body(text.encode("utf-8"), TEXT_TYPES[".json"])


class StaticAssets:
    """The files under ``root`` (only ``folders`` of it, if given) at ``/static/…``."""

    def __init__(self, root: Path, folders: Iterable[str] | None = None) -> None:
        self._root = root
        paths = [p for folder in folders for p in (root / folder).rglob("*")] if folders \
            else [p for p in root.rglob("*") if p.parent != root]
        self._sources = {PREFIX + p.relative_to(root).as_posix(): p.read_bytes()
                         for p in paths if p.is_file()}
        self._assets: dict[str, Body] = {}
        for url in self._sources:
            self._build(url, set())

    def _build(self, url: str, building: set[str]) -> Body:
        """The asset at ``url`` with the versions of what it names (depth first)."""
        if url in self._assets:
            return self._assets[url]
        suffix = posixpath.splitext(url)[1]
        content_type = TEXT_TYPES.get(suffix) or mimetypes.guess_type(url)[0] or \
            "application/octet-stream"
        raw = self._sources[url]
        if suffix == ".js":
            building.add(url)
            raw = _JS_URL.sub(lambda m: self._versioned(url, m, building), raw.decode("utf-8")
                              ).encode("utf-8")
            building.discard(url)
        self._assets[url] = Body(raw, content_type)
        return self._assets[url]

    def _versioned(self, base: str, match: re.Match[str], building: set[str]) -> str:
        quote, written = match.group(1), match.group(2)
        target = written if written.startswith("/") else posixpath.normpath(
            posixpath.join(posixpath.dirname(base), written))
        if target not in self._sources or target in building:  # unknown, or an import cycle
            return match.group(0)
        return f"{quote}{written}?v={self._build(target, building).version}{quote}"

    def url(self, url: str) -> str:
        """``url`` with its version, if it is one of these assets."""
        asset = self._assets.get(url)
        return f"{url}?v={asset.version}" if asset else url

    def page(self, html: Path) -> Body:
        """An HTML page whose ``href``/``src`` to these assets carry their versions."""
        text = _HTML_URL.sub(lambda m: m.group(1) + self.url(m.group(2)) + m.group(3),
                             html.read_text("utf-8"))
        return Body(text.encode("utf-8"), TEXT_TYPES[".html"])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /static/{path}``: immutable under its current version, else revalidated."""
        asset = self._assets.get(request.path)
        if asset is None:
            raise web.HTTPNotFound()
        current = request.query.get("v") == asset.version
        return asset.response(request, cache_control=IMMUTABLE if current else REVALIDATE)

    def setup(self, app: web.Application) -> None:
        """Serve the assets on ``app``."""
        app.router.add_get(PREFIX + "{path:.+}", self.handle)
