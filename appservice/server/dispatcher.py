"""The dispatcher: inbox items to handlers, in order within a room, rooms in parallel.

Each room (``''`` for items outside rooms: presence, to-device, device lists, key counts) is a FIFO
lane. At most ``max_parallel_rooms`` lanes run at once; a lane runs up to ``batch_per_turn`` items
before yielding its worker to other rooms. An item is marked done once its handler returns; done
marks are committed in batches by a flusher task, so a crash can re-run at most the items whose
handlers had returned since the last flush, ``flush_interval`` (20 ms) at most apart
(at-least-once; no item is ever lost). A transaction whose items are all handled (or parked) is
marked complete as a whole, one row instead of one per item; only the handled items of a
transaction still in progress are marked one by one. A handler that
raises is retried ``max_attempts`` times with exponential delay (blocking only its own room), then
parked as failed (state 2, ``last_error``) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from appservice.server.context import room_id_var, txn_id_var
from appservice.server.inbox import Inbox, InboxItem

log = logging.getLogger("appservice.server.dispatcher")

ItemHandler = Callable[[InboxItem], Awaitable[None] | None]
"""Handles one item: returns ``None`` when done synchronously, else an awaitable to await."""


@dataclass
class DispatchStats:
    """Counters since start: items handled, parked as failed, and retried attempts."""

    handled: int = 0
    failed: int = 0
    retries: int = 0


def describe(item: InboxItem) -> str:
    """A short, token-free description of an item for log lines: kind, type and event id."""
    payload = item.payload
    event_id = payload.get("event_id")
    kind = f"{item.kind} {payload.get('type', '?')}"
    return f"{kind} {event_id}" if isinstance(event_id, str) else kind


class Dispatcher:
    """Runs ``handle(item)`` for submitted items; see the module docstring for the guarantees."""

    def __init__(
        self,
        inbox: Inbox,
        handle: ItemHandler,
        *,
        max_parallel_rooms: int = 32,
        max_attempts: int = 3,
        retry_delay: float = 0.5,
        batch_per_turn: int = 100,
        flush_interval: float = 0.02,
    ) -> None:
        if max_parallel_rooms < 1 or max_attempts < 1 or batch_per_turn < 1:
            raise ValueError("max_parallel_rooms, max_attempts and batch_per_turn must be >= 1")
        if retry_delay < 0 or flush_interval < 0:
            raise ValueError("retry_delay and flush_interval must be >= 0")
        self._flush_interval = flush_interval
        self._inbox = inbox
        self._handle = handle
        self._max_parallel = max_parallel_rooms
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._batch = batch_per_turn
        self._rooms: dict[str, deque[InboxItem]] = {}
        self._scheduled: set[str] = set()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._done: list[InboxItem] = []
        self._completed: list[str] = []
        self._txn_left: dict[str, int] = {}
        self._done_signal = asyncio.Event()
        self._flushing = False
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._pending = 0
        self.stats = DispatchStats()

    @property
    def pending(self) -> int:
        """Items submitted and neither done nor failed yet (the inbox bound counts these)."""
        return self._pending

    def submit(self, items: Iterable[InboxItem]) -> None:
        """Queue items (already accepted in the inbox) behind earlier items of their rooms."""
        rooms, scheduled, ready, left = self._rooms, self._scheduled, self._ready, self._txn_left
        n = 0
        for item in items:
            n += 1
            left[item.txn_id] = left.get(item.txn_id, 0) + 1
            room = item.room_id
            lane = rooms.get(room)
            if lane is None:
                lane = rooms[room] = deque()
            lane.append(item)
            if room not in scheduled:
                scheduled.add(room)
                ready.put_nowait(room)
        self._pending += n

    def start(self) -> None:
        """Start the workers and the done-mark flusher (idempotent)."""
        if self._workers:
            return
        self._closing.clear()
        self._workers = [
            asyncio.create_task(self._worker(), name=f"appservice-dispatch-{i}")
            for i in range(self._max_parallel)
        ]
        self._flusher = asyncio.create_task(self._flush_loop(), name="appservice-done-flusher")

    @property
    def idle(self) -> bool:
        """True when every submitted item is handled or parked and its done mark committed."""
        return not (self._pending or self._done or self._completed or self._flushing)

    async def wait_idle(self) -> None:
        """Wait until :attr:`idle` (wrap in ``asyncio.timeout`` to bound the wait)."""
        while not self.idle:
            self._changed.clear()
            await self._changed.wait()

    async def close(self, grace: float = 10.0) -> None:
        """Stop: running handlers may finish (up to ``grace`` seconds), queued items stay
        pending in the inbox for the next start, and every done mark is committed."""
        self._closing.set()
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        if self._busy:
            _, late = await asyncio.wait(set(self._busy), timeout=grace)
            for task in late:
                log.warning("a handler did not finish within %.1f s of close; cancelling", grace)
                task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._flusher is not None:
            while self._flushing:  # never cancel a commit of done marks half way
                self._changed.clear()
                await self._changed.wait()
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self._flush_once()
        self._rooms.clear()
        self._scheduled.clear()
        self._ready = asyncio.Queue()
        self._txn_left.clear()
        self._pending = 0

    async def _worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._closing.is_set():
            room = await self._ready.get()
            self._busy.add(task)
            try:
                lane = self._rooms[room]
                await self._run_lane(lane)
                if lane:
                    self._ready.put_nowait(room)
                else:
                    del self._rooms[room]
                    self._scheduled.discard(room)
            finally:
                self._busy.discard(task)

    async def _run_lane(self, lane: deque[InboxItem]) -> None:
        """Run up to ``batch_per_turn`` items of one room, in order (the hot loop)."""
        handle, closing, stats, signal = self._handle, self._closing, self.stats, self._done_signal
        room_id_var.set(lane[0].room_id or "-")
        txn_id = ""
        for _ in range(self._batch):
            if not lane or closing.is_set():
                break
            item = lane.popleft()
            if item.txn_id != txn_id:
                txn_id = item.txn_id
                txn_id_var.set(txn_id)
            try:
                pending = handle(item)
                if pending is not None:
                    await pending
            except Exception as exc:
                await self._run_failed(item, exc)
            else:
                self._done.append(item)  # not cached: the flusher swaps the list
                self._finished(item)
                stats.handled += 1
                signal.set()

    async def _run_failed(self, item: InboxItem, first: Exception) -> None:
        """Retry an item whose handler raised ``first`` until it succeeds or is parked."""
        attempts = item.attempts
        exc = first
        while True:
            attempts += 1
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "handler failed for %s in room %s (txn %s), attempt %d of %d",
                describe(item), item.room_id or "-", item.txn_id, attempts,
                self._max_attempts, exc_info=exc,
            )  # fmt: skip
            if not await self._after_failure(item, attempts, error):
                return
            try:
                pending = self._handle(item)
                if pending is not None:
                    await pending
            except Exception as again:
                exc = again
                continue
            self._done.append(item)
            self._finished(item)
            self.stats.handled += 1
            self._done_signal.set()
            return

    def _finished(self, item: InboxItem) -> None:
        """Count an item done or parked; a transaction with nothing left becomes complete."""
        self._pending -= 1
        txn_id = item.txn_id
        left = self._txn_left[txn_id] - 1
        if left:
            self._txn_left[txn_id] = left
        else:
            del self._txn_left[txn_id]
            self._completed.append(txn_id)

    async def _after_failure(self, item: InboxItem, attempts: int, error: str) -> bool:
        """Park the item or wait before retrying; True to retry now."""
        try:
            if attempts >= self._max_attempts:
                await self._inbox.mark_failed(item.seq, attempts, error)
                self._finished(item)
                self.stats.failed += 1
                self._done_signal.set()
                self._changed.set()
                log.error(
                    "parked %s in room %s (txn %s) as failed after %d attempts",
                    describe(item), item.room_id or "-", item.txn_id, attempts,
                )  # fmt: skip
                return False
            await self._inbox.record_attempt(item.seq, attempts, error)
        except Exception:
            log.exception("could not record the failure of %s; it stays pending", describe(item))
            self._pending -= 1
            self._changed.set()
            return False
        self.stats.retries += 1
        delay = self._retry_delay * 2 ** (attempts - 1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)
        if self._closing.is_set():
            self._pending -= 1
            self._changed.set()
            return False
        return True

    async def _flush_loop(self) -> None:
        while True:
            await self._done_signal.wait()
            if self._flush_interval:  # gather the marks of a few transactions per commit
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._flush_interval)
            self._done_signal.clear()
            if not await self._flush_once():
                await asyncio.sleep(1.0)

    async def _flush_once(self) -> bool:
        batch, self._done = self._done, []
        completed, self._completed = self._completed, []
        if not batch and not completed:
            return True
        whole = set(completed)
        singles = [item for item in batch if item.txn_id not in whole]
        self._flushing = True
        try:
            await self._inbox.mark_done(singles, completed)
        except Exception:
            log.exception("could not mark %d items done; will retry", len(batch))
            self._done[:0] = batch
            self._completed[:0] = completed
            self._done_signal.set()
            return False
        finally:
            self._flushing = False
            self._changed.set()
        return True
