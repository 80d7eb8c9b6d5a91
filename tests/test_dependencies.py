"""The tested set of packages: pinned in lock files that `make` installs from (issue 8)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text("utf-8").splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line.strip()):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize(("lock", "requirements"), [
    ("requirements.lock", PROJECT["dependencies"]),
    ("requirements-test.lock", PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]),
])
def test_every_requirement_is_pinned_within_its_range(lock: str, requirements: list[str]) -> None:
    """R9 (OWASP A06, dependency pins): each package pyproject.toml asks for has an exact pin
    in the lock `make` installs from, and the pin lies in the range asked for (a lock left
    behind after a change of pyproject.toml fails here: run `make lock`)."""
    pins = _pins(lock)
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in {lock}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_tests_run_on_the_locked_versions() -> None:
    """What this suite runs on is exactly the pinned set (so a fresh machine gets the tested
    one): every package of requirements-test.lock is installed in its pinned version."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in
             _pins("requirements-test.lock").items() if installed.get(name) != version}
    assert wrong == {}
