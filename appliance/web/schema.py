"""JSON schemas of the API: one source for request validation and the OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from appliance.errors import InvalidInput

Schema = dict[str, Any]


def string(*, min_length: int = 0, max_length: int = 1000, fmt: str | None = None,
           enum: list[str] | None = None, nullable: bool = False) -> Schema:
    """A string schema."""
    schema: Schema = {"type": ["string", "null"] if nullable else "string",
                      "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if fmt:
        schema["format"] = fmt
    if enum:
        schema["enum"] = enum
    return schema


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Schema:
    """An integer schema."""
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def boolean() -> Schema:
    """A boolean schema."""
    return {"type": "boolean"}


def array(items: Schema, *, max_items: int = 1000) -> Schema:
    """An array schema."""
    return {"type": "array", "items": items, "maxItems": max_items}


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (),
        nullable: bool = False) -> Schema:
    """An object schema; unknown properties are refused."""
    return {
        "type": ["object", "null"] if nullable else "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "boolean": bool, "object": dict, "array": list,
    "null": type(None),
}


def validate(value: Any, schema: Schema, where: str = "body") -> None:
    """Check ``value`` against the subset of JSON Schema used here; raise InvalidInput."""
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = any(
            isinstance(value, _TYPES[name]) and not (name == "integer" and isinstance(value, bool))
            for name in names
        )
        if not ok:
            raise InvalidInput(field=where, detail="falscher Typ, erwartet: " + "/".join(names))
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInput(field=where, detail="erlaubt: " + ", ".join(schema["enum"]))
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", 1 << 30):
            raise InvalidInput(field=where, detail="zu lang")
        if len(value.strip()) < schema.get("minLength", 0):
            raise InvalidInput(field=where, detail="fehlt")
        _check_format(value, schema.get("format"), where)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            raise InvalidInput(field=where, detail="außerhalb des erlaubten Bereichs")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", 1 << 30):
            raise InvalidInput(field=where, detail="zu viele Einträge")
        for index, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise InvalidInput(field=_join(where, key), detail="fehlt")
        for key, item in value.items():
            if key not in props:
                if schema.get("additionalProperties", True) is False:
                    raise InvalidInput(field=_join(where, key), detail="unbekanntes Feld")
                continue
            validate(item, props[key], _join(where, key))


def _join(where: str, key: str) -> str:
    return key if where == "body" else f"{where}.{key}"


def _check_format(value: str, fmt: str | None, where: str) -> None:
    try:
        if fmt == "date":
            date.fromisoformat(value)
        elif fmt == "date-time":
            datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field=where, detail=f"kein gültiges Datum ({fmt})") from None
