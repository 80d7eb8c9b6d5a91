"""Settings: TOML plus environment, validated; a wrong value names the setting and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import (
    EMBEDDED_DEFAULTS,
    Settings,
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
