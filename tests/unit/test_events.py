"""Event parsing/serialisation and the message content dataclasses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from appservice.events import (
    AudioInfo,
    AudioMessage,
    Event,
    FileInfo,
    FileMessage,
    HTMLMessage,
    ImageInfo,
    ImageMessage,
    LocationMessage,
    TextMessage,
    ThumbnailInfo,
    VideoInfo,
    VideoMessage,
    get_html_message,
)

MESSAGE: dict[str, Any] = {
    "type": "m.room.message",
    "sender": "@alice:example.org",
    "content": {"msgtype": "m.text", "body": "hello"},
    "origin_server_ts": 1432735824653,
    "event_id": "$143273582443PhrSn:example.org",
    "room_id": "!jEsUZKDJdhlrceRyVU:example.org",
    "unsigned": {"age": 1234},
}


def test_from_dict_maps_wire_names() -> None:
    e = Event.from_dict(MESSAGE)
    assert e == Event(
        type="m.room.message",
        sender="@alice:example.org",
        content={"msgtype": "m.text", "body": "hello"},
        state_key=None,
        timestamp=1432735824653,
        id="$143273582443PhrSn:example.org",
        room_id="!jEsUZKDJdhlrceRyVU:example.org",
        unsigned={"age": 1234},
    )
    assert e.body() == "hello"
    assert e.message_type() == "m.text"
    assert not e.is_state()


def test_to_dict_round_trips_exactly() -> None:
    assert Event.from_dict(MESSAGE).to_dict() == MESSAGE


def test_to_dict_leaves_unset_fields_out() -> None:
    assert Event(type="m.typing", content={"user_ids": []}).to_dict() == {
        "type": "m.typing",
        "content": {"user_ids": []},
    }


def test_stripped_state_without_id_or_timestamp() -> None:
    raw = {"type": "m.room.name", "state_key": "", "sender": "@a:x", "content": {"name": "R"}}
    e = Event.from_dict(raw)
    assert (e.id, e.timestamp, e.state_key) == ("", 0, "")
    assert e.is_state()
    assert e.to_dict() == raw


def test_empty_state_key_is_kept_distinct_from_none() -> None:
    assert Event.from_dict({"type": "m.room.topic", "state_key": ""}).to_dict()["state_key"] == ""
    assert "state_key" not in Event.from_dict({"type": "m.room.message"}).to_dict()


def test_prev_content_from_unsigned_and_legacy_top_level() -> None:
    current = Event.from_dict(
        {
            "type": "m.room.member",
            "state_key": "@a:x",
            "content": {"membership": "join"},
            "unsigned": {"prev_content": {"membership": "invite"}, "age": 5},
        }
    )
    assert current.prev_content == {"membership": "invite"}
    legacy = Event.from_dict(
        {"type": "m.room.member", "state_key": "@a:x", "prev_content": {"membership": "leave"}}
    )
    assert legacy.prev_content == {"membership": "leave"}
    # prev_content is written where the current spec puts it.
    assert legacy.to_dict()["unsigned"] == {"prev_content": {"membership": "leave"}}
    assert "prev_content" not in legacy.to_dict()


def test_redacts_top_level_and_in_content_v11() -> None:
    old = Event.from_dict({"type": "m.room.redaction", "redacts": "$old", "content": {}})
    assert old.redacts == "$old"
    v11 = Event.from_dict({"type": "m.room.redaction", "content": {"redacts": "$new"}})
    assert v11.redacts == "$new"
    other = Event.from_dict({"type": "m.room.message", "content": {"redacts": "$x"}})
    assert other.redacts is None


def test_from_dict_does_not_share_content_with_input() -> None:
    raw: dict[str, Any] = {"type": "m.room.message", "content": {"body": "a"}}
    e = Event.from_dict(raw)
    e.content["body"] = "changed"
    assert raw["content"]["body"] == "a"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "Event: expected a JSON object, got array"),
        ("x", "Event: expected a JSON object, got string"),
        ({}, "Event.type: missing required key"),
        ({"type": 5}, "Event.type: expected a string, got number"),
        ({"type": "t", "content": []}, "Event.content: expected a JSON object, got array"),
        ({"type": "t", "content": "x"}, "Event.content: expected a JSON object, got string"),
        ({"type": "t", "state_key": 1}, "Event.state_key: expected a string, got number"),
        ({"type": "t", "origin_server_ts": "1"}, "Event.origin_server_ts: expected an integer"),
        ({"type": "t", "origin_server_ts": True}, "Event.origin_server_ts: expected an integer"),
        ({"type": "t", "sender": None, "event_id": ["$"]}, "Event.event_id: expected a string"),
        ({"type": "t", "unsigned": 3}, "Event.unsigned: expected a JSON object, got number"),
        (
            {"type": "t", "unsigned": {"prev_content": "x"}},
            "Event.unsigned.prev_content: expected a JSON object",
        ),
    ],
)
def test_from_dict_errors_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Event.from_dict(raw)


def test_body_and_msgtype_none_when_not_strings() -> None:
    e = Event(type="m.room.message", content={"body": 5, "msgtype": None})
    assert e.body() is None
    assert e.message_type() is None


def test_get_html_message_strips_tags_and_unescapes() -> None:
    html = '<b>Hello</b> <a href="https://x/?a=1&amp;b=2">world</a> &lt;3 &amp; &quot;you&quot;'
    msg = get_html_message("m.notice", html)
    assert msg == HTMLMessage(
        body='Hello world <3 & "you"',
        msgtype="m.notice",
        format="org.matrix.custom.html",
        formatted_body=html,
    )
    assert msg.to_dict() == {
        "msgtype": "m.notice",
        "body": 'Hello world <3 & "you"',
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    }


def test_text_message_leaves_format_out_when_unset() -> None:
    assert TextMessage("m.text", "hi").to_dict() == {"msgtype": "m.text", "body": "hi"}
    formatted = TextMessage("m.emote", "*waves*", formatted_body="<i>waves</i>", format="x")
    assert formatted.to_dict() == {
        "msgtype": "m.emote",
        "body": "*waves*",
        "format": "x",
        "formatted_body": "<i>waves</i>",
    }
    assert TextMessage.from_dict(formatted.to_dict()) == formatted


def test_image_message_exact_wire_shape() -> None:
    msg = ImageMessage(
        body="cat.png",
        url="mxc://example.org/abc",
        info=ImageInfo(
            height=480,
            width=640,
            mimetype="image/png",
            size=12345,
            thumbnail_url="mxc://example.org/thumb",
            thumbnail_info=ThumbnailInfo(height=48, width=64, mimetype="image/png", size=99),
        ),
    )
    wire = {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": "mxc://example.org/abc",
        "info": {
            "h": 480,
            "w": 640,
            "mimetype": "image/png",
            "size": 12345,
            "thumbnail_url": "mxc://example.org/thumb",
            "thumbnail_info": {"h": 48, "w": 64, "mimetype": "image/png", "size": 99},
        },
    }
    assert msg.to_dict() == wire
    assert ImageMessage.from_dict(wire) == msg


def test_media_messages_without_info_leave_it_out() -> None:
    for cls, msgtype in [
        (ImageMessage, "m.image"),
        (VideoMessage, "m.video"),
        (AudioMessage, "m.audio"),
        (FileMessage, "m.file"),
    ]:
        msg = cls(body="b", url="mxc://s/m")
        assert msg.to_dict() == {"msgtype": msgtype, "body": "b", "url": "mxc://s/m"}


@pytest.mark.parametrize(
    "msg",
    [
        VideoMessage(
            body="clip.mp4",
            url="mxc://s/v",
            info=VideoInfo(mimetype="video/mp4", duration=3000, height=720, width=1280, size=9),
        ),
        AudioMessage(body="a.ogg", url="mxc://s/a", info=AudioInfo("audio/ogg", 100, 2500)),
        FileMessage(
            body="doc",
            url="mxc://s/f",
            filename="doc.pdf",
            info=FileInfo(mimetype="application/pdf", size=10, thumbnail_url="mxc://s/t"),
        ),
        FileMessage(body="plain", url="mxc://s/f", info=FileInfo()),
        TextMessage("m.notice", "n"),
        LocationMessage(body="Big Ben", geo_uri="geo:51.5008,0.1247"),
    ],
)
def test_content_round_trip(msg: Any) -> None:
    assert type(msg).from_dict(msg.to_dict()) == msg


def test_info_keys_on_the_wire() -> None:
    assert VideoInfo(duration=3000, height=1, width=2).to_dict() == {
        "h": 1,
        "w": 2,
        "duration": 3000,
    }
    assert AudioInfo(duration=7).to_dict() == {"duration": 7}
    assert FileInfo(size=3).to_dict() == {"size": 3}


def test_location_thumbnail_goes_in_info_and_legacy_is_read() -> None:
    msg = LocationMessage(
        body="here",
        geo_uri="geo:1,2",
        thumbnail_url="mxc://s/t",
        thumbnail_info=ThumbnailInfo(width=10),
    )
    assert msg.to_dict() == {
        "msgtype": "m.location",
        "body": "here",
        "geo_uri": "geo:1,2",
        "info": {"thumbnail_url": "mxc://s/t", "thumbnail_info": {"w": 10}},
    }
    legacy = {"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2", "thumbnail_url": "u"}
    assert LocationMessage.from_dict(legacy).thumbnail_url == "u"


@pytest.mark.parametrize(
    ("cls", "raw", "message"),
    [
        (TextMessage, {"body": 1}, "TextMessage.body: expected a string, got number"),
        (ImageMessage, {"info": []}, "ImageMessage.info: expected a JSON object, got array"),
        (ImageMessage, {"info": {"h": "480"}}, "ImageMessage.info.h: expected an integer"),
        (ImageMessage, {"info": {"w": -1}}, "ImageMessage.info.w: expected a non-negative"),
        (
            ImageMessage,
            {"info": {"thumbnail_info": {"size": 1.5}}},
            "ImageMessage.info.thumbnail_info.size: expected an integer",
        ),
        (VideoMessage, {"url": 3}, "VideoMessage.url: expected a string"),
        (AudioMessage, {"info": {"duration": "1s"}}, "AudioMessage.info.duration"),
        (FileMessage, {"filename": False}, "FileMessage.filename: expected a string"),
        (LocationMessage, {"geo_uri": {}}, "LocationMessage.geo_uri: expected a string"),
        (HTMLMessage, [], "HTMLMessage: expected a JSON object"),
    ],
)
def test_content_from_dict_errors_name_the_field(cls: Any, raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cls.from_dict(raw)


def test_content_defaults_fill_missing_msgtype() -> None:
    assert ImageMessage.from_dict({"body": "x", "url": "u"}).msgtype == "m.image"
    assert TextMessage.from_dict({"body": "x"}).msgtype == "m.text"
