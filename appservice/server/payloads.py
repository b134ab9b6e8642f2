"""Typed views of the non-room-event parts of a transaction, built after the 200.

To-device messages (MSC2409) and the MSC3202 device-list and one-time-key fields are handed to
their handlers as these small dataclasses; room and ephemeral events are
:class:`appservice.events.Event`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ToDeviceEvent:
    """A to-device message for one of our users' devices (MSC2409)."""

    type: str
    sender: str
    to_user_id: str
    to_device_id: str
    content: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ToDeviceEvent:
        """Build from the JSON object; ValueError when ``type`` is missing."""
        if not isinstance(d.get("type"), str):
            raise ValueError("to-device event has no string 'type'")
        content = d.get("content")
        return cls(
            type=d["type"],
            sender=str(d.get("sender", "")),
            to_user_id=str(d.get("to_user_id", "")),
            to_device_id=str(d.get("to_device_id", "")),
            content=dict(content) if isinstance(content, dict) else {},
        )


@dataclass(slots=True)
class DeviceLists:
    """Users whose device lists changed, or who no longer share a room with us (MSC3202)."""

    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceLists:
        """Build from the ``device_lists`` object of a transaction."""
        return cls(changed=list(d.get("changed") or []), left=list(d.get("left") or []))


@dataclass(slots=True)
class OTKCounts:
    """One-time-key counts and unused fallback key types per user and device (MSC3202)."""

    one_time_keys_count: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    unused_fallback_key_types: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OTKCounts:
        """Build from the inbox item that joins both MSC3202 fields."""
        return cls(
            one_time_keys_count=dict(d.get("one_time_keys_count") or {}),
            unused_fallback_key_types=dict(d.get("unused_fallback_key_types") or {}),
        )
