"""The backup over the staff API (issue 13): who may see and do what, a run started from the
admin page with real restic, targets added in the UI with their secrets kept on the box, and a
new box restored in the onboarding wizard, its staff logging in with their old passwords."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.config import BackupSettings, BackupTarget, Settings, VaultSettings, WebSettings
from appliance.runtime import build_box, build_services
from appliance.vault import RecoveryKey
from appliance.web.app import build_public_app, build_staff_app

from .conftest import ADMIN_PASSWORD, ASSISTANT_PASSWORD, CHEAP_KDF, DOCTOR_PASSWORD, Box

pytestmark = pytest.mark.skipif(shutil.which("restic") is None,
                                reason="restic is needed (tests/system-deps)")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A box with one local target (a USB disk)."""
    return Settings(
        web=WebSettings(public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "box" / "vault"),
        backup=BackupSettings(targets=(BackupTarget(name="usb", url=str(tmp_path / "repo")),)),
    )


async def _until_done(client: TestClient, path: str, headers: dict[str, str] | None = None
                      ) -> dict[str, Any]:
    for _ in range(600):
        answer = await (await client.get(path, headers=headers)).json()
        activity = answer.get("activity", answer) if answer else None
        if activity and activity.get("finished"):
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not finish")


async def test_who_may_see_and_start_what(practice: Box) -> None:
    """R9: the backup's page and actions are the admin's; every member sees the dashboard's
    warnings (no target has a copy yet); nobody logged out sees anything."""
    anonymous = await practice.staff.get("/api/backup/warnings")
    assert anonymous.status == 401
    await practice.staff.post("/api/logout", headers=await practice.login("admin",
                                                                          ADMIN_PASSWORD))
    headers = await practice.login("mfa", ASSISTANT_PASSWORD)
    assert (await practice.staff.get("/api/backup")).status == 403
    assert (await practice.staff.post("/api/backup/run", json={}, headers=headers)).status == 403
    warnings = await (await practice.staff.get("/api/backup/warnings")).json()
    assert warnings["warnings"] == ["Auf „usb“ gibt es noch keine Sicherung."]


async def test_admin_tests_inits_runs_and_sees_the_copy(practice: Box) -> None:
    """Issue 13: "test connection" says the target is empty, "init" makes the repository, a run
    started from the page goes on in the background with progress and ends with the target's
    last good backup, its size and no warning left."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    tested = await (await practice.staff.post("/api/backup/test", json={"target": "usb"},
                                              headers=headers)).json()
    assert tested["state"] == "empty", tested
    assert (await practice.staff.post("/api/backup/init", json={"target": "usb"},
                                      headers=headers)).status == 200
    tested = await (await practice.staff.post("/api/backup/test", json={"target": "usb"},
                                              headers=headers)).json()
    assert tested["state"] == "ok", tested
    started = await practice.staff.post("/api/backup/run", json={}, headers=headers)
    assert started.status == 202, await started.text()
    again = await practice.staff.post("/api/backup/run", json={}, headers=headers)
    assert again.status in (202, 409)  # 409 while the first one runs
    status = await _until_done(practice.staff, "/api/backup")
    assert status["activity"]["ok"] is True, status
    target = status["targets"][0]
    assert target["name"] == "usb" and target["source"] == "settings"
    assert target["last_success"]["files"] >= 2 and target["last_failure"] is None
    assert len(target["sizes"]) == 1 and target["sizes"][0][1] > 0
    assert status["warnings"] == [] and status["password_known"] is True
    assert status["schedule"] == "02:30" and status["next_run"] is not None


async def test_a_run_reaches_the_open_dashboards(practice: Box) -> None:
    """A run started from the admin page is told on every open staff event stream as
    ``backup`` with the dashboard's warnings (none once the copy is there), and the stream
    lives on from the start to the end of the run."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    events = await practice.staff.get("/api/events")
    assert events.status == 200
    assert (await practice.staff.post("/api/backup/run", json={}, headers=headers)).status == 202
    seen: list[Any] = []
    async with asyncio.timeout(60):
        while not seen or seen[-1]["warnings"]:
            line = (await events.content.readline()).decode().rstrip("\n")
            if line == "event: backup":
                data = (await events.content.readline()).decode()
                seen.append(json.loads(data.removeprefix("data: ")))
    assert seen[0]["warnings"] == ["Auf „usb“ gibt es noch keine Sicherung."]
    assert len(seen) >= 2  # the start, then the end: the stream lived through both
    events.close()


async def test_targets_added_in_the_ui_keep_their_secrets_on_the_box(practice: Box,
                                                                      settings: Settings,
                                                                      tmp_path: Path) -> None:
    """A target added on the admin page: its credentials go to a file of the box's own (0600),
    never into an answer; a wrong key name or a URL with a password in it is refused; a target
    of the settings file cannot be removed there."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    added = await practice.staff.post("/api/backup/targets", headers=headers, json={
        "name": "cloud", "url": "s3:https://s3.example.test/praxis",
        "credentials": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "geheim"}})
    assert added.status == 201, await added.text()
    secret = settings.backup_dir / "credentials" / "cloud.env"
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and "geheim" in secret.read_text()
    listing = await (await practice.staff.get("/api/backup")).text()
    assert "cloud" in listing and "geheim" not in listing and "AKIAEXAMPLE" not in listing
    for bad in ({"name": "x", "url": "/tmp/x", "credentials": {"PATH": "/evil"}},
                {"name": "y", "url": "rest:https://user:pw@host/repo"}):
        refused = await practice.staff.post("/api/backup/targets", headers=headers, json=bad)
        assert refused.status in (400, 409), await refused.text()
    assert (await practice.staff.delete("/api/backup/targets/usb",
                                        headers=headers)).status == 409
    assert (await practice.staff.delete("/api/backup/targets/cloud",
                                        headers=headers)).status == 200
    assert not secret.exists()


async def test_a_new_box_is_restored_in_the_onboarding_wizard(
        practice: Box, settings: Settings, tmp_path: Path,
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    """Issue 13: a new box, not yet set up, lists the snapshots of the practice's repository
    with the recovery key from the sheet, restores one with progress, and then the staff log in
    with their old passwords. A wrong key is refused clearly; a set-up box offers no restore."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    key = str(practice.services.staff.rotate_recovery_key("admin"))  # the sheet in the safe
    assert (await practice.staff.post("/api/backup/run", json={}, headers=headers)).status == 202
    assert (await _until_done(practice.staff, "/api/backup"))["activity"]["ok"] is True
    source = {"url": str(tmp_path / "repo"), "recovery_key": key}
    refused = await practice.staff.post("/api/onboarding/restore/snapshots", json=source)
    assert refused.status == 409  # this box is set up

    new_settings = Settings(vault=VaultSettings(path=tmp_path / "new-box" / "vault"),
                            backup=settings.backup)
    services = build_services(new_settings, kdf=CHEAP_KDF)
    parts = build_box(new_settings, services)
    new = await aiohttp_client(build_staff_app(parts))
    await aiohttp_client(build_public_app(parts))
    wrong = dict(source, recovery_key=str(RecoveryKey.generate()))
    answer = await new.post("/api/onboarding/restore/snapshots", json=wrong)
    assert answer.status == 409 and "Notfallblatt" in await answer.text()
    snapshots = await (await new.post("/api/onboarding/restore/snapshots", json=source)).json()
    assert len(snapshots) == 1
    started = await new.post("/api/onboarding/restore",
                             json=dict(source, snapshot=snapshots[0]["id"]))
    assert started.status == 202, await started.text()
    done = await _until_done(new, "/api/onboarding/restore")
    assert done["ok"] is True and done["share"] == 1.0, done
    assert (await (await new.get("/api/status")).json())["initialized"] is True
    login = await new.post("/api/login", json={"username": "dr.mueller",
                                               "password": DOCTOR_PASSWORD})
    assert login.status == 200, await login.text()
