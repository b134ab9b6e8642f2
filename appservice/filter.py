"""Sync filters (``POST /user/{userId}/filter``): ``Filter``, ``RoomFilter`` and ``FilterPart``.

Field names follow the current spec; unset fields are left out of ``to_dict()`` so the server
applies its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from appservice._fields import (
    as_object,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    opt_str_list,
    put,
)

EVENT_FORMATS: Final = ("client", "federation")


def _copy(items: list[str] | None) -> list[str] | None:
    return None if items is None else list(items)


@dataclass
class FilterPart:
    """Rules for one category of events (the spec's ``EventFilter``/``RoomEventFilter``)."""

    not_rooms: list[str] | None = None
    rooms: list[str] | None = None
    limit: int | None = None
    not_senders: list[str] | None = None
    not_types: list[str] | None = None
    senders: list[str] | None = None
    types: list[str] | None = None
    contains_url: bool | None = None
    lazy_load_members: bool | None = None
    include_redundant_members: bool | None = None
    unread_thread_notifications: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "FilterPart") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type or bad limit."""
        d = as_object(d, where)
        limit = opt_int(d, "limit", where)
        if limit is not None and limit < 0:
            raise ValueError(f"{where}.limit: must not be negative, got {limit}")
        return cls(
            not_rooms=opt_str_list(d, "not_rooms", where),
            rooms=opt_str_list(d, "rooms", where),
            limit=limit,
            not_senders=opt_str_list(d, "not_senders", where),
            not_types=opt_str_list(d, "not_types", where),
            senders=opt_str_list(d, "senders", where),
            types=opt_str_list(d, "types", where),
            contains_url=opt_bool(d, "contains_url", where),
            lazy_load_members=opt_bool(d, "lazy_load_members", where),
            include_redundant_members=opt_bool(d, "include_redundant_members", where),
            unread_thread_notifications=opt_bool(d, "unread_thread_notifications", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "not_rooms", _copy(self.not_rooms))
        put(out, "rooms", _copy(self.rooms))
        put(out, "limit", self.limit)
        put(out, "not_senders", _copy(self.not_senders))
        put(out, "not_types", _copy(self.not_types))
        put(out, "senders", _copy(self.senders))
        put(out, "types", _copy(self.types))
        put(out, "contains_url", self.contains_url)
        put(out, "lazy_load_members", self.lazy_load_members)
        put(out, "include_redundant_members", self.include_redundant_members)
        put(out, "unread_thread_notifications", self.unread_thread_notifications)
        return out


def _part(d: Mapping[str, Any], key: str, where: str) -> FilterPart | None:
    raw = opt_object(d, key, where)
    return None if raw is None else FilterPart.from_dict(raw, where=f"{where}.{key}")


def _put_part(out: dict[str, Any], key: str, part: FilterPart | None) -> None:
    if part is not None:
        out[key] = part.to_dict()


@dataclass
class RoomFilter:
    """Rules for the ``rooms`` section of a sync (gomatrix's ``FilterRoom``)."""

    account_data: FilterPart | None = None
    ephemeral: FilterPart | None = None
    include_leave: bool | None = None
    not_rooms: list[str] | None = None
    rooms: list[str] | None = None
    state: FilterPart | None = None
    timeline: FilterPart | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RoomFilter") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            account_data=_part(d, "account_data", where),
            ephemeral=_part(d, "ephemeral", where),
            include_leave=opt_bool(d, "include_leave", where),
            not_rooms=opt_str_list(d, "not_rooms", where),
            rooms=opt_str_list(d, "rooms", where),
            state=_part(d, "state", where),
            timeline=_part(d, "timeline", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        _put_part(out, "account_data", self.account_data)
        _put_part(out, "ephemeral", self.ephemeral)
        put(out, "include_leave", self.include_leave)
        put(out, "not_rooms", _copy(self.not_rooms))
        put(out, "rooms", _copy(self.rooms))
        _put_part(out, "state", self.state)
        _put_part(out, "timeline", self.timeline)
        return out


FilterRoom = RoomFilter


@dataclass
class Filter:
    """A sync filter: which account data, presence and room events the server should send."""

    account_data: FilterPart | None = None
    event_fields: list[str] | None = None
    event_format: str | None = None
    presence: FilterPart | None = None
    room: RoomFilter | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "Filter") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        room = opt_object(d, "room", where)
        return cls(
            account_data=_part(d, "account_data", where),
            event_fields=opt_str_list(d, "event_fields", where),
            event_format=opt_str(d, "event_format", where),
            presence=_part(d, "presence", where),
            room=None if room is None else RoomFilter.from_dict(room, where=f"{where}.room"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        _put_part(out, "account_data", self.account_data)
        put(out, "event_fields", _copy(self.event_fields))
        put(out, "event_format", self.event_format)
        _put_part(out, "presence", self.presence)
        if self.room is not None:
            out["room"] = self.room.to_dict()
        return out

    def validate(self) -> None:
        """``ValueError`` unless ``event_format`` is ``"client"`` or ``"federation"``."""
        if self.event_format not in EVENT_FORMATS:
            raise ValueError(
                f"Filter.event_format: must be 'client' or 'federation', got {self.event_format!r}"
            )


def default_filter_part() -> FilterPart:
    """The server's default rules for one event category: at most 20 events."""
    return FilterPart(limit=20)


def default_filter() -> Filter:
    """The filter the server applies when none is given (gomatrix's ``DefaultFilter``)."""
    return Filter(
        account_data=default_filter_part(),
        event_format="client",
        presence=default_filter_part(),
        room=RoomFilter(
            account_data=default_filter_part(),
            ephemeral=default_filter_part(),
            state=default_filter_part(),
            timeline=default_filter_part(),
        ),
    )
