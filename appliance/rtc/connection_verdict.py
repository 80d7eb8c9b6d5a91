"""Connection quality in plain words for the device check (R13): measured figures in, a verdict out.

The page measures the figures against the box's echo peer (``rtc/echo_peer.py``) and shows the
verdict; the thresholds reach the page as JSON with the device-check answer
(:meth:`Thresholds.as_json`), so this module stays the one source of truth for them, and the
texts live in the message catalogs (``device_check.*``), which the page loads as well.

Thresholds, for a 1:1 consultation (each extra participant in the mesh adds one stream each way):

- **Download** good from 2000 kbit/s: the figure older KV circulars name for the practice
  equipment (R13). Usable from 300 kbit/s: a WebRTC video stream needs about 300 kbit/s for a
  small, soft picture and about 1500 kbit/s for a sharp one; below 300 only the voice gets through.
- **Upload** good from 1500 kbit/s, usable from 300 kbit/s: the patient sends one such stream;
  the circulars name no upload figure, so the stream's own range decides.
- **Round-trip time** good up to 150 ms, usable up to 400 ms. The doctor sits in the box's LAN, so
  the RTT to the box is about the RTT of the call; one way is half of it plus ~80 ms of jitter
  buffer and codec. ITU-T G.114 calls ≤ 150 ms one way unnoticeable and ≤ 400 ms acceptable:
  RTT 150 → ~155 ms, RTT 400 → ~280 ms one way, leaving headroom for jitter.
- **Loss** good up to 2 %, usable up to 5 %. Below 2 % the browsers' congestion control (GCC)
  still raises the quality; above it they hold or lower it. Opus (FEC, concealment) keeps speech
  clear to about 5 %; beyond that the voice breaks up and the picture freezes while it waits for
  retransmissions and key frames.
- **Relay**: TURN over UDP costs nothing worth telling: the echo peer is reached through the box's
  relay anyway, as the box exposes no media ports of its own. TURN over TCP or TLS means the
  patient's network blocks UDP; the call then stalls on every lost packet (head-of-line blocking),
  so the verdict is at most "ok".

A figure that was not measured (``None``) does not count. The level is the worst of all
figures; the text names every figure that kept it from "good" (or, when poor, those that made it
poor). Bounds are inclusive: 2000 kbit/s is good, 150 ms is good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from appliance.i18n import translate

Level = Literal["good", "ok", "poor"]
_RANK: Final[dict[str, int]] = {"good": 0, "ok": 1, "poor": 2}
#: relay protocols (getStats ``local-candidate.relayProtocol``) that mean "UDP is blocked"
TCP_RELAYS: Final = frozenset({"tcp", "tls"})


@dataclass(frozen=True, kw_only=True)
class Limit:
    """The bounds of one figure: ``good`` and ``ok``; ``higher`` says which way is better."""

    good: float
    ok: float
    higher: bool

    def level(self, value: float) -> Level:
        """The level of ``value`` (bounds inclusive)."""
        sign = 1 if self.higher else -1
        if sign * value >= sign * self.good:
            return "good"
        if sign * value >= sign * self.ok:
            return "ok"
        return "poor"


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The bounds of every figure (see the module docstring for why these)."""

    download_kbps: Limit = Limit(good=2000, ok=300, higher=True)
    upload_kbps: Limit = Limit(good=1500, ok=300, higher=True)
    rtt_ms: Limit = Limit(good=150, ok=400, higher=False)
    loss_percent: Limit = Limit(good=2, ok=5, higher=False)
    #: the best level a call relayed over TCP/TLS can get
    tcp_relay_level: Level = "ok"

    def as_json(self) -> dict[str, Any]:
        """The thresholds for the page, e.g. ``{"rtt_ms": {"good": 150, "ok": 400, …}}``."""
        figures = {
            name: {"good": limit.good, "ok": limit.ok,
                   "better": "higher" if limit.higher else "lower"}
            for name, limit in (("download_kbps", self.download_kbps),
                                ("upload_kbps", self.upload_kbps), ("rtt_ms", self.rtt_ms),
                                ("loss_percent", self.loss_percent))
        }
        return {**figures, "tcp_relay_level": self.tcp_relay_level,
                "tcp_relays": sorted(TCP_RELAYS)}


THRESHOLDS: Final = Thresholds()


@dataclass(frozen=True, kw_only=True)
class ConnectionFigures:
    """What the page measured; ``None`` = not measured.

    ``relay_protocol`` is ``None`` for a direct path, else the protocol to the TURN server
    (``"udp"``, ``"tcp"`` or ``"tls"``).
    """

    rtt_ms: float | None = None
    loss_percent: float | None = None
    download_kbps: float | None = None
    upload_kbps: float | None = None
    relay_protocol: str | None = None


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The result in plain words; ``reasons`` names the figures behind a level below good."""

    level: Level
    text: str
    reasons: tuple[str, ...] = ()


def assess(
    figures: ConnectionFigures, *, lang: str = "de", thresholds: Thresholds = THRESHOLDS
) -> Verdict:
    """The verdict on ``figures``: the worst level of any figure, with the reasons in words."""
    measured = {
        name: value for name, value in (
            ("download_kbps", figures.download_kbps), ("upload_kbps", figures.upload_kbps),
            ("rtt_ms", figures.rtt_ms), ("loss_percent", figures.loss_percent),
        ) if value is not None
    }
    if not measured:
        return Verdict(level="poor", text=translate("device_check.verdict.none", lang),
                       reasons=("no_connection",))
    levels: dict[str, Level] = {
        name: getattr(thresholds, name).level(value) for name, value in measured.items()
    }
    if figures.relay_protocol in TCP_RELAYS:
        levels["tcp_relay"] = thresholds.tcp_relay_level
    level = max(levels.values(), key=_RANK.__getitem__)
    if level == "good":
        return Verdict(level="good", text=translate("device_check.verdict.good", lang))
    reasons = tuple(name for name, value in levels.items() if value == level) if level == "poor" \
        else tuple(name for name, value in levels.items() if value != "good")
    phrases = [_reason(name, measured, thresholds, level, lang) for name in reasons]
    text = translate(f"device_check.verdict.{level}", lang, reasons=_join(phrases, lang))
    return Verdict(level=level, text=text, reasons=reasons)


def _reason(name: str, measured: dict[str, float], thresholds: Thresholds, level: Level,
            lang: str) -> str:
    if name == "tcp_relay":
        return translate("device_check.reason.tcp_relay", lang)
    limit: Limit = getattr(thresholds, name)
    # a poor figure is told what "usable" needs, an ok figure what "good" needs
    needed = limit.ok if level == "poor" else limit.good
    decimals = 1 if name == "loss_percent" else 0
    return translate(f"device_check.reason.{name}", lang,
                     value=_number(measured[name], lang, decimals),
                     needed=_number(needed, lang, decimals))


def _number(value: float, lang: str, decimals: int) -> str:
    """``value``: ``1.500`` and ``2,5`` in German, ``1,500`` and ``2.5`` in English."""
    if float(value).is_integer():
        decimals = 0
    text = f"{value:,.{decimals}f}"
    if lang == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def _join(phrases: list[str], lang: str) -> str:
    """``a, b und c``."""
    if len(phrases) < 2:
        return "".join(phrases)
    return f"{', '.join(phrases[:-1])} {translate('device_check.and', lang)} {phrases[-1]}"
