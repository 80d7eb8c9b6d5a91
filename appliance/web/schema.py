"""The API's forms as ``msgspec`` structs: one declaration gives the check of a request body, the
answer's encoding and the JSON schema the OpenAPI document publishes.

A body is a :class:`Form` (unknown fields are refused); an answer is a :class:`View`. Field
constraints are ``Annotated[..., msgspec.Meta(...)]``; the aliases below name the common ones.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec

from appliance.errors import InvalidInput

#: a text with at least one character that is not a space ("  " is missing, not a name)
NOT_BLANK: Final = r"\S"
#: at least two characters that are not spaces
TWO_CHARACTERS: Final = r"\S[\s\S]*\S"

#: a password as typed (the policy is the staff service's)
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NOT_BLANK)]
#: a login name as typed
Username = Annotated[str, msgspec.Meta(min_length=2, max_length=32, pattern=TWO_CHARACTERS)]
#: a name shown to people (a member's, a practice's)
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NOT_BLANK)]
#: the doctor's lifelong number (LANR), nine digits; empty or null is none
Lanr = Annotated[str, msgspec.Meta(max_length=9)]
#: a second factor's current code as typed
TotpCode = Annotated[str, msgspec.Meta(max_length=10)]
#: a point in time as typed in a form: ISO 8601, seconds and offset optional (without an offset
#: it is the practice's local time)
LocalTime = Annotated[str, msgspec.Meta(
    pattern=r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$",
    examples=["2026-03-02T10:15", "2026-03-02T10:15:00+01:00"])]


class Form(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A request body: the fields it may have, each with its constraints."""


class View(msgspec.Struct, frozen=True, kw_only=True):
    """An answer's body."""


class Ok(View, frozen=True, kw_only=True):
    """The answer of a change that has nothing more to say."""

    ok: bool = True


OK: Final = Ok()


def decode(data: Any, form: type[Form]) -> Any:
    """``data`` (parsed JSON) as ``form``; a mismatch is an :class:`InvalidInput` naming the
    field, in German."""
    try:
        try:
            return msgspec.convert(data, form)
        except msgspec.ValidationError as error:
            if "Expected `int`, got `float`" not in str(error):
                raise
            # JSON Schema counts 5.0 as an integer, and so does the check
            return msgspec.convert(_integral(data), form)
    except msgspec.ValidationError as error:
        field, detail = explain(str(error))
        raise InvalidInput(field=field, detail=detail) from None


def _integral(data: Any) -> Any:
    """``data`` with every float that is a whole number as an int."""
    if isinstance(data, float) and data.is_integer():
        return int(data)
    if isinstance(data, dict):
        return {key: _integral(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_integral(value) for value in data]
    return data


def explain(message: str) -> tuple[str, str]:
    """msgspec's message as (field path, German detail); the root is ``body``."""
    text, _, where = message.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    named = re.search(r"(?:missing required|contains unknown) field `([^`]*)`", text)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or "body", _detail(text)


_DETAILS: Final = (
    (r"missing required field", lambda m: "fehlt"),
    (r"contains unknown field", lambda m: "unbekanntes Feld"),
    (rf"matching regex '{re.escape(re.escape(NOT_BLANK))}'|"
     rf"matching regex '{re.escape(re.escape(TWO_CHARACTERS))}'", lambda m: "fehlt"),
    (r"matching regex", lambda m: "ungültiges Format"),
    (r"`str` of length <= (\d+)", lambda m: f"zu lang (höchstens {m.group(1)} Zeichen)"),
    (r"`str` of length >= (\d+)", lambda m: f"zu kurz (mindestens {m.group(1)} Zeichen)"),
    (r"of length <= (\d+)", lambda m: f"zu viele Einträge (höchstens {m.group(1)})"),
    (r"`(?:int|float)` [<>]=? ", lambda m: "außerhalb des erlaubten Bereichs"),
    (r"Invalid enum value", lambda m: "dieser Wert ist nicht vorgesehen"),
    (r"Invalid RFC3339|Invalid date|Invalid time", lambda m: "kein gültiges Datum"),
    (r"Expected `([^`]*)`, got `([^`]*)`",
     lambda m: f"falscher Typ, erwartet: {_TYPE_NAMES.get(m.group(1), m.group(1))}"),
)
_TYPE_NAMES: Final = {"str": "Text", "int": "Zahl", "bool": "ja/nein", "object": "Objekt",
                      "array": "Liste", "str | null": "Text oder null",
                      "object | null": "Objekt oder null"}


def _detail(text: str) -> str:
    for pattern, say in _DETAILS:
        if match := re.search(pattern, text):
            return say(match)
    return "ungültig"


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON schema (2020-12) of ``kind``, whole in itself: what it refers to is in its
    ``$defs``, so that a client can check an answer against it alone. A struct's own schema is
    the document's top, not a reference to it."""
    schema = msgspec.json.schema(kind)
    top = schema.get("$ref", "").removeprefix("#/$defs/")
    if not top:
        return schema
    defs = dict(schema["$defs"])
    own = defs.pop(top)
    return {**own, "$defs": defs} if defs else own
