"""The layers of DESIGN.md import downward only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "appliance"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _files(package: str) -> list[Path]:
    """The modules of ``package`` (a directory or one module's file name)."""
    base = ROOT / package if package else ROOT
    return [base] if base.is_file() else sorted(base.rglob("*.py"))


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in _files(package):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    return bad


@pytest.mark.parametrize(("package", "forbidden"), [
    ("vault", ("appliance.practice", "appliance.rtc", "appliance.web", "appliance.cli",
               "appliance.runtime", "aiohttp")),
    ("practice", ("appliance.rtc", "appliance.web", "appliance.cli", "appliance.runtime",
                  "aiohttp")),
    ("rtc", ("appliance.web", "appliance.cli", "appliance.runtime")),
    ("backup", ("appliance.practice", "appliance.rtc", "appliance.web", "appliance.cli",
                "appliance.runtime")),
    ("web", ("appliance.cli", "appliance.runtime")),
    # HTTPS stands beside the vault: it must work before onboarding and while sealed
    ("tls", ("appliance.vault", "appliance.practice", "appliance.rtc", "appliance.web",
             "appliance.cli", "appliance.runtime", "aiohttp")),
    # the lines and the mDNS announcement run whatever the vault's state
    *((module, ("appliance.vault", "appliance.practice", "appliance.rtc", "appliance.web",
                "appliance.cli", "appliance.runtime", "aiohttp"))
      for module in ("uplinks.py", "discovery.py")),
])
def test_layer_imports_downward_only(package: str, forbidden: tuple[str, ...]) -> None:
    """A layer imports nothing from the layers above it."""
    assert _violations(package, forbidden) == []


def test_only_web_uses_aiohttp_web() -> None:
    """Nothing outside appliance/web imports aiohttp.web."""
    allowed: set[Path] = set()
    bad = [
        str(path.relative_to(ROOT.parent))
        for path in _files("")
        if "web" not in path.relative_to(ROOT).parts[:1] and path not in allowed
        and any(n in ("aiohttp.web", "aiohttp.web_app") or n.startswith("aiohttp.web.")
                for n in _imports(path))
    ]
    assert bad == []


def test_ground_floor_imports_nothing_above() -> None:
    """config, errors, i18n and clock stand on the standard library alone."""
    ground = [ROOT / n for n in ("config.py", "errors.py", "i18n.py", "clock.py")]
    for path in ground:
        names = {n for n in _imports(path) if n.startswith("appliance")}
        assert names <= {"appliance.errors", "appliance.errors.ConfigError", "appliance.i18n",
                         "appliance.i18n.translate"}, (path.name, names)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The import scanner itself finds an upward import (so the tests above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from appliance.web.app import build_staff_app\nimport aiohttp.web\n")
    assert {"appliance.web.app", "aiohttp.web"} <= _imports(bad)
