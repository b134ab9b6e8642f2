"""The pull side: how a /sync response becomes calls to event listeners.

``Syncer`` is what ``Client.sync()`` drives; ``DefaultSyncer`` is the bot-friendly implementation
(gomatrix's, with its bugs fixed): it keeps room state in the store and hands each new event to the
listeners registered for its type.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from appservice.api.responses import RespSync
from appservice.errors import HTTPError, RespError
from appservice.events import Event
from appservice.room import Room
from appservice.store import Storer

__all__ = [
    "DEFAULT_FILTER",
    "DefaultSyncer",
    "EventListener",
    "SyncError",
    "Syncer",
]

log = logging.getLogger(__name__)

EventListener = Callable[[Event], Awaitable[None] | None]
"""A listener for one event type: a plain function or an ``async def``."""

DEFAULT_FILTER: dict[str, Any] = {"room": {"timeline": {"limit": 50}}}
"""gomatrix's default sync filter: a timeline limit of 50 events per room."""

#: errcodes after which retrying /sync cannot succeed (the credentials are gone).
_FATAL_ERRCODES = frozenset(
    {"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN", "M_USER_DEACTIVATED"}
)
_FATAL_STATUSES = frozenset({401, 403})


@runtime_checkable
class Syncer(Protocol):
    """What ``Client.sync()`` needs: process a response, decide on failures, supply a filter."""

    async def process_response(self, resp: RespSync, since: str) -> None:
        """Process one /sync response; ``since`` is the token that produced it ("" the first time).

        Raising stops the sync loop (the error propagates out of ``Client.sync()``).
        """
        ...

    async def on_failed_sync(self, resp: RespSync | None, err: Exception) -> float:
        """Return how many seconds to wait before the next /sync, or raise to stop syncing."""
        ...

    def get_filter_json(self, user_id: str) -> dict[str, Any]:
        """Return the filter definition (not a filter ID) to upload for ``user_id``."""
        ...


class SyncError(Exception):
    """A listener failed while a /sync response was processed; chained from the listener's error."""

    def __init__(self, user_id: str, since: str, event: Event, cause: BaseException) -> None:
        self.user_id = user_id
        self.since = since
        self.event = event
        super().__init__(
            f"processing /sync response failed: user_id={user_id} since={since!r} "
            f"event_type={event.type} event_id={event.id or '-'} room_id={event.room_id or '-'}: "
            f"{type(cause).__name__}: {cause}"
        )


class DefaultSyncer:
    """Bot-style syncer: updates room state in the store and notifies per-type listeners.

    The first sync (``since == ""``) only records room state: its events are history, not news.
    A joined room whose timeline holds this user's own join is not dispatched in that response,
    since /sync replays the room's recent history right after a join.
    """

    def __init__(self, user_id: str, store: Storer, *, retry_delay: float = 10.0) -> None:
        if not isinstance(user_id, str):
            raise TypeError(f"DefaultSyncer user_id must be a str, got {type(user_id).__name__}")
        if retry_delay < 0:
            raise ValueError(f"DefaultSyncer retry_delay must be >= 0 seconds, got {retry_delay}")
        self.user_id = user_id
        self.store = store
        self.retry_delay = float(retry_delay)
        self._listeners: dict[str, list[EventListener]] = {}

    def on_event_type(self, event_type: str, callback: EventListener) -> None:
        """Call ``callback`` for each new event of ``event_type`` (no duplicate checks)."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(
                f"on_event_type: event_type must be a non-empty str, got {event_type!r}"
            )
        if not callable(callback):
            raise TypeError(f"on_event_type({event_type!r}): callback {callback!r} is not callable")
        self._listeners.setdefault(event_type, []).append(callback)

    async def process_response(self, resp: RespSync, since: str) -> None:
        """Update room state from ``resp`` and dispatch its new events to the listeners."""
        dispatch = since != ""
        if dispatch:
            for block in (resp.presence, resp.account_data, resp.to_device):
                for event in block.events:
                    await self._notify(event, since)

        own_join: set[str] = set()
        for room_id, joined in resp.rooms.join.items():
            await self._update_room(room_id, [*joined.state.events, *joined.timeline.events])
            if self._has_own_join(joined.timeline.events):
                # /sync replays the room's recent history with our join: not news.
                own_join.add(room_id)
                log.debug("sync: not dispatching room %s: own join in its timeline", room_id)
                continue
            if dispatch:
                blocks = (joined.state, joined.timeline, joined.ephemeral, joined.account_data)
                for events in (block.events for block in blocks):
                    for event in events:
                        await self._notify(_in_room(event, room_id), since)

        for room_id, invited in resp.rooms.invite.items():
            if room_id in own_join:
                continue  # the invite is older than the join in the same response
            await self._update_room(room_id, invited.invite_state.events)
            if dispatch:
                for event in invited.invite_state.events:
                    await self._notify(_in_room(event, room_id), since)

        for room_id, left in resp.rooms.leave.items():
            await self._update_room(room_id, [*left.state.events, *left.timeline.events])
            if dispatch:
                for event in left.timeline.events:
                    await self._notify(_in_room(event, room_id), since)

    async def on_failed_sync(self, resp: RespSync | None, err: Exception) -> float:
        """Wait ``retry_delay`` seconds (or the server's retry_after_ms); re-raise auth failures."""
        wrapped = err.wrapped_error if isinstance(err, HTTPError) else None
        if isinstance(err, RespError):
            wrapped = err
        if isinstance(err, HTTPError) and err.code in _FATAL_STATUSES:
            raise err
        if wrapped is not None and wrapped.errcode in _FATAL_ERRCODES:
            raise err
        if wrapped is not None and wrapped.retry_after_ms is not None:
            return max(self.retry_delay, wrapped.retry_after_ms / 1000.0)
        return self.retry_delay

    def get_filter_json(self, user_id: str) -> dict[str, Any]:
        """Return gomatrix's default filter (a timeline limit of 50), a fresh copy each call."""
        return copy.deepcopy(DEFAULT_FILTER)

    def _has_own_join(self, timeline: Iterable[Event]) -> bool:
        for event in timeline:
            if (
                event.type == "m.room.member"
                and event.state_key == self.user_id
                and event.content.get("membership") == "join"
            ):
                return True
        return False

    async def _update_room(self, room_id: str, events: Iterable[Event]) -> Room:
        """Apply the state events among ``events`` to the stored room and save it when changed."""
        room = await self.store.load_room(room_id)
        changed = room is None
        if room is None:
            room = Room(room_id)
        for event in events:
            if event.state_key is None:
                continue
            # A private copy per entry: listeners may mutate the event they get, and no two state
            # entries may share one object (gomatrix's loop-variable aliasing bug).
            entry = copy.deepcopy(event)
            if not entry.room_id:
                entry.room_id = room_id
            room.update_state(entry)
            changed = True
        if changed:
            await self.store.save_room(room)
        return room

    async def _notify(self, event: Event, since: str) -> None:
        for listener in list(self._listeners.get(event.type, ())):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise SyncError(self.user_id, since, event, exc) from exc


def _in_room(event: Event, room_id: str) -> Event:
    """Fill the event's room ID from the rooms map key when /sync left it out."""
    if not event.room_id:
        event.room_id = room_id
    return event
