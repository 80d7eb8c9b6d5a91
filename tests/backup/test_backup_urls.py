"""A target's login stays out of the settings: a login in a target's URL is refused, the REST
login goes from the credentials file into restic's URL at run time (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backup.restic import _with_rest_credentials
from appliance.config import load_settings
from appliance.errors import ConfigError


def test_rest_login_comes_from_the_credentials_file() -> None:
    """Issue 13: restic 0.14 takes a REST server's login only inside the URL, so the box puts
    ``RESTIC_REST_USERNAME``/``RESTIC_REST_PASSWORD`` of the credentials file into restic's
    environment's URL (quoted); other URLs and a URL without them stay as they are."""
    login = {"RESTIC_REST_USERNAME": "praxis", "RESTIC_REST_PASSWORD": "p@ss:w/rd"}
    assert _with_rest_credentials("rest:https://nas.lan:8000/praxis/", login) == \
        "rest:https://praxis:p%40ss%3Aw%2Frd@nas.lan:8000/praxis/"
    assert _with_rest_credentials("rest:http://10.0.0.2:8000/", {}) == "rest:http://10.0.0.2:8000/"
    assert _with_rest_credentials("s3:http://10.0.0.2/b", login) == "s3:http://10.0.0.2/b"
    assert _with_rest_credentials("rest:http://10.0.0.2:8000/",
                                  {"RESTIC_REST_USERNAME": "nur-name"}) == \
        "rest:http://nur-name@10.0.0.2:8000/"


@pytest.mark.parametrize("url", ["rest:http://praxis:geheim@nas.lan:8000/",
                                 "rest:https://praxis@nas.lan/", "s3:http://AK:SK@minio.lan/b",
                                 "rest:praxis:geheim@nas.lan"])
def test_a_login_in_a_target_url_is_refused(tmp_path: Path, url: str) -> None:
    """Issue 13, R9: a REST or S3 target whose URL carries a login is refused when the settings
    are read (the login belongs in the mode-0600 credentials file), naming the setting."""
    config = tmp_path / "box.toml"
    config.write_text(f'[[backup.targets]]\nname = "nas"\nurl = "{url}"\n', "utf-8")
    with pytest.raises(ConfigError, match="ohne Zugangsdaten"):
        load_settings(config)
