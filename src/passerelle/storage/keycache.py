"""Resolved keys kept in memory, dropped as soon as any process changes users or keys.

Reading a key through SQLAlchemy costs about half a millisecond of CPU, on every request, on
the event loop. The cache answers from memory instead and asks the database a much cheaper
question: has the credentials epoch (``auth_epoch``, bumped in the same transaction as every
change to users or keys) moved since the entries were loaded? If it has, every entry is dropped.

How that question is asked depends on the database, and decides how soon a change made by
another process (``passerelle keys revoke``, another gateway instance) is seen:

* by default, a background thread reads the epoch every 0.05 s (SQLite) or 0.1 s (PostgreSQL):
  a change made by another process applies within that interval. A read per request would put
  a database call, and an interpreter-lock hand-off, on the event loop of every request;
  measured, those hand-offs stalled requests for milliseconds at the tail. The thread is
  :class:`~passerelle.storage.epochs.PolledEpoch`, which the kill switches share;
* :class:`SQLiteEpoch` reads it per request instead (at most once a millisecond), for callers
  that need a revocation by another process to apply at once and accept that cost.

A change made through this process (the admin API) drops the cache at once in both cases.
Expiry is checked against the clock on every request, cached or not, and an entry is reloaded
after ``max_age`` seconds whatever happens, as a bound on any missed signal.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import make_url

from passerelle.errors import StorageError
from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import watch_epochs
from passerelle.storage.keys import (
    KeyInfo,
    KeyLookup,
    KeyStatus,
    KeyStore,
    User,
    hash_key,
    key_status,
    looks_like_key,
)


class EpochSource(Protocol):
    def current(self) -> int:
        """The credentials epoch as this process knows it now."""

    def close(self) -> None: ...


class SQLiteEpoch:
    """Reads the epoch through its own read-only connection, at most once per ``min_interval``
    seconds (a millisecond: under load, requests arriving together share one read)."""

    def __init__(self, path: str, *, min_interval: float = 0.001) -> None:
        self._conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        self._min_interval = min_interval
        self._value = 0
        self._read_at = float("-inf")

    def current(self) -> int:
        now = time.monotonic()
        if now - self._read_at < self._min_interval:
            return self._value
        self._value = self._read()
        self._read_at = now
        return self._value

    def _read(self) -> int:
        with self._lock:
            try:
                row = self._conn.execute("SELECT epoch FROM auth_epoch WHERE id = 1").fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read the credentials epoch: {exc}") from exc
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def epoch_source(
    store: KeyStore, *, poll_interval: float | None = None, per_request: bool = False
) -> EpochSource:
    """How the gateway follows the epoch: polled by a background thread (every 0.05 s on
    SQLite, 0.1 s on PostgreSQL), or, with ``per_request`` on SQLite, read on every request.

    Polling is the default even on SQLite: any database call on the event loop lets another
    thread take the interpreter lock, and getting it back can stall every request in flight
    for milliseconds; a revocation applying within 50 ms is worth far less than that."""
    db: Database = store.db
    url = make_url(db.url)
    local = db.is_sqlite and bool(url.database) and url.database != ":memory:"
    if per_request and local and url.database:
        return SQLiteEpoch(url.database)
    return watch_epochs(db, poll_interval)


@dataclass(frozen=True, slots=True)
class _Entry:
    found: tuple[KeyInfo, User] | None
    loaded_at: float


class KeyCache:
    """``resolve`` with the same answers as :meth:`KeyStore.resolve`, mostly from memory."""

    def __init__(
        self,
        store: KeyStore,
        epoch: EpochSource,
        *,
        max_entries: int = 10_000,
        max_age: float = 60.0,
    ) -> None:
        self.store = store
        self._epoch_source = epoch
        self._max_entries = max_entries
        self._max_age = max_age
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._epoch = epoch.current()
        store.on_change.append(self.invalidate)
        self.hits = 0
        self.misses = 0

    def resolve(self, plaintext: str) -> KeyLookup:
        if not looks_like_key(plaintext):
            return KeyLookup(KeyStatus.UNKNOWN)
        epoch = self._epoch_source.current()
        if epoch != self._epoch:
            self._entries.clear()
            self._epoch = epoch
        digest = hash_key(plaintext)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or now - entry.loaded_at > self._max_age:
            self.misses += 1
            entry = _Entry(self.store.find_by_hash(digest), now)
            self._entries[digest] = entry
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        else:
            self.hits += 1
            self._entries.move_to_end(digest)
        if entry.found is None:
            return KeyLookup(KeyStatus.UNKNOWN)
        key, user = entry.found
        return KeyLookup(key_status(key, user, now_us()), key, user)

    def invalidate(self) -> None:
        """Forget everything; for changes made by this process."""
        self._entries.clear()

    def close(self) -> None:
        self._epoch_source.close()
