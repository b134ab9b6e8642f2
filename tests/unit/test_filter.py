"""Sync filters: wire shape, validation and defaults."""

from __future__ import annotations

import re
from typing import Any

import pytest

from appservice.filter import (
    Filter,
    FilterPart,
    FilterRoom,
    RoomFilter,
    default_filter,
    default_filter_part,
)


def test_default_filter_part_is_limit_20() -> None:
    part = default_filter_part()
    assert part.limit == 20
    assert part.to_dict() == {"limit": 20}


def test_default_filter_matches_gomatrix() -> None:
    f = default_filter()
    f.validate()
    assert f.to_dict() == {
        "account_data": {"limit": 20},
        "event_format": "client",
        "presence": {"limit": 20},
        "room": {
            "account_data": {"limit": 20},
            "ephemeral": {"limit": 20},
            "state": {"limit": 20},
            "timeline": {"limit": 20},
        },
    }


def test_default_filter_parts_are_independent() -> None:
    f = default_filter()
    assert f.room is not None
    assert f.room.timeline is not None
    f.room.timeline.limit = 5
    assert f.room.state is not None
    assert f.room.state.limit == 20
    assert default_filter().room == RoomFilter(
        account_data=FilterPart(limit=20),
        ephemeral=FilterPart(limit=20),
        state=FilterPart(limit=20),
        timeline=FilterPart(limit=20),
    )


@pytest.mark.parametrize("fmt", ["client", "federation"])
def test_validate_accepts_known_formats(fmt: str) -> None:
    Filter(event_format=fmt).validate()


@pytest.mark.parametrize("fmt", [None, "", "Client", "json"])
def test_validate_rejects_other_formats(fmt: str | None) -> None:
    with pytest.raises(ValueError, match="event_format: must be 'client' or 'federation'"):
        Filter(event_format=fmt).validate()


def test_empty_filter_serialises_to_empty_object() -> None:
    assert Filter().to_dict() == {}
    assert RoomFilter().to_dict() == {}
    assert FilterPart().to_dict() == {}


def test_full_filter_round_trip_with_spec_names() -> None:
    wire: dict[str, Any] = {
        "event_fields": ["type", "content", "sender"],
        "event_format": "client",
        "presence": {"not_senders": ["@spam:x"], "types": ["m.presence"]},
        "account_data": {"limit": 1, "not_types": ["m.push_rules"]},
        "room": {
            "rooms": ["!a:x"],
            "not_rooms": ["!b:x"],
            "include_leave": True,
            "ephemeral": {"types": ["m.typing", "m.receipt"]},
            "state": {"lazy_load_members": True, "include_redundant_members": False},
            "timeline": {
                "limit": 10,
                "senders": ["@a:x"],
                "rooms": ["!a:x"],
                "not_rooms": ["!c:x"],
                "contains_url": True,
                "unread_thread_notifications": True,
            },
        },
    }
    f = Filter.from_dict(wire)
    assert f.room is not None
    assert f.room.timeline is not None
    assert f.room.timeline.contains_url is True
    assert f.room.include_leave is True
    assert f.to_dict() == wire


def test_false_values_are_kept_not_dropped() -> None:
    assert FilterPart(contains_url=False, limit=0).to_dict() == {"contains_url": False, "limit": 0}


def test_filter_room_alias() -> None:
    assert FilterRoom is RoomFilter


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "Filter: expected a JSON object, got array"),
        ({"event_format": 1}, "Filter.event_format: expected a string"),
        ({"event_fields": "type"}, "Filter.event_fields: expected an array"),
        ({"event_fields": ["type", 2]}, "Filter.event_fields[1]: expected a string, got number"),
        ({"room": []}, "Filter.room: expected a JSON object"),
        ({"room": {"timeline": {"limit": "10"}}}, "Filter.room.timeline.limit: expected an int"),
        ({"room": {"state": {"limit": -1}}}, "Filter.room.state.limit: must not be negative"),
        ({"room": {"include_leave": "yes"}}, "Filter.room.include_leave: expected a boolean"),
        ({"presence": {"senders": [None]}}, "Filter.presence.senders[0]: expected a string"),
        ({"account_data": {"contains_url": 1}}, "Filter.account_data.contains_url: expected a b"),
    ],
)
def test_from_dict_errors_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Filter.from_dict(raw)


def test_to_dict_returns_copies() -> None:
    part = FilterPart(types=["m.room.message"])
    out = part.to_dict()
    out["types"].append("x")
    assert part.types == ["m.room.message"]
