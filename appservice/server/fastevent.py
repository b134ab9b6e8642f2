"""Building :class:`~appservice.events.Event` objects for dispatch, fast for the common shape.

Events from the homeserver are nearly always well formed; for those this builds the Event with a
few exact type checks (a third of the cost of ``Event.from_dict``). Anything unusual (a redaction,
a missing or oddly typed field) goes through ``Event.from_dict``, so the result and any
``ValueError`` are exactly what ``from_dict`` gives.
"""

from __future__ import annotations

from typing import Any

from appservice.events import Event

_REDACTION = "m.room.redaction"


def event_from_payload(d: dict[str, Any]) -> Event:
    """``Event.from_dict(d)``, with a fast path for well-formed room events.

    Subscripts and ``in`` rather than ``dict.get`` calls, and ``.copy()`` rather than ``dict()``:
    a method or type call per key was the larger part of building an event.
    """
    try:
        event_type = d["type"]
        sender = d["sender"]
        content = d["content"]
        event_id = d["event_id"]
        room_id = d["room_id"]
        ts = d["origin_server_ts"]
    except KeyError:
        return Event.from_dict(d)
    state_key = d["state_key"] if "state_key" in d else None  # noqa: SIM401 - no call
    if (
        "redacts" in d
        or "prev_content" in d
        or event_type == _REDACTION
        or type(event_type) is not str
        or type(sender) is not str
        or type(content) is not dict
        or type(event_id) is not str
        or type(room_id) is not str
        or type(ts) is not int
        or (state_key is not None and type(state_key) is not str)
    ):
        return _unusual(d)
    if "unsigned" not in d:
        return Event(event_type, sender, content.copy(), state_key, ts, event_id, room_id, None, {})
    unsigned = d["unsigned"]
    if type(unsigned) is not dict or "prev_content" in unsigned:
        return _unusual(d)
    return Event(
        event_type, sender, content.copy(), state_key, ts, event_id, room_id, None, unsigned.copy()
    )


def _unusual(d: dict[str, Any]) -> Event:
    """Events with a previous content, redactions and anything odd: ``from_dict``, with the
    objects copied so the event shares none with the payload (as on the fast path)."""
    event = Event.from_dict(d)
    event.content = dict(event.content)
    event.unsigned = dict(event.unsigned)
    if event.prev_content is not None:
        event.prev_content = dict(event.prev_content)
    return event
