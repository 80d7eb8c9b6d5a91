"""A target's login stays out of the settings: the REST login from the credentials file into
restic's URL at run time (issue 13)."""

from __future__ import annotations

from appliance.backup.restic import _with_rest_credentials


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
