"""The dispatcher: inbox items to handlers, in order within a room, rooms in parallel.

Each room (``''`` for items outside rooms: presence, to-device, device lists, key counts) is a FIFO
lane. At most ``max_parallel_rooms`` lanes run at once; a lane runs up to ``batch_per_turn`` items
before yielding its worker to other rooms, and a worker running plain handlers lets the event loop
poll for I/O every millisecond (``_TURN``). An item is marked done once its handler returns; done
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
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from itertools import count, groupby
from operator import attrgetter

from appservice.metrics import HANDLER_LATENCY_BUCKETS, LatencyHistogram
from appservice.server.context import room_id_var, txn_id_var
from appservice.server.inbox import Accepted, Inbox, InboxItem
from appservice.server.transaction import RawItem

log = logging.getLogger("appservice.server.dispatcher")
_clock = time.perf_counter
_TURN = 1e-3
"""How long a worker runs handlers that return at once before it lets the event loop poll for
I/O: a run of slow plain handlers holds up intake and health checks for about a millisecond and
one handler, not for ``batch_per_turn`` of them. Fast handlers never reach it: a shorter turn
(50 µs) cost the in-memory path 9% of its events/s and gained the SQLite path nothing clear."""

ItemHandler = Callable[[int, RawItem], Awaitable[None] | None]
"""Handles one item, given its seq and ``(kind, room_id, payload)``: returns ``None`` when done
synchronously, else an awaitable to await."""


@dataclass
class DispatchStats:
    """Counters since start: items handled, parked as failed, and retried attempts."""

    handled: int = 0
    failed: int = 0
    retries: int = 0


async def _wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` have passed.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives just as the
    event is set, and ``close`` (which sets ``_closing`` and then cancels) would wait forever for
    a task that never learnt it was cancelled."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def describe(item: InboxItem) -> str:
    """A short, token-free description of an item for log lines: kind, type and event id."""
    payload = item.payload
    event_id = payload.get("event_id")
    kind = f"{item.kind} {payload.get('type', '?')}"
    return f"{kind} {event_id}" if isinstance(event_id, str) else kind


@dataclass(slots=True)
class _Chunk:
    """Items of one transaction in one room, in order, with their seqs; those before ``pos``
    were taken. Plain tuples: an :class:`InboxItem` is made only when one is needed (a failing
    handler, a done mark of a transaction still in progress)."""

    txn_id: str
    entries: list[RawItem]
    seqs: list[int]
    pos: int = 0


@dataclass(slots=True)
class _Done:
    """Handled items of a transaction still in progress, until their done marks are written:
    stretches of ``(seqs, entries)``, kept as given (a chunk's lists never change)."""

    parts: list[tuple[list[int], list[RawItem]]]

    def items(self, txn_id: str) -> list[InboxItem]:
        """These items as inbox items of ``txn_id``, for ``Inbox.mark_done``."""
        return [
            InboxItem(seq, txn_id, *entry)
            for seqs, entries in self.parts
            for seq, entry in zip(seqs, entries, strict=True)
        ]


class Dispatcher:
    """Runs ``handle(seq, (kind, room_id, payload))`` for submitted items; see the module
    docstring for the guarantees."""

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
        latency: LatencyHistogram | None = None,
    ) -> None:
        if max_parallel_rooms < 1 or max_attempts < 1 or batch_per_turn < 1:
            raise ValueError("max_parallel_rooms, max_attempts and batch_per_turn must be >= 1")
        if retry_delay < 0 or flush_interval < 0:
            raise ValueError("retry_delay and flush_interval must be >= 0")
        self._flush_interval = flush_interval
        # How long each handled item's handlers took (first try; retries wait between tries).
        self.latency = latency if latency is not None else LatencyHistogram(HANDLER_LATENCY_BUCKETS)
        self._inbox = inbox
        self._handle = handle
        self._max_parallel = max_parallel_rooms
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._batch = batch_per_turn
        # A room has a lane while it has items or a worker runs it (then it is not in _ready).
        self._rooms: dict[str, deque[_Chunk]] = {}
        self._ready: deque[str] = deque()  # rooms with items and no worker, in FIFO order
        self._idle: deque[asyncio.Future[None]] = deque()  # each idle worker's wake-up
        self._waking = 0  # workers woken that have not resumed yet
        # Handled items of transactions still in progress, by txnId, until the next flush (a
        # transaction's entry goes once it is complete: it is marked done as a whole).
        self._done: dict[str, _Done] = {}
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
        self._attempts: dict[int, tuple[int, str | None]] = {}  # resumed items that failed before
        self.stats = DispatchStats()

    @property
    def pending(self) -> int:
        """Items submitted and neither done nor failed yet (the inbox bound counts these)."""
        return self._pending

    def submit(self, items: Iterable[InboxItem], *, wake: bool = True) -> None:
        """Queue items (already accepted in the inbox) behind earlier items of their rooms.

        ``wake=False`` leaves idle workers asleep until :meth:`wake`: the caller can send its
        response first, so handlers do not delay the homeserver's 200 (a worker already
        running still picks the items up). Items are queued as one chunk per transaction and
        room; an :class:`Accepted` transaction is read as its parsed tuples, not item by item."""
        if isinstance(items, Accepted):
            numbered = zip(count(items.first_seq), items.items)
            total = self._queue(items.txn_id, self._group(items.txn_id, numbered))
        else:
            total = self._queue_items(items)
        self._pending += total
        if wake and self._ready and not self._waking:
            self._wake_one()

    @staticmethod
    def _group(txn_id: str, numbered: Iterable[tuple[int, RawItem]]) -> dict[str, _Chunk]:
        """``(seq, item)`` pairs of one transaction as one chunk per room (the hot path of
        intake: no object per item)."""
        groups: dict[str, _Chunk] = {}
        for seq, entry in numbered:
            chunk = groups.get(entry[1])
            if chunk is None:
                groups[entry[1]] = _Chunk(txn_id, [entry], [seq])
            else:
                chunk.entries.append(entry)
                chunk.seqs.append(seq)
        return groups

    def _queue_items(self, items: Iterable[InboxItem]) -> int:
        """Queue stored items (resumed at start), remembering the attempts they had."""
        total = 0
        for txn_id, run in groupby(items, key=attrgetter("txn_id")):
            numbered: list[tuple[int, RawItem]] = []
            for item in run:
                if item.attempts:
                    self._attempts[item.seq] = (item.attempts, item.last_error)
                numbered.append((item.seq, (item.kind, item.room_id, item.payload)))
            total += self._queue(txn_id, self._group(txn_id, numbered))
        return total

    def _queue(self, txn_id: str, groups: dict[str, _Chunk]) -> int:
        """Append each room's chunk of ``txn_id`` to its lane; how many items."""
        rooms, ready = self._rooms, self._ready
        n = 0
        for room, chunk in groups.items():
            n += len(chunk.seqs)
            lane = rooms.get(room)
            if lane is None:
                lane = rooms[room] = deque()
                ready.append(room)
            lane.append(chunk)
        if n:  # an empty transaction is complete at once: no count to wait for
            self._txn_left[txn_id] = self._txn_left.get(txn_id, 0) + n
        return n

    def _item(self, txn_id: str, seq: int, entry: RawItem) -> InboxItem:
        """The inbox item for a queued entry, with the attempts it had before a restart."""
        kind, room_id, payload = entry
        attempts, error = self._attempts.pop(seq, (0, None))
        return InboxItem(seq, txn_id, kind, room_id, payload, attempts, error)

    def wake(self) -> None:
        """Wake an idle worker if rooms wait for one (after ``submit(..., wake=False)``)."""
        if self._ready and not self._waking:
            self._wake_one()

    def _wake_one(self) -> None:
        """Wake one idle worker, if any.

        Rooms get workers without one wake-up per room: a worker runs ready rooms one after
        the other and wakes the next idle worker only when it is about to wait inside a lane
        (or on submit when no worker is awake), so with plain handlers one worker wake-up
        serves a whole transaction, and with async handlers up to ``max_parallel_rooms`` rooms
        still wait in their handlers at once.
        """
        idle = self._idle
        while idle:
            wake = idle.popleft()
            if not wake.done():  # a cancelled worker's wake-up stays behind; skip it
                wake.set_result(None)
                self._waking += 1
                return

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
        self._ready.clear()
        self._idle.clear()
        self._waking = 0
        self._txn_left.clear()
        self._attempts.clear()
        self._pending = 0

    async def _worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        ready, rooms, idle, busy = self._ready, self._rooms, self._idle, self._busy
        turn_end = _clock() + _TURN
        busy.add(task)
        try:
            while not self._closing.is_set():
                if not ready:
                    wake: asyncio.Future[None] = loop.create_future()
                    idle.append(wake)
                    busy.discard(task)
                    try:
                        await wake
                    finally:
                        if wake.done() and not wake.cancelled():
                            self._waking -= 1
                    busy.add(task)
                    turn_end = _clock() + _TURN
                    continue
                room = ready.popleft()
                lane = rooms[room]
                turn_end = await self._run_lane(lane, turn_end)
                if lane:
                    ready.append(room)  # batch_per_turn reached, or closing: behind the others
                else:
                    del rooms[room]
        finally:
            busy.discard(task)

    async def _run_lane(self, lane: deque[_Chunk], turn_end: float) -> float:
        """Run up to ``batch_per_turn`` items of one room, in order (the hot loop); the end of
        the worker's turn after it (see ``_TURN``: past ``turn_end`` it yields to the loop).

        Items handled synchronously are counted (``_handled``) per stretch of a chunk before
        anything is awaited, so no other task sees a count lag behind; their latencies go
        straight into the histogram's buckets. ``closing`` is checked by the worker before the
        run and here after each wait: only another task sets it, so it cannot change while no
        wait is in between.
        """
        handle, closing, clock = self._handle, self._closing, _clock
        histogram = self.latency
        bounds, counts = histogram.bounds, histogram.counts
        budget = self._batch
        room_id_var.set(lane[0].entries[0][1] or "-")
        while budget > 0 and lane:
            chunk = lane[0]
            txn_id, entries, seqs, pos = chunk.txn_id, chunk.entries, chunk.seqs, chunk.pos
            txn_id_var.set(txn_id)
            end = min(len(entries), pos + budget)
            i = pos
            pending: Awaitable[None] | None = None
            took = 0.0
            started = clock()
            while i < end:
                seq = seqs[i]
                entry = entries[i]
                i += 1
                try:
                    pending = handle(seq, entry)
                except Exception as exc:
                    pending = self._run_failed(self._item(txn_id, seq, entry), exc)
                    break
                if pending is not None:
                    pending = self._finish(txn_id, seq, entry, pending, started)
                    break
                now = clock()
                elapsed = now - started
                counts[bisect_left(bounds, elapsed)] += 1
                took += elapsed
                started = now
                if now >= turn_end:
                    break
            histogram.sum += took
            chunk.pos = i
            budget -= i - pos
            if i == len(entries):
                lane.popleft()
            synced = i - 1 if pending is not None else i  # the awaited item counts itself
            if synced > pos:
                if synced - pos == len(entries):
                    self._handled(txn_id, seqs, entries)
                else:
                    self._handled(txn_id, seqs[pos:synced], entries[pos:synced])
            if pending is None:
                if started >= turn_end:
                    await asyncio.sleep(0)
                    turn_end = clock() + _TURN
                    if closing.is_set():
                        break
                continue
            if self._ready and not self._waking:
                self._wake_one()  # the rooms behind this one need not wait for it
            await pending
            turn_end = clock() + _TURN
            if closing.is_set():
                break
        return turn_end

    async def _finish(
        self, txn_id: str, seq: int, entry: RawItem, pending: Awaitable[None], started: float
    ) -> None:
        """Await a handler that did not finish synchronously; retry it should it raise."""
        try:
            await pending
        except Exception as exc:
            await self._run_failed(self._item(txn_id, seq, entry), exc)
        else:
            self.latency.observe(_clock() - started)
            self._handled(txn_id, [seq], [entry])

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
            entry = (item.kind, item.room_id, item.payload)
            try:
                pending = self._handle(item.seq, entry)
                if pending is not None:
                    await pending
            except Exception as again:
                exc = again
                continue
            self._handled(item.txn_id, [item.seq], [entry])
            return

    def _handled(self, txn_id: str, seqs: list[int], entries: list[RawItem]) -> None:
        """Count these items of ``txn_id`` handled; wake the flusher. Only while the
        transaction is still in progress are they kept, for done marks of their own."""
        self.stats.handled += len(seqs)
        if self._attempts:  # resumed items that had failed before: their count is spent
            for seq in seqs:
                self._attempts.pop(seq, None)
        if not self._finished(txn_id, len(seqs)):
            done = self._done.get(txn_id)
            if done is None:
                self._done[txn_id] = _Done([(seqs, entries)])
            else:
                done.parts.append((seqs, entries))
        self._done_signal.set()

    def _finished(self, txn_id: str, n: int = 1) -> bool:
        """Count ``n`` items of ``txn_id`` handled or parked; True when that completes the
        transaction (it is then marked as a whole, its items need no marks of their own)."""
        self._pending -= n
        left = self._txn_left[txn_id] - n
        if left:
            self._txn_left[txn_id] = left
            return False
        del self._txn_left[txn_id]
        self._done.pop(txn_id, None)
        self._completed.append(txn_id)
        return True

    async def _after_failure(self, item: InboxItem, attempts: int, error: str) -> bool:
        """Park the item or wait before retrying; True to retry now."""
        try:
            if attempts >= self._max_attempts:
                await self._inbox.mark_failed(item.seq, attempts, error)
                self._finished(item.txn_id)
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
        await _wait_at_most(self._closing, self._retry_delay * 2 ** (attempts - 1))
        if self._closing.is_set():
            self._pending -= 1
            self._changed.set()
            return False
        return True

    async def _flush_loop(self) -> None:
        while True:
            await self._done_signal.wait()
            if self._flush_interval:  # gather the marks of a few transactions per commit
                await _wait_at_most(self._closing, self._flush_interval)
            self._done_signal.clear()
            if not await self._flush_once():
                await asyncio.sleep(1.0)

    async def _flush_once(self) -> bool:
        batch, self._done = self._done, {}
        completed, self._completed = self._completed, []
        if not batch and not completed:
            return True
        singles = [item for txn_id, done in batch.items() for item in done.items(txn_id)]
        self._flushing = True
        try:
            await self._inbox.mark_done(singles, completed)
        except Exception:
            log.exception("could not mark %d items done; will retry", len(singles))
            for txn_id, done in batch.items():
                if txn_id in self._txn_left:  # else complete meanwhile: marked as a whole
                    later = self._done.get(txn_id)
                    if later is not None:
                        done.parts += later.parts
                    self._done[txn_id] = done
            self._completed[:0] = completed
            self._done_signal.set()
            return False
        finally:
            self._flushing = False
            self._changed.set()
        return True
