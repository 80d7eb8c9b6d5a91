"""The uplink monitor of the running box in UPLINKS.md's topology (issue 12): two uplink routers,
each masquerading the box's LAN address for it, a STUN server on the internet behind each line,
the box probing both through their own routers by source routing. A router that drops UDP takes
its line down within the stated time, the other line stays up, and the line comes back.

Only the lab's addresses exist here, inside namespaces the test creates and always removes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from appliance.uplinks import (
    DOWN_INTERVAL_S,
    HISTORY_FILE,
    INTERVAL_S,
    TIMEOUT_S,
    UP_AFTER,
    Fault,
    LineState,
    LineStatus,
    down_within_s,
    read_status,
)
from tests.rtc.turn_fixtures import (
    BOX,
    BOX_B,
    INTERNET_HOST,
    REPO,
    WAN_PUBLIC,
    WAN_PUBLIC_B,
    practice_lan,
    run_in,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                       reason="network namespaces and nft need root"),
]

#: line B's STUN server on the internet (the routers have no default route: one per WAN)
INTERNET_HOST_B = "192.0.2.99"
#: what router A does to the line: every UDP packet through it is lost
DROP_UDP = """
table inet sz_drop_udp {
\tchain forward {
\t\ttype filter hook forward priority raw; policy accept;
\t\tmeta l4proto udp counter drop
\t}
}
"""


def _config(directory: Path) -> Path:
    config = directory / "sprechzimmer.toml"
    config.write_text(
        f'[web]\nstaff_host = "{BOX}"\npublic_host = "{BOX}"\n'
        f'public_urls = ["https://{WAN_PUBLIC}:8081"]\n'
        f'[vault]\npath = "{directory / "vault"}"\nlock_hours = ""\n'
        '[tls]\nhttp_port = 0\n[discovery]\nenabled = false\n'
        f'[[turn.uplinks]]\nname = "DSL"\npublic_host = "a.praxis-beispiel.test"\n'
        f'public_address = "{WAN_PUBLIC}"\nlan_address = "{BOX}"\n'
        f'stun_target = "{INTERNET_HOST}"\n'
        f'[[turn.uplinks]]\nname = "LTE"\npublic_host = "b.praxis-beispiel.test"\n'
        f'public_address = "{WAN_PUBLIC_B}"\nlan_address = "{BOX_B}"\n'
        f'stun_target = "{INTERNET_HOST_B}:3478"\n', "utf-8")
    return config


@contextmanager
def _running(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _lines(path: Path, want: list[LineState], within_s: float, log: Path
           ) -> tuple[LineStatus, ...]:
    """Wait until the box's history file shows ``want``; its lines."""
    deadline = time.monotonic() + within_s
    found: tuple[LineStatus, ...] = ()
    while time.monotonic() < deadline:
        written = read_status(path)
        found = written[1] if written else ()
        if [line.state for line in found] == want:
            return found
        time.sleep(0.05)
    raise AssertionError(f"lines {[line.state for line in found]}, not {want} within "
                         f"{within_s:.1f} s:\n{log.read_text('utf-8', 'replace')[-3000:]}")


def test_a_router_dropping_udp_takes_its_line_down(tmp_path: Path) -> None:
    """Issue 12: with the default timing, the box sees both lines up (each probe answered with
    its own line's public address: the source routing works); router A dropping every UDP
    packet takes line A down within ``down_within_s()`` while line B stays up; A comes back."""
    with ExitStack() as stack:
        try:
            netns = stack.enter_context(practice_lan(lines=2))
        except RuntimeError as exc:
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        run_in(netns["inet"], "ip", "addr", "add", f"{INTERNET_HOST_B}/24", "dev", "eth1")
        config = _config(tmp_path)
        history = tmp_path / "run" / HISTORY_FILE
        box_log = tmp_path / "box.log"
        stun = ["ip", "netns", "exec", netns["inet"], sys.executable, "-m",
                "tests.stun_responder", INTERNET_HOST, INTERNET_HOST_B]
        serve = ["ip", "netns", "exec", netns["box"], sys.executable, "-m", "appliance",
                 "--config", str(config), "serve"]
        with _running(stun, tmp_path / "stun.log"), _running(serve, box_log):
            lines = _lines(history, [LineState.UP, LineState.UP], 30, box_log)
            assert [line.fault for line in lines] == [Fault.NONE, Fault.NONE]
            run_in(netns["router"], "nft", "-f", "-", stdin=DROP_UDP)
            cut = time.monotonic()
            bound = down_within_s(INTERVAL_S, TIMEOUT_S) + 1.0  # + writing and reading the file
            lines = _lines(history, [LineState.DOWN, LineState.UP], bound, box_log)
            took = time.monotonic() - cut
            assert lines[0].fault is Fault.NO_ANSWER and lines[0].history[-1].answered < \
                lines[0].history[-1].sent
            run_in(netns["router"], "nft", "delete", "table", "inet", "sz_drop_udp")
            back = time.monotonic()
            # back after UP_AFTER answers, the outage's misses forgotten
            _lines(history, [LineState.UP, LineState.UP],
                   DOWN_INTERVAL_S * (UP_AFTER + 1) + TIMEOUT_S + 1.0, box_log)
            print(f"\n[uplinks, namespaces] line A down {took:.2f} s after its router dropped "
                  f"UDP (stated {down_within_s():.2f} s); back {time.monotonic() - back:.2f} s "
                  "after")
