"""A real Redis for the shared-state tests: skipped locally without one, a failure in CI."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = os.environ.get("PASSERELLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    """Skip (locally) or fail (CI) when the test Redis does not answer."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, redis.ConnectionError, redis.TimeoutError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required in CI ({REDIS_URL}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}; set PASSERELLE_TEST_REDIS_URL")
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted afterwards."""
    require_redis()
    prefix = f"passerelle-test:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
