"""The command line: version, help, config errors with exit status 2, init, users, vault status."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize("args", [(), ("user",), ("vault",), ("init",), ("serve",),
                                  ("uplinks",)])
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


# --- sprechzimmer uplinks ---------------------------------------------------------------------

LINES_TOML = """
[[turn.uplinks]]
name = "DSL"
public_host = "videosprechstunde.praxis-beispiel.de"
public_address = "203.0.113.1"
lan_address = "192.168.50.10"
stun_target = "stun.provider-beispiel.de:3478"
[[turn.uplinks]]
name = "LTE"
public_host = "lte.praxis-beispiel.de"
public_address = "198.51.100.7"
lan_address = "192.168.50.11"
"""
BERLIN_TZ = {"TZ": "Europe/Berlin"}


def _lines_config(tmp_path: Path, lines: str = LINES_TOML) -> Path:
    config = _config(tmp_path)
    config.write_text(config.read_text("utf-8") + lines, "utf-8")
    return config


def _day(now: float, *, down: range = range(0), degraded: range = range(0),
         missing: range = range(0)) -> tuple[Any, ...]:
    """24 h of minutes before ``now`` as the monitor keeps them: 30 probes each, up unless the
    minutes ago are named down, degraded or missing (the box was off)."""
    from appliance.uplinks import LineState, Minute

    minutes = []
    for ago in range(24 * 60, 0, -1):
        if ago in missing:
            continue
        state = (LineState.DOWN if ago in down else
                 LineState.DEGRADED if ago in degraded else LineState.UP)
        answered = 0 if state is LineState.DOWN else 30 - 5 * (state is LineState.DEGRADED)
        rtt = 280.0 if state is LineState.DEGRADED else 18.5
        minutes.append(Minute(start=int(now) // 60 * 60 - ago * 60, sent=30, answered=answered,
                              rtt_ms_sum=answered * rtt, worst=state))
    return tuple(minutes)


def _write_lines(tmp_path: Path, *, dsl_down: bool, written_ago_s: float = 5.0) -> float:
    """The history file as the running box writes it: DSL (with a stun_target) down for three
    minutes or degraded, LTE (probed by NAT loopback) up since three hours, absent before."""
    from appliance.uplinks import HISTORY_FILE, Fault, LineState, LineStatus, write_status

    now = time.time()
    dsl = LineStatus(
        name="DSL", public_host="videosprechstunde.praxis-beispiel.de",
        public_address="203.0.113.1", lan_address="192.168.50.10",
        target="stun.provider-beispiel.de:3478",
        state=LineState.DOWN if dsl_down else LineState.DEGRADED, since=now - 185,
        rtt_ms=None if dsl_down else 281.0, loss=1.0 if dsl_down else 0.2,
        fault=Fault.NO_ANSWER if dsl_down else Fault.NONE, last_answer=now - 190,
        history=_day(now, down=range(0, 4) if dsl_down else range(0),
                     degraded=range(600, 640) if dsl_down else range(0, 4)))
    lte = LineStatus(
        name="LTE", public_host="lte.praxis-beispiel.de", public_address="198.51.100.7",
        lan_address="192.168.50.11", target="198.51.100.7:3478", state=LineState.UP,
        since=now - 3 * 3600, rtt_ms=41.0, loss=0.05, fault=Fault.NONE, last_answer=now - 1,
        by_loopback=True, history=_day(now, missing=range(900, 24 * 60 + 1)))
    write_status(tmp_path / "run" / HISTORY_FILE, [dsl, lte], written_at=now - written_ago_s)
    return now


def test_uplinks_shows_a_dead_line_and_the_day(tmp_path: Path) -> None:
    """R4: ``sprechzimmer uplinks`` reads the running box's file: DSL "ausgefallen" with the
    fault explained, LTE "in Ordnung" probed by NAT loopback, 48 half hours each (the last of
    DSL down, LTE without data before it came), a legend; a line down is exit status 1."""
    config = _lines_config(tmp_path)
    _write_lines(tmp_path, dsl_down=True)
    result = _run("--config", str(config), "uplinks", cwd=tmp_path, env=BERLIN_TZ)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    dsl, lte = out.split("\nDSL  ")[1].split("\nLTE  ")
    assert "Zustand:        ausgefallen seit " in dsl and "Umlaufzeit:     –" in dsl
    assert "Verlust:        100 %" in dsl
    assert "stun.provider-beispiel.de:3478 (STUN-Server im Internet)" in dsl
    assert "Was nicht stimmt: Der STUN-Server stun.provider-beispiel.de:3478 antwortet" in dsl
    assert "Zustand:        in Ordnung seit " in lte and "Umlaufzeit:     41 ms" in lte
    assert "NAT-Loopback" in lte and "Was nicht stimmt" not in lte
    timelines = re.findall(r"24 h:  \|(.{48})\|", out)
    assert len(timelines) == 2
    assert timelines[0].endswith("X") and "~" in timelines[0] and "." not in timelines[0]
    assert timelines[1].startswith("....") and timelines[1].endswith("====")
    assert "= in Ordnung  ~ gestört  X ausgefallen  . keine Daten" in out
    assert "Zeitzone Europe/Berlin" in out and "ACHTUNG" not in out


def test_uplinks_every_line_answering_is_0_also_as_json(tmp_path: Path) -> None:
    """A degraded line still answers: exit status 0; ``--json`` carries the same facts without
    the history."""
    config = _lines_config(tmp_path)
    _write_lines(tmp_path, dsl_down=False)
    text = _run("--config", str(config), "uplinks", cwd=tmp_path, env=BERLIN_TZ)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "Zustand:        gestört seit" in text.stdout
    result = _run("--config", str(config), "uplinks", "--json", cwd=tmp_path, env=BERLIN_TZ)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stale"] is False and data["exit_status"] == 0 and data["configured"] == 2
    dsl, lte = data["lines"]
    assert dsl["state"] == "degraded" and dsl["state_text"] == "gestört"
    assert dsl["since"].endswith(("+01:00", "+02:00")) and "history" not in dsl
    assert lte["by_loopback"] is True and lte["fault_text"] == ""
    assert len(dsl["timeline"]) == 48 and dsl["timeline"].endswith("~")


def test_uplinks_from_a_stale_file_is_unknown(tmp_path: Path) -> None:
    """A file written ten minutes ago: the box is probably not running; exit status 1 even
    though every line answered then."""
    config = _lines_config(tmp_path)
    _write_lines(tmp_path, dsl_down=False, written_ago_s=600)
    result = _run("--config", str(config), "uplinks", cwd=tmp_path, env=BERLIN_TZ)
    assert result.returncode == 1
    assert "ACHTUNG" in result.stdout and "läuft vermutlich nicht" in result.stdout
    assert "vor 10 min" in result.stdout


def test_uplinks_without_file_or_without_lines(tmp_path: Path) -> None:
    """No file yet: the box is not running (exit 1); no lines configured: says so and how to
    configure one (exit 1: nothing is known about the practice's internet)."""
    config = _lines_config(tmp_path)
    missing = _run("--config", str(config), "uplinks", cwd=tmp_path)
    assert missing.returncode == 1
    assert "Keine Leitungsdaten" in missing.stdout and "läuft noch nicht" in missing.stdout
    assert "2 Leitung(en)" in missing.stdout
    bare = _run("--config", str(_config(tmp_path)), "uplinks", cwd=tmp_path)
    assert bare.returncode == 1
    assert "Keine Internetleitung eingerichtet" in bare.stdout
    assert "[[turn.uplinks]]" in bare.stdout


def test_uplinks_with_bad_settings_is_2(tmp_path: Path) -> None:
    """A line without its LAN address is a settings error: exit status 2, the setting named."""
    config = _lines_config(tmp_path, LINES_TOML.replace('lan_address = "192.168.50.11"\n', ""))
    result = _run("--config", str(config), "uplinks", cwd=tmp_path)
    assert result.returncode == 2
    assert "turn.uplinks" in result.stderr and "lan_address" in result.stderr
    assert "Traceback" not in result.stderr
