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

    Subscripts and ``in`` rather than ``dict.get`` calls: a method call per key was the larger
    part of building an event.
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
    unsigned = d["unsigned"] if "unsigned" in d else None  # noqa: SIM401 - no call
    if (
        type(event_type) is str
        and event_type != _REDACTION
        and type(sender) is str
        and type(content) is dict
        and type(event_id) is str
        and type(room_id) is str
        and type(ts) is int
        and (unsigned is None or type(unsigned) is dict)
        and (state_key is None or type(state_key) is str)
        and "redacts" not in d
        and "prev_content" not in d
    ):
        if unsigned is None:
            unsigned, prev = {}, None
        else:
            unsigned = dict(unsigned)
            prev = unsigned["prev_content"] if "prev_content" in unsigned else None  # noqa: SIM401
        if prev is None or type(prev) is dict:
            return Event(
                event_type,
                sender,
                dict(content),
                state_key,
                ts,
                event_id,
                room_id,
                None,
                unsigned,
                None if prev is None else dict(prev),
            )
    return Event.from_dict(d)
