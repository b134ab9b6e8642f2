"""Sync filters (``POST /user/{userId}/filter``): ``Filter``, ``RoomFilter`` and ``FilterPart``.

Field names follow the current spec; unset fields are left out of ``to_dict()`` so the server
applies its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self

from appservice.codec import decode, encode, wire

EVENT_FORMATS: Final = ("client", "federation")


def _non_negative(value: int, path: str) -> None:
    if value < 0:
        raise ValueError(f"{path}: must not be negative, got {value}")


@dataclass
class FilterPart:
    """Rules for one category of events (the spec's ``EventFilter``/``RoomEventFilter``)."""

    not_rooms: list[str] | None = None
    rooms: list[str] | None = None
    limit: int | None = field(default=None, metadata=wire(check=_non_negative))
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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)

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
