"""Known practice PCs: a browser that has signed in to this box before carries a device cookie.

The login lockout has two limits (``practice/throttle.py``): per name and source, and a backstop
per name across all sources against a guesser spread over many addresses. That backstop used to
lock the name everywhere — so anyone on the LAN who knew a login name could lock that person out
for an hour with 50 wrong passwords. Following OWASP's "device cookies": a browser that signed in
successfully gets a cookie naming a random device id, authenticated by the box. Its logins count
per device (5 failures lock that device for that name, 15 minutes) and are never locked by the
backstop, which now only holds back browsers the box does not know. The key lives beside the
vault (mode 0600), not in it: the first login after a boot must be recognised while the vault is
still sealed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Final

from aiohttp import web

from appliance.practice.throttle import DEVICE_SOURCE_PREFIX

_LOGGER = logging.getLogger(__name__)

DEVICE_COOKIE: Final = "sz_device"
#: beside the vault's directory: ``/var/lib/sprechzimmer/device-key`` on a box
DEVICE_KEY_FILE: Final = "device-key"
#: browsers keep a cookie at most 400 days; the box asks for that
MAX_AGE_S: Final = 400 * 24 * 3600
KEY_BYTES: Final = 32
_ID_BYTES: Final = 16


class KnownDevices:
    """Issues and recognises device cookies with a key kept in ``key_file``."""

    def __init__(self, key_file: Path) -> None:
        self._key = _load_or_create_key(key_file)

    def source(self, request: web.Request) -> str | None:
        """``device:<id>`` for a browser that signed in here before, else ``None``."""
        value = request.cookies.get(DEVICE_COOKIE, "")
        device_id, _, mac = value.partition(".")
        if len(device_id) != 2 * _ID_BYTES or not hmac.compare_digest(mac, self._mac(device_id)):
            return None
        return DEVICE_SOURCE_PREFIX + device_id

    def remember(self, request: web.Request, response: web.StreamResponse) -> None:
        """After a successful login: keep the browser's device cookie, or give it one."""
        if self.source(request) is not None:
            return
        device_id = secrets.token_hex(_ID_BYTES)
        response.set_cookie(DEVICE_COOKIE, f"{device_id}.{self._mac(device_id)}", httponly=True,
                            samesite="Strict", secure=request.secure, path="/api/",
                            max_age=MAX_AGE_S)

    def _mac(self, device_id: str) -> str:
        return hmac.new(self._key, device_id.encode("ascii", "replace"),
                        hashlib.sha256).hexdigest()


def _load_or_create_key(path: Path) -> bytes:
    """The key from ``path``; a new random one written there (0600) if there is none."""
    try:
        key = path.read_bytes()
        if len(key) == KEY_BYTES:
            return key
        _LOGGER.warning("the device key has the wrong length; a new one is made")
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        # recognising PCs is a convenience: without a writable place it lasts until a restart
        _LOGGER.warning("could not save the device key; known PCs are forgotten on restart")
    return key
