"""A small bounded cache: the engines keep recent per-frame work (features, points, working-size frames)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `capacity` entries; `put` evicts the least recently used ones.

    `get` counts as a use; `peek` does not (for entries whose age, not use, decides when they go).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        self._evict()

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._evict()

    def clear(self) -> None:
        self._items.clear()

    def _evict(self) -> None:
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
