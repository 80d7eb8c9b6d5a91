"""Discovery on a LAN of network namespaces (issue 11): the box announces itself by mDNS,
``sprechzimmer discover`` finds it from another host over veth, two boxes take two names (and
their certificates follow), nothing is sent on an uplink's interface, and a stopped box says
goodbye.

Topology (made here, removed afterwards): a bridge ``lan`` in namespace ``sw`` with the hosts
``box``, ``box2`` and ``pc`` (192.0.2.0/24); ``box`` also has an uplink interface ``wan0`` to the
namespace ``isp`` (198.51.100.0/24), which listens for any multicast DNS.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from appliance.tls.authority import fingerprint
from tests.rtc.turn_fixtures import run_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

BOX, BOX2, PC = "192.0.2.10", "192.0.2.11", "192.0.2.20"
UPLINK, ISP = "198.51.100.10", "198.51.100.1"
STAFF_PORT = 8443
_RUNS = itertools.count()


@contextmanager
def mdns_lan() -> Iterator[dict[str, str]]:
    """The namespaces, by host name."""
    run = next(_RUNS)
    names = {host: f"szmdns{os.getpid()}-{run}-{host}"
             for host in ("sw", "box", "box2", "pc", "isp")}
    created: list[str] = []
    try:
        for netns in names.values():
            run_in(None, "ip", "netns", "add", netns)
            created.append(netns)
            run_in(None, "ip", "-n", netns, "link", "set", "lo", "up")
        run_in(None, "ip", "-n", names["sw"], "link", "add", "lan", "type", "bridge")
        run_in(None, "ip", "-n", names["sw"], "link", "set", "lan", "up")
        for host, address in (("box", BOX), ("box2", BOX2), ("pc", PC)):
            run_in(None, "ip", "link", "add", f"p-{host}", "netns", names["sw"], "type", "veth",
                   "peer", "name", "eth0", "netns", names[host])
            run_in(None, "ip", "-n", names["sw"], "link", "set", f"p-{host}", "master", "lan",
                   "up")
            run_in(None, "ip", "-n", names[host], "addr", "add", f"{address}/24", "dev", "eth0")
            run_in(None, "ip", "-n", names[host], "link", "set", "eth0", "up")
            run_in(None, "ip", "-n", names[host], "route", "add", "224.0.0.0/4", "dev", "eth0")
        run_in(None, "ip", "link", "add", "wan0", "netns", names["box"], "type", "veth",
               "peer", "name", "eth0", "netns", names["isp"])
        run_in(None, "ip", "-n", names["box"], "addr", "add", f"{UPLINK}/24", "dev", "wan0")
        run_in(None, "ip", "-n", names["isp"], "addr", "add", f"{ISP}/24", "dev", "eth0")
        for host, link in (("box", "wan0"), ("isp", "eth0")):
            run_in(None, "ip", "-n", names[host], "link", "set", link, "up")
        run_in(None, "ip", "-n", names["isp"], "route", "add", "224.0.0.0/4", "dev", "eth0")
        yield names
    finally:
        for netns in reversed(created):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def _config(directory: Path, staff_host: str, uplink_interface: str = "") -> Path:
    """The box's settings; with ``uplink_interface`` a line that ends on the box itself."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sprechzimmer.toml"
    config.write_text(
        f'[web]\nstaff_host = "{staff_host}"\nstaff_port = {STAFF_PORT}\n'
        'public_host = "127.0.0.1"\npublic_port = 8081\n'
        'public_urls = ["http://127.0.0.1:8081"]\n'
        f'[vault]\npath = "{directory / "vault"}"\nlock_hours = ""\n'
        '[tls]\nhttp_port = 0\n'
        + (f'[[turn.uplinks]]\npublic_host = "{UPLINK}"\npublic_address = "{UPLINK}"\n'
           f'lan_address = "{UPLINK}"\ninterface = "{uplink_interface}"\n'
           if uplink_interface else ""))
    return config


@contextmanager
def serving(netns: str, config: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = config.parent / "box.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "appliance", "--config",
             str(config), "serve"], stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
    try:
        deadline = time.monotonic() + 30
        while "announced as" not in log.read_text("utf-8", "replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text("utf-8", "replace"))
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _discover(netns: str, timeout: float = 3.0) -> list[str]:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "appliance", "discover",
         "--timeout", str(timeout)], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


def _san_names(config: Path) -> set[str]:
    pem = (config.parent / "tls" / "lan.pem").read_bytes()
    leaf = x509.load_pem_x509_certificate(pem)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName))


def test_discover_finds_the_box_and_two_boxes_take_two_names(tmp_path: Path) -> None:
    """Issue 11: ``sprechzimmer discover`` on the PC lists the box with its https:// URL, its
    version and its CA fingerprint; a second box on the same LAN takes ``sprechzimmer-2.local``
    and its certificate names that."""
    with mdns_lan() as ns:
        first = _config(tmp_path / "box", BOX)
        second = _config(tmp_path / "box2", BOX2)
        with serving(ns["box"], first):
            lines = _discover(ns["pc"])
            assert len(lines) == 1, lines
            assert f"https://sprechzimmer.local:{STAFF_PORT}/" in lines[0] and BOX in lines[0]
            ca = x509.load_pem_x509_certificate((tmp_path / "box" / "tls" / "ca.pem").read_bytes())
            assert fingerprint(ca) in lines[0]
            with serving(ns["box2"], second):
                lines = _discover(ns["pc"])
                assert len(lines) == 2, lines
                assert any(f"https://sprechzimmer-2.local:{STAFF_PORT}/" in line
                           and BOX2 in line for line in lines), lines
                assert _san_names(second) == {"sprechzimmer-2.local"}
                assert _san_names(first) == {"sprechzimmer.local"}


def _listen_for_mdns(netns: str, seconds: float) -> subprocess.Popen[str]:
    """A process in ``netns`` that counts the mDNS packets it hears for ``seconds``."""
    script = (
        "import socket, struct, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('', 5353))\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,\n"
        "             struct.pack('4s4s', socket.inet_aton('224.0.0.251'),\n"
        "                         socket.inet_aton('0.0.0.0')))\n"
        f"s.settimeout(0.2); end = time.monotonic() + {seconds}; n = 0\n"
        "while time.monotonic() < end:\n"
        "    try:\n        s.recv(9000); n += 1\n"
        "    except socket.timeout:\n        pass\n"
        "print(n)\n")
    return subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)


def test_nothing_on_the_uplink_and_a_goodbye(tmp_path: Path) -> None:
    """Issue 11: a box listening on every address (``0.0.0.0``) announces on its LAN interface
    only: the internet provider's side of the uplink hears no mDNS packet, the PC does; a
    stopped box says goodbye (the PC's browser drops it at once, not after the records'
    lifetime)."""
    with mdns_lan() as ns:
        config = _config(tmp_path / "box", "0.0.0.0", uplink_interface="wan0")
        on_uplink = _listen_for_mdns(ns["isp"], 12)
        on_lan = _listen_for_mdns(ns["pc"], 12)
        with serving(ns["box"], config):
            assert len(_discover(ns["pc"])) == 1
            watcher = subprocess.Popen(
                ["ip", "netns", "exec", ns["pc"], sys.executable, "-c", _WATCH_FOR_GOODBYE],
                stdout=subprocess.PIPE, text=True)
            assert watcher.stdout is not None and watcher.stdout.readline().strip() == "added"
        assert watcher.stdout.readline().strip() == "removed"
        watcher.wait(timeout=10)
        assert int(on_uplink.communicate(timeout=30)[0]) == 0
        assert int(on_lan.communicate(timeout=30)[0]) > 0
        # the uplink's address is neither in the certificate nor within the CA's reach
        pem = (config.parent / "tls" / "lan.pem").read_bytes()
        certificate, ca = x509.load_pem_x509_certificates(pem)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == [BOX]
        permitted = ca.extensions.get_extension_for_class(x509.NameConstraints).value
        networks = [str(tree.value) for tree in permitted.permitted_subtrees
                    if isinstance(tree, x509.IPAddress)]
        assert networks == ["192.0.2.0/24"]


_WATCH_FOR_GOODBYE = """
import threading
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf
zc = Zeroconf()
gone = threading.Event()
def changed(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Added:
        print("added", flush=True)
    elif state_change is ServiceStateChange.Removed:
        gone.set()
ServiceBrowser(zc, "_https._tcp.local.", handlers=[changed])
print("removed" if gone.wait(20) else "no goodbye", flush=True)
zc.close()
"""
