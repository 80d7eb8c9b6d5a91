"""The command line: version, help, config errors with exit status 2, init, users, vault status."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appliance import __version__


def _run(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args], cwd=cwd, input=stdin, text=True,
        capture_output=True, timeout=120, env=full_env,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path) -> Path:
    port = _free_port()
    path = tmp_path / "box.toml"
    path.write_text(f"""
[web]
staff_port = {port}
public_port = {_free_port()}
public_urls = ["https://videosprechstunde.praxis-beispiel.de"]
[vault]
path = "{tmp_path / 'vault'}"
""", "utf-8")
    return path


def test_version(tmp_path: Path) -> None:
    """--version prints the package version."""
    result = _run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize("args", [(), ("user",), ("vault",), ("init",), ("serve",)])
def test_help_everywhere_in_german(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Every command has --help, written for German-speaking practice admins."""
    result = _run(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert any(word in result.stdout for word in ("Box", "Konten", "Tresor", "Einrichtung",
                                                  "startet", "Praxis"))


def test_bad_setting_exits_2_and_names_it(tmp_path: Path) -> None:
    """A wrong value stops the start with status 2 and a message naming setting and value."""
    config = tmp_path / "bad.toml"
    config.write_text("[web]\nstaff_port = 99999\n")
    result = _run("--config", str(config), "serve", cwd=tmp_path)
    assert result.returncode == 2
    assert "web.staff_port" in result.stderr and "99999" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_exits_2(tmp_path: Path) -> None:
    """Environment overrides are validated as strictly as the file."""
    result = _run("--config", str(_config(tmp_path)), "vault", "status", cwd=tmp_path,
                  env={"SPRECHZIMMER_PRACTICE__RETENTION_DAYS": "365"})
    assert result.returncode == 2
    assert "retention_days" in result.stderr


def test_default_config_is_written_to_var(tmp_path: Path) -> None:
    """Without --config on a laptop the embedded defaults land in ./var/sprechzimmer.toml."""
    result = _run("vault", "status", cwd=tmp_path, env={"SPRECHZIMMER_CONFIG": ""})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "sprechzimmer.toml").exists()
    assert "Eingerichtet:  nein" in result.stdout


INIT = ("init", "--practice-name", "Praxis Dr. Beispiel", "--bsnr", "123456789",
        "--street", "Hauptstr. 1", "--postal-code", "50667", "--city", "Köln",
        "--kv-region", "NO", "--admin-username", "admin", "--admin-name", "Anna Admin")


def test_init_users_and_status(tmp_path: Path) -> None:
    """init onboards without a browser; user add/list/passwd/remove work with admin credentials."""
    config = _config(tmp_path)
    key_file = tmp_path / "recovery.txt"
    result = _run("--config", str(config), *INIT, "--recovery-key-file", str(key_file),
                  cwd=tmp_path, stdin="admin-passwort-123\n")
    assert result.returncode == 0, result.stderr
    assert key_file.stat().st_mode & 0o077 == 0
    assert len(key_file.read_text().strip()) > 40

    again = _run("--config", str(config), *INIT, cwd=tmp_path, stdin="x" * 12 + "\n")
    assert again.returncode == 1
    assert "bereits eingerichtet" in again.stderr

    added = _run("--config", str(config), "user", "add", "dr.mueller", "--name", "Dr. Müller",
                 "--role", "doctor", "--lanr", "123456701", "--as", "admin", cwd=tmp_path,
                 stdin="admin-passwort-123\narzt-passwort-123\n")
    assert added.returncode == 0, added.stderr

    listed = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                  stdin="admin-passwort-123\n")
    assert listed.returncode == 0, listed.stderr
    assert "dr.mueller\tDr. Müller\tdoctor" in listed.stdout

    wrong = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                 stdin="falsch-falsch-falsch\n")
    assert wrong.returncode == 1
    assert "falsch" in wrong.stderr

    changed = _run("--config", str(config), "user", "passwd", "dr.mueller", "--as", "admin",
                   cwd=tmp_path, stdin="admin-passwort-123\nneues-passwort-456\n")
    assert changed.returncode == 0, changed.stderr

    removed = _run("--config", str(config), "user", "remove", "dr.mueller", "--as", "admin",
                   cwd=tmp_path, stdin="admin-passwort-123\n")
    assert removed.returncode == 0, removed.stderr
    names = _run("--config", str(config), "user", "list", cwd=tmp_path)
    assert names.stdout.startswith("1 Konto.")  # the names are in the vault, under its key
    assert "admin" not in names.stdout.replace("--as ADMIN", "")

    status = _run("--config", str(config), "vault", "status", cwd=tmp_path)
    assert status.returncode == 0
    assert "Eingerichtet:  ja" in status.stdout
    assert "verschlossen" in status.stdout
    assert "Konten:        1" in status.stdout


def test_init_refuses_incomplete_input(tmp_path: Path) -> None:
    """init names the missing options and creates nothing."""
    result = _run("--config", str(_config(tmp_path)), "init", "--practice-name", "X",
                  cwd=tmp_path)
    assert result.returncode == 2
    assert "--bsnr" in result.stderr
    assert not (tmp_path / "vault").exists()


def test_init_with_bad_bsnr_leaves_no_vault(tmp_path: Path) -> None:
    """A wrong BSNR is reported and no half-configured vault remains."""
    args = list(INIT)
    args[args.index("123456789")] = "12345"
    result = _run("--config", str(_config(tmp_path)), *args, cwd=tmp_path,
                  stdin="admin-passwort-123\n")
    assert result.returncode == 2  # bad input, like a bad option
    assert "BSNR" in result.stderr or "bsnr" in result.stderr
    assert not (tmp_path / "vault" / "snapshot").exists()


def test_recovery_key_alone_opens_the_vault_on_a_new_box(tmp_path: Path) -> None:
    """All passwords lost, vault copied to a new box: the recovery key sets a new admin password."""
    old_box = tmp_path / "old"
    old_box.mkdir()
    config = _config(old_box)
    key_file = tmp_path / "recovery.txt"
    assert _run("--config", str(config), *INIT, "--recovery-key-file", str(key_file),
                cwd=old_box, stdin="admin-passwort-123\n").returncode == 0
    new_box = tmp_path / "new"
    new_box.mkdir()
    shutil.copytree(old_box / "vault", new_box / "vault")
    new_config = _config(new_box)

    typo = key_file.read_text().replace("-", " ").lower().strip()[:-1] + "\n"
    bad = _run("--config", str(new_config), "vault", "recover", "admin", cwd=new_box,
               stdin=typo + "neues-passwort-789\n")
    assert bad.returncode == 1 and "Tippfehler" in bad.stderr

    key = key_file.read_text().replace("-", " ").lower()  # as typed from the sheet
    result = _run("--config", str(new_config), "vault", "recover", "admin", cwd=new_box,
                  stdin=key + "neues-passwort-789\n")
    assert result.returncode == 0, result.stderr
    listed = _run("--config", str(new_config), "user", "list", "--as", "admin", cwd=new_box,
                  stdin="neues-passwort-789\n")
    assert listed.returncode == 0, listed.stderr
    assert "admin\tAnna Admin" in listed.stdout
    old_password = _run("--config", str(new_config), "user", "list", "--as", "admin",
                        cwd=new_box, stdin="admin-passwort-123\n")
    assert old_password.returncode == 1


def test_init_from_file(tmp_path: Path) -> None:
    """Provisioning passes the onboarding as a TOML file."""
    answers = tmp_path / "onboarding.toml"
    answers.write_text("""
[practice]
name = "Praxis am Markt"
bsnr = "987654321"
street = "Markt 2"
postal_code = "80331"
city = "München"
kv_region = "BY"
public_urls = ["https://video.praxis-am-markt.de"]
[admin]
username = "it"
display_name = "IT-Dienstleister"
""", "utf-8")
    config = _config(tmp_path)
    result = _run("--config", str(config), "init", "--from-file", str(answers), cwd=tmp_path,
                  stdin="it-passwort-12345\n")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split("\n\n")[1].strip()) > 40  # the key is shown once
    listed = _run("--config", str(config), "user", "list", "--as", "it", cwd=tmp_path,
                  stdin="it-passwort-12345\n")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["it"]


def _post_json(url: str, data: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_vault_status_asks_the_running_service(tmp_path: Path) -> None:
    """`vault status` says sealed after the start and open after the first staff login."""
    config = _config(tmp_path)
    assert _run("--config", str(config), *INIT, cwd=tmp_path,
                stdin="admin-passwort-123\n").returncode == 0
    port = int(config.read_text().split("staff_port = ")[1].split()[0])
    server = subprocess.Popen([sys.executable, "-m", "appliance", "--config", str(config),
                               "serve"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the box did not start"
                time.sleep(0.1)
        sealed = _run("--config", str(config), "vault", "status", cwd=tmp_path)
        assert "Dienst:        läuft" in sealed.stdout and "verschlossen" in sealed.stdout
        busy = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                    stdin="admin-passwort-123\n")
        assert busy.returncode == 1 and "Dienst läuft" in busy.stderr
        assert _post_json(f"http://127.0.0.1:{port}/api/login",
                          {"username": "admin", "password": "admin-passwort-123"}) == 200
        opened = _run("--config", str(config), "vault", "status", cwd=tmp_path)
        assert "Zustand:       offen" in opened.stdout
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0  # a clean shutdown on SIGTERM


def test_recovery_key_file_is_checked_before_the_vault_exists(tmp_path: Path) -> None:
    """A key file that cannot be created stops init before anything exists (no key lost)."""
    config = _config(tmp_path)
    existing = tmp_path / "schon-da.txt"
    existing.write_text("alt")
    for target in (tmp_path / "fehlt" / "key.txt", existing):
        result = _run("--config", str(config), *INIT, "--recovery-key-file", str(target),
                      cwd=tmp_path, stdin="admin-passwort-123\n")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "vault" / "snapshot").exists()
    assert existing.read_text() == "alt"


def test_bad_onboarding_file_is_a_clear_error(tmp_path: Path) -> None:
    """A broken --from-file gives a message, not a traceback."""
    answers = tmp_path / "onboarding.toml"
    answers.write_text("[practice\nname = 1\n")
    result = _run("--config", str(_config(tmp_path)), "init", "--from-file", str(answers),
                  cwd=tmp_path)
    assert result.returncode == 2
    assert "kein gültiges TOML" in result.stderr and "Traceback" not in result.stderr


def test_admin_changes_own_password_with_the_cli(tmp_path: Path) -> None:
    """`user passwd ME --as ME` uses the password just given as the old one."""
    config = _config(tmp_path)
    assert _run("--config", str(config), *INIT, cwd=tmp_path,
                stdin="admin-passwort-123\n").returncode == 0
    changed = _run("--config", str(config), "user", "passwd", "admin", "--as", "admin",
                   cwd=tmp_path, stdin="admin-passwort-123\nneues-passwort-456\n")
    assert changed.returncode == 0, changed.stderr
    listed = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                  stdin="neues-passwort-456\n")
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("args", [("--config", "{config}", "serve"),
                                  ("serve", "--config", "{config}"),
                                  ("vault", "status", "--config", "{config}")])
def test_config_before_or_after_the_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``--config`` works before and after the command (a unit or an admin may write either):
    the file is read, here one with a wrong port, which names the setting and exits 2."""
    config = tmp_path / "box.toml"
    config.write_text("[web]\nstaff_port = 0\n")
    result = _run(*(a.format(config=config) for a in args), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "web.staff_port" in result.stderr and "unrecognized" not in result.stderr


def test_rotating_the_recovery_key(tmp_path: Path) -> None:
    """R9, issue 9, defect 4: ``vault rotate-recovery-key`` writes a new key (0600); afterwards
    ``vault recover`` refuses the old key and accepts the new one."""
    config = _config(tmp_path)
    old_key = tmp_path / "old-sheet.txt"
    assert _run("--config", str(config), *INIT, "--recovery-key-file", str(old_key),
                cwd=tmp_path, stdin="admin-passwort-123\n").returncode == 0
    admin_password = tmp_path / "admin-password"
    admin_password.write_text("admin-passwort-123\n")
    new_key = tmp_path / "new-sheet.txt"
    new_key.write_text("")  # made beforehand, e.g. by mktemp: replaced
    wrong = _run("--config", str(config), "vault", "rotate-recovery-key", "--as", "admin",
                 "--as-password-file", str(tmp_path / "old-sheet.txt"),
                 "--recovery-key-file", str(new_key), cwd=tmp_path)
    assert wrong.returncode == 1 and new_key.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    rotated = _run("--config", str(config), "vault", "rotate-recovery-key", "--as", "admin",
                   "--as-password-file", str(admin_password), "--recovery-key-file",
                   str(new_key), cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert new_key.stat().st_mode & 0o777 == 0o600
    assert new_key.read_text().strip() != old_key.read_text().strip()

    old = _run("--config", str(config), "vault", "recover", "admin", cwd=tmp_path,
               stdin=old_key.read_text().strip() + "\nneues-passwort-789\n")
    assert old.returncode == 1 and "passt nicht" in old.stderr, old.stderr
    new = _run("--config", str(config), "vault", "recover", "admin", cwd=tmp_path,
               stdin=new_key.read_text().strip() + "\nneues-passwort-789\n")
    assert new.returncode == 0, new.stderr


@pytest.mark.parametrize(("password", "why"), [
    ("kurz-1234", "mindestens 12 Zeichen"),
    ("passwort1234", "häufigsten Passwörter"),
    ("Fußballverein", "Wörterbuch"),
    ("Dr. Maria Schmidt", "Ihren Namen"),
])
def test_user_add_refuses_a_weak_password(tmp_path: Path, password: str, why: str) -> None:
    """R9, issue 9, defect 3: ``user add … --password-file F`` refuses a password under 12
    characters, a common one, a German dictionary word or the person's own name, with exit
    status 2 and a German message saying why; a good one is taken."""
    config = _config(tmp_path)
    assert _run("--config", str(config), *INIT, cwd=tmp_path,
                stdin="admin-passwort-123\n").returncode == 0
    admin_password = tmp_path / "admin-password"
    admin_password.write_text("admin-passwort-123\n")
    new_password = tmp_path / "new-password"
    command = ("--config", str(config), "user", "add", "schmidt", "--name", "Dr. Maria Schmidt",
               "--role", "assistant", "--password-file", str(new_password), "--as", "admin",
               "--as-password-file", str(admin_password))
    new_password.write_text(password + "\n")
    refused = _run(*command, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert why in refused.stderr, refused.stderr
    new_password.write_text("Kiesel Wolke Laterne 12\n")
    assert _run(*command, cwd=tmp_path).returncode == 0
