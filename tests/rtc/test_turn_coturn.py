"""Against a real coturn on loopback, configured by coturn_config: calls, health check, expiry."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from appliance.clock import ManualClock
from appliance.rtc.turn import TurnCredentials, TurnRelay, TurnState, check_turn
from tests.rtc.turn_fixtures import (
    REALM,
    SECRET,
    Coturn,
    free_udp_port,
    loopback_settings,
    relay_only_call,
    running_coturn,
)

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None,
                                reason="coturn not installed (tests/system-deps)")
#: TESTING.md: peers on loopback are for tests only; on the box the LAN address is the peer
TEST_ONLY = ("allow-loopback-peers",)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """coturn on 127.0.0.1 with our configuration (plus loopback peers)."""
    with running_coturn(loopback_settings(free_udp_port()), tmp_path, extra=TEST_ONLY) as server:
        yield server
    assert "Bad configuration format" not in server.log_text()


def _relay(coturn: Coturn, **changes: object) -> TurnRelay:
    return TurnRelay(loopback_settings(coturn.port, **changes))


@asynccontextmanager
async def _allocation(port: int, username: str, password: str
                      ) -> AsyncIterator[TurnClientUdpProtocol]:
    """A raw TURN allocation (aioice's client), deleted afterwards."""
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(("127.0.0.1", port), username=username, password=password,
                                      lifetime=600, channel_refresh_time=500),
        remote_addr=("127.0.0.1", port))
    try:
        await protocol.connect()
        yield protocol
        await protocol.delete()
    finally:
        transport.close()


async def test_relay_only_call_connects_with_our_credentials(
    coturn: Coturn, capsys: pytest.CaptureFixture[str]
) -> None:
    """R4: relay-only aiortc patient and doctor connect through coturn; video and data flow."""
    relay = _relay(coturn)
    patient = relay.ice_servers_for("patient", ("3f9c0a1b2c3d4e5f", "p-1"))
    doctor = relay.ice_servers_for("doctor", ("3f9c0a1b2c3d4e5f", "d-1"))
    offerer, answerer = await relay_only_call(patient, doctor)
    assert offerer.candidate_types == answerer.candidate_types == ["relay"]
    assert offerer.selected == answerer.selected == "relay-relay"
    assert offerer.echo == "pong über das Relay" and answerer.echo == "ping über das Relay"
    with capsys.disabled():
        print(f"\n  relay-only call: connected {offerer.connected_s * 1000:.0f} ms, first frame "
              f"{max(offerer.first_frame_s, answerer.first_frame_s) * 1000:.0f} ms")


async def test_health_check_ok(coturn: Coturn, caplog: pytest.LogCaptureFixture) -> None:
    """A real Allocate with a fresh credential succeeds and says so in German; no secret logged."""
    caplog.set_level(logging.DEBUG)
    health = await check_turn("127.0.0.1", coturn.port, SECRET, REALM)
    assert health.ok, health.message()
    assert health.relayed_address is not None and 61000 <= health.relayed_address[1] <= 61999
    assert "arbeitet" in health.message()
    assert SECRET not in caplog.text and SECRET not in coturn.log_text()


async def test_wrong_secret_is_reported_clearly_and_fast(coturn: Coturn) -> None:
    """TESTING.md pitfall: a wrong secret would fail silently; the check names it (a 401, not a
    time-out: the state says which)."""
    health = await check_turn("127.0.0.1", coturn.port, "ein-anderes-geheimnis-0123456789abc",
                              REALM)
    assert health.state is TurnState.WRONG_SECRET
    assert "TURN-Geheimnis" in health.message() and "401" in health.message()


async def test_unreachable_coturn_is_reported() -> None:
    """No coturn on the port: 'antwortet nicht' after the timeout, not a hang."""
    started = time.monotonic()
    health = await check_turn("127.0.0.1", free_udp_port(), SECRET, REALM, timeout_s=0.5)
    assert health.state is TurnState.UNREACHABLE
    assert time.monotonic() - started < 2.0
    assert "antwortet nicht" in health.message()


async def test_stale_realm_is_reported(coturn: Coturn) -> None:
    """A coturn still running with an old configuration is told apart from a healthy one."""
    health = await check_turn("127.0.0.1", coturn.port, SECRET, "praxis-beispiel.de")
    assert health.state is TurnState.WRONG_REALM
    assert "alten Konfiguration" in health.message()


async def test_exhausted_quota_is_reported_as_refused(tmp_path: Path) -> None:
    """total_quota used up: the check says 'verweigert' with coturn's 486, not 'wrong secret'."""
    settings = loopback_settings(free_udp_port(), total_quota=1)
    with running_coturn(settings, tmp_path, extra=TEST_ONLY):
        credentials = TurnCredentials.issue(SECRET, ("a1", "p-1"), ttl_s=60, now=time.time())
        async with _allocation(settings.port, credentials.username, credentials.password):
            health = await check_turn("127.0.0.1", settings.port, SECRET, REALM)
    assert health.state is TurnState.REFUSED and "486" in health.detail
    assert "verweigert" in health.message()


async def test_expired_credential_is_refused(coturn: Coturn) -> None:
    """R9: a credential past its expiry gets no allocation (401)."""
    clock = ManualClock(datetime.fromtimestamp(time.time() - 700, UTC))
    relay = TurnRelay(loopback_settings(coturn.port), clock=clock)
    server = relay.ice_servers_for("patient", ("a1", "p-1"))[0]
    assert int(server["username"].partition(":")[0]) < time.time()
    with pytest.raises(stun.TransactionFailed) as info:
        async with _allocation(coturn.port, server["username"], server["credential"]):
            pass
    assert info.value.response.error_code == 401


async def test_allocation_outlives_its_credential(coturn: Coturn) -> None:
    """Measured: coturn refreshes an allocation made in time after the credential expired.

    So credential_ttl_s bounds when a call may start using the relay, not how long it lasts;
    a new peer connection (recovery, UPLINKS.md) needs fresh ice servers from the hub.
    """
    credentials = TurnCredentials.issue(SECRET, ("a1", "p-1"), ttl_s=1, now=time.time())
    async with _allocation(coturn.port, credentials.username, credentials.password) as protocol:
        await asyncio.sleep(max(0.0, credentials.expires_at + 1.1 - time.time()))
        assert credentials.expired(time.time())
        refresh = stun.Message(message_method=stun.Method.REFRESH,
                               message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await protocol.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 600
    with pytest.raises(stun.TransactionFailed) as info:
        async with _allocation(coturn.port, credentials.username, credentials.password):
            pass
    assert info.value.response.error_code == 401
