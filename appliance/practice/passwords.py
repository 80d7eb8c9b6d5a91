"""The staff password policy: long enough, and not guessable by someone who stole the box.

A stolen, powered-off box lets an attacker guess offline against the staff wraps (Argon2id, the
vault's only protection there; see docs/vault.md). So a new password must be at least 12
characters long and survive a guess estimate by zxcvbn (Dropbox's estimator: dictionaries,
keyboard patterns, sequences, dates, l33t) that also knows common German passwords, the German
dictionary of the box (Debian's ``wngerman``/``wgerman-medical`` when installed) and the words of
the account and practice. The verdict comes as a German sentence saying why and what is better.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from appliance.errors import InvalidInput

_LOGGER = logging.getLogger(__name__)

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 1024
#: zxcvbn's score 3: more than 10^8 guesses, "safely unguessable" against a slow hash offline
MIN_SCORE: Final = 3
#: zxcvbn slows down on very long inputs; the first 100 characters decide
_ESTIMATE_CHARS: Final = 100
#: word lists of the box's German dictionary packages, read when present
SYSTEM_WORD_LISTS: Final = (Path("/usr/share/dict/ngerman"), Path("/usr/share/dict/german-medical"))
_BUNDLED: Final = "common-passwords-de.txt"
_ALWAYS_KNOWN: Final = ("sprechzimmer", "praxis", "videosprechstunde", "arztpraxis", "passwort")

_SUGGESTION: Final = ("Besser: ein Satz oder mehrere Wörter, die nicht zusammengehören, "
                      "z. B. „Tulpe Rechnung Kompass 7 Nebel“.")

_REASONS: Final = {
    "passwords": "es steht auf den Listen der häufigsten Passwörter",
    "german": "es ist im Kern ein Wort aus dem Wörterbuch",
    "english_wikipedia": "es ist im Kern ein gängiges Wort",
    "us_tv_and_film": "es ist im Kern ein gängiges Wort",
    "surnames": "es ist im Kern ein Name",
    "female_names": "es ist im Kern ein Name",
    "male_names": "es ist im Kern ein Name",
    "user_inputs": "es enthält Ihren Namen, den Namen der Praxis oder Ihren Benutzernamen",
    "spatial": "es ist ein Tastaturmuster wie „qwertz“ oder „asdf“",
    "repeat": "es wiederholt Zeichen oder Teile",
    "sequence": "es enthält eine Folge wie „abc“ oder „1234“",
    "date": "es enthält ein Datum oder eine Jahreszahl",
    "regex": "es enthält eine Jahreszahl",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a password fares: ``acceptable``, and if not, a German sentence why and what is
    better."""

    acceptable: bool
    message: str = ""


def _too_guessable(reason: str) -> Verdict:
    return Verdict(False, f"Das Passwort ist zu leicht zu erraten: {reason}. {_SUGGESTION}")


class _Dictionaries:
    """zxcvbn with the German lists added, loaded once on first use (~0.4 s, ~35 MB)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    def zxcvbn(self):  # noqa: ANN201 - zxcvbn's own function
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        from zxcvbn import zxcvbn

        return zxcvbn

    @staticmethod
    def _load() -> None:
        from zxcvbn import matching

        bundled = resources.files(__package__).joinpath(_BUNDLED).read_text(encoding="utf-8")
        common = [line.strip().lower() for line in bundled.splitlines()
                  if line.strip() and not line.startswith("#")]
        words: dict[str, None] = {}
        found = False
        for path in SYSTEM_WORD_LISTS:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            found = True
            for line in text.splitlines():
                word = line.strip().lower()
                if 3 <= len(word) <= 24:
                    words.setdefault(word)
        if not found:
            _LOGGER.warning("no German word list installed (wngerman): the password check "
                            "knows only common passwords")
        matching.add_frequency_lists({"passwords_de": common, "german": list(words)})


_DICTIONARIES: Final = _Dictionaries()
_WORDS: Final = re.compile(r"[^\W\d_]{3,}")


def assess(password: str, context: Iterable[str] = ()) -> Verdict:
    """Judge ``password`` (length first, then the guess estimate); ``context`` are words of the
    account and practice (user name, display name, practice name) that count as known."""
    if len(password) < MIN_LENGTH:
        return Verdict(False, f"Das Passwort braucht mindestens {MIN_LENGTH} Zeichen. "
                              + _SUGGESTION)
    inputs = list(_ALWAYS_KNOWN)
    for text in context:
        if text:
            inputs.append(text.lower())
            inputs.extend(word.lower() for word in _WORDS.findall(text))
    result = _DICTIONARIES.zxcvbn()(password[:_ESTIMATE_CHARS], user_inputs=inputs)
    if result["score"] >= MIN_SCORE:
        return Verdict(True)
    return _too_guessable(_reason(result["sequence"]))


def _reason(sequence: list[dict]) -> str:
    """The weakest part's kind, in words: the match that adds the fewest guesses per character."""
    parts = [match for match in sequence if match.get("pattern") != "bruteforce"]
    if not parts:
        return "es ist zu kurz für so wenige verschiedene Zeichen"
    if any(match.get("dictionary_name") == "user_inputs" for match in parts):
        return _REASONS["user_inputs"]
    weakest = min(parts, key=lambda match: float(match.get("guesses_log10", 0)) / max(
        1, len(match.get("token", ""))))
    kind = weakest.get("dictionary_name") or weakest.get("pattern", "")
    if kind == "passwords_de":
        kind = "passwords"
    return _REASONS.get(kind, "es folgt einem bekannten Muster")


def check_new(password: object, context: Iterable[str] = ()) -> str:
    """``password`` if it may become a staff password; else :class:`InvalidInput` saying why."""
    if not isinstance(password, str) or len(password) > MAX_LENGTH:
        raise InvalidInput(field="password", detail=f"{MIN_LENGTH} bis {MAX_LENGTH} Zeichen")
    verdict = assess(password, context)
    if not verdict.acceptable:
        raise InvalidInput(field="password", detail=verdict.message)
    return password
