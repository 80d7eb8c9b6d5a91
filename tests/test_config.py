"""Settings: TOML plus environment, validated; a wrong value names the setting and the rule."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from appliance.config import (
    EMBEDDED_DEFAULTS,
    Settings,
    TurnUplink,
    ephemeral_ports,
    load_settings,
    write_embedded_defaults,
)
from appliance.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sprechzimmer.toml"
    path.write_text(text, "utf-8")
    return path


def test_embedded_defaults_parse_to_the_documented_values(tmp_path: Path) -> None:
    """The embedded default file gives the laptop defaults of DESIGN.md."""
    path = tmp_path / "var" / "sprechzimmer.toml"
    write_embedded_defaults(path)
    settings = load_settings(path, environ={})
    assert settings.web.staff_host == ("127.0.0.1",)
    assert (settings.web.staff_port, settings.web.public_port) == (8080, 8081)
    assert settings.vault.path == Path("./var/vault")
    assert settings.practice.retention_days == 90
    assert settings.vault.lock_hours == (time(22, 0), time(6, 0))
    assert settings.vault.lock_idle_hours == 12
    assert path.read_text("utf-8") == EMBEDDED_DEFAULTS


def test_write_embedded_defaults_never_overwrites(tmp_path: Path) -> None:
    """An edited settings file is left alone."""
    path = _write(tmp_path, "[web]\nstaff_port = 9000\n")
    write_embedded_defaults(path)
    assert load_settings(path, environ={}).web.staff_port == 9000


def test_file_values_and_lists(tmp_path: Path) -> None:
    """Hosts may be lists; public URLs lose a trailing slash."""
    path = _write(tmp_path, """
[web]
staff_host = ["127.0.0.1", "::1"]
public_urls = ["https://videosprechstunde.praxis-beispiel.de/", "https://lte.praxis-beispiel.de"]
[vault]
path = "/var/lib/sprechzimmer/vault"
""")
    settings = load_settings(path, environ={})
    assert settings.web.staff_host == ("127.0.0.1", "::1")
    assert settings.web.public_urls[0] == "https://videosprechstunde.praxis-beispiel.de"
    assert settings.vault.path == Path("/var/lib/sprechzimmer/vault")


def test_environment_overrides_file(tmp_path: Path) -> None:
    """SPRECHZIMMER_<SECTION>__<KEY> wins over the file."""
    path = _write(tmp_path, "[web]\nstaff_port = 9000\n")
    env = {"SPRECHZIMMER_WEB__STAFF_PORT": "9100",
           "SPRECHZIMMER_WEB__PUBLIC_URLS": "https://a.example.de,https://b.example.de"}
    settings = load_settings(path, environ=env)
    assert settings.web.staff_port == 9100
    assert settings.web.public_urls == ("https://a.example.de", "https://b.example.de")


@pytest.mark.parametrize(("text", "env", "names"), [
    ("[web]\nstaff_port = 70000\n", {}, ("web.staff_port", "70000", "1 bis 65535")),
    ("[web]\nstaff_port = \"abc\"\n", {}, ("web.staff_port", "abc", "ganze Zahl")),
    ("[web]\nstaff_host = \"sprechzimmer.local\"\n", {}, ("web.staff_host", "IP-Adresse")),
    ("[web]\npublic_urls = [\"ftp://x.de\"]\n", {}, ("web.public_urls", "https://")),
    ("[web]\npublic_urls = [\"https://x.de/v\"]\n", {}, ("web.public_urls", "ohne Pfad")),
    ("[web]\nstaf_port = 1\n", {}, ("web.staf_port", "unbekannte Einstellung")),
    ("[practice]\nretention_days = 120\n", {}, ("practice.retention_days", "R8")),
    ("[practice]\nretention_days = 89.9\n", {}, ("practice.retention_days", "ganze Zahl")),
    ("[web]\npublic_urls = [\"https://u:pw@x.de\"]\n", {}, ("web.public_urls", "Anmeldedaten")),
    ("[web]\npublic_urls = [\"https://x.de/?a=1\"]\n", {}, ("web.public_urls",)),
    ("[web]\npublic_port = 8080\n", {}, ("web.public_port", "anderen Port")),
    ("[web]\nstaff_host = \"0.0.0.0\"\npublic_host = \"127.0.0.2\"\npublic_port = 8080\n", {},
     ("web.public_port",)),
    ("[webb]\n", {}, ("[webb]", "[web]")),
    ("", {"SPRECHZIMMER_WEB__PUBLIC_PORT": "-1"}, ("SPRECHZIMMER_WEB__PUBLIC_PORT", "-1")),
    ("", {"SPRECHZIMMER_WEB__NOPE": "1"}, ("SPRECHZIMMER_WEB__NOPE",)),
    ("[web\n", {}, ("kein gültiges TOML",)),
])
def test_bad_value_names_setting_value_and_allowed(
    tmp_path: Path, text: str, env: dict[str, str], names: tuple[str, ...]
) -> None:
    """A wrong value raises ConfigError whose German message names setting, value and the rule."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=env)
    message = str(info.value)
    for name in names:
        assert name in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """--config pointing nowhere says so."""
    with pytest.raises(ConfigError, match="existiert nicht"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_no_file_gives_builtin_defaults() -> None:
    """Without a file the dataclass defaults apply."""
    assert load_settings(None, environ={}) == Settings(source="eingebaute Standardwerte")


TURN_BOX = """
[turn]
enabled = true
secret_file = "/etc/sprechzimmer/turn-secret"
realm = "praxis-beispiel.de"
lan_address = "192.168.50.10"
certificate = "/etc/sprechzimmer/tls/turn.crt"
private_key = "/etc/sprechzimmer/tls/turn.key"
credential_ttl_s = 900
[[turn.uplinks]]
public_host = "videosprechstunde.praxis-beispiel.de"
public_address = "203.0.113.1"
lan_address = "192.168.50.10"
[[turn.uplinks]]
public_host = "lte.praxis-beispiel.de"
public_address = "192.0.2.1"
lan_address = "192.168.50.11"
"""
TURN_SECRET = "praxis-test-secret-0123456789abcdef"


def test_turn_is_off_in_the_embedded_default(tmp_path: Path) -> None:
    """The laptop default runs without TURN and needs no secret."""
    path = tmp_path / "var" / "sprechzimmer.toml"
    write_embedded_defaults(path)
    turn = load_settings(path, environ={}).turn
    assert not turn.enabled
    assert (turn.port, turn.tls_port, turn.credential_ttl_s) == (3478, 443, 600)
    assert turn.secret_file == Path("/etc/sprechzimmer/turn-secret")


def test_turn_box_settings_with_two_uplinks(tmp_path: Path) -> None:
    """[[turn.uplinks]] tables become TurnUplink entries; LAN addresses are collected once."""
    turn = load_settings(_write(tmp_path, TURN_BOX), environ={}).turn
    assert turn.enabled and turn.realm == "praxis-beispiel.de"
    assert [u.public_host for u in turn.uplinks] == ["videosprechstunde.praxis-beispiel.de",
                                                     "lte.praxis-beispiel.de"]
    assert turn.uplinks[1] == TurnUplink(public_host="lte.praxis-beispiel.de",
                                         public_address="192.0.2.1", lan_address="192.168.50.11")
    assert turn.lan_addresses == ("192.168.50.10", "192.168.50.11")
    assert turn.certificate == Path("/etc/sprechzimmer/tls/turn.crt")
    assert turn.credential_ttl_s == 900


def test_turn_from_environment(tmp_path: Path) -> None:
    """Uplinks as HOST=PUBLIC/LAN, a secret and a switch from the environment."""
    env = {"SPRECHZIMMER_TURN__ENABLED": "true", "SPRECHZIMMER_TURN__SECRET": TURN_SECRET,
           "SPRECHZIMMER_TURN__LAN_ADDRESS": "192.168.50.10",
           "SPRECHZIMMER_TURN__UPLINKS": "a.praxis-beispiel.de=203.0.113.1/192.168.50.10"}
    turn = load_settings(None, environ=env).turn
    assert turn.enabled and turn.secret == TURN_SECRET
    assert turn.uplinks == (TurnUplink(public_host="a.praxis-beispiel.de",
                                       public_address="203.0.113.1",
                                       lan_address="192.168.50.10"),)


@pytest.mark.parametrize(("change", "names"), [
    ("credential_ttl_s = 7200", ("turn.credential_ttl_s", "3600")),
    ("min_port = 70000", ("turn.min_port", "1024 bis 65535")),
    ("min_port = 3000\nmax_port = 4000", ("turn.port", "außerhalb der Relay-Ports")),
    ("min_port = 62000\nmax_port = 61000", ("turn.min_port", "kleiner als max_port")),
    ("lan_address = \"box.local\"", ("turn.lan_address", "IP-Adresse")),
    ("lan_address = \"\"", ("turn.lan_address", "LAN-Adresse")),
    ("private_key = \"\"", ("turn.private_key", "nur gemeinsam")),
    ("enabled = \"vielleicht\"", ("turn.enabled", "true oder false")),
    ("user_quota = 0", ("turn.user_quota", "1 bis 1000")),
    ("realm = \"praxis beispiel\"", ("turn.realm", "Hostname")),
    ("min_port = 40000\nmax_port = 50000", ("turn.min_port", "ausgehende Verbindungen",
                                           "ip_local_port_range")),
    ("lan_address = \"fd00::10\"", ("turn.lan_address", "IPv4")),
])
def test_bad_turn_value_names_setting(
    tmp_path: Path, change: str, names: tuple[str, ...]
) -> None:
    """A wrong [turn] value, or two that contradict each other, names the setting and the rule."""
    head, _, uplinks = TURN_BOX.partition("[[turn.uplinks]]")
    keys = {line.partition("=")[0].strip() for line in change.splitlines()}
    kept = [line for line in head.splitlines() if line.partition("=")[0].strip() not in keys]
    text = "\n".join([*kept, change, "[[turn.uplinks]]"]) + uplinks
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(("uplinks", "names"), [
    ("", ("turn.uplinks", "mindestens ein")),
    ("[[turn.uplinks]]\npublic_host = \"a.de\"\npublic_address = \"203.0.113.1\"\n",
     ("turn.uplinks", "lan_address")),
    ("[[turn.uplinks]]\npublic_host = \"a.de/x\"\npublic_address = \"203.0.113.1\"\n"
     "lan_address = \"192.168.50.10\"\n", ("turn.uplinks", "Hostname")),
    ("[[turn.uplinks]]\npublic_host = \"a.de\"\npublic_address = \"203.0.113.1\"\n"
     "lan_address = \"192.168.50.10\"\n[[turn.uplinks]]\npublic_host = \"b.de\"\n"
     "public_address = \"192.0.2.1\"\nlan_address = \"192.168.50.10\"\n",
     ("turn.uplinks", "eigene LAN-Adresse")),
])
def test_bad_turn_uplinks(tmp_path: Path, uplinks: str, names: tuple[str, ...]) -> None:
    """Each uplink needs a host, a public and its own LAN address; an enabled relay needs one."""
    text = TURN_BOX[:TURN_BOX.index("[[turn.uplinks]]")] + uplinks
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    for name in names:
        assert name in str(info.value)


LINE_A = ('[[turn.uplinks]]\npublic_host = "a.de"\npublic_address = "203.0.113.1"\n'
          'lan_address = "192.168.50.10"\n')


def test_lines_with_name_probe_target_and_interface(tmp_path: Path) -> None:
    """Issue 12: a line may have a name, a STUN target (port 3478 if left out) and the
    interface it ends on (which replaces ``[discovery] uplink_interfaces``); the probes' timing
    is a setting. Lines are checked even with the relay off: the box watches them anyway."""
    text = (f"[turn]\nprobe_interval_s = 5\nprobe_timeout_s = 1.5\n{LINE_A}name = \"DSL\"\n"
            'stun_target = "stun.provider.de"\n[[turn.uplinks]]\npublic_host = "b.de"\n'
            'public_address = "192.0.2.1"\nlan_address = "192.168.50.11"\nname = "LTE"\n'
            'stun_target = "192.0.2.99:3479"\ninterface = "wwan0"\n')
    turn = load_settings(_write(tmp_path, text), environ={}).turn
    assert not turn.enabled
    assert [(u.name, u.stun_target, u.interface) for u in turn.uplinks] == [
        ("DSL", ("stun.provider.de", 3478), ""), ("LTE", ("192.0.2.99", 3479), "wwan0")]
    assert turn.uplink_interfaces == ("wwan0",)
    assert (turn.probe_interval_s, turn.probe_timeout_s) == (5.0, 1.5)


@pytest.mark.parametrize(("text", "names"), [
    (LINE_A + 'stun_target = "stun.provider.de:99999"\n',
     ("turn.uplinks", "Leitung 1, stun_target", "host:port")),
    (LINE_A + 'interface = "eth0; rm -rf"\n', ("Leitung 1, interface", "ppp0")),
    (LINE_A + 'color = "grün"\n', ("Leitung 1: unbekannt: color",)),
    (LINE_A + '[[turn.uplinks]]\npublic_host = "b.de"\npublic_address = "192.0.2.1"\n',
     ("Leitung 2: es fehlt lan_address",)),
    (LINE_A + 'name = "DSL"\n[[turn.uplinks]]\npublic_host = "b.de"\n'
     'public_address = "192.0.2.1"\nlan_address = "192.168.50.11"\nname = "DSL"\n',
     ("turn.uplinks", "eigenen Namen")),
    (LINE_A.replace("203.0.113.1", "2001:db8::1"), ("turn.uplinks", "IPv4")),
    ("[turn]\nprobe_interval_s = 0\n", ("turn.probe_interval_s", "0.1 bis 60")),
    ("[turn]\nprobe_interval_s = 1\nprobe_timeout_s = 3\n",
     ("turn.probe_timeout_s", "kürzer als zweimal")),
    ('[discovery]\nuplink_interfaces = ["ppp0"]\n',
     ("discovery.uplink_interfaces", "[[turn.uplinks]]", "interface")),
])
def test_bad_lines_name_the_line_and_the_field(tmp_path: Path, text: str,
                                               names: tuple[str, ...]) -> None:
    """A wrong line names its number and field and what is allowed; the moved setting says
    where it went."""
    if text.startswith("[[turn"):
        text = "[turn]\n" + text
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize("secret", ["zu-kurz-und-geheim", TURN_SECRET + "\nno-auth",
                                    TURN_SECRET + " x"])
def test_turn_secret_is_never_echoed(tmp_path: Path, secret: str) -> None:
    """R9: a bad TURN secret (short, or a line break that would inject coturn options) is
    refused, and neither file nor environment value appears in the message."""
    path = _write(tmp_path, "[turn]\nsecret = \"\"\"" + secret + "\"\"\"\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "turn.secret" in str(info.value) and secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"SPRECHZIMMER_TURN__SECRET": secret})
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"SPRECHZIMMER_TURN__SECRETS": secret})
    assert secret not in str(info.value)


def test_disabled_turn_may_be_incomplete(tmp_path: Path) -> None:
    """Half-filled [turn] settings are fine while enabled = false (prepared, not switched on)."""
    turn = load_settings(_write(tmp_path, "[turn]\nlan_address = \"192.168.50.10\"\n"),
                         environ={}).turn
    assert not turn.enabled and turn.uplinks == ()


def test_no_box_service_on_a_relay_port(tmp_path: Path) -> None:
    """R9: the firewall rule lets relayed packets reach every relay port, so no service of the
    box may listen on one: a staff port inside the relay range is refused, naming both."""
    text = TURN_BOX.replace("[turn]", "[web]\nstaff_port = 62000\n\n[turn]", 1)
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    assert "turn.min_port" in str(info.value) and "web.staff_port = 62000" in str(info.value)


def test_ephemeral_ports_from_the_kernel(tmp_path: Path) -> None:
    """The kernel's range is read from ip_local_port_range; Debian's default when unreadable."""
    path = tmp_path / "ip_local_port_range"
    path.write_text("1024\t65000\n")
    assert ephemeral_ports(path) == (1024, 65000)
    assert ephemeral_ports(tmp_path / "missing") == (32768, 60999)


def test_doctor_relay_only_needs_the_relay(tmp_path: Path) -> None:
    """Relay-only for the doctor without the box's relay could never connect: refused."""
    with pytest.raises(ConfigError, match="turn.doctor_relay_only"):
        load_settings(_write(tmp_path, "[turn]\nenabled = false\ndoctor_relay_only = true\n"),
                      environ={})


@pytest.mark.parametrize(("text", "expected"), [
    ('"21:30-07:00"', (time(21, 30), time(7, 0))),
    ('"13:00 – 14:00"', (time(13, 0), time(14, 0))),
    ('""', None),
])
def test_lock_hours(tmp_path: Path, text: str, expected: object) -> None:
    """R9: the night span of the box lock, across midnight or not; "" switches it off."""
    path = _write(tmp_path, f"[vault]\nlock_hours = {text}\nlock_idle_hours = 0\n")
    vault = load_settings(path, environ={}).vault
    assert vault.lock_hours == expected and vault.lock_idle_hours == 0
    off = load_settings(path, environ={"SPRECHZIMMER_VAULT__LOCK_HOURS": ""}).vault
    assert off.lock_hours is None


@pytest.mark.parametrize(("key", "value"), [
    ("lock_hours", '"22-6"'), ("lock_hours", '"25:00-06:00"'), ("lock_hours", '"22:00-22:00"'),
    ("lock_hours", "22"), ("lock_idle_hours", "-1"), ("lock_idle_hours", "1000"),
])
def test_bad_lock_settings_name_the_setting(tmp_path: Path, key: str, value: str) -> None:
    """A wrong lock setting is refused with its name and what is allowed."""
    path = _write(tmp_path, f"[vault]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert f"vault.{key}" in str(caught.value)
