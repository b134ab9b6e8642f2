"""Room state cache."""

from __future__ import annotations

import pytest

from appservice.events import Event
from appservice.room import Room

ROOM = "!room:example.org"


def member(user_id: str, membership: object, event_id: str = "") -> Event:
    return Event(
        type="m.room.member",
        sender=user_id,
        state_key=user_id,
        content={"membership": membership},
        id=event_id,
        room_id=ROOM,
    )


def test_new_room_is_empty() -> None:
    room = Room(ROOM)
    assert room.id == ROOM
    assert room.state == {}
    assert room.get_state_event("m.room.name", "") is None


def test_update_state_stores_by_type_and_state_key() -> None:
    room = Room(ROOM)
    name = Event(type="m.room.name", state_key="", content={"name": "Hall"})
    alice = member("@alice:x", "join")
    room.update_state(name)
    room.update_state(alice)
    assert room.get_state_event("m.room.name", "") is name
    assert room.get_state_event("m.room.member", "@alice:x") is alice
    assert room.get_state_event("m.room.member", "@bob:x") is None
    assert room.state == {"m.room.name": {"": name}, "m.room.member": {"@alice:x": alice}}


def test_later_event_replaces_earlier_for_same_key_only() -> None:
    room = Room(ROOM)
    room.update_state(member("@alice:x", "invite", "$1"))
    room.update_state(member("@bob:x", "join", "$2"))
    room.update_state(member("@alice:x", "join", "$3"))
    alice = room.get_state_event("m.room.member", "@alice:x")
    assert alice is not None
    assert alice.id == "$3"
    bob = room.get_state_event("m.room.member", "@bob:x")
    assert bob is not None
    assert bob.id == "$2"


def test_membership_state() -> None:
    room = Room(ROOM)
    room.update_state(member("@alice:x", "join"))
    room.update_state(member("@bob:x", "ban"))
    room.update_state(member("@carol:x", 5))
    assert room.get_membership_state("@alice:x") == "join"
    assert room.get_membership_state("@bob:x") == "ban"
    assert room.get_membership_state("@carol:x") == "leave"
    assert room.get_membership_state("@nobody:x") == "leave"
    room.state["m.room.member"]["@dave:x"] = Event(
        type="m.room.member", state_key="@dave:x", content={}
    )
    assert room.get_membership_state("@dave:x") == "leave"


def test_non_state_event_is_rejected_and_room_unchanged() -> None:
    room = Room(ROOM)
    msg = Event(type="m.room.message", id="$msg", content={"body": "hi"})
    with pytest.raises(ValueError, match=r"m\.room\.message event \$msg .* no state_key"):
        room.update_state(msg)
    assert room.state == {}


def test_event_for_other_room_is_rejected() -> None:
    room = Room(ROOM)
    other = Event(type="m.room.name", state_key="", room_id="!other:x", id="$e")
    with pytest.raises(ValueError, match=r"belongs to room !other:x"):
        room.update_state(other)
    assert room.state == {}


def test_room_id_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="room_id must be a string"):
        Room(None)  # type: ignore[arg-type]


def test_dict_round_trip() -> None:
    room = Room(ROOM)
    room.update_state(Event(type="m.room.create", state_key="", content={"room_version": "12"}))
    room.update_state(member("@alice:x", "join", "$a"))
    data = room.to_dict()
    assert data["room_id"] == ROOM
    assert len(data["state"]) == 2
    again = Room.from_dict(data)
    assert again == room
    assert again.get_membership_state("@alice:x") == "join"


def test_from_dict_rejects_bad_state() -> None:
    with pytest.raises(ValueError, match=r"Room.state\[0\]: a state event needs a state_key"):
        Room.from_dict({"room_id": ROOM, "state": [{"type": "m.room.message"}]})
    with pytest.raises(ValueError, match=r"Room.state\[1\].content: expected a JSON object"):
        Room.from_dict(
            {
                "room_id": ROOM,
                "state": [{"type": "a", "state_key": ""}, {"type": "b", "content": 1}],
            }
        )
    with pytest.raises(ValueError, match=r"Room\.room_id: missing required key"):
        Room.from_dict({"state": []})
