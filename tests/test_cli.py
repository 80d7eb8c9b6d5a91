"""The command line: version, help, config errors with exit status 2, init, users, vault status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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

    added = _run("--config", str(config), "user", "add", "drmueller", "--name", "Dr. Müller",
                 "--role", "doctor", "--lanr", "123456701", "--as", "admin", cwd=tmp_path,
                 stdin="admin-passwort-123\narzt-passwort-123\n")
    assert added.returncode == 0, added.stderr

    listed = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                  stdin="admin-passwort-123\n")
    assert listed.returncode == 0, listed.stderr
    assert "drmueller\tDr. Müller\tdoctor" in listed.stdout

    wrong = _run("--config", str(config), "user", "list", "--as", "admin", cwd=tmp_path,
                 stdin="falsch-falsch-falsch\n")
    assert wrong.returncode == 1
    assert "falsch" in wrong.stderr

    changed = _run("--config", str(config), "user", "passwd", "drmueller", "--as", "admin",
                   cwd=tmp_path, stdin="admin-passwort-123\nneues-passwort-456\n")
    assert changed.returncode == 0, changed.stderr

    removed = _run("--config", str(config), "user", "remove", "drmueller", "--as", "admin",
                   cwd=tmp_path, stdin="admin-passwort-123\n")
    assert removed.returncode == 0, removed.stderr
    names = _run("--config", str(config), "user", "list", cwd=tmp_path)
    assert names.stdout.split() == ["admin"]

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
    assert result.returncode == 1
    assert "BSNR" in result.stderr or "bsnr" in result.stderr
    assert not (tmp_path / "vault" / "snapshot").exists()
