"""A bounded least-recently-used map: the bridge's in-memory caches of portals, puppets and users.

The database is the source of truth; the cache only saves a query for the hot entries, so an
entry that falls out costs one SELECT next time, never a wrong answer. Memory stays bounded no
matter how many remote users or chats the bridge has ever seen.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; putting one more forgets the least recently used."""

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"LRU: maxsize must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or ``None``."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, forgetting the oldest entry when over the bound."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value, or ``None`` when it was not cached."""
        return self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()
