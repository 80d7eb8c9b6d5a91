"""The logging policy: libraries held at WARNING, no client address in any line (R8, R9)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from appliance.logs import REDACTED, redact_addresses, setup_logging

PATIENT_V4, PATIENT_V6 = "203.0.113.50", "2001:db8:50::7"


@pytest.mark.parametrize(("line", "expected"), [
    (f"pair ('{PATIENT_V4}', 51234) -> ('192.168.50.10', 3478)",
     f"pair ('{REDACTED}', 51234) -> ('192.168.50.10', 3478)"),
    (f"from [{PATIENT_V6}]:443 and fe80::1%eth0", f"from [{REDACTED}]:443 and {REDACTED}"),
    ("mapped ::ffff:203.0.113.50 and ::1", f"mapped {REDACTED} and {REDACTED}"),
    ("at 17:59:49, aiortc 1.9.0, 4 ms, a1:b2", "at 17:59:49, aiortc 1.9.0, 4 ms, a1:b2"),
    ("version 10.20.30.400 is no address", "version 10.20.30.400 is no address"),
])
def test_addresses_are_redacted_and_nothing_else(line: str, expected: str) -> None:
    """Every IPv4 and IPv6 address (mapped, scoped, loopback) is replaced; times, versions and
    things that only look like addresses stay; the box's own address is kept."""
    assert redact_addresses(line, frozenset({"192.168.50.10"})) == expected


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """The box's logging as the CLI sets it up, into a buffer; pytest's handlers back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {name: logging.getLogger(name).level for name in ("appliance", "av", "aioice")})
    stream = io.StringIO()
    setup_logging(keep=("192.168.50.10",), stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def test_policy_levels_and_last_line_of_defence(log: io.StringIO) -> None:
    """The box's own INFO lines pass (with client addresses redacted, the box's own kept, in
    the traceback too); a library's INFO is dropped, its WARNING passes redacted."""
    logging.getLogger("appliance.web").info("request from %s to %s", PATIENT_V4, "192.168.50.10")
    logging.getLogger("aioice.ice").info("Check CandidatePair((%s, 5000))", PATIENT_V4)
    logging.getLogger("aiohttp.server").warning("bad request from %s", PATIENT_V6)
    try:
        raise ConnectionError(f"reset by {PATIENT_V4}")
    except ConnectionError:
        logging.getLogger("appliance.rtc").exception("socket failed")
    text = log.getvalue()
    assert f"request from {REDACTED} to 192.168.50.10" in text
    assert "CandidatePair" not in text
    assert f"bad request from {REDACTED}" in text
    assert f"ConnectionError: reset by {REDACTED}" in text
    assert PATIENT_V4 not in text and PATIENT_V6 not in text


async def test_a_real_webrtc_connection_logs_no_address(log: io.StringIO) -> None:
    """Issue 8, defect 2: two aiortc peers connect on 127.0.0.2 (aioice logs every candidate
    pair with its addresses at INFO); with the box's policy no address reaches the log."""
    first = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    second = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.get_running_loop().create_future()
    first.createDataChannel("probe")

    @second.on("connectionstatechange")
    def _state() -> None:
        if second.connectionState == "connected" and not connected.done():
            connected.set_result(True)

    try:
        await first.setLocalDescription(await first.createOffer())
        await second.setRemoteDescription(first.localDescription)
        await second.setLocalDescription(await second.createAnswer())
        await first.setRemoteDescription(second.localDescription)
        async with asyncio.timeout(20):
            await connected
    finally:
        await first.close()
        await second.close()
    assert "127.0.0.2" not in log.getvalue() and "127.0.0.1" not in log.getvalue()
