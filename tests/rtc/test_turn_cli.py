"""`sprechzimmer turn-config`: coturn's configuration or the nft rules, to stdout or a 0600 file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from appliance.config import load_settings
from appliance.rtc.turn import coturn_config, nft_rules

SECRET = "praxis-test-secret-0123456789abcdef"
TURN = """
[turn]
enabled = true
realm = "praxis-beispiel.de"
lan_address = "192.168.50.10"
secret_file = "{secret_file}"
[[turn.uplinks]]
public_host = "videosprechstunde.praxis-beispiel.de"
public_address = "203.0.113.1"
lan_address = "192.168.50.10"
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_")}
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=60, env=env)


def _box(tmp_path: Path) -> Path:
    secret_file = tmp_path / "turn-secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text(SECRET + "\n")
    config = tmp_path / "box.toml"
    config.write_text(TURN.format(secret_file=secret_file), "utf-8")
    return config


def test_writes_coturn_config_to_stdout(tmp_path: Path) -> None:
    """Without --output the configuration goes to stdout, exactly as coturn_config writes it."""
    config = _box(tmp_path)
    result = _run("--config", str(config), "turn-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == coturn_config(load_settings(config, environ={}).turn)
    assert "static-auth-secret=" + SECRET in result.stdout
    assert SECRET not in result.stderr


def test_output_file_is_mode_0600_and_replaced_atomically(tmp_path: Path) -> None:
    """R9: --output writes a 0600 file (it holds the secret), replacing an older one whole."""
    config = _box(tmp_path)
    target = tmp_path / "turnserver.conf"
    target.write_text("alt\n")
    target.chmod(0o644)
    result = _run("--config", str(config), "turn-config", "--output", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == coturn_config(load_settings(config, environ={}).turn)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.toml", "turn-secret",
                                                          "turnserver.conf"]
    assert SECRET not in result.stdout + result.stderr


def test_nft_rules(tmp_path: Path) -> None:
    """--nft writes the box firewall rule set instead."""
    config = _box(tmp_path)
    result = _run("--config", str(config), "turn-config", "--nft", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == nft_rules(load_settings(config, environ={}).turn)


def test_turn_not_configured_is_a_clear_error(tmp_path: Path) -> None:
    """With the laptop default (TURN off) the command says so and exits 2."""
    config = tmp_path / "box.toml"
    config.write_text("[web]\nstaff_port = 9000\n")
    result = _run("--config", str(config), "turn-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "TURN ist nicht eingerichtet" in result.stderr and str(config) in result.stderr
    assert result.stdout == ""


def test_missing_secret_file_names_the_setting(tmp_path: Path) -> None:
    """A missing secret file stops with a message naming turn.secret_file."""
    config = _box(tmp_path)
    (tmp_path / "turn-secret").unlink()
    result = _run("--config", str(config), "turn-config", cwd=tmp_path)
    assert result.returncode == 1
    assert "turn.secret_file" in result.stderr and "Traceback" not in result.stderr


def test_short_secret_in_settings_is_never_echoed(tmp_path: Path) -> None:
    """R9: a too-short secret in the file is refused (exit 2) without printing it."""
    config = tmp_path / "box.toml"
    config.write_text('[turn]\nsecret = "geheim-aber-zu-kurz"\n')
    result = _run("--config", str(config), "turn-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "turn.secret" in result.stderr and "geheim-aber-zu-kurz" not in result.stderr


def test_help_in_german(tmp_path: Path) -> None:
    """The command explains itself in German."""
    result = _run("turn-config", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "coturn-Konfiguration" in result.stdout


LTE_LINE = """
[[turn.uplinks]]
public_host = "lte.praxis-beispiel.de"
public_address = "192.0.2.1"
lan_address = "192.168.50.11"
"""


def test_two_lines_write_one_instance_each(tmp_path: Path) -> None:
    """With two lines --output-dir writes one 0600 file per coturn instance; stdout needs
    --instance, and without it the error names the instances."""
    config = _box(tmp_path)
    config.write_text(config.read_text() + LTE_LINE)
    turn = load_settings(config, environ={}).turn
    out = tmp_path / "coturn"
    out.mkdir()
    result = _run("--config", str(config), "turn-config", "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for address in ("192.168.50.10", "192.168.50.11"):
        path = out / f"turnserver-{address}.conf"
        assert path.read_text() == coturn_config(turn, address)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ambiguous = _run("--config", str(config), "turn-config", cwd=tmp_path)
    assert ambiguous.returncode == 2
    assert "192.168.50.10, 192.168.50.11" in ambiguous.stderr and ambiguous.stdout == ""
    chosen = _run("--config", str(config), "turn-config", "--instance", "192.168.50.11",
                  cwd=tmp_path)
    assert chosen.stdout == coturn_config(turn, "192.168.50.11")
