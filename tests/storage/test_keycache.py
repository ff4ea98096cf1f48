"""The key cache answers like the database, and forgets as soon as any process changes keys."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import PolledEpoch
from passerelle.storage.keycache import KeyCache, SQLiteEpoch, epoch_source
from passerelle.storage.keys import KeyStatus, KeyStore


@pytest.fixture
def cache(db: Database) -> Iterator[KeyCache]:
    store = KeyStore(db)
    cache = KeyCache(store, epoch_source(store, poll_interval=0.05))
    yield cache
    cache.close()


def _eventually(check: object, limit: float = 3.0) -> None:
    """The epoch is polled: a change made elsewhere shows within the interval."""
    deadline = time.monotonic() + limit
    while True:
        if check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError("the cache did not see the change in time")
        time.sleep(0.01)


def test_epoch_is_polled_by_default_and_read_per_request_on_demand(
    db: Database, cache: KeyCache
) -> None:
    assert isinstance(cache._epoch_source, PolledEpoch)
    if db.is_sqlite:
        source = epoch_source(cache.store, per_request=True)
        try:
            assert isinstance(source, SQLiteEpoch)
            assert source.current() == cache.store.epoch()
        finally:
            source.close()


def test_second_resolve_is_served_from_memory(db: Database, cache: KeyCache) -> None:
    store = cache.store
    user = store.add_user("ana@example.com", team="qa")
    plaintext, info = store.create_key(user, project="p1")
    first = cache.resolve(plaintext)
    second = cache.resolve(plaintext)
    assert first.status is second.status is KeyStatus.VALID
    assert second.key is not None and second.key.id == info.id
    assert (cache.misses, cache.hits) == (1, 1)


def test_revocation_by_another_process_is_seen(db: Database, cache: KeyCache) -> None:
    """Another KeyStore on the same database stands for the CLI or another instance."""
    user = cache.store.add_user("bob@example.com")
    plaintext, info = cache.store.create_key(user, project="p1")
    assert cache.resolve(plaintext).status is KeyStatus.VALID
    other = Database(db.url)
    try:
        KeyStore(other).revoke_key(info.id)
    finally:
        other.dispose()
    # Polled: within the polling interval (0.05 s here).
    _eventually(lambda: cache.resolve(plaintext).status is KeyStatus.REVOKED)


def test_revocation_through_this_process_is_immediate_on_every_backend(cache: KeyCache) -> None:
    user = cache.store.add_user("cy@example.com")
    plaintext, info = cache.store.create_key(user, project="p1")
    assert cache.resolve(plaintext).status is KeyStatus.VALID
    cache.store.revoke_key(info.prefix)
    assert cache.resolve(plaintext).status is KeyStatus.REVOKED


def test_a_key_created_elsewhere_after_a_miss_becomes_valid(db: Database, cache: KeyCache) -> None:
    """Unknown keys are cached too (so junk keys cost no reads), but not past a change."""
    other = Database(db.url)
    try:
        other_store = KeyStore(other)
        user = other_store.add_user("dee@example.com")
        plaintext, _ = other_store.create_key(user, project="p1")
        # Make the cache hold a negative entry for the key's hash before it exists: revoke and
        # recreate is not possible, so look up a different, unknown key first, then the real one.
        assert cache.resolve("psk-" + "x" * 40).status is KeyStatus.UNKNOWN
        _eventually(lambda: cache.resolve(plaintext).status is KeyStatus.VALID)
    finally:
        other.dispose()


def test_expiry_is_checked_on_every_request_even_from_memory(cache: KeyCache) -> None:
    user = cache.store.add_user("eve@example.com")
    plaintext, _ = cache.store.create_key(user, project="p1", expires_at=now_us() + 500_000)
    # Settle: on PostgreSQL the poller reports the creation's own epoch bump a little later.
    _eventually(lambda: cache.resolve(plaintext).status is KeyStatus.VALID and cache.hits > 0)
    time.sleep(0.1)
    cache.resolve(plaintext)
    hits = cache.hits
    time.sleep(max(0.0, 0.55 - 0.1))
    assert cache.resolve(plaintext).status is KeyStatus.EXPIRED
    assert cache.hits == hits + 1  # answered from memory, expiry checked against the clock


def test_epoch_bump_in_sql_drops_the_cache(db: Database, cache: KeyCache) -> None:
    user = cache.store.add_user("fay@example.com")
    plaintext, _ = cache.store.create_key(user, project="p1")
    cache.resolve(plaintext)
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET disabled_at = 1"))
        conn.execute(text("UPDATE auth_epoch SET epoch = epoch + 1"))
    _eventually(lambda: cache.resolve(plaintext).status is KeyStatus.USER_DISABLED)


def test_entries_are_bounded(cache: KeyCache) -> None:
    small = KeyCache(cache.store, cache._epoch_source, max_entries=3)
    for i in range(10):
        small.resolve(f"psk-unknown-key-number-{i:04d}")
    assert len(small._entries) == 3


def test_non_key_strings_never_reach_the_database(cache: KeyCache) -> None:
    assert cache.resolve("sk-not-ours").status is KeyStatus.UNKNOWN
    assert cache.misses == 0
