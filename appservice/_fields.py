"""Typed readers for fields of decoded JSON objects, shared by the model modules.

Each reader takes the object, the key and ``where`` (a path such as ``"RespSync.rooms"``) and
raises ``ValueError`` naming ``where.key`` and the wrong type, so bad homeserver input is reported
precisely instead of surfacing later as an ``AttributeError``. A JSON ``null`` counts as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def type_name(value: object) -> str:
    """Name a decoded JSON value's type the way JSON does (object, array, string, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def as_object(value: object, where: str) -> Mapping[str, Any]:
    """Return ``value`` when it is a JSON object, else raise ``ValueError`` naming ``where``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type_name(value)}")
    return value


def _wrong(where: str, key: str, expected: str, value: object) -> ValueError:
    return ValueError(f"{where}.{key}: expected {expected}, got {type_name(value)}")


def missing(where: str, key: str) -> ValueError:
    """The error for a required key that is absent."""
    return ValueError(f"{where}.{key}: missing required key")


def req_str(d: Mapping[str, Any], key: str, where: str) -> str:
    """A required string field."""
    value = d.get(key)
    if value is None:
        raise missing(where, key)
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional string field (``None`` when absent)."""
    value = d.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(where, key, "a string", value)


def get_str(d: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    """A string field that falls back to ``default`` when absent."""
    value = opt_str(d, key, where)
    return default if value is None else value


def opt_int(d: Mapping[str, Any], key: str, where: str) -> int | None:
    """An optional integer field; booleans and fractional numbers are rejected."""
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _wrong(where, key, "an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _wrong(where, key, "an integer", value)


def get_int(d: Mapping[str, Any], key: str, where: str, default: int = 0) -> int:
    """An integer field that falls back to ``default`` when absent."""
    value = opt_int(d, key, where)
    return default if value is None else value


def opt_bool(d: Mapping[str, Any], key: str, where: str) -> bool | None:
    """An optional boolean field."""
    value = d.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(where, key, "a boolean", value)


def get_bool(d: Mapping[str, Any], key: str, where: str, default: bool = False) -> bool:
    """A boolean field that falls back to ``default`` when absent."""
    value = opt_bool(d, key, where)
    return default if value is None else value


def opt_object(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """An optional JSON object field, returned as a new (shallow-copied) dict."""
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _wrong(where, key, "a JSON object", value)
    return dict(value)


def get_object(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """A JSON object field that is ``{}`` when absent."""
    value = opt_object(d, key, where)
    return {} if value is None else value


def opt_list(d: Mapping[str, Any], key: str, where: str) -> list[Any] | None:
    """An optional JSON array field, returned as a new list."""
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise _wrong(where, key, "an array", value)
    return list(value)


def get_list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A JSON array field that is ``[]`` when absent."""
    value = opt_list(d, key, where)
    return [] if value is None else value


def opt_str_list(d: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    """An optional array of strings; names the index of a non-string item."""
    items = opt_list(d, key, where)
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"{where}.{key}[{i}]: expected a string, got {type_name(item)}")
    return items


def get_str_list(d: Mapping[str, Any], key: str, where: str) -> list[str]:
    """An array of strings that is ``[]`` when absent."""
    value = opt_str_list(d, key, where)
    return [] if value is None else value


def object_items(d: Mapping[str, Any], key: str, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    """Items of an array of JSON objects, each paired with its error path ``where.key[i]``."""
    out = []
    for i, raw in enumerate(get_list(d, key, where)):
        item_where = f"{where}.{key}[{i}]"
        out.append((item_where, as_object(raw, item_where)))
    return out


def put(out: dict[str, Any], key: str, value: object) -> None:
    """Set ``out[key]`` unless ``value`` is ``None`` (unset fields stay out of the JSON)."""
    if value is not None:
        out[key] = value
