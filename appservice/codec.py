"""One JSON codec for the model dataclasses, driven by ``dataclasses.fields()`` and type hints.

Each model spells out ``from_dict`` as ``decode(cls, d, where)`` and ``to_dict`` as
``encode(self)``. The rules, worked out once per class from its resolved type hints:

- decoding: a field with no default is required (``"<where>.<key>: missing required key"``);
  an absent key or JSON ``null`` leaves the dataclass default; values are type-checked
  (``bool`` is not an ``int``; a whole float is an ``int``) and errors name the path
  (``RespSync.rooms.join[!r:x].timeline.events[0]: ...``); nested models are read with their
  own ``from_dict(raw, where=path)``, so hand-written special cases (``Event``) are honoured;
- encoding: ``None`` fields are left out (never sent as ``null``), lists and dicts are copied
  and nested models written with their own ``to_dict()``.

Per-field options come from ``field(metadata=wire(...))``: the JSON name, leaving empty values
out, a value check, or a custom decoder/encoder for a shape the type alone cannot describe.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from appservice._fields import (
    as_object,
    check_bool,
    check_float,
    check_int,
    check_list,
    check_object,
    check_str,
    missing,
)

T = TypeVar("T")

Decoder = Callable[[Any, str], Any]
"""Turns a raw JSON value (never ``None``) at ``path`` into a field value, or raises."""

Encoder = Callable[[Any], Any]
"""Turns a field value (never ``None``) into JSON."""

Check = Callable[[Any, str], None]
"""Validates a decoded value at ``path``; raises ``ValueError`` to reject it."""

_WIRE = "appservice.codec"


@dataclasses.dataclass(frozen=True)
class Wire:
    """JSON options of one field (see ``wire``)."""

    name: str | None = None
    omit_empty: bool = False
    check: Check | None = None
    decode: Decoder | None = None
    encode: Encoder | None = None


def wire(
    name: str | None = None,
    *,
    omit_empty: bool = False,
    check: Check | None = None,
    decode: Decoder | None = None,
    encode: Encoder | None = None,
) -> dict[str, Any]:
    """Field metadata: JSON key ``name`` (default: the field name); ``omit_empty`` leaves a
    falsy value (``""``, ``0``, ``False``, ``[]``, ``{}``) out of ``to_dict``; ``check(value,
    path)`` validates a decoded value; ``decode(raw, path)``/``encode(value)`` replace the rules
    the type would give."""
    return {_WIRE: Wire(name, omit_empty, check, decode, encode)}


def _any(value: Any, path: str) -> Any:
    return value


def _list_of(item: Decoder) -> Decoder:
    def read(value: Any, path: str) -> list[Any]:
        return [item(x, f"{path}[{i}]") for i, x in enumerate(check_list(value, path))]

    return read


def _dict_of(item: Decoder) -> Decoder:
    def read(value: Any, path: str) -> dict[str, Any]:
        return {k: item(v, f"{path}[{k}]") for k, v in as_object(value, path).items()}

    return read


def _model(tp: Any) -> Decoder:
    def read(value: Any, path: str) -> Any:
        return tp.from_dict(value, where=path)

    return read


_SCALARS: dict[Any, Decoder] = {
    str: check_str,
    bool: check_bool,
    int: check_int,
    float: check_float,
    Any: _any,
}


def _decoder(hint: Any) -> Decoder:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SCALARS:
        return _SCALARS[hint]
    if origin is list:
        return _list_of(_decoder(args[0]))
    if origin is dict and args[0] is str:
        return check_object if args[1] is Any else _dict_of(_decoder(args[1]))
    if dataclasses.is_dataclass(hint) and hasattr(hint, "from_dict"):
        return _model(hint)
    raise TypeError(f"codec: no rule to read {hint!r}; give the field wire(decode=...)")


def _encoder(hint: Any) -> Encoder | None:
    """``None`` when the value is written as is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        item = _encoder(args[0])
        return list if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        value = _encoder(args[1])
        return dict if value is None else (lambda v: {k: value(x) for k, x in v.items()})
    if hint in _SCALARS:
        return None
    return _to_dict


def _to_dict(value: Any) -> Any:
    return value.to_dict()


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str
    required: bool
    omit_empty: bool
    check: Check | None
    decode: Decoder
    encode: Encoder | None


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _without_none(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not types.NoneType]
        return args[0] if len(args) == 1 else hint
    return hint


def _plan(cls: type) -> tuple[_Field, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(_field(f, _without_none(hints[f.name])) for f in dataclasses.fields(cls))
        _PLANS[cls] = plan
    return plan


def _field(f: dataclasses.Field[Any], hint: Any) -> _Field:
    opts: Wire = f.metadata.get(_WIRE, Wire())
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return _Field(
        name=f.name,
        key=opts.name or f.name,
        required=required,
        omit_empty=opts.omit_empty,
        check=opts.check,
        decode=opts.decode or _decoder(hint),
        encode=opts.encode or _encoder(hint),
    )


def decode(cls: type[T], d: object, where: str) -> T:
    """Build dataclass ``cls`` from decoded JSON ``d``; ``ValueError`` naming ``where.key``."""
    obj = as_object(d, where)
    kwargs: dict[str, Any] = {}
    for f in _plan(cls):
        raw = obj.get(f.key)
        if raw is None:
            if f.required:
                raise missing(where, f.key)
            continue
        path = f"{where}.{f.key}"
        value = f.decode(raw, path)
        if f.check is not None:
            f.check(value, path)
        kwargs[f.name] = value
    return cls(**kwargs)


def encode(obj: object) -> dict[str, Any]:
    """The JSON object for dataclass instance ``obj``; ``None`` (and opted-out empty) left out."""
    out: dict[str, Any] = {}
    for f in _plan(type(obj)):
        value = getattr(obj, f.name)
        if value is None or (f.omit_empty and not value):
            continue
        out[f.key] = value if f.encode is None else f.encode(value)
    return out
