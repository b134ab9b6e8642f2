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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

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

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> Accepted | None:
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


class Accepted(Sequence[InboxItem]):
    """A transaction just accepted: its items, numbered ``first_seq``, ``first_seq + 1``, ...

    A sequence of :class:`InboxItem` built on access: the dispatcher reads ``items`` (the parsed
    ``(kind, room_id, payload)`` tuples) directly, so no object is made per item on intake.
    """

    __slots__ = ("first_seq", "items", "txn_id")

    def __init__(self, txn_id: str, first_seq: int, items: Sequence[RawItem]) -> None:
        self.txn_id = txn_id
        self.first_seq = first_seq
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> InboxItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[InboxItem]: ...

    def __getitem__(self, index: int | slice) -> InboxItem | list[InboxItem]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.items)))]
        if index < 0:
            index += len(self.items)
        kind, room_id, payload = self.items[index]
        return InboxItem(self.first_seq + index, self.txn_id, kind, room_id, payload)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Accepted({self.txn_id!r}, first_seq={self.first_seq}, {len(self.items)} items)"


@dataclass(slots=True)
class _OpenTxn:
    """An accepted transaction not yet complete, and what is known of its items."""

    accepted: Accepted
    closed: set[int] = field(default_factory=set)  # seqs marked done or parked on their own
    attempts: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (n, last error)

    def holds(self, seq: int) -> bool:
        first = self.accepted.first_seq
        return first <= seq < first + len(self.accepted.items)


class MemoryInbox:
    """An in-process inbox: fast, not durable. Remembers the last ``max_txn_ids`` txnIds."""

    def __init__(self, max_txn_ids: int = 100_000) -> None:
        if max_txn_ids < 1:
            raise ValueError("max_txn_ids must be at least 1")
        self._txn_ids: OrderedDict[str, None] = OrderedDict()
        self._max_txn_ids = max_txn_ids
        self._next_seq = 1
        self._open: dict[str, _OpenTxn] = {}
        self._failed: dict[int, InboxItem] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> Accepted | None:
        """Remember ``txn_id`` and number the items; ``None`` when the txnId is known."""
        if txn_id in self._txn_ids:
            return None
        self._txn_ids[txn_id] = None
        if len(self._txn_ids) > self._max_txn_ids:
            self._txn_ids.popitem(last=False)
        accepted = Accepted(txn_id, self._next_seq, items)
        self._next_seq += len(items)
        if items:  # an empty transaction is complete at once (and would never be marked so)
            self._open[txn_id] = _OpenTxn(accepted)
        return accepted

    async def pending(self) -> list[InboxItem]:
        """Items accepted but not yet done or failed, with their attempts so far."""
        out: list[InboxItem] = []
        for txn in self._open.values():
            for item in txn.accepted:
                if item.seq not in txn.closed:
                    item.attempts, item.last_error = txn.attempts.get(item.seq, (0, None))
                    out.append(item)
        return sorted(out, key=lambda i: i.seq)

    async def mark_done(self, items: Sequence[InboxItem], complete_txn_ids: Sequence[str]) -> None:
        """Forget complete transactions; note handled items of the others."""
        for txn_id in complete_txn_ids:
            self._open.pop(txn_id, None)
        for item in items:
            txn = self._open.get(item.txn_id)
            if txn is not None:
                txn.closed.add(item.seq)
                txn.attempts.pop(item.seq, None)

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember the failure of a pending item."""
        txn = self._holding(seq)
        if txn is not None and seq not in txn.closed:
            txn.attempts[seq] = (attempts, error)

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        """Move the item to the failed set."""
        txn = self._holding(seq)
        if txn is not None and seq not in txn.closed:
            item = txn.accepted[seq - txn.accepted.first_seq]
            item.attempts, item.last_error = attempts, error
            txn.closed.add(seq)
            txn.attempts.pop(seq, None)
            self._failed[seq] = item

    def _holding(self, seq: int) -> _OpenTxn | None:
        """The open transaction that holds item ``seq`` (few are open at a time)."""
        for txn in self._open.values():
            if txn.holds(seq):
                return txn
        return None

    async def failed(self) -> list[InboxItem]:
        """Parked items."""
        return sorted(self._failed.values(), key=lambda i: i.seq)

    async def prune(self, done_before_ms: int) -> int:
        """Done items are not kept, so there is nothing to prune."""
        return 0
