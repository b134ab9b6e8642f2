"""Splitting a transaction body into inbox items, parsed once with orjson.

No typed objects are built here: an item is ``(kind, room_id, payload)`` with the payload still the
decoded JSON object. Typed objects (Event, ToDeviceEvent, ...) are built by the dispatcher after
the homeserver has had its 200.
"""

from __future__ import annotations

from typing import Any

import orjson

from appservice.server.http import M_BAD_JSON, M_NOT_JSON, MatrixHTTPError

EVENT = "event"
EPHEMERAL = "ephemeral"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
OTK = "otk"
KINDS = (EVENT, EPHEMERAL, TO_DEVICE, DEVICE_LISTS, OTK)

RawItem = tuple[str, str, dict[str, Any]]
"""One inbox item before storage: kind, room id ('' when not in a room) and the JSON object."""

_EPHEMERAL_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")
_TO_DEVICE_KEYS = ("to_device", "de.sorunome.msc2409.to_device")
_DEVICE_LISTS_KEYS = ("device_lists", "org.matrix.msc3202.device_lists")
_OTK_KEYS = ("device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count")
_FALLBACK_KEYS = (
    "device_unused_fallback_key_types",
    "org.matrix.msc3202.device_unused_fallback_key_types",
)


def _bad(msg: str) -> MatrixHTTPError:
    return MatrixHTTPError(400, M_BAD_JSON, msg)


def _bad_event(events: list[Any], ev: Any) -> MatrixHTTPError:
    """The 400 for the malformed ``ev``, naming its index in ``events``."""
    i = next(i for i, e in enumerate(events) if e is ev)
    if type(ev) is not dict:
        return _bad(f"events[{i}] must be an object")
    return _bad(f"events[{i}] must have string 'type' and 'room_id'")


def _first(body: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value under the stable key, else under the unstable one (never both: no doubles)."""
    for key in keys:
        value = body.get(key)
        if value is not None:
            return value
    return None


def _typed_list(body: dict[str, Any], keys: tuple[str, ...], kind: str) -> list[RawItem]:
    value = _first(body, keys)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"'{keys[0]}' must be a list")
    items: list[RawItem] = []
    for i, obj in enumerate(value):
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise _bad(f"'{keys[0]}'[{i}] must be an object with a string 'type'")
        room_id = obj.get("room_id", "")
        items.append((kind, room_id if isinstance(room_id, str) else "", obj))
    return items


def parse_transaction(body: bytes) -> list[RawItem]:
    """Decode a ``PUT /transactions`` body into inbox items, in delivery order.

    A durable inbox stores the body and parses it again after a restart, where done marks name
    items by their index here: keep the order stable (a new kind of item goes last).

    Raises :class:`MatrixHTTPError` 400 ``M_NOT_JSON`` when the body is not JSON and
    ``M_BAD_JSON`` when it is JSON but not a transaction (no ``events`` list, an event that is
    not an object with string ``type`` and ``room_id``, a malformed ephemeral/to-device/MSC3202
    field).
    """
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MatrixHTTPError(400, M_NOT_JSON, "Body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise _bad("Transaction body must be a JSON object")
    events = decoded.get("events")
    if not isinstance(events, list):
        raise _bad("Transaction must have an 'events' list")
    items: list[RawItem] = []
    append = items.append
    for ev in events:  # the hot loop: subscripts, no calls; the index is found on error only
        try:
            room_id = ev["room_id"]
            event_type = ev["type"]
        except (KeyError, TypeError):
            raise _bad_event(events, ev) from None
        if type(ev) is not dict or type(event_type) is not str or type(room_id) is not str:
            raise _bad_event(events, ev)
        append((EVENT, room_id, ev))
    items += _typed_list(decoded, _EPHEMERAL_KEYS, EPHEMERAL)
    items += _typed_list(decoded, _TO_DEVICE_KEYS, TO_DEVICE)
    device_lists = _first(decoded, _DEVICE_LISTS_KEYS)
    if device_lists is not None:
        if not isinstance(device_lists, dict) or not all(
            isinstance(device_lists.get(k, []), list) for k in ("changed", "left")
        ):
            raise _bad("'device_lists' must be an object with 'changed' and 'left' lists")
        if device_lists.get("changed") or device_lists.get("left"):
            items.append((DEVICE_LISTS, "", device_lists))
    otk = _first(decoded, _OTK_KEYS)
    fallback = _first(decoded, _FALLBACK_KEYS)
    if otk is not None or fallback is not None:
        if not all(v is None or isinstance(v, dict) for v in (otk, fallback)):
            raise _bad("'device_one_time_keys_count' and fallback key types must be objects")
        if otk or fallback:
            items.append(
                (
                    OTK,
                    "",
                    {"one_time_keys_count": otk or {}, "unused_fallback_key_types": fallback or {}},
                )
            )
    return items
