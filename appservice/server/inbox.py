"""The inbox: where accepted transactions wait for their handlers.

``accept`` records a txnId and appends all its items atomically and returns only after that is
durable; a txnId seen before returns ``None`` and changes nothing. Items are marked done or failed
by the dispatcher; a transaction whose items are all handled or parked is marked complete as a
whole, which marks every item in it: an item is pending while its transaction is not complete and
it is neither marked done nor parked on its own. :class:`MemoryInbox` keeps everything in
the process (no crash safety; for tests and benchmarks); :mod:`appservice.server.sql_inbox` has the
durable one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from appservice.server.transaction import RawItem

ITEM_BITS = 20
"""Low bits of an item's sequence number that hold its index in its transaction (SQL inbox)."""
MAX_TXN_ITEMS = (1 << ITEM_BITS) - 1
"""The most items one transaction may hold (far above what a homeserver sends in one)."""

STATE_PENDING = 0
STATE_DONE = 1
STATE_FAILED = 2


@dataclass(slots=True)
class InboxItem:
    """One stored item: its inbox sequence number, origin txnId, kind, room and JSON payload."""

    seq: int
    txn_id: str
    kind: str
    room_id: str
    payload: dict[str, Any]
    attempts: int = 0
    last_error: str | None = None


def now_ms() -> int:
    """Wall-clock milliseconds, as stored in ``received_at`` / ``done_at``."""
    return int(time.time() * 1000)


class Inbox(Protocol):
    """Durable (or not) intake and bookkeeping for transaction items."""

    async def open(self) -> None:
        """Prepare for use (connect, check the tables)."""

    async def close(self) -> None:
        """Release connections; everything already accepted stays accepted."""

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem] | None:
        """Record ``txn_id`` and append ``items`` in one atomic step; ``None`` if seen before."""

    async def pending(self) -> list[InboxItem]:
        """Items not yet done nor failed, in sequence order (resumed at start)."""

    async def mark_done(self, items: Sequence[InboxItem], complete_txn_ids: Sequence[str]) -> None:
        """Mark ``items`` handled, and the transactions ``complete_txn_ids`` complete (each of
        their items handled or parked)."""

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember a failed handler attempt; the item stays pending."""

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        """Park an item whose handlers kept failing (state 2, ``last_error``)."""

    async def failed(self) -> list[InboxItem]:
        """Parked items, in sequence order."""

    async def prune(self, done_before_ms: int) -> int:
        """Delete the items of transactions complete and received before this time (their
        txnIds and parked items stay); returns how many transactions' items were deleted."""


def number_items(first: int, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem]:
    """``items`` of ``txn_id`` as inbox items numbered ``first``, ``first + 1``, ..."""
    return [
        InboxItem(first + i, txn_id, kind, room_id, payload)
        for i, (kind, room_id, payload) in enumerate(items)
    ]


def _items_of(txn: list[InboxItem] | dict[int, InboxItem]) -> Iterable[InboxItem]:
    return txn if isinstance(txn, list) else txn.values()


class MemoryInbox:
    """An in-process inbox: fast, not durable. Remembers the last ``max_txn_ids`` txnIds."""

    def __init__(self, max_txn_ids: int = 100_000) -> None:
        if max_txn_ids < 1:
            raise ValueError("max_txn_ids must be at least 1")
        self._txn_ids: OrderedDict[str, None] = OrderedDict()
        self._max_txn_ids = max_txn_ids
        self._seq = 0
        # Per open transaction: its items as accepted, or by seq once some are marked one by one.
        self._pending: dict[str, list[InboxItem] | dict[int, InboxItem]] = {}
        self._failed: dict[int, InboxItem] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem] | None:
        """Remember ``txn_id`` and number the items; ``None`` when the txnId is known."""
        if txn_id in self._txn_ids:
            return None
        self._txn_ids[txn_id] = None
        if len(self._txn_ids) > self._max_txn_ids:
            self._txn_ids.popitem(last=False)
        out = number_items(self._seq + 1, txn_id, items)
        self._seq += len(out)
        if out:  # an empty transaction is complete at once (and would never be marked so)
            self._pending[txn_id] = out  # indexed by seq only when an item is marked on its own
        return out

    async def pending(self) -> list[InboxItem]:
        """Items accepted but not yet done or failed."""
        return sorted(
            (item for txn in self._pending.values() for item in _items_of(txn)),
            key=lambda i: i.seq,
        )

    async def mark_done(self, items: Sequence[InboxItem], complete_txn_ids: Sequence[str]) -> None:
        """Forget handled items and complete transactions."""
        for txn_id in complete_txn_ids:
            self._pending.pop(txn_id, None)
        for item in items:
            by_seq = self._by_seq(item.txn_id)
            if by_seq is not None:
                by_seq.pop(item.seq, None)

    def _by_seq(self, txn_id: str) -> dict[int, InboxItem] | None:
        """The pending items of ``txn_id`` by seq (indexed now if not yet), or None."""
        txn = self._pending.get(txn_id)
        if isinstance(txn, list):
            txn = self._pending[txn_id] = {item.seq: item for item in txn}
        return txn

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember the failure on the pending item."""
        item = self._find(seq)
        if item is not None:
            item.attempts, item.last_error = attempts, error

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        """Move the item to the failed set."""
        item = self._find(seq)
        if item is not None:
            by_seq = self._by_seq(item.txn_id)
            assert by_seq is not None
            by_seq.pop(seq)
            item.attempts, item.last_error = attempts, error
            self._failed[seq] = item

    def _find(self, seq: int) -> InboxItem | None:
        for txn_id in self._pending:
            by_seq = self._by_seq(txn_id)
            if by_seq is not None and seq in by_seq:
                return by_seq[seq]
        return None

    async def failed(self) -> list[InboxItem]:
        """Parked items."""
        return sorted(self._failed.values(), key=lambda i: i.seq)

    async def prune(self, done_before_ms: int) -> int:
        """Done items are not kept, so there is nothing to prune."""
        return 0
