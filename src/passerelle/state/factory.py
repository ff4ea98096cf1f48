"""Building the counters a gateway process uses, from ``state:`` in the configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from passerelle.config.schema import StateBackend, StateSettings
from passerelle.state.counters import Counters, MemoryCounters

if TYPE_CHECKING:
    import redis.asyncio as aioredis


def build_counters(
    settings: StateSettings,
    secrets: Mapping[str, str],
    client: aioredis.Redis | None = None,
) -> Counters:
    """In-process counters, or Redis ones when several instances share the same budgets
    (through ``client`` when the process already has one: one pool for all its Redis use)."""
    if settings.backend is StateBackend.MEMORY:
        return MemoryCounters()
    from passerelle.state.redis import redis_client
    from passerelle.state.redis_counters import RedisCounters

    client = client or redis_client(settings, secrets)
    return RedisCounters(client, settings.key_prefix, timeout_s=settings.redis_timeout_s)
