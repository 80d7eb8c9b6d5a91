"""Static checks of the front end the browser tests drive: catalogs complete, CSP-safe markup.

R11 (no third-party content, German texts) and R9 (strict CSP: no inline scripts or styles).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "appliance"
STATIC = ROOT / "web" / "static"
LOCALES = ROOT / "locales"
SOURCES = sorted([*STATIC.rglob("*.js"), *STATIC.rglob("*.html"), *STATIC.rglob("*.css")])
#: keys the code builds from a value (`ui.state.${state}`)
DYNAMIC = {
    "ui.state": ["scheduled", "waiting", "in_call", "ended", "cancelled", "no_show"],
    "ui.role": ["doctor", "assistant", "admin", "doctor_long", "assistant_long", "admin_long"],
    "ui.consent.method": ["written", "verbal", "online"],
    "ui.visit": [f"{state}_{part}"
                 for state in ("ended", "cancelled", "no_show", "left_call", "removed", "elsewhere")
                 for part in ("title", "text")],
    "ui.uplinks.state": ["up", "degraded", "down", "unknown"],
    "ui.uplinks.fault": ["no_answer", "no_answer_loopback", "other_line", "no_address",
                         "no_target"],
    "ui.backup.activity": ["run", "verify", "restore"],
    "ui.backup.source": ["settings", "box"],
    "ui.backup.test_state": ["ok", "empty", "error"],
}


def _catalog(lang: str) -> dict[str, str]:
    return json.loads((LOCALES / f"ui.{lang}.json").read_text("utf-8"))


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in SOURCES:
        keys |= set(re.findall(r"""['"`](ui\.[A-Za-z0-9_.]+[A-Za-z0-9_])['"`]""",
                               path.read_text("utf-8")))
    for prefix, names in DYNAMIC.items():
        keys |= {f"{prefix}.{name}" for name in names}
    return keys


def test_german_and_english_catalogs_have_the_same_keys_and_placeholders() -> None:
    """Every UI text exists in German and in English, with the same {placeholders}."""
    german, english = _catalog("de"), _catalog("en")
    assert german.keys() == english.keys()
    for key, text in german.items():
        assert key.startswith("ui."), key
        assert text.strip() and english[key].strip(), key
        placeholders = set(re.findall(r"\{(\w+)\}", text))
        assert placeholders == set(re.findall(r"\{(\w+)\}", english[key])), key


def test_every_text_the_pages_use_is_in_the_catalog() -> None:
    """No page shows a raw key: each `ui.…` key in the JS and HTML is in the catalog."""
    missing = sorted(_used_keys() - _catalog("de").keys())
    assert not missing, missing


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(STATIC)))
def test_no_inline_code_or_foreign_origins(path: Path) -> None:
    """The CSP allows only the box's own scripts and styles: nothing inline, nothing remote."""
    text = path.read_text("utf-8")
    if path.suffix == ".html":
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
        assert not re.search(r"\sstyle\s*=", text), "style attribute"
        assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
        assert "<style" not in text, "<style> element"
        for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text):
            # the box's own files, or the page's icon inline (one request less on a weak line)
            assert url.startswith(("/", "#", "data:image/svg+xml,")), url
    if path.suffix == ".js":
        assert ".style." not in text and "setAttribute('style'" not in text, "inline style"
        assert "innerHTML" not in text and "eval(" not in text
    # SVG's namespace is a name, never fetched
    text = text.replace("http://www.w3.org/2000/svg", "")
    assert not re.search(r"(?:https?:)?//(?!127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}/", text.replace(
        "https://videosprechstunde.praxis-beispiel.de", "")), "a URL of another origin"


def test_every_audit_action_has_a_label() -> None:
    """The admin's audit view names every action the domain records, in both languages
    (actions built from a transition, ``appointment.<event>``, included)."""
    recorded = set()
    for source in (ROOT / "practice").rglob("*.py"):
        recorded.update(re.findall(r'\.record\([^,]+,\s*"([a-z_.]+)"', source.read_text("utf-8")))
    transitions = re.search(r"TRANSITIONS[^=]*=\s*\{(.*?)\n\}", (
        ROOT / "practice" / "appointments.py").read_text("utf-8"), re.S)
    assert transitions is not None
    recorded.update(f"appointment.{event}"
                    for event in re.findall(r'^\s*"([a-z_]+)":', transitions.group(1), re.M))
    assert len(recorded) > 20
    for lang in ("de", "en"):
        missing = sorted(a for a in recorded if f"ui.audit.{a}" not in _catalog(lang))
        assert missing == [], (lang, missing)
