"""Ports, processes and the test Redis, for tests that run real servers."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis


def free_port() -> int:
    """A local port nothing listens on (bound, then released): a server may take it, and a
    connection to it is refused until one does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Wait until ``url`` answers 200, failing if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready after {timeout} s")


# -- the fake OpenAI upstream as a process of its own -------------------------------------------


@contextmanager
def fake_openai_process() -> Iterator[str]:
    """``python -m passerelle.testing.fake_openai`` on a free port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "passerelle.testing.fake_openai", "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/v1/models", process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


# -- Redis ----------------------------------------------------------------------------------------

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


def new_redis_prefix() -> str:
    """A key prefix of one test's own in the shared test Redis."""
    return f"passerelle-test:{secrets.token_hex(6)}:"


def delete_redis_keys(prefix: str) -> None:
    """Remove every key a test wrote under ``prefix``."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
