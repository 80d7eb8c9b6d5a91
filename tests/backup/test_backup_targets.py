"""Backups to real servers (issue 13): SFTP, REST and S3, each in a network namespace of its own.

A box onboarded with ``sprechzimmer init`` and filled through the real services backs up with
``sprechzimmer backup run`` inside the box's namespace; its data directory is wiped and
``sprechzimmer restore`` brings it back from the server. Then an unreachable target (reported,
caught up by the next run), a backup killed with SIGKILL in the middle (the next run and the
verification on the same repository are clean), and the exclusive lock a run killed during prune
leaves. Servers and namespaces: ``tests/backup/servers.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.backup.restic import Failure
from appliance.backup.service import FAILURE_TEXT, BackupService
from tests.backup.servers import (
    REST_PASSWORD,
    REST_PORT,
    REST_USER,
    S3_ACCESS_KEY,
    S3_PORT,
    S3_SECRET_KEY,
    SERVER_ADDRESS,
    Link,
    PracticeBox,
    Sshd,
    Target,
    box_and_server,
    running_rest,
    running_s3,
)

#: the tests with real servers: root for the namespaces, and the servers' programs
real_servers = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("restic") or not shutil.which("rclone")
    or not Path("/usr/sbin/sshd").exists(),
    reason="needs root (namespaces), restic, rclone and sshd (tests/system-deps)")


@dataclass
class Server:
    """A running server and what the box needs to reach it."""

    target: Target
    #: where the server keeps the repository on disk (None: in memory)
    files: Path | None
    #: a new box gets access (e.g. its new SFTP key authorised, as the admin does on the NAS)
    welcome: Callable[[PracticeBox], None] = lambda box: None


@contextmanager
def _server(kind: str, link: Link, directory: Path) -> Iterator[Server]:
    if kind == "sftp":
        with Sshd(link.server, directory / "sshd") as sshd:
            repo = directory / "sftp-repo"
            yield Server(Target("nas", f"sftp:root@{SERVER_ADDRESS}:{repo}"), repo,
                         lambda box: sshd.authorize(box.make_ssh_key()))
    elif kind == "rest":
        with running_rest(link.server, directory / "rest") as files:
            yield Server(Target("rest", f"rest:http://{SERVER_ADDRESS}:{REST_PORT}/praxis/",
                                {"RESTIC_REST_USERNAME": REST_USER,
                                 "RESTIC_REST_PASSWORD": REST_PASSWORD}), files / "praxis")
    else:
        with running_s3(link.server, directory / "s3"):
            yield Server(Target("s3", f"s3:http://{SERVER_ADDRESS}:{S3_PORT}/praxis-backup",
                                {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                                 "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}), None)


def _listed(box: PracticeBox) -> dict[str, list[str]]:
    """``sprechzimmer backup list``: the short snapshot ids per target."""
    result = box.cli("backup", "list")
    assert result.returncode == 0, result.stdout + result.stderr
    listed: dict[str, list[str]] = {}
    ids: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("  "):
            ids.append(line.split()[0])
        else:
            ids = listed.setdefault(line.partition(":")[0], [])
    return listed


def _newest(box: PracticeBox, name: str) -> str:
    """The short id of the last good backup of target ``name``, from the box's state."""
    return BackupService(box.settings).state()[name]["success"]["snapshot_id"][:8]


def _contains(root: Path, needles: list[bytes]) -> list[str]:
    """Files below ``root`` holding any of ``needles``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return found


@pytest.mark.slow
@real_servers
@pytest.mark.parametrize("kind", ["sftp", "rest", "s3"])
def test_backup_and_restore_through_a_real_server(tmp_path: Path, kind: str) -> None:
    """Issue 13, R10: a box onboarded by ``sprechzimmer init``, with staff, patients and
    appointments, backs up to a real server (sshd / rclone's REST server / moto's S3) in another
    namespace with ``backup run``; the server holds only ciphertext. The box's data directory is
    wiped and ``sprechzimmer restore --target URL --recovery-key-file F`` (with the target's
    credentials file for REST and S3, a newly authorised key for SFTP) brings every record back
    unchanged; every staff member logs in with their old password, and the restored box backs up
    into the same repository again. No secret of the target is in the settings, the output or
    the box's backup state."""
    with box_and_server() as link, _server(kind, link, tmp_path / "server") as server:
        box = PracticeBox(tmp_path / "box", [server.target], netns=link.box)
        box.init()
        server.welcome(box)
        box.fill(patients=12)
        before = box.records()
        assert len(before["patients"]) == 12 and len(before["appointments"]) == 12
        assert len(before["staff"]) == 4

        run = box.cli("backup", "run")
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"{server.target.name}: gesichert" in run.stdout
        state = json.loads((box.settings.backup_dir / "state.json").read_text())
        assert state[server.target.name]["success"]["snapshot_id"]
        if server.files is not None:  # restic's ciphertext only: no name of the practice
            assert (server.files / "config").is_file()
            assert _contains(server.files, [b"Beispiel", b"Patientin", "Müller".encode()]) == []
        secrets = [REST_PASSWORD, S3_SECRET_KEY, S3_ACCESS_KEY]
        for text in (box.config.read_text(), run.stdout, run.stderr,
                     (box.settings.backup_dir / "state.json").read_text()):
            assert not [secret for secret in secrets if secret in text]

        shutil.rmtree(box.data)  # the box is lost; a new one has the settings and the sheet
        server.welcome(box)
        command = ["restore", "--target", server.target.url,
                   "--recovery-key-file", str(box.recovery_key_file)]
        if server.target.credentials:
            command += ["--credentials-file", str(box.directory / f"{server.target.name}.env")]
        restored = box.cli(*command)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "wiederhergestellt" in restored.stdout

        assert box.records() == before
        assert box.logins() == {"admin": True, "dr.mueller": True, "dr.yilmaz": True,
                                "mfa": True}
        assert (box.settings.backup_dir / "restored-settings.toml").read_text() == \
            box.config.read_text()
        again = box.cli("backup", "run")
        assert again.returncode == 0, again.stdout + again.stderr
        # the retention keeps the newest of each day: today's second run replaced the first
        assert _listed(box) == {server.target.name: [_newest(box, server.target.name)]}


@pytest.mark.slow
@real_servers
def test_unreachable_target_is_reported_and_the_next_run_catches_up(tmp_path: Path) -> None:
    """Issue 13: with a local target and an SFTP server that is down, ``backup run`` exits 1,
    backs up to the local target and reports the SFTP one: its state has a failure of kind
    ``unreachable`` with the German explanation. With the server back, the next run exits 0,
    the failure is gone and both targets hold the newest snapshot of the same data."""
    with box_and_server() as link:
        sshd = Sshd(link.server, tmp_path / "server" / "sshd")
        repo = tmp_path / "server" / "sftp-repo"
        box = PracticeBox(tmp_path / "box", [
            Target("usb", str(tmp_path / "usb-repo")),
            Target("nas", f"sftp:root@{SERVER_ADDRESS}:{repo}")], netns=link.box)
        box.init()
        sshd.authorize(box.make_ssh_key())
        box.fill(patients=5)

        down = box.cli("backup", "run")
        assert down.returncode == 1, down.stdout + down.stderr
        assert "usb: gesichert" in down.stdout
        assert "nas: FEHLGESCHLAGEN" in down.stdout
        service = BackupService(box.settings, config_path=box.config)
        state = service.state()
        assert "failure" not in state["usb"] and state["usb"]["success"]["snapshot_id"]
        failure = state["nas"]["failure"]
        assert failure["kind"] == Failure.UNREACHABLE.value, failure
        assert failure["detail"].startswith(FAILURE_TEXT[Failure.UNREACHABLE])
        assert "nicht erreichbar" in failure["detail"]
        assert "success" not in state["nas"]

        box.fill(patients=3, note="neu")  # written while the NAS was away
        with sshd:
            up = box.cli("backup", "run")
        assert up.returncode == 0, up.stdout + up.stderr
        state = service.state()
        assert "failure" not in state["nas"]
        assert state["nas"]["success"]["journal_records"] == \
            state["usb"]["success"]["journal_records"]
        assert state["nas"]["success"]["vault_generation"] == \
            state["usb"]["success"]["vault_generation"]
        with sshd:
            assert _listed(box) == {"usb": [_newest(box, "usb")], "nas": [_newest(box, "nas")]}
            drill = box.cli("backup", "verify")
        assert drill.returncode == 0, drill.stdout + drill.stderr
        assert "usb: in Ordnung" in drill.stdout and "nas: in Ordnung" in drill.stdout


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: children of children too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _partial_pack(repo: Path) -> int:
    """The bytes of the largest pack restic is still uploading to ``repo`` (the SFTP backend
    writes a pack to a temporary name and renames it when it is complete)."""
    sizes = [0]
    for path in (repo / "data").rglob("*-restic-temp-*"):
        with contextlib.suppress(OSError):
            sizes.append(path.stat().st_size)
    return max(sizes)


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.slow
@real_servers
def test_backup_killed_with_sigkill_leaves_a_usable_repository(tmp_path: Path) -> None:
    """Issue 13: a ``backup run`` to an SFTP server (link slowed to 256 kbit/s) is killed with
    SIGKILL together with restic and ssh while restic uploads, as a power cut or the OOM killer
    would; restic's lock and a half-uploaded pack stay behind in the repository. The next
    ``backup run`` on the same repository succeeds (the service removes stale locks with
    ``restic unlock``) and ``backup verify`` (restic check and a restore drill) is clean."""
    with box_and_server() as link, Sshd(link.server, tmp_path / "server" / "sshd") as sshd:
        repo = tmp_path / "server" / "sftp-repo"
        box = PracticeBox(tmp_path / "box", [
            Target("nas", f"sftp:root@{SERVER_ADDRESS}:{repo}")], netns=link.box)
        box.init()
        sshd.authorize(box.make_ssh_key())
        box.fill(patients=5)
        first = box.cli("backup", "run")
        assert first.returncode == 0, first.stdout + first.stderr
        box.fill(patients=300, note="viel")  # some 400 kB of new ciphertext
        link.limit_upload("256kbit")

        log = (tmp_path / "killed-run.log").open("w")
        process = subprocess.Popen(box.command("backup", "run"), cwd=box.directory,
                                   stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            restic_seen = False
            while True:  # until restic uploads its first pack of the new data
                assert process.poll() is None, (tmp_path / "killed-run.log").read_text()
                assert time.monotonic() < deadline, "restic never started uploading"
                tree = _descendants(process.pid)
                restic_seen = restic_seen or any(_command_name(p) == "restic" for p in tree)
                if restic_seen and _partial_pack(repo) > 32_000:
                    break
                time.sleep(0.05)
            tree = _descendants(process.pid)
            assert {"restic", "ssh"} <= {_command_name(p) for p in tree}
            for pid in [process.pid, *tree]:  # all at once, no chance to clean up
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
        assert process.returncode == -signal.SIGKILL
        assert any((repo / "locks").iterdir()), "the killed restic's lock should be left"
        assert _partial_pack(repo) > 32_000, "a half-uploaded pack should be left"

        subprocess.run(["ip", "netns", "exec", link.box, "tc", "qdisc", "del", "dev", "eth0",
                        "root"], check=True)
        after = box.cli("backup", "run")
        assert after.returncode == 0, after.stdout + after.stderr
        verified = box.cli("backup", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "nas: in Ordnung" in verified.stdout
        assert not any((repo / "locks").iterdir())
        assert _listed(box) == {"nas": [_newest(box, "nas")]}


def _leave_exclusive_lock(box: PracticeBox, repo: Path) -> None:
    """A stale exclusive lock in ``repo``, as a run killed during forget or prune leaves:
    ``restic key passwd`` holds one while it waits for the new password, and is killed then."""
    password = box.settings.backup_dir / "password"
    before = set((repo / "locks").iterdir())
    process = subprocess.Popen(
        ["restic", "key", "passwd"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
        env={"PATH": os.environ["PATH"], "RESTIC_REPOSITORY": str(repo),
             "RESTIC_PASSWORD_FILE": str(password), "RESTIC_CACHE_DIR": str(repo.parent / "c")})
    try:
        deadline = time.monotonic() + 30
        # written, not only created: a lock file killed half-way is empty, which restic ignores
        # (and never removes)
        while not any(path.stat().st_size for path in set((repo / "locks").iterdir()) - before):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)  # restic now waits for the new password, holding the lock
    finally:
        process.kill()
        process.wait()
        assert process.stdin is not None
        process.stdin.close()
    assert set((repo / "locks").iterdir()) - before


@pytest.mark.slow
@real_servers
def test_stale_exclusive_lock_blocks_neither_backup_nor_restore(tmp_path: Path) -> None:
    """Issue 13: a run killed during ``forget --prune`` leaves an exclusive lock, which restic
    0.14's ``backup``, ``snapshots``, ``cat`` and ``restore`` do not see as stale (every later
    run failed with "gesperrt"). The next ``backup run`` removes it (``restic unlock``: only
    locks of dead processes on this host, or older than 30 minutes) and succeeds; ``backup
    list`` reads without a lock; a restore onto a new box with such a lock left works."""
    repo = tmp_path / "usb-repo"
    box = PracticeBox(tmp_path / "box", [Target("usb", str(repo))])
    box.init()
    box.fill(patients=4)
    assert box.cli("backup", "run").returncode == 0
    _leave_exclusive_lock(box, repo)

    assert _listed(box) == {"usb": [_newest(box, "usb")]}
    run = box.cli("backup", "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert not any((repo / "locks").iterdir())

    before = box.records()
    _leave_exclusive_lock(box, repo)
    shutil.rmtree(box.data)
    restored = box.cli("restore", "--target", str(repo), "--recovery-key-file",
                       str(box.recovery_key_file))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert box.records() == before


@pytest.mark.skipif(not shutil.which("restic"), reason="needs restic (tests/system-deps)")
def test_listing_a_target_that_fails_is_a_message(tmp_path: Path) -> None:
    """Issue 13: ``backup list`` for a target without a repository exits 1 with restic's failure
    explained in German, not a Python traceback."""
    box = PracticeBox(tmp_path / "box", [Target("usb", str(tmp_path / "nicht-da"))])
    box.init()
    listed = box.cli("backup", "list")
    assert listed.returncode == 1
    assert "Traceback" not in listed.stderr
    assert "kein restic-Repository" in listed.stderr, listed.stderr
