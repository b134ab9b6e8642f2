"""appservice: a toolkit for Matrix application services and bridges.

Everything public is re-exported here, loaded on first use: importing `appservice` (which pytest
does for every run through our plugin) stays cheap and never pulls in SQLAlchemy or Starlette
until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appservice.api import *  # noqa: F403
    from appservice.client import Client, ClientBase, RetryPolicy
    from appservice.errors import HTTPError, RespError
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
    from appservice.filter import (
        Filter,
        FilterPart,
        RoomFilter,
        default_filter,
        default_filter_part,
    )
    from appservice.ids import (
        decode_user_localpart,
        encode_user_localpart,
        extract_user_localpart,
    )
    from appservice.intent import Intent
    from appservice.registration import Registration, RegistrationError
    from appservice.room import Room
    from appservice.server import AppService
    from appservice.store import InMemoryStore, SQLStore, Storer
    from appservice.sync import DefaultSyncer, Syncer

__all__ = [
    "AppService",
    "AudioInfo",
    "AudioMessage",
    "Client",
    "ClientBase",
    "DefaultSyncer",
    "Event",
    "FileInfo",
    "FileMessage",
    "Filter",
    "FilterPart",
    "HTMLMessage",
    "HTTPError",
    "ImageInfo",
    "ImageMessage",
    "InMemoryStore",
    "Intent",
    "LocationMessage",
    "Registration",
    "RegistrationError",
    "RespError",
    "RetryPolicy",
    "Room",
    "RoomFilter",
    "SQLStore",
    "Storer",
    "Syncer",
    "TextMessage",
    "ThumbnailInfo",
    "VideoInfo",
    "VideoMessage",
    "decode_user_localpart",
    "default_filter",
    "default_filter_part",
    "encode_user_localpart",
    "extract_user_localpart",
    "get_html_message",
]

_MODULE_OF: dict[str, str] = {
    "Client": "appservice.client",
    "ClientBase": "appservice.client",
    "RetryPolicy": "appservice.client",
    "HTTPError": "appservice.errors",
    "RespError": "appservice.errors",
    "Filter": "appservice.filter",
    "FilterPart": "appservice.filter",
    "RoomFilter": "appservice.filter",
    "default_filter": "appservice.filter",
    "default_filter_part": "appservice.filter",
    "encode_user_localpart": "appservice.ids",
    "decode_user_localpart": "appservice.ids",
    "extract_user_localpart": "appservice.ids",
    "Registration": "appservice.registration",
    "AppService": "appservice.server",
    "Intent": "appservice.intent",
    "RegistrationError": "appservice.registration",
    "Room": "appservice.room",
    "Storer": "appservice.store",
    "InMemoryStore": "appservice.store",
    "SQLStore": "appservice.store",
    "Syncer": "appservice.sync",
    "DefaultSyncer": "appservice.sync",
    **dict.fromkeys(
        [
            "Event",
            "TextMessage",
            "HTMLMessage",
            "ImageMessage",
            "ImageInfo",
            "VideoMessage",
            "VideoInfo",
            "ThumbnailInfo",
            "FileMessage",
            "FileInfo",
            "AudioMessage",
            "AudioInfo",
            "LocationMessage",
            "get_html_message",
        ],
        "appservice.events",
    ),
}


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its module on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        api = importlib.import_module("appservice.api")
        if name in api.__all__:
            return getattr(api, name)
        raise AttributeError(f"module 'appservice' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    api = importlib.import_module("appservice.api")
    return sorted({*globals(), *_MODULE_OF, *api.__all__})
