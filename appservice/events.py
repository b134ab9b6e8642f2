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


def _opt_uint(d: Mapping[str, Any], key: str, where: str) -> int | None:
    value = opt_int(d, key, where)
    if value is not None and value < 0:
        raise ValueError(f"{where}.{key}: expected a non-negative integer, got {value}")
    return value


@dataclass
class ThumbnailInfo:
    """Size and type of a thumbnail image (JSON ``h``/``w``/``mimetype``/``size``)."""

    height: int | None = None
    width: int | None = None
    mimetype: str | None = None
    size: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ThumbnailInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            height=_opt_uint(d, "h", where),
            width=_opt_uint(d, "w", where),
            mimetype=opt_str(d, "mimetype", where),
            size=_opt_uint(d, "size", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "h", self.height)
        put(out, "w", self.width)
        put(out, "mimetype", self.mimetype)
        put(out, "size", self.size)
        return out


def _opt_thumbnail(d: Mapping[str, Any], where: str) -> ThumbnailInfo | None:
    raw = opt_object(d, "thumbnail_info", where)
    if raw is None:
        return None
    return ThumbnailInfo.from_dict(raw, where=f"{where}.thumbnail_info")


def _put_thumbnail(out: dict[str, Any], url: str | None, info: ThumbnailInfo | None) -> None:
    put(out, "thumbnail_url", url)
    if info is not None:
        out["thumbnail_info"] = info.to_dict()


@dataclass
class ImageInfo:
    """Metadata of an ``m.image``: dimensions, type, size and an optional thumbnail."""

    height: int | None = None
    width: int | None = None
    mimetype: str | None = None
    size: int | None = None
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ImageInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            height=_opt_uint(d, "h", where),
            width=_opt_uint(d, "w", where),
            mimetype=opt_str(d, "mimetype", where),
            size=_opt_uint(d, "size", where),
            thumbnail_info=_opt_thumbnail(d, where),
            thumbnail_url=opt_str(d, "thumbnail_url", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "h", self.height)
        put(out, "w", self.width)
        put(out, "mimetype", self.mimetype)
        put(out, "size", self.size)
        _put_thumbnail(out, self.thumbnail_url, self.thumbnail_info)
        return out


@dataclass
class VideoInfo:
    """Metadata of an ``m.video``: type, thumbnail, dimensions, duration (ms) and size."""

    mimetype: str | None = None
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None
    height: int | None = None
    width: int | None = None
    duration: int | None = None
    size: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "VideoInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            mimetype=opt_str(d, "mimetype", where),
            thumbnail_info=_opt_thumbnail(d, where),
            thumbnail_url=opt_str(d, "thumbnail_url", where),
            height=_opt_uint(d, "h", where),
            width=_opt_uint(d, "w", where),
            duration=_opt_uint(d, "duration", where),
            size=_opt_uint(d, "size", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "mimetype", self.mimetype)
        _put_thumbnail(out, self.thumbnail_url, self.thumbnail_info)
        put(out, "h", self.height)
        put(out, "w", self.width)
        put(out, "duration", self.duration)
        put(out, "size", self.size)
        return out


@dataclass
class FileInfo:
    """Metadata of an ``m.file``: type, size and an optional thumbnail."""

    mimetype: str | None = None
    size: int | None = None
    thumbnail_info: ThumbnailInfo | None = None
    thumbnail_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "FileInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            mimetype=opt_str(d, "mimetype", where),
            size=_opt_uint(d, "size", where),
            thumbnail_info=_opt_thumbnail(d, where),
            thumbnail_url=opt_str(d, "thumbnail_url", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "mimetype", self.mimetype)
        put(out, "size", self.size)
        _put_thumbnail(out, self.thumbnail_url, self.thumbnail_info)
        return out


@dataclass
class AudioInfo:
    """Metadata of an ``m.audio``: type, size and duration in milliseconds."""

    mimetype: str | None = None
    size: int | None = None
    duration: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "AudioInfo") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            mimetype=opt_str(d, "mimetype", where),
            size=_opt_uint(d, "size", where),
            duration=_opt_uint(d, "duration", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "mimetype", self.mimetype)
        put(out, "size", self.size)
        put(out, "duration", self.duration)
        return out


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
        d = as_object(d, where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.text"),
            body=get_str(d, "body", where),
            formatted_body=opt_str(d, "formatted_body", where),
            format=opt_str(d, "format", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body}
        put(out, "format", self.format)
        put(out, "formatted_body", self.formatted_body)
        return out


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
        d = as_object(d, where)
        return cls(
            body=get_str(d, "body", where),
            msgtype=get_str(d, "msgtype", where, "m.text"),
            format=get_str(d, "format", where, HTML_FORMAT),
            formatted_body=get_str(d, "formatted_body", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (all four keys are always present)."""
        return {
            "msgtype": self.msgtype,
            "body": self.body,
            "format": self.format,
            "formatted_body": self.formatted_body,
        }


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
        d = as_object(d, where)
        info = opt_object(d, "info", where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.image"),
            body=get_str(d, "body", where),
            url=get_str(d, "url", where),
            info=None if info is None else ImageInfo.from_dict(info, where=f"{where}.info"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "url": self.url}
        if self.info is not None:
            out["info"] = self.info.to_dict()
        return out


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
        d = as_object(d, where)
        info = opt_object(d, "info", where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.video"),
            body=get_str(d, "body", where),
            url=get_str(d, "url", where),
            info=None if info is None else VideoInfo.from_dict(info, where=f"{where}.info"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "url": self.url}
        if self.info is not None:
            out["info"] = self.info.to_dict()
        return out


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
        d = as_object(d, where)
        info = opt_object(d, "info", where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.file"),
            body=get_str(d, "body", where),
            url=get_str(d, "url", where),
            filename=opt_str(d, "filename", where),
            info=None if info is None else FileInfo.from_dict(info, where=f"{where}.info"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "url": self.url}
        put(out, "filename", self.filename)
        if self.info is not None:
            out["info"] = self.info.to_dict()
        return out


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
        d = as_object(d, where)
        info = opt_object(d, "info", where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.audio"),
            body=get_str(d, "body", where),
            url=get_str(d, "url", where),
            info=None if info is None else AudioInfo.from_dict(info, where=f"{where}.info"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "url": self.url}
        if self.info is not None:
            out["info"] = self.info.to_dict()
        return out


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
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        info = get_object(d, "info", where)
        info_where = f"{where}.info"
        thumbnail_url = opt_str(info, "thumbnail_url", info_where)
        thumbnail_info = _opt_thumbnail(info, info_where)
        if thumbnail_url is None:
            thumbnail_url = opt_str(d, "thumbnail_url", where)
        if thumbnail_info is None:
            thumbnail_info = _opt_thumbnail(d, where)
        return cls(
            msgtype=get_str(d, "msgtype", where, "m.location"),
            body=get_str(d, "body", where),
            geo_uri=get_str(d, "geo_uri", where),
            thumbnail_url=thumbnail_url,
            thumbnail_info=thumbnail_info,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body, "geo_uri": self.geo_uri}
        info: dict[str, Any] = {}
        _put_thumbnail(info, self.thumbnail_url, self.thumbnail_info)
        if info:
            out["info"] = info
        return out
