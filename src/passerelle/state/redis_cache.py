"""The response cache's store in Redis, shared by every gateway instance (see
``response_cache.py`` for the contract; imported only when ``state.backend`` is redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from passerelle.config.schema import StateSettings
from passerelle.errors import StorageError
from passerelle.state.redis import redis_client


class RedisCacheStore:
    """Entries in Redis, shared by every gateway instance, expired by Redis itself (``PX``).

    Memory is bounded by Redis's own ``maxmemory`` and eviction policy (``volatile-lru`` or
    ``allkeys-lru`` suit a cache); every entry has a time to live, so none outlives it."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, timeout_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s

    async def get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                value = await self._client.get(self._prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageError(
                f"Redis did not answer a cache read ({type(exc).__name__})"
            ) from None
        if value is None:
            return None
        assert isinstance(value, bytes), "the client is built with decode_responses=False"
        return value

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StorageError(
                f"Redis did not answer a cache write ({type(exc).__name__})"
            ) from None

    async def close(self) -> None:
        await self._client.aclose(close_connection_pool=True)


def redis_cache_store(
    settings: StateSettings, secrets: Mapping[str, str], client: aioredis.Redis | None = None
) -> RedisCacheStore:
    """The cache's store in the Redis of ``state:`` (through ``client``, the process's pool,
    when given)."""
    client = client or redis_client(settings, secrets)
    return RedisCacheStore(client, settings.key_prefix, timeout_s=settings.redis_timeout_s)
