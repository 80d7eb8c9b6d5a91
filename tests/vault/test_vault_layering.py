"""The vault is the ground floor: it imports nothing of practice, rtc, web or aiohttp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = [
    "appliance.vault",
    "appliance.vault.crypto",
    "appliance.vault.keys",
    "appliance.vault.journal",
    "appliance.vault.storage",
    "appliance.vault.vault",
]
FORBIDDEN = ("appliance.practice", "appliance.rtc", "appliance.web", "appliance.backup", "aiohttp")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_and_downward_only(module: str) -> None:
    """Each vault module imports in a fresh interpreter and pulls in no upper layer."""
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_public_facade() -> None:
    """appliance.vault exports exactly its facade."""
    import appliance.vault as vault

    assert sorted(vault.__all__) == ["KdfParams", "RecoveryKey", "Vault", "VaultStatus"]
