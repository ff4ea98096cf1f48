"""Where the response cache keeps its entries: this process's memory, or Redis.

A store holds opaque, already encrypted values under opaque keys (see
``passerelle.pipeline.cache``): it never sees a prompt, an answer or a key it could use to
confirm a guess. Both stores expire entries after their time to live; the memory store also
bounds its total size and evicts the least recently used entries first.

The Redis store is in ``redis_cache.py``, imported only when the configuration asks for it.

A store that cannot answer raises :class:`~passerelle.errors.StorageError`; the cache turns that
into a skipped lookup, never into a failed request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class CacheStore(Protocol):
    """Opaque bytes under opaque keys, each with a time to live."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """Entries in this process, least recently used first out once ``max_bytes`` is reached.

    Only the event loop touches it, so it needs no lock. An expired entry is dropped when it is
    next looked up or when eviction reaches it; its bytes count until then, which keeps eviction
    a simple walk from the oldest use."""

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        size = len(key) + len(value)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        while self._entries and self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + ttl_s, value)
        self._bytes += size

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(key) + len(value)
