"""TURN credentials and ICE servers: REST API scheme, expiry, binding, who gets which URL."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from appliance.clock import ManualClock
from appliance.config import TurnSettings, TurnUplink
from appliance.errors import ConfigError
from appliance.rtc.turn import TurnCredentials, TurnRelay, password_for, read_turn_secret

SECRET = "praxis-test-secret-0123456789abcdef"
NOW = 1767600000  # ManualClock's start: 2026-01-05 08:00 UTC
DSL = TurnUplink(public_host="videosprechstunde.praxis-beispiel.de",
                 public_address="203.0.113.1", lan_address="192.168.50.10")
LTE = TurnUplink(public_host="lte.praxis-beispiel.de", public_address="192.0.2.1",
                 lan_address="192.168.50.11")


def _settings(**changes: object) -> TurnSettings:
    values: dict[str, object] = {"enabled": True, "secret": SECRET, "lan_address": "192.168.50.10",
                                 "uplinks": (DSL,)} | changes
    return TurnSettings(**values)  # type: ignore[arg-type]


def test_password_is_base64_hmac_sha1_of_the_username() -> None:
    """The password matches an independent HMAC-SHA1 vector (openssl dgst -sha1 -hmac | base64)."""
    username = "1767603600:3f9c0a1b2c3d4e5f.p-3f9c"
    assert password_for(SECRET, username) == "HfKOtSQwQiBF+vJ7TRRxHuSa7cg="


def test_credential_carries_expiry_and_binding() -> None:
    """Username is '<expiry>:<appointment>.<participant>'; the password is its HMAC."""
    credentials = TurnCredentials.issue(SECRET, ("3f9c0a1b2c3d4e5f", "p-3f9c"), ttl_s=3600,
                                        now=NOW)
    assert credentials.username == "1767603600:3f9c0a1b2c3d4e5f.p-3f9c"
    assert credentials.password == "HfKOtSQwQiBF+vJ7TRRxHuSa7cg="
    assert credentials.expires_at == NOW + 3600
    assert credentials.bound_to == ("3f9c0a1b2c3d4e5f", "p-3f9c")
    assert not credentials.expired(NOW + 3600)
    assert credentials.expired(NOW + 3601)


def test_credentials_differ_per_participant_and_appointment() -> None:
    """A credential is bound: another participant or appointment gets another username and HMAC."""
    issued = {TurnCredentials.issue(SECRET, binding, ttl_s=600, now=NOW)
              for binding in (("a1", "p-1"), ("a1", "p-2"), ("a2", "p-1"))}
    assert len({c.username for c in issued}) == len({c.password for c in issued}) == 3


@pytest.mark.parametrize("binding", [("a:1", "p"), ("a.1", "p"), ("", "p"), ("a", "Max Muster"),
                                     ("a", "x" * 65)])
def test_binding_refuses_separators_and_personal_text(binding: tuple[str, str]) -> None:
    """Ids only: no ':' or '.' (they would shift coturn's parsing), no names, bounded length."""
    with pytest.raises(ValueError, match="bound_to"):
        TurnCredentials.issue(SECRET, binding, ttl_s=600, now=NOW)


def test_secret_never_in_repr() -> None:
    """Neither settings nor credentials show the secret or password in a repr (logs, tracebacks)."""
    credentials = TurnCredentials.issue(SECRET, ("a1", "p-1"), ttl_s=600, now=NOW)
    assert SECRET not in repr(_settings())
    assert credentials.password not in repr(credentials)


def test_patient_gets_public_hosts_doctor_gets_lan_address() -> None:
    """R4: patients relay via each uplink's public host, the doctor via the box's LAN address."""
    relay = TurnRelay(_settings(uplinks=(DSL, LTE)), clock=ManualClock())
    [patient] = relay.ice_servers_for("patient", ("a1", "p-1"))
    [doctor] = relay.ice_servers_for("doctor", ("a1", "d-1"))
    assert patient["urls"] == [
        "turn:videosprechstunde.praxis-beispiel.de:3478?transport=udp",
        "turn:lte.praxis-beispiel.de:3478?transport=udp",
    ]
    assert doctor["urls"] == ["turn:192.168.50.10:3478"]
    assert patient["username"] == f"{NOW + 600}:a1.p-1"
    assert patient["credential"] == password_for(SECRET, patient["username"])
    assert doctor["username"] == f"{NOW + 600}:a1.d-1"


def test_credentials_are_fresh_each_time() -> None:
    """Each call issues a credential valid for credential_ttl_s from now."""
    clock = ManualClock()
    relay = TurnRelay(_settings(credential_ttl_s=300), clock=clock)
    first = relay.ice_servers_for("patient", ("a1", "p-1"))[0]["username"]
    clock.advance(timedelta(minutes=10))
    second = relay.ice_servers_for("patient", ("a1", "p-1"))[0]["username"]
    assert (first, second) == (f"{NOW + 300}:a1.p-1", f"{NOW + 900}:a1.p-1")


def test_turns_on_443_only_with_certificate_and_key(tmp_path: Path) -> None:
    """turns: URLs appear when both TLS files exist, not when one is missing."""
    cert, key = tmp_path / "turn.crt", tmp_path / "turn.key"
    cert.write_text("x")
    settings = _settings(certificate=cert, private_key=key)
    urls = TurnRelay(settings).ice_servers_for("patient", ("a1", "p-1"))[0]["urls"]
    assert not any(url.startswith("turns:") for url in urls)
    key.write_text("x")
    urls = TurnRelay(settings).ice_servers_for("patient", ("a1", "p-1"))[0]["urls"]
    assert urls[-1] == "turns:videosprechstunde.praxis-beispiel.de:443?transport=tcp"
    doctor = TurnRelay(settings).ice_servers_for("doctor", ("a1", "d-1"))[0]["urls"]
    assert doctor == ["turn:192.168.50.10:3478"]


def test_only_healthy_uplinks_are_advertised() -> None:
    """The uplink monitor narrows the patient's URLs; with none healthy, all are offered."""
    relay = TurnRelay(_settings(uplinks=(DSL, LTE)))
    relay.mark_healthy({"lte.praxis-beispiel.de"})
    assert relay.ice_servers_for("patient", ("a1", "p-1"))[0]["urls"] == [
        "turn:lte.praxis-beispiel.de:3478?transport=udp"]
    relay.mark_healthy(set())
    assert len(relay.ice_servers_for("patient", ("a1", "p-1"))[0]["urls"]) == 2


def test_ipv6_addresses_get_brackets() -> None:
    """An IPv6 LAN address is written as [addr] in the URL."""
    relay = TurnRelay(_settings(lan_address="fd00::10"))
    assert relay.ice_servers_for("doctor", ("a1", "d-1"))[0]["urls"] == ["turn:[fd00::10]:3478"]


def test_disabled_turn_gives_no_servers_and_needs_no_secret() -> None:
    """The laptop default runs without TURN: no servers, no secret file read."""
    relay = TurnRelay(TurnSettings(secret_file=Path("/nonexistent/turn-secret")))
    assert relay.ice_servers_for("patient", ("a1", "p-1")) == []


def test_secret_from_file(tmp_path: Path) -> None:
    """An empty [turn] secret reads secret_file (mode 0600), stripped of its newline."""
    path = tmp_path / "turn-secret"
    path.touch(mode=0o600)
    path.write_text(SECRET + "\n")
    settings = _settings(secret="", secret_file=path)
    assert read_turn_secret(settings) == SECRET
    relay = TurnRelay(settings, clock=ManualClock())
    server = relay.ice_servers_for("patient", ("a1", "p-1"))[0]
    assert server["credential"] == password_for(SECRET, server["username"])


@pytest.mark.parametrize(("content", "mode", "expected"), [
    (None, 0o600, "lesbare Datei"),
    ("zu-kurz", 0o600, "32 bis 256 Zeichen"),
    ("", 0o600, "leer"),
    (SECRET, 0o644, "chmod 600"),
])
def test_bad_secret_file_is_a_clear_error_without_its_content(
    tmp_path: Path, content: str | None, mode: int, expected: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A missing, short, empty or world-readable secret file names the setting, never the secret."""
    path = tmp_path / "turn-secret"
    if content is not None:
        path.write_text(content + "\n")
        path.chmod(mode)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as info:
        TurnRelay(_settings(secret="", secret_file=path))
    message = str(info.value)
    assert "turn.secret_file" in message and expected in message
    if content:
        assert content not in message and content not in caplog.text
