"""The background audit writer: records are spooled on the request path and committed in groups.

``submit`` runs on the event loop for every request, so it does the least that makes a record
safe: one ``write`` to this writer's spool file (the record now survives the process being
killed) and an append to an in-memory queue. A daemon thread takes the queue in batches and
appends each batch to the hash chain in one transaction (group commit): a thousand requests cost
a handful of commits instead of a thousand.

If the database is unavailable the thread retries with backoff and never drops a record: the
records wait in memory and in the spool. When the process dies instead, the spool remains and
:func:`recover_spools` appends it at the next start, or before the command line reads the trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from passerelle.audit.append import AppendResult, Item, append_batch, check_key
from passerelle.audit.records import AuditRecord, canonical_payload
from passerelle.audit.spool import new_instance_id, open_spool, recover_spools, write_line
from passerelle.errors import AuditIntegrityError, StorageError
from passerelle.storage.db import Database

__all__ = ["AuditWriter", "append_now", "recover_spools"]

log = logging.getLogger("passerelle.audit")

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 5.0


def append_now(db: Database, records: Iterable[AuditRecord], key: bytes | None = None) -> int:
    """Append ``records`` synchronously, for callers without a running writer (the command
    line's administrative actions). Same transaction code as the writer's batches. Returns the
    number of records appended (ids already in the trail are skipped)."""
    items = [(record, canonical_payload(record)) for record in records]
    return sum(
        append_batch(db, items[start : start + 500], key).inserted
        for start in range(0, len(items), 500)
    )


class AuditWriter:
    """Spools records on ``submit`` and commits them to the chain from a background thread.

    The counters (``submitted``, ``committed``, ``skipped``, ``batches``, ``last_batch_size``,
    ``errors``, ``spool_errors``, ``spool_segments``) are plain integers for the metrics endpoint
    to read; ``queue_depth`` is how many records wait for a commit.
    """

    def __init__(
        self,
        db: Database,
        spool_dir: Path,
        *,
        key: bytes | None = None,
        batch_max: int = 500,
        linger_ms: float = 2.0,
        segment_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if linger_ms < 0:
            raise ValueError("linger_ms cannot be negative")
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.batch_max = batch_max
        self.linger_s = linger_ms / 1000
        # Past this size the writer moves to a new spool file instead of waiting for an empty
        # queue to truncate the current one.
        self.segment_bytes = segment_bytes
        self._key = key
        # One lock guards the queue, the spool descriptor and the counters below, so that
        # "queue empty and everything committed" and "truncate the spool" happen together.
        self._cond = threading.Condition()
        self._queue: deque[Item] = deque()
        self.instance_id = new_instance_id()
        self._fd: int | None = None
        self._spool_path: Path | None = None
        self._segment = 0
        self._spool_bytes = 0
        self._spool_torn = False
        # Earlier segments: (fd, path, the ``submitted`` count once all their records are in).
        self._retired: list[tuple[int, Path, int]] = []
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread waits for a first record
        self._lingering = False  # the thread waits for a batch to fill
        self._flush_waiters = 0
        self._async_waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._stopping = False
        self._abandon = False
        self._processed = 0
        self.submitted = 0
        self.committed = 0
        self.skipped = 0
        self.batches = 0
        self.last_batch_size = 0
        self.errors = 0
        self.spool_errors = 0
        self.spool_segments = 1
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover the spools of writers that died, open this writer's spool, start the thread.

        Raises ``AuditIntegrityError`` when the trail's last records do not verify with this
        writer's key (see :func:`~passerelle.audit.append.check_key`), and ``StorageError`` when
        the database cannot be reached."""
        if self._thread is not None:
            raise RuntimeError("the audit writer is already started")
        check_key(self.db, self._key)
        recovered = recover_spools(self.db, self.spool_dir, self._key, batch_max=self.batch_max)
        if recovered:
            log.warning("appended %d audit record(s) left by a writer that stopped", recovered)
        self._fd, self._spool_path = open_spool(self.spool_dir, self.instance_id, self._segment)
        self._thread = threading.Thread(target=self._run, name="passerelle-audit", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        """Records submitted but not yet committed."""
        return self.submitted - self._processed

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what was submitted, stop the thread and release the spool.

        Returns False when some records could not be committed within ``timeout``; they stay
        in the spool file, which the next start (or any ``recover_spools``) appends."""
        thread = self._thread
        if thread is None:
            return self._processed == self.submitted
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout)
        if thread.is_alive():
            with self._cond:
                self._abandon = True
                self._cond.notify_all()
            thread.join(1.0)
        with self._cond:
            done = not self._queue and self._processed == self.submitted
            segments = [(fd, path) for fd, path, _ in self._retired]
            if self._fd is not None and self._spool_path is not None:
                segments.append((self._fd, self._spool_path))
            self._fd, self._retired = None, []
            for fd, path in segments:
                if done:
                    path.unlink(missing_ok=True)
                os.close(fd)  # releases the lock: recovery may take what is left
        if not done:
            log.error(
                "audit writer stopped with %d record(s) not committed; they are kept in %s",
                self.queue_depth,
                self.spool_dir,
            )
        return done

    # -- the request path ---------------------------------------------------------------------

    def submit(self, record: AuditRecord) -> None:
        """Make ``record`` durable against a crash of this process, and queue it.

        No database call, no ``fsync`` (see :func:`~passerelle.audit.spool.write_line`): one
        encoding and one ``write`` system call. Raises ``RuntimeError`` if the writer is not
        running, and ``TypeError`` if ``details`` is not JSON-serialisable."""
        payload = canonical_payload(record)
        failure: OSError | None = None
        with self._cond:
            fd = self._fd
            if fd is None:
                raise RuntimeError("the audit writer is not running")
            try:
                # After a failed write, a newline first closes whatever fragment it left.
                line = (b"\n" if self._spool_torn else b"") + payload + b"\n"
                write_line(fd, line)
                self._spool_bytes += len(line)
                self._spool_torn = False
            except OSError as exc:
                # The record is still queued: losing crash safety for it beats losing it.
                self._spool_torn = True
                self.spool_errors += 1
                failure = exc
            self._queue.append((record, payload))
            self.submitted += 1
            if self._idle or (self._lingering and len(self._queue) >= self.batch_max):
                self._cond.notify()
        if failure is not None:
            log.error("cannot write to the audit spool (%s); record kept in memory only", failure)

    # -- waiting for commits ------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until every record submitted before this call is committed. False on timeout,
        or when the writer is not running."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.submitted
            self._flush_waiters += 1
            self._cond.notify_all()  # cut a linger short: someone is waiting
            try:
                while self._processed < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self.is_alive():
                        return False
                    self._cond.wait(min(remaining, 0.5))
                return True
            finally:
                self._flush_waiters -= 1

    async def aflush(self) -> bool:
        """``flush`` for coroutines, without blocking the event loop or a worker thread: the
        writer thread wakes the caller. Bound it with ``asyncio.timeout``. False when the writer
        stopped before committing everything."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiter = (0, loop, future)
        with self._cond:
            if self._processed >= self.submitted:
                return True
            if not self.is_alive():
                return False
            waiter = (self.submitted, loop, future)
            self._async_waiters.append(waiter)
            self._cond.notify_all()  # cut a linger short
        try:
            return await future
        finally:
            with self._cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)

    def _wake_async_waiters(self, *, everyone: bool) -> None:
        # Called with the lock held, from the writer thread.
        ready = [w for w in self._async_waiters if everyone or w[0] <= self._processed]
        for waiter in ready:
            self._async_waiters.remove(waiter)
            target, loop, future = waiter
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, self._processed >= target)

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._cond:
                self._wake_async_waiters(everyone=True)
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            result = self._append_with_retry(batch)
            with self._cond:
                if result is None:  # abandoned by close(): the spool keeps the records
                    self._queue.extendleft(reversed(batch))
                    return
                self._processed += len(batch)
                self.committed += result.inserted
                self.skipped += result.skipped
                self.batches += 1
                self.last_batch_size = len(batch)
                while self._retired and self._retired[0][2] <= self._processed:
                    fd, path, _ = self._retired.pop(0)
                    path.unlink(missing_ok=True)
                    os.close(fd)
                if not self._queue and self._fd is not None:
                    # Everything ever written to the spool is now in the database.
                    os.ftruncate(self._fd, 0)
                    self._spool_bytes = 0
                rotate = self._spool_bytes > self.segment_bytes
                self._wake_async_waiters(everyone=False)
                self._cond.notify_all()
            if rotate:
                self._next_segment()

    def _next_segment(self) -> None:
        """Send new records to a fresh spool file; the current one is deleted once the records
        already in it are committed. The file is opened outside the lock, so ``submit`` never
        waits for it."""
        try:
            fd, path = open_spool(self.spool_dir, self.instance_id, self._segment + 1)
        except OSError as exc:
            log.error("cannot start a new audit spool segment (%s); keeping the current one", exc)
            return
        self._segment += 1
        self.spool_segments += 1
        with self._cond:
            if self._fd is None or self._spool_path is None:  # closed meanwhile
                os.close(fd)
                path.unlink(missing_ok=True)
                return
            self._retired.append((self._fd, self._spool_path, self.submitted))
            self._fd, self._spool_path = fd, path
            self._spool_bytes = 0

    def _next_batch(self) -> list[Item] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._idle = True
                self._cond.wait()
                self._idle = False
            # Group commit: with one record in hand, wait a little for company, unless
            # someone is already waiting for this record or we are shutting down.
            if self.linger_s > 0:
                deadline = time.monotonic() + self.linger_s
                self._lingering = True
                while (
                    len(self._queue) < self.batch_max
                    and not self._stopping
                    and not self._flush_waiters
                    and not self._async_waiters
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._lingering = False
            count = min(len(self._queue), self.batch_max)
            return [self._queue.popleft() for _ in range(count)]

    def _append_with_retry(self, batch: list[Item]) -> AppendResult | None:
        delay = _BACKOFF_FIRST_S
        dedupe = False  # fresh ids: only a retry can meet its own earlier, committed attempt
        while True:
            try:
                return append_batch(self.db, batch, self._key, dedupe=dedupe)
            except (StorageError, AuditIntegrityError) as exc:
                self.errors += 1
                self.last_error = str(exc)
                log.error(
                    "audit batch of %d not committed, retrying in %.2fs: %s", len(batch), delay, exc
                )
                dedupe = True
            with self._cond:
                if self._abandon:
                    return None
                self._cond.wait(delay)
                if self._abandon:
                    return None
            delay = min(delay * 2, _BACKOFF_MAX_S)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
