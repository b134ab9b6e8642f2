"""The pull side of the client: filters, one /sync request, and the long-running sync loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from appservice.api.responses import RespCreateFilter, RespSync
from appservice.client.base import ClientBase
from appservice.filter import Filter

__all__ = ["SyncAPI"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNC_TIMEOUT_MS = 30000
"""The long-poll timeout ``sync()`` asks the server for, in milliseconds (gomatrix's 30 s)."""


class _Stopped(Exception):
    """Internal: the sync loop was stopped (by ``stop_sync`` or a newer ``sync``)."""


class SyncAPI(ClientBase):
    """Endpoint group for /sync: ``create_filter``, ``sync_request``, ``sync`` and ``stop_sync``.

    At most one ``sync()`` loop runs per client: starting another, or calling ``stop_sync()``,
    ends the running one promptly — even while it waits in a long-poll or between failed syncs.
    """

    #: Extra seconds the HTTP request of a /sync may take beyond its long-poll timeout.
    sync_timeout_margin: float = 15.0
    #: Set to stop the loop that owns it; replaced by each ``sync()`` call.
    _sync_stop: asyncio.Event | None = None

    async def create_filter(self, filter: Filter | dict[str, Any]) -> RespCreateFilter:
        """Upload a filter definition for this user (POST /user/{userId}/filter).

        ``ValueError`` before any request when a ``Filter`` has a bad ``event_format``.
        """
        if isinstance(filter, Filter):
            if filter.event_format is not None:
                filter.validate()
            body: dict[str, Any] = filter.to_dict()
        elif isinstance(filter, dict):
            body = filter
        else:
            raise TypeError(
                f"create_filter: filter must be a Filter or a dict, got {type(filter).__name__}"
            )
        url = self.build_url("user", self.user_id, "filter")
        data = await self.make_request("POST", url, body)
        return RespCreateFilter.from_dict(data)

    async def sync_request(
        self,
        timeout: int,  # noqa: ASYNC109 - gomatrix's signature: the server's long-poll time
        since: str,
        filter_id: str,
        full_state: bool,
        set_presence: str,
    ) -> RespSync:
        """Make one /sync request; ``timeout`` is the server's long-poll time in milliseconds.

        Empty ``since``/``filter_id``/``set_presence`` and a false ``full_state`` are left out.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise ValueError(
                f"sync_request: timeout must be a non-negative int (ms), got {timeout!r}"
            )
        query: dict[str, str | list[str]] = {"timeout": str(timeout)}
        if since:
            query["since"] = since
        if filter_id:
            query["filter"] = filter_id
        if full_state:
            query["full_state"] = "true"
        if set_presence:
            query["set_presence"] = set_presence
        url = self.build_url_with_query(["sync"], query)
        data = await self.make_request(
            "GET", url, timeout=timeout / 1000.0 + self.sync_timeout_margin
        )
        return RespSync.from_dict(data)

    async def sync(self) -> None:
        """Sync with the homeserver until stopped, feeding each response to ``self.syncer``.

        Returns None when ``stop_sync()`` or a newer ``sync()`` ends it. Raises when the filter
        cannot be created, when ``syncer.on_failed_sync`` raises, or when processing fails.
        The next_batch token is saved before a response is processed, so a response whose
        processing keeps failing is not fetched again.
        """
        if self._sync_stop is not None:
            self._sync_stop.set()
        stop = asyncio.Event()
        self._sync_stop = stop
        try:
            await self._sync_loop(stop)
        except _Stopped:
            log.debug("sync loop for %s stopped", self.user_id)
        finally:
            if self._sync_stop is stop:
                self._sync_stop = None

    def stop_sync(self) -> None:
        """Stop the running ``sync()`` loop promptly (it returns None); a no-op when none runs.

        A long-poll or a wait between failed syncs is cut short; a response already being
        processed is finished first, so listeners are never interrupted half-way.
        """
        if self._sync_stop is not None:
            self._sync_stop.set()

    async def _sync_loop(self, stop: asyncio.Event) -> None:
        user_id = self.user_id
        next_batch = await self._unless_stopped(stop, self.store.load_next_batch(user_id)) or ""
        filter_id = await self._unless_stopped(stop, self.store.load_filter_id(user_id))
        if not filter_id:
            filter_json = self.syncer.get_filter_json(user_id)
            created = await self._unless_stopped(stop, self.create_filter(filter_json))
            filter_id = created.filter_id
            await self._unless_stopped(stop, self.store.save_filter_id(user_id, filter_id))

        while True:
            try:
                resp = await self._unless_stopped(
                    stop, self.sync_request(SYNC_TIMEOUT_MS, next_batch, filter_id, False, "")
                )
            except _Stopped:
                raise
            except Exception as err:
                delay = await self.syncer.on_failed_sync(None, err)
                log.warning(
                    "sync for %s failed (%s: %s); retrying in %.1f s",
                    user_id,
                    type(err).__name__,
                    err,
                    delay,
                )
                await self._sleep_unless_stopped(stop, delay)
                continue
            if stop.is_set():
                raise _Stopped
            await self.store.save_next_batch(user_id, resp.next_batch)
            await self.syncer.process_response(resp, next_batch)
            next_batch = resp.next_batch
            if stop.is_set():
                raise _Stopped

    @staticmethod
    async def _unless_stopped(stop: asyncio.Event, aw: Awaitable[T]) -> T:
        """Await ``aw`` unless ``stop`` is set first: then cancel it and raise ``_Stopped``."""
        if stop.is_set():
            if inspect.iscoroutine(aw):
                aw.close()
            raise _Stopped
        work = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled() and stop.is_set():
            raise _Stopped
        return work.result()

    @staticmethod
    async def _sleep_unless_stopped(stop: asyncio.Event, delay: float) -> None:
        """Sleep ``delay`` seconds, or raise ``_Stopped`` as soon as ``stop`` is set.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a
        cancellation that arrives just as ``stop`` is set, and the caller would not stop."""
        try:
            async with asyncio.timeout(max(0.0, delay)):
                await stop.wait()
        except TimeoutError:
            return
        raise _Stopped
