"""Message catalogs: German first, English second; the UI and every error read from here."""

from __future__ import annotations

import json
import string
from functools import cache
from importlib import resources
from typing import Any, Final

LANGUAGES: Final = ("de", "en")
DEFAULT_LANGUAGE: Final = "de"


#: what the patient's page shows (the public site serves only these texts: a patient on a weak
#: line does not load the staff's); test_i18n checks every key the patient's code names
PATIENT_TEXTS: Final = ("ui.visit.", "ui.call.", "ui.check.", "ui.action.", "ui.error.",
                        "ui.format.", "ui.language", "device_check.")


@cache
def patient_catalog(lang: str) -> dict[str, str]:
    """The texts of the patient's page in ``lang``."""
    return {key: text for key, text in catalog(lang).items() if key.startswith(PATIENT_TEXTS)}


@cache
def catalog(lang: str) -> dict[str, str]:
    """The flat ``key → template`` catalog of ``lang`` (unknown languages get German)."""
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    merged: dict[str, str] = {}
    for entry in sorted(resources.files("appliance").joinpath("locales").iterdir(),
                        key=lambda e: e.name):
        # "<lang>.json" holds the errors, "<area>.<lang>.json" the texts of one UI area
        if entry.name == f"{lang}.json" or entry.name.endswith(f".{lang}.json"):
            merged.update(json.loads(entry.read_text("utf-8")))
    return merged


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def translate(key: str, lang: str = DEFAULT_LANGUAGE, /, **params: Any) -> str:
    """The message for ``key`` in ``lang``, falling back to German and then to the key itself."""
    template = catalog(lang).get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
    return string.Formatter().vformat(template, (), _Params(params))


def negotiate(accept_language: str | None) -> str:
    """Pick a supported language from an ``Accept-Language`` header (German if nothing fits)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        ranked.append((weight, tag.split("-")[0].lower()))
    for _, lang in sorted(ranked, key=lambda item: -item[0]):
        if lang in LANGUAGES:
            return lang
    return DEFAULT_LANGUAGE
