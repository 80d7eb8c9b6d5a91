"""The device-check echo peer (R13) against a real aiortc client: media and probes come back.

Runs inside the test namespace (``tests/netns-run``): aioice needs 127.0.0.2 (TESTING.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.rtc.echo_peer import (
    DOWNLOAD_MAX_BYTES,
    RECEIVE_BUFFER_BYTES,
    RETRY_MAX_S,
    EchoBusy,
    EchoOfferInvalid,
    EchoService,
)

from .echo_client import EchoClient, clients_fixture, eventually  # noqa: F401 - fixture


async def _call(service: EchoService, clients: list[EchoClient], waiter: str | None = None,
                **camera: float) -> EchoClient:
    client = EchoClient(**camera)  # type: ignore[arg-type]
    clients.append(client)
    offer = await client.offer()
    await client.accept(await service.accept(offer["sdp"], offer["type"], waiter=waiter))
    await client.wait_open()
    return client


def _rmem_max() -> int:
    """What the kernel grants a socket at most (``net.core.rmem_max``)."""
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


async def _offer(clients: list[EchoClient]) -> dict[str, str]:
    """An offer that is answered but never connected: a slot taken at no media cost."""
    client = EchoClient()
    clients.append(client)
    return await client.offer()


async def test_picture_sound_and_probes_come_back(clients: list[EchoClient]) -> None:
    """A 640×480 camera comes back at most 320×240 and ~10 fps; voice and probes come back."""
    service = EchoService()
    client = await _call(service, clients, width=640, height=480, fps=30)
    rtts = [await client.probe(n) for n in range(5)]
    assert all(rtt > 0 for rtt in rtts), rtts  # every probe came back (no timing bound)
    await client.wait_frames(12, seconds=5)
    assert client.audio_frames > 0
    assert set(client.frame_sizes) == {(320, 240)}
    span = client.frame_times[-1] - client.frame_times[1]
    fps = (len(client.frame_times) - 2) / span
    assert fps <= 12, fps  # 30 fps thinned to 10: the box encodes a third of the frames
    await service.close_all()


async def test_download_and_upload_probes(clients: list[EchoClient]) -> None:
    """``{"download": n}`` sends n bytes back; binary messages are counted, not echoed."""
    service = EchoService()
    client = await _call(service, clients)
    client.channel.send(json.dumps({"download": 300_000}))
    assert (await client.reply("downloaded"))["downloaded"] == 300_000
    assert client.binary_bytes == 300_000
    client.channel.send(bytes(50_000))
    client.channel.send(bytes(50_000))
    acks = [(await client.reply("received"))["received"] for _ in range(2)]
    assert acks == [50_000, 100_000]
    assert client.binary_bytes == 300_000  # nothing echoed back
    client.channel.send(json.dumps({"download": 10 * DOWNLOAD_MAX_BYTES}))
    assert (await client.reply("downloaded", seconds=10))["downloaded"] == DOWNLOAD_MAX_BYTES
    client.channel.send('{"download": "lots"}')
    assert await client.reply("download") == {"download": "lots"}  # not a request: echoed
    await service.close_all()


async def test_receive_buffers_hold_the_data_channel_window(clients: list[EchoClient]) -> None:
    """The peer's sockets can take aiortc's 1 MiB SCTP window plus media (no false loss).

    Guards the reach into aioice's sockets: an upgrade that moves them empties the list.
    """
    service = EchoService()
    await _call(service, clients)
    (check,) = service.checks
    allowed = _rmem_max()
    assert check.receive_buffers, "no UDP socket of the echo peer found"
    assert min(check.receive_buffers) >= min(RECEIVE_BUFFER_BYTES, allowed)
    await service.close_all()


async def test_peer_hangs_up_after_max_seconds(clients: list[EchoClient]) -> None:
    """A check that the page leaves open ends at ``max_seconds`` and frees its slot."""
    service = EchoService(max_seconds=2.0)
    client = await _call(service, clients)
    await client.wait_hung_up(seconds=5)  # the page never hangs up: the box did
    assert service.active == 0


async def test_page_hang_up_frees_the_slot(clients: list[EchoClient]) -> None:
    """When the page closes its connection the box ends the check at once."""
    service = EchoService(max_seconds=30.0)
    client = await _call(service, clients)
    assert service.active == 1
    await client.close()
    await eventually(lambda: not service.active, seconds=2)


async def test_cap_refuses_with_position_and_keeps_the_line(clients: list[EchoClient]) -> None:
    """Two run; the next get places in line and a retry hint; a freed slot goes to the first."""
    service = EchoService(max_concurrent=2, max_seconds=30.0)
    for waiter in ("a", "b"):
        offer = await _offer(clients)
        await service.accept(offer["sdp"], offer["type"], waiter=waiter)
    offer = await _offer(clients)
    with pytest.raises(EchoBusy) as first:
        await service.accept(offer["sdp"], offer["type"], waiter="c")
    with pytest.raises(EchoBusy) as second:
        await service.accept(offer["sdp"], offer["type"], waiter="d")
    assert (first.value.position, second.value.position) == (1, 2)
    assert 1 <= first.value.retry_after_s <= RETRY_MAX_S
    assert first.value.status == 503 and first.value.code == "device_check_busy"
    assert "belegt" in first.value.message("de")
    with pytest.raises(EchoBusy) as again:  # asking again keeps the place
        await service.accept(offer["sdp"], offer["type"], waiter="c")
    assert again.value.position == 1
    # a reloaded page replaces its own check instead of taking a second slot
    await service.accept((await _offer(clients))["sdp"], "offer", waiter="a")
    assert service.active == 2
    await service.close_all()
    service = EchoService(max_concurrent=1, max_seconds=30.0)
    await service.accept((await _offer(clients))["sdp"], "offer", waiter="a")
    for waiter in ("c", "d"):
        with pytest.raises(EchoBusy):
            await service.accept(offer["sdp"], "offer", waiter=waiter)
    await service.close_all()


async def test_freed_slot_goes_to_the_first_in_line(clients: list[EchoClient]) -> None:
    """When a check ends, the second in line is still refused; the first gets the slot."""
    service = EchoService(max_concurrent=1, max_seconds=1.0)
    await service.accept((await _offer(clients))["sdp"], "offer", waiter="a")
    offer = await _offer(clients)
    for waiter in ("c", "d"):
        with pytest.raises(EchoBusy):
            await service.accept(offer["sdp"], "offer", waiter=waiter)
    await eventually(lambda: not service.active, seconds=3)
    with pytest.raises(EchoBusy) as jumped:
        await service.accept(offer["sdp"], "offer", waiter="d")
    assert jumped.value.position == 2
    await service.accept(offer["sdp"], "offer", waiter="c")
    assert service.active == 1
    await service.close_all()


async def test_bad_offers_are_refused_and_free_their_slot() -> None:
    """Garbage, an answer instead of an offer: a clear error, no slot kept."""
    service = EchoService(max_concurrent=1)
    with pytest.raises(EchoOfferInvalid):
        await service.accept("hello", "offer")
    with pytest.raises(EchoOfferInvalid):
        await service.accept("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=banana\r\n", "offer")
    with pytest.raises(EchoOfferInvalid):
        await service.accept("v=0\r\n", "answer")
    assert service.active == 0
    assert "Browser" in EchoOfferInvalid().message("de")


async def test_close_all_hangs_up_and_refuses_new_checks(clients: list[EchoClient]) -> None:
    """Shutdown ends every running check; an offer after that is told to come back."""
    service = EchoService()
    client = await _call(service, clients)
    await service.close_all()
    assert service.active == 0
    await client.wait_hung_up(seconds=10)  # raises if the box never hangs up
    with pytest.raises(EchoBusy):
        await service.accept((await _offer(clients))["sdp"], "offer")
