"""Fixtures for browser tests: the real box as a subprocess and headless Debian Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: TESTING.md: fake camera and microphone, no sandbox (root), nothing that phones home
CHROMIUM_FLAGS = [
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--no-sandbox",
    "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-quic",
]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningBox:
    """A box started with ``sprechzimmer serve``: where its two sites listen; kill and start it."""

    staff_url: str
    public_url: str
    log: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        """What the box printed so far (for failure messages)."""
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        """Start the process (again: same settings, same files) and wait until it answers."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance", "--config", str(self.config), "serve"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.config.parent,
            )
        _wait_until_up(self.process, self)

    def kill(self) -> None:
        """SIGKILL: the process ends without any cleanup (a crash, the OOM killer)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


@contextmanager
def running_box(tmp_path: Path, extra: str = "") -> Iterator[RunningBox]:
    """The real box as a subprocess on two free loopback ports, with a fresh vault; ``extra``:
    further settings (TOML appended to the file)."""
    staff_port, public_port = _free_port(), _free_port()
    while public_port == staff_port:
        public_port = _free_port()
    public_url = f"http://127.0.0.1:{public_port}"
    config = tmp_path / "sprechzimmer.toml"
    config.write_text(
        "[web]\n"
        'staff_host = "127.0.0.1"\n'
        f"staff_port = {staff_port}\n"
        'public_host = ["127.0.0.1", "127.0.0.2"]\n'  # a second public host (uplink)
        f"public_port = {public_port}\n"
        f'public_urls = ["{public_url}"]\n'
        "[vault]\n"
        f'path = "{tmp_path / "vault"}"\n'
        # a test running past 22:00 must not find its box locked (tests/web/test_box_lock.py)
        'lock_hours = ""\n' + extra,
        "utf-8",
    )
    running = RunningBox(f"http://127.0.0.1:{staff_port}", public_url, tmp_path / "box.log",
                         config)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[RunningBox]:
    """The real box as a subprocess on two free loopback ports, with a fresh vault."""
    with running_box(tmp_path) as running:
        yield running


def _wait_until_up(process: subprocess.Popen[bytes], running: RunningBox) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the box exited with {process.returncode}:\n{running.log_text()}")
        try:
            with urllib.request.urlopen(f"{running.staff_url}/api/status", timeout=2) as answer:
                if "initialized" in json.load(answer):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail(f"the box did not answer within {START_TIMEOUT_S} s:\n{running.log_text()}")


@pytest.fixture
def chromium() -> Path:
    """The Debian chromium binary, or a skip saying how to get it."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[object]:
    """Headless Debian Chromium driven by Playwright (never ``playwright install``).

    The async API shares pytest-asyncio's loop, so the async tests that run after it keep theirs.
    """
    async_api = pytest.importorskip("playwright.async_api")
    async with async_api.async_playwright() as playwright:
        playwright.selectors.set_test_id_attribute("data-test")
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
