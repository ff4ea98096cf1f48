"""The one Redis connection pool of a gateway process, built from ``state:`` in the config.

Every Redis call of the request path goes through a client made here, with the configured
timeout: a Redis that does not answer costs a request at most ``redis_timeout_s`` before the
caller decides what failing closed means for it (a hard cap refuses; the cache is skipped).
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from passerelle.config.schema import StateSettings


def redis_client(settings: StateSettings, secrets: Mapping[str, str]) -> aioredis.Redis:
    """An asyncio Redis client for ``settings.redis_url``; connections open on first use."""
    assert settings.redis_url is not None, "checked by the schema"
    password = (
        secrets[settings.redis_password.env_name] if settings.redis_password is not None else None
    )
    # A blocking pool: past its size, a call waits (within the timeout) for a connection
    # instead of failing; a few dozen connections carry thousands of requests a second, since
    # each script runs in well under a millisecond.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        password=password,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        max_connections=64,
        timeout=settings.redis_timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)
