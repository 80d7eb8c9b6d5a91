"""The growth of each backup target's repository over time, drawn on the box as one SVG image.

One line per target (its size after each good run), a legend with each target's name and
address, dates on the practice's clock along the bottom and sizes in kB/MB/GB (German number
format in German) up the side. The image is built from numbers and escaped texts only: no
script, no style sheet, no reference to anything outside itself, so it shows as an ``<img>``
under the staff site's CSP — a target's name and address come from the settings or the admin
page and stay text.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Final
from zoneinfo import ZoneInfo

from appliance.i18n import translate

#: line colours, one per target in turn (distinguishable, dark enough on white)
COLOURS: Final = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b3fa0", "#a8324a", "#00796b")

WIDTH: Final = 960
PLOT_X: Final = 90
PLOT_W: Final = 840
TOP: Final = 44
PLOT_H: Final = 200
LEGEND_STEP: Final = 20
FONT: Final = 'font-family="sans-serif"'
#: the shortest span shown (a single run still gets an axis)
MIN_SPAN: Final = timedelta(days=1)
#: up to this span the dates along the bottom carry the time too
SHORT_SPAN: Final = timedelta(days=3)


@dataclass(frozen=True, kw_only=True)
class Series:
    """One target's sizes: ``(when, bytes)`` after each good run, oldest first."""

    name: str
    url: str
    sizes: Sequence[tuple[datetime, int]]


def render_growth(series: Sequence[Series], *, tz: ZoneInfo, lang: str = "de") -> str:
    """The SVG document of every target's repository size over time."""
    title = translate("ui.backup.chart.title", lang)
    points = [point for one in series for point in one.sizes]
    legend_y = TOP + PLOT_H + 66
    height = legend_y + max(len(series), 1) * LEGEND_STEP + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="growth-title">',
           f'<title id="growth-title">{_text(title)}</title>',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="10" y="24" {FONT} font-size="15" font-weight="bold" fill="#1a1a1a">'
           f'{_text(title)}</text>']
    if not points:
        out.append(f'<text x="10" y="{TOP + 24}" {FONT} font-size="13" fill="#1a1a1a">'
                   f'{_text(translate("ui.backup.chart.empty", lang))}</text>')
        start, end, top_bytes = datetime.now(tz) - MIN_SPAN, datetime.now(tz), 1
    else:
        start, end = min(at for at, _ in points), max(at for at, _ in points)
        if end - start < MIN_SPAN:
            middle = start + (end - start) / 2
            start, end = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
        top_bytes = max(size for _, size in points)
    scale = _scale(top_bytes)
    out.extend(_size_axis(scale, lang))
    out.extend(_date_axis(start, end, tz, lang))
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        out.append(f'<g class="series" id="series-{index + 1}">')
        out.append(f"<title>{_text(one.name)} ({_text(one.url)})</title>")
        out.extend(_line(one, colour, start, end, scale[-1], tz, lang))
        out.append("</g>")
        out.extend(_legend_entry(one, colour, legend_y + index * LEGEND_STEP, lang))
    out.append("</svg>")
    return "\n".join(out)


def _text(value: str) -> str:
    """``value`` safe as element content and as an attribute value."""
    return escape(value, quote=True)


def _x(moment: datetime, start: datetime, end: datetime) -> float:
    return PLOT_X + (moment - start) / (end - start) * PLOT_W


def _y(size: int, top: float) -> float:
    return TOP + PLOT_H - size / top * PLOT_H


def _scale(top_bytes: int) -> list[float]:
    """Round tick values from 0 up to at least ``top_bytes`` (1, 2 or 5 times a power of ten)."""
    raw = max(top_bytes, 1) / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    count = max(1, math.ceil(top_bytes / step))
    return [step * i for i in range(count + 1)]


def size_text(size: float, lang: str) -> str:
    """"850 kB", "12,4 MB", "1,2 GB" (decimal units; a decimal comma in German)."""
    for factor, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if size >= factor:
            number = f"{size / factor:.1f}".removesuffix(".0")
            return f"{number.replace('.', ',') if lang == 'de' else number} {unit}"
    return "0" if size == 0 else f"{size:.0f} B"


def _date_text(moment: datetime, lang: str, *, with_time: bool) -> str:
    if with_time:  # a few days only: the dates alone would repeat
        return moment.strftime("%d.%m. %H:%M" if lang == "de" else "%m-%d %H:%M")
    return moment.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d")


def _size_axis(scale: list[float], lang: str) -> Iterator[str]:
    """The sizes up the left side, with a faint line across the plot at each."""
    for value in scale:
        y = _y(int(value), scale[-1])
        yield (f'<line x1="{PLOT_X}" y1="{y:.1f}" x2="{PLOT_X + PLOT_W}" y2="{y:.1f}" '
               f'stroke="{"#6b6b6b" if value == 0 else "#e3e7ea"}" stroke-width="1"/>')
        yield (f'<text x="{PLOT_X - 8}" y="{y + 4:.1f}" {FONT} font-size="11" '
               f'text-anchor="end" fill="#1a1a1a">{_text(size_text(value, lang))}</text>')


def _date_axis(start: datetime, end: datetime, tz: ZoneInfo, lang: str) -> Iterator[str]:
    """Five dates along the bottom on the practice's clock, and which clock that is."""
    axis_y = TOP + PLOT_H
    with_time = end - start <= SHORT_SPAN
    for index in range(5):
        moment = start + (end - start) * index / 4
        x = _x(moment, start, end)
        yield (f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" '
               'stroke="#6b6b6b" stroke-width="1"/>')
        anchor = "start" if index == 0 else "end" if index == 4 else "middle"
        yield (f'<text x="{x:.1f}" y="{axis_y + 19}" {FONT} font-size="11" '
               f'text-anchor="{anchor}" fill="#1a1a1a">'
               f'{_text(_date_text(moment.astimezone(tz), lang, with_time=with_time))}</text>')
    zone = translate("ui.backup.chart.zone", lang, zone=str(tz))
    yield (f'<text x="{PLOT_X}" y="{axis_y + 36}" {FONT} font-size="11" fill="#4a4a4a">'
           f'{_text(zone)}</text>')


def _line(one: Series, colour: str, start: datetime, end: datetime, top: float, tz: ZoneInfo,
          lang: str) -> Iterator[str]:
    """The target's sizes as a line with a dot (and its date and size) at each run."""
    placed = [(_x(at, start, end), _y(size, top), at, size) for at, size in one.sizes]
    if len(placed) > 1:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in placed)
        yield (f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
               'stroke-linejoin="round"/>')
    for x, y, at, size in placed:
        label = f"{at.astimezone(tz):%d.%m.%Y %H:%M}: {size_text(size, lang)}"
        yield (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
               f"<title>{_text(label)}</title></circle>")


def _legend_entry(one: Series, colour: str, y: int, lang: str) -> Iterator[str]:
    """The target's colour, name, address and latest size."""
    yield (f'<line x1="10" y1="{y - 4}" x2="30" y2="{y - 4}" stroke="{colour}" '
           'stroke-width="3"/>')
    latest = (size_text(one.sizes[-1][1], lang) if one.sizes
              else translate("ui.backup.chart.no_copy", lang))
    yield (f'<text x="38" y="{y}" {FONT} font-size="12" fill="#1a1a1a">'
           f'<tspan font-weight="bold">{_text(_shorten(one.name, 32))}</tspan> '
           f'<tspan fill="#4a4a4a">{_text(_shorten(one.url, 70))}</tspan> – '
           f"{_text(latest)}</text>")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
