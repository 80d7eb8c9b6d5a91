"""The staff pages learn about the patient site's certificate (issue 11): a stand-in, and a
failed ACME renewal, are in the session, so every staff page can say so long before patients
meet a browser warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Settings, TlsSettings, VaultSettings, WebSettings
from appliance.web.context import TLS

from .conftest import ADMIN_PASSWORD, Box


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The patient site on a network address (HTTPS), its certificate by ACME from a server
    that is not there (nothing listens on that loopback port)."""
    return Settings(
        web=WebSettings(public_host=("192.0.2.77",),
                        public_urls=("https://videosprechstunde.praxis-beispiel.de",)),
        vault=VaultSettings(path=tmp_path / "vault"),
        tls=TlsSettings(acme_directory="https://127.0.0.1:9/dir"),
    )


async def test_session_tells_of_the_stand_in_and_the_failed_renewal(practice: Box) -> None:
    """Until ACME delivers, the session says "stand-in"; a failed attempt's reason is there
    too (the staff page shows both as a banner)."""
    headers = await practice.login("admin", ADMIN_PASSWORD)
    session = await (await practice.staff.get("/api/session", headers=headers)).json()
    assert session["public_certificate"]["source"] == "stand-in"
    assert session["public_certificate"]["error"] is None
    practice.staff.app[TLS].renew_public()  # the ACME server does not answer
    session = await (await practice.staff.get("/api/session", headers=headers)).json()
    state = session["public_certificate"]
    assert state["source"] == "stand-in" and "ConnectionError" in state["error"]
