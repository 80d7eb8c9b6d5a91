"""Fixtures for the vault tests: cheap Argon2id costs, vaults in tmp_path that are closed after."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.vault import KdfParams, Vault

#: Argon2id costs that make a test's key derivation take ~2 ms instead of ~0.2 s
CHEAP_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
PASSWORD = "Praxis-Passwort 1"


@pytest.fixture
def kdf() -> KdfParams:
    """Cheap Argon2id costs."""
    return CHEAP_KDF


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    """Where the vault under test lives (created by the vault itself)."""
    return tmp_path / "vault"


@pytest.fixture
def make_vault(vault_path: Path, kdf: KdfParams) -> Iterator[Callable[..., Vault]]:
    """A factory of Vault objects (default: at ``vault_path``); all are closed after the test."""
    made: list[Vault] = []

    def factory(path: Path | None = None, **kwargs: object) -> Vault:
        kwargs.setdefault("kdf", kdf)
        vault = Vault(path or vault_path, **kwargs)  # type: ignore[arg-type]
        made.append(vault)
        return vault

    yield factory
    for vault in made:
        vault.close()


@pytest.fixture
def vault(make_vault: Callable[..., Vault]) -> Vault:
    """A new unsealed vault whose first member is ``anna``."""
    vault = make_vault()
    vault.create("anna", PASSWORD)
    return vault


def _file_hashes(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


@pytest.fixture
def file_hashes() -> Callable[[Path], dict[str, str]]:
    """SHA-256 of every file below a directory: to show that nothing was written."""
    return _file_hashes
