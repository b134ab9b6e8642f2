"""Small checks shared by the client's endpoint groups (argument validation, own user ID)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appservice.client.base import ClientBase
from appservice.events import EventContent

__all__ = ["check_id", "content_dict", "own_user_id"]


def check_id(value: object, name: str, where: str) -> str:
    """Return ``value`` when it is a non-empty string; else a TypeError/ValueError naming it."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{where}: {name} must not be empty")
    return value


def own_user_id(client: ClientBase, where: str) -> str:
    """The user the client acts as: the asserted puppet when set, else its own ``user_id``."""
    user_id = client.app_service_user_id or client.user_id
    if not user_id:
        raise ValueError(
            f"{where}: the client has no user ID (set user_id, or app_service_user_id "
            "to act as a puppet)"
        )
    return user_id


def content_dict(content: Mapping[str, Any] | EventContent, where: str) -> dict[str, Any]:
    """An event content as a JSON object: a mapping is copied, a content dataclass serialised."""
    if isinstance(content, Mapping):
        return dict(content)
    to_dict = getattr(content, "to_dict", None)
    if not callable(to_dict):
        raise TypeError(
            f"{where}: content must be a mapping or have to_dict(), got {type(content).__name__}"
        )
    out = to_dict()
    if not isinstance(out, dict):
        raise TypeError(
            f"{where}: {type(content).__name__}.to_dict() returned {type(out).__name__}, not dict"
        )
    return out
