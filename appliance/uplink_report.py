"""The practice's internet lines as text: what ``sprechzimmer uplinks`` prints from the file the
running box writes (``uplinks.json`` in its runtime directory, :mod:`appliance.uplinks`).

The words are the status page's (the same catalog keys); a text timeline shows the last 24 hours
as :data:`SLOTS` characters of half an hour, each the worst state of its half hour. The file is
written at least once a minute while the box runs: an older one means the box is probably not
running, and its lines' state is not known.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from appliance.i18n import translate
from appliance.uplinks import Fault, LineState, LineStatus

#: a file older than this: the box is probably not running
STALE_AFTER_S: Final = 120.0
SLOTS: Final = 48
SLOT_S: Final = 1800
SYMBOLS: Final = {LineState.UP: "=", LineState.DEGRADED: "~", LineState.DOWN: "X",
                  LineState.UNKNOWN: "."}
#: worst last: a half hour shows the worst state it saw (no data counts as unknown)
_ORDER: Final = (LineState.UNKNOWN, LineState.UP, LineState.DEGRADED, LineState.DOWN)
WIDTH: Final = 100
LANG: Final = "de"


@dataclass(frozen=True, kw_only=True)
class UplinkReport:
    """What the history file says at ``now``: when it was written and the lines in it."""

    path: Path
    now: float
    #: None: there is no (readable) file
    written_at: float | None
    lines: tuple[LineStatus, ...]
    #: how many lines the settings name (to tell "not running yet" from "nothing to watch")
    configured: int

    @property
    def age_s(self) -> float | None:
        return None if self.written_at is None else max(0.0, self.now - self.written_at)

    @property
    def stale(self) -> bool:
        age = self.age_s
        return age is None or age > STALE_AFTER_S

    @property
    def exit_status(self) -> int:
        """0: every line answers (up or degraded); 1: a line is down, or nothing is known."""
        if self.stale or not self.lines:
            return 1
        return 0 if all(line.state in (LineState.UP, LineState.DEGRADED)
                        for line in self.lines) else 1


def slots(line: LineStatus, now: float) -> list[LineState]:
    """The worst state of each half hour of the last 24 hours, oldest first."""
    first = int(now) // SLOT_S * SLOT_S - (SLOTS - 1) * SLOT_S
    worst = [LineState.UNKNOWN] * SLOTS
    for minute in line.history:
        index = (minute.start - first) // SLOT_S
        if 0 <= index < SLOTS and _ORDER.index(minute.worst) > _ORDER.index(worst[index]):
            worst[index] = minute.worst
    return worst


def state_text(state: LineState) -> str:
    """The status page's words for ``state``."""
    return translate(f"ui.uplinks.state.{state.value}", LANG)


def fault_text(line: LineStatus) -> str:
    """Why the last probe failed and what to do ("" when it did not), as on the status page."""
    if line.fault is Fault.NONE:
        return ""
    key = ("no_answer_loopback" if line.fault is Fault.NO_ANSWER and line.by_loopback
           else line.fault.value)
    return translate(f"ui.uplinks.fault.{key}", LANG, target=line.target,
                     lan_address=line.lan_address)


def render_text(report: UplinkReport, tz: ZoneInfo) -> str:
    """The report as German text for a terminal."""
    if report.written_at is None:
        if report.configured == 0:
            return "\n".join(textwrap.wrap(
                "Keine Internetleitung eingerichtet: die Box prüft keine. Jede Leitung der "
                "Praxis gehört als eigener [[turn.uplinks]]-Abschnitt in die Einstellungsdatei "
                "(name, public_host, public_address, lan_address, wahlweise stun_target; "
                "docs/uplinks.md); danach die Box neu starten.", WIDTH)) + "\n"
        return "\n".join(textwrap.wrap(
            f"Keine Leitungsdaten in {report.path}: die Box läuft noch nicht (oder die Datei "
            f"ist unlesbar). Eingerichtet sind {report.configured} Leitung(en); die laufende "
            "Box schreibt ihren Zustand mindestens einmal je Minute.", WIDTH)) + "\n"
    out = [f"Internetleitungen, Stand {_moment(report.written_at, tz, report.now)} "
           f"(vor {_duration(report.age_s or 0.0)}, Zeitzone {tz.key})"]
    if report.stale:
        out.extend(textwrap.wrap(
            f"ACHTUNG: Die Datei {report.path} ist älter als {STALE_AFTER_S / 60:.0f} Minuten: "
            "die Box läuft vermutlich nicht. Was folgt, ist ihr letzter bekannter Stand, nicht "
            "der Zustand jetzt.", WIDTH))
    if not report.lines:
        out.append("Die Box prüft keine Leitung (keine [[turn.uplinks]] in ihren Einstellungen).")
    for line in report.lines:
        out.append("")
        out.extend(_line_text(line, report.now, tz))
    if report.lines:
        out.append("")
        out.append("Verlauf: je Zeichen eine halbe Stunde, das Schlimmste darin.")
        out.append("  ".join(f"{SYMBOLS[s]} {state_text(s)}" for s in _ORDER[1:])
                   + f"  {SYMBOLS[LineState.UNKNOWN]} keine Daten / noch keine Antwort")
    return "\n".join(out) + "\n"


def _line_text(line: LineStatus, now: float, tz: ZoneInfo) -> list[str]:
    since = (f"seit {_moment(line.since, tz, now)}" if line.since is not None
             else "seit dem Start der Box")
    probe = ("eigene öffentliche Adresse, über NAT-Loopback des Routers" if line.by_loopback
             else "STUN-Server im Internet")
    rows = [
        f"{line.name}  ({line.public_host}, {line.public_address})",
        f"  Zustand:        {state_text(line.state)} {since}",
        f"  Umlaufzeit:     {_rtt(line)}",
        f"  Verlust:        {line.loss * 100:.0f} % der letzten Prüfungen",
        *textwrap.wrap(f"  Geprüft wird:   {line.target} ({probe}), von {line.lan_address} "
                       "aus", WIDTH, subsequent_indent=" " * 18),
        "  Letzte Antwort: " + ("noch nie" if line.last_answer is None
                                else _moment(line.last_answer, tz, now)),
    ]
    fault = fault_text(line)
    if fault:
        rows.extend(textwrap.wrap(f"Was nicht stimmt: {fault}", WIDTH,
                                  initial_indent="  ", subsequent_indent="    "))
    timeline = "".join(SYMBOLS[state] for state in slots(line, now))
    rows.append(f"  24 h:  |{timeline}|")
    rows.append(f"          {_axis(now, tz)}")
    return rows


def _rtt(line: LineStatus) -> str:
    """The round trip; none for a dead line (its last answers say nothing about it now)."""
    if line.rtt_ms is None or line.state is LineState.DOWN:
        return "–"
    return f"{line.rtt_ms:.0f} ms"


def _axis(now: float, tz: ZoneInfo) -> str:
    """Labels under the timeline: every full six hours of the practice's clock."""
    first = int(now) // SLOT_S * SLOT_S - (SLOTS - 1) * SLOT_S
    axis = [" "] * (SLOTS + 5)
    for index in range(SLOTS):
        local = datetime.fromtimestamp(first + index * SLOT_S, tz)
        if local.minute == 0 and local.hour % 6 == 0:
            label = f"{local:%H:%M}"
            axis[index:index + len(label)] = label
    return "".join(axis).rstrip()


def _moment(moment: float, tz: ZoneInfo, now: float) -> str:
    """"10:42" today, "04.12. 10:42" on another day."""
    local = datetime.fromtimestamp(moment, tz)
    if local.date() == datetime.fromtimestamp(now, tz).date():
        return f"{local:%H:%M}"
    return f"{local:%d.%m. %H:%M}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} Tagen"


def to_json(report: UplinkReport, tz: ZoneInfo) -> dict[str, Any]:
    """The report as data (``--json``): no history, the timeline as its characters."""

    def iso(moment: float | None) -> str | None:
        return None if moment is None else datetime.fromtimestamp(moment, tz).isoformat()

    def line_json(line: LineStatus) -> dict[str, Any]:
        raw = line.to_json()
        del raw["history"]
        return raw | {"since": iso(line.since), "last_answer": iso(line.last_answer),
                      "state_text": state_text(line.state), "fault_text": fault_text(line),
                      "timeline": "".join(SYMBOLS[s] for s in slots(line, report.now))}

    return {"file": str(report.path), "written_at": iso(report.written_at),
            "age_s": None if report.age_s is None else round(report.age_s, 1),
            "stale": report.stale, "configured": report.configured,
            "exit_status": report.exit_status,
            "lines": [line_json(line) for line in report.lines]}


def read_report(path: Path, *, now: float, configured: int,
                found: tuple[float, Sequence[LineStatus]] | None) -> UplinkReport:
    """The report of what :func:`appliance.uplinks.read_status` found at ``path``."""
    written_at, lines = found if found is not None else (None, ())
    return UplinkReport(path=path, now=now, written_at=written_at, lines=tuple(lines),
                        configured=configured)
