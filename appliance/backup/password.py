"""The repositories' password, derived from the recovery key.

``repository_password(key)`` is HKDF-SHA256 of the recovery key with the label
:data:`PURPOSE` (``RecoveryKey.derive``), base64url: the printed emergency sheet alone gives it on
a new box, and it tells nothing about the key or the vault's keys. The recovery key is the
practice's own random 256 bits, so the label needs nothing of the practice to be unique.

The box keeps the derived password in ``<backup dir>/password`` (0600, the service's only), never
the recovery key. It learns it whenever it holds the recovery key for a moment (onboarding, a
rotation, an unseal or a restore with the key: ``Vault.add_recovery_key_listener``). After a
rotation the previous password stays in ``password.previous`` until every repository has the new
one as a key (``restic key add``, done by the next run).
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import Final

from appliance.vault import RecoveryKey

PURPOSE: Final = b"sprechzimmer backup: restic repository password v1"
FILE: Final = "password"
PREVIOUS: Final = "password.previous"


def repository_password(key: RecoveryKey) -> str:
    """The restic password of every repository of the practice whose recovery key is ``key``."""
    return base64.urlsafe_b64encode(key.derive(PURPOSE)).decode("ascii").rstrip("=")


class PasswordFiles:
    """The password files in the box's backup directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def current(self) -> Path:
        return self.directory / FILE

    @property
    def previous(self) -> Path:
        return self.directory / PREVIOUS

    @property
    def known(self) -> bool:
        """Whether the box knows the password (it can back up)."""
        return self.current.is_file()

    def keep(self, key: RecoveryKey) -> None:
        """Keep the password of ``key``; a different one before becomes the previous one."""
        password = repository_password(key)
        if self.known and self.current.read_text("utf-8").strip() == password:
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.known:
            os.replace(self.current, self.previous)
        write_secret(self.current, password)

    def forget_previous(self) -> None:
        """Every repository has the current password: the previous one goes."""
        with contextlib.suppress(FileNotFoundError):
            self.previous.unlink()


def write_secret(path: Path, text: str) -> None:
    """``text`` into ``path``, mode 0600 from the start, atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
