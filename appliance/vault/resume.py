"""Reopening the vault after a restart of the box's process, until the box reboots.

The data key lives only in the memory of the process that unsealed the vault. When that process
restarts (a crash, an update, supervisor), a call in progress must go on: the pages come back
with the session cookies they hold, and those must open the vault again without anyone typing a
password. So while the vault is open, this module keeps one file in the box's runtime directory
(``/run/sprechzimmer`` on a box: a tmpfs, empty after every boot, so the vault is sealed after a
boot as before):

- ``grants``: per secret that may reopen the vault (a staff session id, held only by that
  browser's cookie), the data key sealed under a key derived from the secret, found by another
  derivation of it. The file alone opens nothing.
- ``records``: whatever the caller wants back after a restart (the sessions), sealed under the
  data key itself, so any grant — or a password login — reads them.

Both are bound to the data key's id: after a re-key the caller saves again (the vault tells its
re-key listeners), and a file left over from an older key opens nothing. The grants are also
bound to the kernel's boot id: even where the runtime directory is on a disk (a laptop without
``runtime_dir``), no grant opens anything after a reboot.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from appliance.errors import SprechzimmerError
from appliance.vault import crypto
from appliance.vault.crypto import Unauthentic
from appliance.vault.vault import Vault

_LOGGER = logging.getLogger(__name__)

FILE_NAME: Final = "resume.json"
BOOT_ID_PATH: Final = "/proc/sys/kernel/random/boot_id"
_VERSION: Final = 1
_LOOKUP: Final = b"sprechzimmer resume lookup"
_GRANT_KEY: Final = b"sprechzimmer resume grant key"
_GRANT_AAD: Final = b"sprechzimmer resume grant\0"
_RECORDS_AAD: Final = b"sprechzimmer resume records\0"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


def _secret_bytes(secret: str) -> bytes:
    return secret.encode("utf-8", "surrogatepass")


def _lookup(secret: str) -> str:
    return _b64(crypto.hkdf(_secret_bytes(secret), _LOOKUP))


def _grant_key(secret: str) -> bytes:
    return crypto.hkdf(_secret_bytes(secret), _GRANT_KEY)


def current_boot_id() -> str:
    """The kernel's id of this boot (a new one after every reboot); empty where there is none."""
    try:
        return Path(BOOT_ID_PATH).read_text("ascii").strip()
    except OSError:
        return ""


class ResumeFile:
    """The file that lets whoever holds a granted secret reopen ``vault`` after a restart."""

    def __init__(self, directory: Path, vault: Vault, *, boot_id: str | None = None) -> None:
        self._directory = Path(directory)
        self._path = self._directory / FILE_NAME
        self._vault = vault
        self._boot = (current_boot_id() if boot_id is None else boot_id).encode("ascii")

    @property
    def path(self) -> Path:
        """Where the file lives."""
        return self._path

    @property
    def pending(self) -> bool:
        """Whether the vault is sealed but a granted secret could reopen it (a restart)."""
        return self._vault.sealed and self._path.exists()

    def save(self, records: Sequence[Mapping[str, Any]], secrets: Iterable[str]) -> None:
        """Replace the file: ``records`` for later, each of ``secrets`` may reopen the vault.

        Needs the vault open. A failure to write is logged, not raised: the box works on, it only
        cannot pick up its sessions after a restart.
        """
        key_id, data_key = self._vault.current_key()
        aad_grant = _GRANT_AAD + key_id + self._boot
        document = {
            "v": _VERSION,
            "key_id": key_id.hex(),
            "grants": {
                _lookup(secret): _b64(crypto.seal(_grant_key(secret), data_key, aad_grant))
                for secret in secrets
            },
            "records": _b64(crypto.seal(
                data_key, json.dumps(list(records), separators=(",", ":")).encode("utf-8"),
                _RECORDS_AAD + key_id)),
        }
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out)
            os.replace(tmp, self._path)
        except OSError:
            # fail closed: an older file could still hold a session that has ended since
            _LOGGER.warning("could not write the resume file; sessions will not survive a "
                            "restart", exc_info=True)
            self.discard()

    def load(self) -> list[dict[str, Any]]:
        """The saved records, read with the open vault's key; ``[]`` if none fit that key."""
        key_id, data_key = self._vault.current_key()
        document = self._read()
        if document is None or document["key_id"] != key_id:
            return []
        return self._records(document, key_id, data_key) or []

    def reopen(self, secret: str,
               accept: Callable[[list[dict[str, Any]]], bool] = lambda records: True) -> bool:
        """Unseal the vault with the data key granted to ``secret``; whether that worked.

        ``accept`` sees the saved records first and may refuse (say, the secret's session has
        expired since). Never raises for a wrong, unknown or stale secret or a damaged file: the
        caller then treats the secret like any unknown session.
        """
        if not self._vault.sealed:
            return False
        document = self._read()
        if document is None:
            return False
        sealed_key = document["grants"].get(_lookup(secret))
        if sealed_key is None:
            return False
        key_id: bytes = document["key_id"]
        try:
            data_key = crypto.unseal(_grant_key(secret), _unb64(sealed_key),
                                     _GRANT_AAD + key_id + self._boot)
        except (Unauthentic, ValueError, binascii.Error):
            _LOGGER.warning("a resume grant did not open (another boot, or damaged); ignored")
            return False
        records = self._records(document, key_id, data_key)
        if records is None or not accept(records):
            return False
        try:
            self._vault.unseal_with_data_key(key_id, data_key)
        except SprechzimmerError as exc:  # re-keyed since, tampered, locked by another process
            _LOGGER.warning("the resume file does not open the vault (%s); ignored", exc.code)
            return False
        return True

    def discard(self) -> None:
        """Remove the file (the vault was sealed on purpose, or nobody is logged in)."""
        try:
            self._path.unlink(missing_ok=True)
        except OSError:
            _LOGGER.warning("could not remove the resume file", exc_info=True)

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            _LOGGER.warning("cannot read the resume file", exc_info=True)
            return None
        try:
            document = json.loads(raw)
            if document.get("v") != _VERSION or not isinstance(document.get("grants"), dict):
                raise ValueError("unknown format")
            document["key_id"] = bytes.fromhex(document["key_id"])
            return document
        except (ValueError, TypeError, KeyError, AttributeError):
            _LOGGER.warning("the resume file is damaged; ignored")
            return None

    def _records(self, document: Mapping[str, Any], key_id: bytes,
                 data_key: bytes) -> list[dict[str, Any]] | None:
        try:
            plain = crypto.unseal(data_key, _unb64(document["records"]), _RECORDS_AAD + key_id)
            records = json.loads(plain)
        except (Unauthentic, ValueError, KeyError, binascii.Error):
            _LOGGER.warning("the records of the resume file do not open; ignored")
            return None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return None
        return records
