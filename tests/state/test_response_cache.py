"""The response cache's stores: time to live, the memory bound, Redis shared and Redis down."""

from __future__ import annotations

import asyncio

import pytest

from passerelle.config.schema import StateSettings
from passerelle.errors import StorageError
from passerelle.state.redis_cache import redis_cache_store
from passerelle.state.response_cache import MemoryCacheStore
from tests.net import REDIS_URL
from tests.net import free_port as closed_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_entries_expire_after_their_ttl() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = MemoryCacheStore(10_000, clock=clock)
        await store.put("a", b"value", 60)
        clock.now += 59.9
        assert await store.get("a") == b"value"
        clock.now += 0.2
        assert await store.get("a") is None
        assert len(store) == 0 and store.size_bytes == 0

    asyncio.run(scenario())


def test_memory_is_bounded_and_evicts_the_least_recently_used() -> None:
    async def scenario() -> None:
        store = MemoryCacheStore(300)
        for key in ("a", "b", "c"):
            await store.put(key, bytes(99), 60)  # 100 bytes each, key included
        assert store.size_bytes == 300
        assert await store.get("a") is not None  # "a" is now the most recently used
        await store.put("d", bytes(99), 60)
        assert await store.get("b") is None  # the least recently used went first
        assert await store.get("a") is not None and await store.get("d") is not None
        assert store.size_bytes <= 300
        await store.put("big", bytes(1000), 60)  # larger than the whole store: not kept
        assert await store.get("big") is None and store.size_bytes <= 300
        await store.put("a", bytes(9), 60)  # replacing an entry counts its new size only
        assert store.size_bytes == 10 + 100 + 100

    asyncio.run(scenario())


def test_redis_entries_are_shared_and_expire(redis_prefix: str) -> None:
    settings = StateSettings(backend="redis", redis_url=REDIS_URL, key_prefix=redis_prefix)

    async def scenario() -> None:
        one, two = redis_cache_store(settings, {}), redis_cache_store(settings, {})
        try:
            await one.put("cache:alpha:k", b"sealed", 0.2)
            assert await two.get("cache:alpha:k") == b"sealed"
            assert await two.get("cache:alpha:other") is None
            await asyncio.sleep(0.35)
            assert await two.get("cache:alpha:k") is None
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_redis_down_is_a_storage_error_not_a_hang() -> None:
    settings = StateSettings(
        backend="redis", redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_timeout_s=0.3
    )

    async def scenario() -> None:
        store = redis_cache_store(settings, {})
        try:
            with pytest.raises(StorageError, match="cache read"):
                await store.get("cache:alpha:k")
            with pytest.raises(StorageError, match="cache write"):
                await store.put("cache:alpha:k", b"v", 60)
        finally:
            await store.close()

    asyncio.run(scenario())
