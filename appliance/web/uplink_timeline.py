"""The practice's internet lines over the last 24 hours, drawn on the box as one SVG image.

One band per line, coloured by the worst state of each minute (up, degraded, down, and "no data
or no answer yet"), the mean round trip of each minute as a thin line over the band (scaled to
:data:`RTT_MAX_MS`), hour ticks in the practice's time zone and a legend. The image is built
from numbers and escaped texts only: no script, no style sheet, no reference to anything outside
itself, so it shows as an ``<img>`` under the staff site's CSP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from html import escape
from typing import Final
from zoneinfo import ZoneInfo

from appliance.i18n import translate
from appliance.uplinks import LineState, LineStatus, Minute

#: the window shown, and the round trip at the top of a band
WINDOW_S: Final = 24 * 3600
RTT_MAX_MS: Final = 500.0
#: colours per state; unknown and minutes without data share one (nothing is known of them)
FILLS: Final = {LineState.UP: "#2e7d32", LineState.DEGRADED: "#e6a100",
                LineState.DOWN: "#c62828", LineState.UNKNOWN: "#cfd6dc"}
RTT_STROKE: Final = "#0d2a4a"

WIDTH: Final = 960
PLOT_X: Final = 170
PLOT_W: Final = 770
TOP: Final = 40
BAND_H: Final = 34
BAND_STEP: Final = 50
FONT: Final = 'font-family="sans-serif"'


def render_timeline(lines: Sequence[LineStatus], *, now: float, tz: ZoneInfo,
                    lang: str = "de") -> str:
    """The SVG document of ``lines``' last 24 hours up to ``now`` (Unix time)."""
    start = now - WINDOW_S
    title = translate("ui.uplinks.timeline.title", lang)
    axis_y = TOP + max(len(lines), 1) * BAND_STEP - (BAND_STEP - BAND_H) + 4
    height = axis_y + 48
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="timeline-title">',
           f'<title id="timeline-title">{_text(title)}</title>',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="10" y="22" {FONT} font-size="15" font-weight="bold" fill="#1a1a1a">'
           f'{_text(title)}</text>']
    if not lines:
        out.append(f'<text x="10" y="{TOP + 22}" {FONT} font-size="13" fill="#1a1a1a">'
                   f'{_text(translate("ui.uplinks.none_configured_short", lang))}</text>')
    for index, line in enumerate(lines):
        out.append(f'<g class="line" id="line-{index + 1}">')
        out.extend(_band(line, TOP + index * BAND_STEP, start, now, tz, lang))
        out.append("</g>")
    out.extend(_hour_ticks(start, now, tz, top=TOP, axis_y=axis_y, lang=lang))
    out.extend(_legend(axis_y + 36, lang))
    out.append("</svg>")
    return "\n".join(out)


def _text(value: str) -> str:
    """``value`` safe as element content and as an attribute value."""
    return escape(value, quote=True)


def _x(moment: float, start: float) -> float:
    return PLOT_X + (moment - start) / WINDOW_S * PLOT_W


def _state_word(state: LineState, lang: str) -> str:
    return translate(f"ui.uplinks.state.{state.value}", lang)


def _band(line: LineStatus, y: int, start: float, now: float, tz: ZoneInfo,
          lang: str) -> Iterator[str]:
    """One line: its name and public host on the left, its minutes as runs of one colour, the
    round trip over them."""
    yield f"<title>{_text(line.name)} ({_text(line.public_host)})</title>"
    yield (f'<text x="10" y="{y + 15}" {FONT} font-size="13" font-weight="bold" '
           f'fill="#1a1a1a">{_text(_shorten(line.name, 22))}</text>')
    yield (f'<text x="10" y="{y + 30}" {FONT} font-size="11" fill="#4a4a4a">'
           f'{_text(_shorten(line.public_host, 26))}</text>')
    yield (f'<rect x="{PLOT_X}" y="{y}" width="{PLOT_W}" height="{BAND_H}" '
           f'fill="{FILLS[LineState.UNKNOWN]}"/>')
    minutes = {m.start: m for m in line.history if start - 60 < m.start <= now}
    for run_start, run_end, state in _runs(minutes, start, now):
        x0, x1 = _x(max(run_start, start), start), _x(min(run_end, now), start)
        if state is LineState.UNKNOWN:
            continue  # the band's ground already shows it
        span = (f"{_clock(run_start, tz)}–{_clock(min(run_end, now), tz)}: "
                f"{_state_word(state, lang)}")
        yield (f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.6):.1f}" height="{BAND_H}" '
               f'fill="{FILLS[state]}"><title>{_text(span)}</title></rect>')
    for points in _rtt_segments(minutes, start, now, y):
        yield (f'<polyline points="{points}" fill="none" stroke="{RTT_STROKE}" '
               f'stroke-width="1.2" stroke-linejoin="round"/>')


def _runs(minutes: dict[int, Minute], start: float, now: float,
          ) -> Iterator[tuple[float, float, LineState]]:
    """(from, to, state) of consecutive minutes in one state; no data counts as unknown."""
    first = int(start) // 60 * 60
    run_start, run_state = float(first), None
    for minute_start in range(first, int(now) + 1, 60):
        found = minutes.get(minute_start)
        state = found.worst if found else LineState.UNKNOWN
        if state is not run_state:
            if run_state is not None:
                yield run_start, float(minute_start), run_state
            run_start, run_state = float(minute_start), state
    if run_state is not None:
        yield run_start, now, run_state


def _rtt_segments(minutes: dict[int, Minute], start: float, now: float,
                  y: int) -> Iterator[str]:
    """The round trip of each minute with answers, as polylines broken where none came."""
    segment: list[tuple[float, float]] = []
    for minute_start in sorted(minutes):
        rtt = minutes[minute_start].rtt_ms
        if segment and (rtt is None or minute_start - 60 not in minutes):
            yield _points(segment)
            segment = []
        if rtt is None:
            continue
        x = _x(min(max(minute_start + 30, start), now), start)
        level = min(rtt, RTT_MAX_MS) / RTT_MAX_MS
        segment.append((x, round(y + BAND_H - 2 - level * (BAND_H - 4), 1)))
    if segment:
        yield _points(segment)


def _points(segment: list[tuple[float, float]]) -> str:
    """A polyline's points without those inside a level stretch; a lone minute gets a short
    stroke of its own to be seen."""
    if len(segment) == 1:
        (x, y), = segment
        segment = [(x - 0.6, y), (x + 0.6, y)]
    kept = [point for index, point in enumerate(segment)
            if index in (0, len(segment) - 1)
            or not segment[index - 1][1] == point[1] == segment[index + 1][1]]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in kept)


def _clock(moment: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(moment, tz).strftime("%H:%M")


def _hour_ticks(start: float, now: float, tz: ZoneInfo, *, top: int, axis_y: int,
                lang: str) -> Iterator[str]:
    """A tick at every full hour of the practice's clock, labelled every third hour."""
    yield (f'<line x1="{PLOT_X}" y1="{axis_y}" x2="{PLOT_X + PLOT_W}" y2="{axis_y}" '
           f'stroke="#6b6b6b" stroke-width="1"/>')
    local = datetime.fromtimestamp(start, tz)
    moment = start + (3600 - (local.minute * 60 + local.second + local.microsecond / 1e6))
    while moment <= now:
        hour = datetime.fromtimestamp(moment, tz)
        x = _x(moment, start)
        labelled = hour.minute == 0 and hour.hour % 3 == 0
        tick = axis_y + (6 if labelled else 3)
        yield (f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{tick}" stroke="#6b6b6b" '
               'stroke-width="1"/>')
        if labelled:
            yield (f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#ffffff" '
                   f'stroke-opacity="0.55" stroke-width="1"/>')
            yield (f'<text x="{x:.1f}" y="{axis_y + 19}" {FONT} font-size="11" '
                   f'text-anchor="middle" fill="#1a1a1a">{hour:%H:%M}</text>')
        moment += 3600
    zone = translate("ui.uplinks.timeline.zone", lang, zone=str(tz))
    yield (f'<text x="10" y="{axis_y + 19}" {FONT} font-size="11" fill="#4a4a4a">'
           f'{_text(zone)}</text>')


def _legend(y: int, lang: str) -> Iterator[str]:
    """What each colour and the thin line mean."""
    x = 10
    entries = [(FILLS[state], _state_word(state, lang))
               for state in (LineState.UP, LineState.DEGRADED, LineState.DOWN)]
    entries.append((FILLS[LineState.UNKNOWN], translate("ui.uplinks.timeline.no_data", lang)))
    for fill, label in entries:
        yield f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{fill}"/>'
        yield (f'<text x="{x + 19}" y="{y}" {FONT} font-size="12" fill="#1a1a1a">'
               f'{_text(label)}</text>')
        x += 26 + 7 * len(label)
    yield (f'<line x1="{x}" y1="{y - 4}" x2="{x + 16}" y2="{y - 4}" stroke="{RTT_STROKE}" '
           f'stroke-width="1.2"/>')
    rtt = translate("ui.uplinks.timeline.rtt", lang, max=f"{RTT_MAX_MS:.0f}")
    yield (f'<text x="{x + 21}" y="{y}" {FONT} font-size="12" fill="#1a1a1a">'
           f'{_text(rtt)}</text>')


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
