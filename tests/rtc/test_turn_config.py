"""coturn's configuration and the box firewall rule as written from the settings (design C)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.config import TurnSettings, TurnUplink
from appliance.rtc.turn import TurnRelay, coturn_config, nft_rules, relay_instances

SECRET = "praxis-test-secret-0123456789abcdef"
DSL = TurnUplink(public_host="videosprechstunde.praxis-beispiel.de",
                 public_address="203.0.113.1", lan_address="192.168.50.10")
LTE = TurnUplink(public_host="lte.praxis-beispiel.de", public_address="192.0.2.1",
                 lan_address="192.168.50.11")
def _settings(**changes: object) -> TurnSettings:
    values: dict[str, object] = {"enabled": True, "secret": SECRET, "realm": "praxis-beispiel.de",
                                 "lan_address": "192.168.50.10", "uplinks": (DSL,)} | changes
    return TurnSettings(**values)  # type: ignore[arg-type]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _values(text: str, key: str) -> list[str]:
    return [line.partition("=")[2] for line in _lines(text) if line.partition("=")[0] == key]


def test_every_peer_is_denied_but_the_box() -> None:
    """R4/R9: the relay reaches nothing but the box's own relay addresses: all of IPv4 and IPv6
    denied, the box's LAN and public relay addresses allowed (design C needs no other peer)."""
    text = coturn_config(_settings(uplinks=(DSL, LTE)), "192.168.50.10")
    assert _values(text, "denied-peer-ip") == [
        "0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    assert _values(text, "allowed-peer-ip") == ["192.168.50.10", "192.168.50.11", "203.0.113.1",
                                                "192.0.2.1"]


def test_internet_peers_only_when_allowed() -> None:
    """``allow_internet_peers`` (a doctor outside the practice) opens public IPv4 only: every
    private and special range of TURN.md stays denied, and all of IPv6."""
    text = coturn_config(_settings(allow_internet_peers=True))
    denied = _values(text, "denied-peer-ip")
    assert "0.0.0.0-255.255.255.255" not in denied
    assert {"10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255",
            "192.168.0.0-192.168.255.255", "127.0.0.0-127.255.255.255",
            "169.254.0.0-169.254.255.255", "100.64.0.0-100.127.255.255",
            "224.0.0.0-239.255.255.255", "240.0.0.0-255.255.255.255",
            "::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} <= set(denied)
    assert not any(d.startswith(("::-", "0.0.0.0-255")) for d in denied)  # coturn: "any"


def test_design_c_single_uplink() -> None:
    """R9: one uplink: coturn on the LAN address, PUBLIC/LAN mapping, only the box as peer."""
    text = coturn_config(_settings())
    lines = _lines(text)
    for flag in ("use-auth-secret", "no-tcp-relay", "no-multicast-peers", "fingerprint",
                 "no-cli", "no-tls", "no-dtls", "no-rfc5780", "no-software-attribute"):
        assert flag in lines
    assert _values(text, "static-auth-secret") == [SECRET]
    assert _values(text, "realm") == ["praxis-beispiel.de"]
    assert _values(text, "listening-ip") == _values(text, "relay-ip") == ["192.168.50.10"]
    assert _values(text, "allocation-default-address-family") == ["ipv4"]
    assert _values(text, "external-ip") == ["203.0.113.1/192.168.50.10"]
    assert _values(text, "allowed-peer-ip") == ["192.168.50.10", "203.0.113.1"]
    assert _values(text, "listening-port") == ["3478"]
    assert (_values(text, "min-port"), _values(text, "max-port")) == (["61000"], ["65535"])
    assert (_values(text, "user-quota"), _values(text, "total-quota")) == (["16"], ["200"])
    assert "allow-loopback-peers" not in lines and "server-relay" not in lines
    assert not _values(text, "tls-listening-port")


def test_two_uplinks_one_instance_each() -> None:
    """Two lines: one coturn per LAN address, each listening and relaying on its own address
    only (never the box's IPv6), every line's PUBLIC/LAN mapping in each (UPLINKS.md)."""
    settings = _settings(uplinks=(DSL, LTE))
    assert relay_instances(settings) == ("192.168.50.10", "192.168.50.11")
    for address in relay_instances(settings):
        text = coturn_config(settings, address)
        assert _values(text, "listening-ip") == _values(text, "relay-ip") == [address]
        assert _values(text, "external-ip") == ["203.0.113.1/192.168.50.10",
                                                "192.0.2.1/192.168.50.11"]
    with pytest.raises(ValueError, match="192.168.50.10, 192.168.50.11"):
        coturn_config(settings)


def test_tls_on_443_only_with_certificate(tmp_path: Path) -> None:
    """TURN over TLS listens on tls_port with cert and key when both files exist."""
    cert, key = tmp_path / "turn.crt", tmp_path / "turn.key"
    cert.write_text("x")
    key.write_text("x")
    text = coturn_config(_settings(certificate=cert, private_key=key))
    assert _values(text, "tls-listening-port") == ["443"]
    assert (_values(text, "cert"), _values(text, "pkey")) == ([str(cert)], [str(key)])
    assert "no-tls" not in _lines(text) and "no-tlsv1" in _lines(text)


def test_no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    """R9: writing the configuration and issuing credentials logs neither secret nor password."""
    caplog.set_level(logging.DEBUG)
    settings = _settings()
    coturn_config(settings)
    nft_rules(settings)
    server = TurnRelay(settings).ice_servers_for("patient", ("a1", "p-1"))[0]
    assert SECRET not in caplog.text and server["credential"] not in caplog.text
    assert SECRET not in nft_rules(settings)


def test_nft_rule_drops_relayed_packets_to_box_services() -> None:
    """R9: input hook, lo, from a relay port to a port outside the relay range, whatever the
    address family (table inet, no address match: IPv6 is covered too)."""
    rules = nft_rules(_settings(uplinks=(DSL, LTE)))
    assert "table inet sprechzimmer_turn {" in rules
    assert "type filter hook input priority filter; policy accept;" in rules
    assert ('iifname "lo" meta l4proto { udp, tcp } th sport 61000-65535 '
            "th dport != 61000-65535 counter drop") in rules
    assert "hook output" not in rules and "saddr" not in rules


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (tests/system-deps)")
def test_nft_rules_pass_nft_syntax_check(tmp_path: Path) -> None:
    """`nft -c -f` accepts the rule set (checked only, never loaded here)."""
    path = tmp_path / "turn.nft"
    path.write_text(nft_rules(_settings(uplinks=(DSL, LTE))))
    result = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr


def test_doctor_relay_only_is_for_the_doctor() -> None:
    """``doctor_relay_only`` makes only the doctor's page relay-only; patients keep "all"."""
    assert TurnRelay(_settings()).ice_policy_for("doctor") == "all"
    relay = TurnRelay(_settings(doctor_relay_only=True))
    assert [relay.ice_policy_for(role) for role in ("doctor", "patient", "box")] == [
        "relay", "all", "all"]
