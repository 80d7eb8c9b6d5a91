"""Every module imports alone in a fresh interpreter: no circular imports (as python-zeroconf)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import appliance


def _modules() -> list[str]:
    names = ["appliance"]
    for info in pkgutil.walk_packages(appliance.__path__, "appliance."):
        names.append(info.name)
    return sorted(names)


def test_module_list_is_complete() -> None:
    """The walk finds the layers the design names (guards against an empty parametrisation)."""
    names = _modules()
    for expected in ("appliance.config", "appliance.vault", "appliance.practice.appointments",
                     "appliance.web.app", "appliance.cli"):
        assert expected in names


@pytest.mark.parametrize("module", _modules())
def test_module_imports_alone(module: str) -> None:
    """Importing ``module`` first, in a fresh process, works."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
