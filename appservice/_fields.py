"""Typed checks and readers for values of decoded JSON objects, shared by the model modules.

The ``check_*`` functions take a value and its path (such as ``"RespSync.rooms"``) and raise
``ValueError`` naming the path and the wrong type, so bad homeserver input is reported precisely
instead of surfacing later as an ``AttributeError``; ``appservice.codec`` builds on them. The
readers (``req_str``, ``opt_int``, ...) apply them to ``d[key]`` for hand-written parsers. A JSON
``null`` counts as absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import NoneType
from typing import Any, TypeVar

T = TypeVar("T")


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


def expected(path: str, what: str, value: object) -> ValueError:
    """The error for a value of the wrong type at ``path``."""
    return ValueError(f"{path}: expected {what}, got {type_name(value)}")


def as_object(value: object, where: str) -> Mapping[str, Any]:
    """Return ``value`` when it is a JSON object, else raise ``ValueError`` naming ``where``."""
    if not isinstance(value, Mapping):
        raise expected(where, "a JSON object", value)
    return value


def check_str(value: object, path: str) -> str:
    """``value`` when it is a string."""
    if isinstance(value, str):
        return value
    raise expected(path, "a string", value)


def check_bool(value: object, path: str) -> bool:
    """``value`` when it is a boolean."""
    if isinstance(value, bool):
        return value
    raise expected(path, "a boolean", value)


def check_int(value: object, path: str) -> int:
    """``value`` as an integer; booleans and fractional numbers are rejected."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise expected(path, "an integer", value)


def check_float(value: object, path: str) -> float:
    """``value`` as a float; booleans are rejected."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise expected(path, "a number", value)


def check_object(value: object, path: str) -> dict[str, Any]:
    """``value`` as a new (shallow-copied) dict when it is a JSON object."""
    return dict(as_object(value, path))


def check_list(value: object, path: str) -> list[Any]:
    """``value`` as a new list when it is a JSON array."""
    if isinstance(value, list | tuple):
        return list(value)
    raise expected(path, "an array", value)


def check_str_list(value: object, path: str) -> list[str]:
    """``value`` when it is an array of strings; names the index of a non-string item."""
    return [check_str(item, f"{path}[{i}]") for i, item in enumerate(check_list(value, path))]


def missing(where: str, key: str) -> ValueError:
    """The error for a required key that is absent."""
    return ValueError(f"{where}.{key}: missing required key")


def _read(
    d: Mapping[str, Any],
    key: str,
    where: str,
    check: Callable[[Any, str], T],
    fast: type[Any] = NoneType,
) -> T | None:
    """``check(d[key])``, ``None`` when absent; a value of exactly type ``fast`` is taken as is
    (the common case costs no error path)."""
    value = d.get(key)
    if value is None or type(value) is fast:
        return value
    return check(value, f"{where}.{key}")


def req_str(d: Mapping[str, Any], key: str, where: str) -> str:
    """A required string field."""
    value = _read(d, key, where, check_str, str)
    if value is None:
        raise missing(where, key)
    return value


def opt_str(d: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional string field (``None`` when absent)."""
    return _read(d, key, where, check_str, str)


def get_str(d: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    """A string field that falls back to ``default`` when absent."""
    value = _read(d, key, where, check_str, str)
    return default if value is None else value


def opt_int(d: Mapping[str, Any], key: str, where: str) -> int | None:
    """An optional integer field; booleans and fractional numbers are rejected."""
    return _read(d, key, where, check_int, int)


def opt_bool(d: Mapping[str, Any], key: str, where: str) -> bool | None:
    """An optional boolean field."""
    return _read(d, key, where, check_bool, bool)


def opt_object(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """An optional JSON object field, returned as a new (shallow-copied) dict."""
    value = d.get(key)
    return dict(value) if type(value) is dict else _read(d, key, where, check_object)


def get_object(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """A JSON object field that is ``{}`` when absent."""
    return opt_object(d, key, where) or {}


def get_list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A JSON array field that is ``[]`` when absent."""
    return _read(d, key, where, check_list) or []


def opt_str_list(d: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    """An optional array of strings; names the index of a non-string item."""
    return _read(d, key, where, check_str_list)


def put(out: dict[str, Any], key: str, value: object) -> None:
    """Set ``out[key]`` unless ``value`` is ``None`` (unset fields stay out of the JSON)."""
    if value is not None:
        out[key] = value
