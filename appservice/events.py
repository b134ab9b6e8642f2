"""Matrix events (``Event``) and the typed contents of ``m.room.message`` events.

``Event`` is what every layer passes around: the syncer, the appservice server and the room
state cache. The content dataclasses build and read message bodies (``m.text``, ``m.image``, ...)
with the JSON key names of the current spec; unset optional fields are left out of ``to_dict()``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from appservice._fields import (
    as_object,
    get_object,
    get_str,
    opt_int,
    opt_object,
    opt_str,
    put,
    req_str,
)
from appservice.codec import decode, encode, wire

HTML_FORMAT = "org.matrix.custom.html"
_HTML_TAG = re.compile(r"<[^<]+?>")


class EventContent(Protocol):
    """Anything that serialises to an event ``content`` object (the content dataclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object to send as the event content."""
        ...


@dataclass
class Event:
    """One Matrix event: a room event, state event, stripped state, ephemeral or to-device event.

    ``timestamp`` is ``origin_server_ts`` and ``id`` is ``event_id`` on the wire.
    ``prev_content`` is read from ``unsigned.prev_content`` (or a legacy top-level key).
    """

    type: str
    sender: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    state_key: str | None = None
    timestamp: int = 0
    id: str = ""
    room_id: str = ""
    redacts: str | None = None
    unsigned: dict[str, Any] = field(default_factory=dict)
    prev_content: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "Event") -> Event:
        """Parse a decoded JSON event; ``ValueError`` naming the key on a missing type or bad field.

        ``event_id``, ``origin_server_ts``, ``sender`` and ``room_id`` may be absent (stripped
        state, ephemeral and to-device events have none of them).
        """
        d = as_object(d, where)
        event_type = req_str(d, "type", where)
        content = get_object(d, "content", where)
        unsigned = get_object(d, "unsigned", where)
        prev_content = opt_object(d, "prev_content", where)
        if prev_content is None:
            prev_content = opt_object(unsigned, "prev_content", f"{where}.unsigned")
        redacts = opt_str(d, "redacts", where)
        if redacts is None and event_type == "m.room.redaction":
            redacts = opt_str(content, "redacts", f"{where}.content")
        return cls(
            type=event_type,
            sender=get_str(d, "sender", where),
            content=content,
            state_key=opt_str(d, "state_key", where),
            timestamp=opt_int(d, "origin_server_ts", where) or 0,
            id=get_str(d, "event_id", where),
            room_id=get_str(d, "room_id", where),
            redacts=redacts,
            unsigned=unsigned,
            prev_content=prev_content,
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as spec JSON; empty/unset fields are left out, ``prev_content`` in unsigned."""
        out: dict[str, Any] = {"type": self.type, "content": dict(self.content)}
        if self.sender:
            out["sender"] = self.sender
        put(out, "state_key", self.state_key)
        if self.timestamp:
            out["origin_server_ts"] = self.timestamp
        if self.id:
            out["event_id"] = self.id
        if self.room_id:
            out["room_id"] = self.room_id
        put(out, "redacts", self.redacts)
        unsigned = dict(self.unsigned)
        if self.prev_content is not None:
            unsigned["prev_content"] = dict(self.prev_content)
        if unsigned:
            out["unsigned"] = unsigned
        return out

    def body(self) -> str | None:
        """``content.body`` when it is a string, else ``None``."""
        value = self.content.get("body")
        return value if isinstance(value, str) else None

    def message_type(self) -> str | None:
        """``content.msgtype`` when it is a string, else ``None``."""
        value = self.content.get("msgtype")
        return value if isinstance(value, str) else None

    def is_state(self) -> bool:
        """True for a state event (one that has a ``state_key``, possibly empty)."""
        return self.state_key is not None


def _non_negative(value: int, path: str) -> None:
    if value < 0:
        raise ValueError(f"{path}: expected a non-negative integer, got {value}")


def _uint(name: str | None = None) -> Any:
    """An optional non-negative integer field (sizes, dimensions, durations)."""
    return field(default=None, metadata=wire(name, check=_non_negative))


@dataclass
class ThumbnailInfo:
    """Size and type of a thumbnail image (JSON ``h``/``w``/``mimetype``/``size``)."""

    height: int | None = _uint("h")
    width: int | None = _uint("w")
    mimetype: str | None = None
    size: int | None = _uint()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ThumbnailInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class ImageInfo:
    """Metadata of an ``m.image``: dimensions, type, size and an optional thumbnail."""

    height: int | None = _uint("h")
    width: int | None = _uint("w")
    mimetype: str | None = None
    size: int | None = _uint()
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ImageInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class VideoInfo:
    """Metadata of an ``m.video``: type, thumbnail, dimensions, duration (ms) and size."""

    mimetype: str | None = None
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None
    height: int | None = _uint("h")
    width: int | None = _uint("w")
    duration: int | None = _uint()
    size: int | None = _uint()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "VideoInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class FileInfo:
    """Metadata of an ``m.file``: type, size and an optional thumbnail."""

    mimetype: str | None = None
    size: int | None = _uint()
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "FileInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class AudioInfo:
    """Metadata of an ``m.audio``: type, size and duration in milliseconds."""

    mimetype: str | None = None
    size: int | None = _uint()
    duration: int | None = _uint()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "AudioInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class TextMessage:
    """An ``m.text``/``m.notice``/``m.emote`` body, optionally with a formatted (HTML) body."""

    msgtype: str = "m.text"
    body: str = ""
    formatted_body: str | None = None
    format: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "TextMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class HTMLMessage:
    """A message with an HTML ``formatted_body`` and its plain-text ``body``."""

    body: str = ""
    msgtype: str = "m.text"
    format: str = HTML_FORMAT
    formatted_body: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "HTMLMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (all four keys are always present)."""
        return encode(self)


def get_html_message(msgtype: str, html_text: str) -> HTMLMessage:
    """An ``HTMLMessage`` whose body is ``html_text`` with tags stripped and entities unescaped."""
    return HTMLMessage(
        body=html.unescape(_HTML_TAG.sub("", html_text)),
        msgtype=msgtype,
        format=HTML_FORMAT,
        formatted_body=html_text,
    )


@dataclass
class ImageMessage:
    """An ``m.image`` message: caption/filename ``body``, ``mxc://`` ``url`` and ``info``."""

    msgtype: str = "m.image"
    body: str = ""
    url: str = ""
    info: ImageInfo | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ImageMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class VideoMessage:
    """An ``m.video`` message: ``body``, ``mxc://`` ``url`` and ``info``."""

    msgtype: str = "m.video"
    body: str = ""
    url: str = ""
    info: VideoInfo | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "VideoMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class FileMessage:
    """An ``m.file`` message: ``body``, ``mxc://`` ``url``, optional ``filename`` and ``info``."""

    msgtype: str = "m.file"
    body: str = ""
    url: str = ""
    filename: str | None = None
    info: FileInfo | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "FileMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class AudioMessage:
    """An ``m.audio`` message: ``body``, ``mxc://`` ``url`` and ``info``."""

    msgtype: str = "m.audio"
    body: str = ""
    url: str = ""
    info: AudioInfo | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "AudioMessage") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


def _opt_thumbnail(d: Mapping[str, Any], where: str) -> ThumbnailInfo | None:
    raw = d.get("thumbnail_info")
    return None if raw is None else ThumbnailInfo.from_dict(raw, where=f"{where}.thumbnail_info")


@dataclass
class LocationMessage:
    """An ``m.location`` message: ``body`` and a ``geo:`` URI, optionally with a thumbnail.

    The thumbnail travels in ``info`` as the spec says (a top-level one is also read).
    """

    msgtype: str = "m.location"
    body: str = ""
    geo_uri: str = ""
    thumbnail_url: str | None = None
    thumbnail_info: ThumbnailInfo | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "LocationMessage") -> Self:
        """Parse from JSON; the thumbnail is read from ``info``, else from the top level."""
        d = as_object(d, where)
        info = get_object(d, "info", where)
        url = opt_str(info, "thumbnail_url", f"{where}.info")
        thumbnail = _opt_thumbnail(info, f"{where}.info")
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.location"),
            body=get_str(d, "body", where),
            geo_uri=get_str(d, "geo_uri", where),
            thumbnail_url=opt_str(d, "thumbnail_url", where) if url is None else url,
            thumbnail_info=_opt_thumbnail(d, where) if thumbnail is None else thumbnail,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out; the thumbnail goes in ``info``."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "geo_uri": self.geo_uri}
        info: dict[str, Any] = {}
        put(info, "thumbnail_url", self.thumbnail_url)
        if self.thumbnail_info is not None:
            info["thumbnail_info"] = self.thumbnail_info.to_dict()
        if info:
            out["info"] = info
        return out
