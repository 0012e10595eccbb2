"""The one in-process cache: at most N entries, least recently used dropped first, optionally
each kept only so long (on an injected clock).

The hub keeps answers that depend on few inputs (a catalog version, a role mix, a registry scope);
those inputs are few in practice but come from users, so no cache may grow without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_UNSET = object()


class Bounded(Generic[V]):
    """At most `max_entries` values; each expires `ttl` seconds after it was put (None: never).

    Not thread-safe: the hub uses it from its one event loop.
    """

    def __init__(
        self, max_entries: int, ttl: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ):
        if max_entries < 1:
            raise ValueError(f"Bounded.max_entries must be at least 1, not {max_entries!r}")
        self.max_entries, self.ttl, self._clock = max_entries, ttl, clock
        self._entries: OrderedDict[Hashable, tuple[float | None, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        """The value kept for `key` (now the most recently used), or `default` if none or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        expires, value = entry
        if expires is not None and self._clock() >= expires:
            del self._entries[key]
            return default
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V, ttl: float | None | object = _UNSET) -> V:
        """Keep `value` for `key` (for `ttl` seconds if given, else the cache's own); returns it."""
        ttl = self.ttl if ttl is _UNSET else ttl
        expires = None if ttl is None else self._clock() + ttl
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The kept value for `key`, else `make()` kept and returned."""
        found = self.get(key, _UNSET)
        return self.put(key, make()) if found is _UNSET else found

    def clear(self) -> None:
        self._entries.clear()
