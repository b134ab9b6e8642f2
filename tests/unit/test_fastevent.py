"""The dispatcher's fast Event builder gives exactly what ``Event.from_dict`` gives, or the same
error, for every shape of event, and never shares the payload's nested objects."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appservice.events import Event
from appservice.server.fastevent import event_from_payload

MESSAGE = {
    "type": "m.room.message",
    "sender": "@alice:x",
    "content": {"msgtype": "m.text", "body": "hi"},
    "event_id": "$e",
    "room_id": "!r:x",
    "origin_server_ts": 5,
    "unsigned": {"age": 1},
}

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=3),
    st.dictionaries(st.sampled_from(["body", "membership", "prev_content"]), st.integers(0, 2)),
    st.lists(st.integers(0, 2), max_size=2),
)
_keys = st.sampled_from(
    [
        "type",
        "sender",
        "content",
        "event_id",
        "room_id",
        "origin_server_ts",
        "unsigned",
        "state_key",
        "redacts",
        "prev_content",
    ]
)


def _outcome(build: Any, d: dict[str, Any]) -> Any:
    try:
        return build(d)
    except ValueError as exc:
        return ("ValueError", str(exc))


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(_keys, _values, max_size=4), dropped=st.sets(_keys, max_size=3))
def test_matches_from_dict_for_any_shape(changes: dict[str, Any], dropped: set[str]) -> None:
    d = {k: v for k, v in {**MESSAGE, **changes}.items() if k not in dropped}
    assert _outcome(event_from_payload, d) == _outcome(Event.from_dict, d)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"state_key": "@bob:x", "type": "m.room.member", "content": {"membership": "join"}},
        {"unsigned": {"age": 1, "prev_content": {"membership": "invite"}}},
        {"unsigned": {"prev_content": 7}},
        {"prev_content": {"membership": "leave"}},
        {"type": "m.room.redaction", "redacts": "$x"},
        {"redacts": "$x"},
        {"unsigned": None},
        {"state_key": None},
        {"origin_server_ts": True},
    ],
)
def test_matches_from_dict_for_common_shapes(extra: dict[str, Any]) -> None:
    d = {**MESSAGE, **extra}
    assert _outcome(event_from_payload, d) == _outcome(Event.from_dict, d)


def test_the_event_does_not_share_the_payloads_objects() -> None:
    d = {**MESSAGE, "unsigned": {"age": 1, "prev_content": {"body": "old"}}}
    event = event_from_payload(d)
    event.content["body"] = "changed"
    event.unsigned["age"] = 99
    assert event.prev_content is not None
    event.prev_content["body"] = "changed"
    assert d["content"] == {"msgtype": "m.text", "body": "hi"}
    assert d["unsigned"] == {"age": 1, "prev_content": {"body": "old"}}
