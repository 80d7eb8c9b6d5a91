"""The device check's verdict (R13): thresholds, their bounds, and the words the patient reads."""

from __future__ import annotations

import json

import pytest

from appliance.rtc.connection_verdict import (
    THRESHOLDS,
    ConnectionFigures,
    Thresholds,
    assess,
)

GOOD = ConnectionFigures(rtt_ms=40, loss_percent=0.2, download_kbps=16_000, upload_kbps=2_400)


def test_a_good_line_is_good() -> None:
    """Everything within the good bounds: the short sentence, no reasons."""
    verdict = assess(GOOD)
    assert (verdict.level, verdict.text, verdict.reasons) == (
        "good", "Ihre Verbindung ist gut.", ())


@pytest.mark.parametrize(("field", "good", "ok", "poor"), [
    # R13: older circulars ask for ≥ 2000 kbit/s download; video needs 300–1500 kbit/s
    ("download_kbps", 2000, 1999, 299),
    ("upload_kbps", 1500, 1499, 299),
    ("rtt_ms", 150, 151, 401),
    ("loss_percent", 2.0, 2.1, 5.1),
])
def test_bounds_are_inclusive_and_each_figure_counts(
    field: str, good: float, ok: float, poor: float
) -> None:
    """On the bound is still the better level; one step beyond is the worse one."""
    assert assess(_with(**{field: good})).level == "good"
    assert assess(_with(**{field: ok})).level == "ok"
    assert assess(_with(**{field: poor})).level == "poor"
    limit = getattr(THRESHOLDS, field)
    assert assess(_with(**{field: limit.ok})).level == "ok"


def test_ok_names_every_figure_short_of_good_with_german_numbers() -> None:
    """The ok text names each reason with its value and the recommendation, German style."""
    verdict = assess(_with(download_kbps=1_200, rtt_ms=220))
    assert verdict.level == "ok"
    assert verdict.reasons == ("download_kbps", "rtt_ms")
    assert verdict.text == (
        "Ihre Verbindung reicht für die Videosprechstunde. Das Bild kann aber ruckeln oder "
        "unscharf sein, weil Ihr Anschluss nur 1.200 kbit/s empfängt (empfohlen: mindestens "
        "2.000 kbit/s) und die Verzögerung 220 ms beträgt (empfohlen: höchstens 150 ms).")


def test_poor_names_only_what_makes_it_poor_and_gives_advice() -> None:
    """Too slow: the reasons are the poor figures, against what 'usable' needs."""
    verdict = assess(_with(upload_kbps=250, loss_percent=7.5, rtt_ms=200))
    assert verdict.level == "poor"
    assert verdict.reasons == ("upload_kbps", "loss_percent")
    assert verdict.text.startswith("Ihre Verbindung ist zu langsam für die Videosprechstunde, "
                                   "weil Ihr Anschluss nur 250 kbit/s sendet (empfohlen: "
                                   "mindestens 300 kbit/s) und 7,5 % der Daten")
    assert "höchstens 5 %" in verdict.text and "WLAN-Router" in verdict.text


def test_relay_over_tcp_caps_at_ok_but_udp_relay_does_not() -> None:
    """TURN over UDP is how the box is reached anyway; over TCP/TLS the call stalls on loss."""
    assert assess(_with(relay_protocol="udp")).level == "good"
    for protocol in ("tcp", "tls"):
        verdict = assess(_with(relay_protocol=protocol))
        assert (verdict.level, verdict.reasons) == ("ok", ("tcp_relay",))
        assert "Umweg" in verdict.text
    assert assess(_with(relay_protocol="tcp", rtt_ms=900)).level == "poor"


def test_missing_figures_do_not_count_and_none_at_all_is_no_connection() -> None:
    """A figure the page could not measure is left out; with nothing measured, no connection."""
    assert assess(ConnectionFigures(rtt_ms=30)).level == "good"
    verdict = assess(ConnectionFigures())
    assert verdict.level == "poor" and verdict.reasons == ("no_connection",)
    assert "keine Verbindung" in verdict.text


def test_english_text_and_numbers() -> None:
    """The same verdict in English, with English number formatting."""
    verdict = assess(_with(download_kbps=1_250.5), lang="en")
    assert verdict.text == (
        "Your connection is good enough for the video consultation, but the picture may "
        "stutter or blur because your line receives only 1,250 kbit/s (recommended: at least "
        "2,000 kbit/s).")


def test_thresholds_for_the_page_are_the_ones_assess_uses() -> None:
    """The JSON the page gets names each bound and its direction, and survives a round trip."""
    data = json.loads(json.dumps(THRESHOLDS.as_json()))
    assert data["download_kbps"] == {"good": 2000, "ok": 300, "better": "higher"}
    assert data["rtt_ms"] == {"good": 150, "ok": 400, "better": "lower"}
    assert data["loss_percent"]["ok"] == 5
    assert data["tcp_relay_level"] == "ok" and data["tcp_relays"] == ["tcp", "tls"]
    strict = Thresholds(tcp_relay_level="poor")
    assert assess(_with(relay_protocol="tls"), thresholds=strict).level == "poor"


def _with(**changes: float | str) -> ConnectionFigures:
    values = {"rtt_ms": GOOD.rtt_ms, "loss_percent": GOOD.loss_percent,
              "download_kbps": GOOD.download_kbps, "upload_kbps": GOOD.upload_kbps,
              "relay_protocol": None, **changes}
    return ConnectionFigures(**values)  # type: ignore[arg-type]
