"""Change counters: how every gateway process learns that state it keeps in memory has changed.

Gateways keep some database state in memory so that requests never wait for the database:
resolved keys (:mod:`passerelle.storage.keycache`), the active kill switches
(:mod:`passerelle.storage.killswitch`) and the canary roll-outs (:mod:`passerelle.storage.canary`).
Each kind of state has a counter, one row of the
``auth_epoch`` table, bumped in the same transaction as every change to that state; a process
that sees a counter move knows its copy is stale. The transaction makes the signal exact: a
change cannot commit without its bump, so no change is missed, whichever process made it
(a gateway's admin API, the command line, another instance).

One background thread per process (:class:`PolledEpoch`) reads every counter in one query,
every 0.05 s on SQLite and 0.1 s on PostgreSQL, and tells the state's owner when its counter
moves. Polling off the event loop is deliberate: a database call per request, even a cheap one,
lets another thread take the interpreter lock, and getting it back stalled requests for
milliseconds at the tail (measured).

Row 1 predates the others and keeps its table's name (``auth_epoch``): it counts changes to
users and keys, the credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import Connection, select

from passerelle.errors import PasserelleError
from passerelle.storage.db import Database
from passerelle.storage.tables import auth_epoch

log = logging.getLogger("passerelle.epochs")


class Epoch(IntEnum):
    """Which counter: the ``id`` of its row in ``auth_epoch``."""

    CREDENTIALS = 1
    """Users and API keys."""
    KILL_SWITCHES = 2
    """Kill switches set or lifted."""
    CANARY = 3
    """Canary roll-outs started, moved to another stage, paused, resumed or ended."""


def bump_epoch(conn: Connection, epoch: Epoch) -> None:
    """Tell every process that the state counted by ``epoch`` changed; call inside the changing
    transaction, so that the change and its signal commit together."""
    row = auth_epoch.c.id == int(epoch)
    conn.execute(auth_epoch.update().where(row).values(epoch=auth_epoch.c.epoch + 1))


def lock_epoch(conn: Connection, epoch: Epoch) -> None:
    """Take the row lock of ``epoch``'s counter until the transaction ends, so that changes to
    the state it counts run one at a time across processes: a check-then-insert is then
    atomic. On PostgreSQL this is ``SELECT ... FOR UPDATE``; SQLite transactions already hold the
    database's write lock (``BEGIN IMMEDIATE``)."""
    conn.execute(
        select(auth_epoch.c.epoch).where(auth_epoch.c.id == int(epoch)).with_for_update()
    ).first()


def read_epoch(conn: Connection, epoch: Epoch) -> int:
    value = conn.execute(select(auth_epoch.c.epoch).where(auth_epoch.c.id == int(epoch))).scalar()
    return int(value or 0)


def read_epochs(db: Database) -> dict[int, int]:
    """Every counter, in one query."""
    with db.read() as conn:
        rows = conn.execute(select(auth_epoch.c.id, auth_epoch.c.epoch)).all()
    return {int(row.id): int(row.epoch) for row in rows}


@dataclass(slots=True)
class _Subscriber:
    epoch: Epoch
    callback: Callable[[], None]
    seen: int


class PolledEpoch:
    """A background thread reads every counter each ``interval`` seconds.

    ``current()`` answers from memory (the credentials counter unless told otherwise), for
    callers that compare it on their own schedule, like the key cache. :meth:`subscribe` is for
    state that must be reloaded as soon as it changes, like the kill switches: the callback runs
    on the polling thread, off the event loop, after its counter moved.

    If the database cannot be read, the last values are kept and the failure logged once; a
    callback that raises a :class:`~passerelle.errors.PasserelleError` (its reload failed) is
    called again on the next poll."""

    def __init__(self, db: Database, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._values = read_epochs(db)
        self._subscribers: list[_Subscriber] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="passerelle-epochs", daemon=True)
        self._thread.start()

    def current(self, epoch: Epoch = Epoch.CREDENTIALS) -> int:
        return self._values.get(int(epoch), 0)

    def subscribe(self, epoch: Epoch, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the polling thread) whenever ``epoch`` moves from now on.

        Load the state *after* subscribing: a change committed in between is then either in
        what was loaded or seen as a move, never neither."""
        with self._lock:
            self._subscribers.append(_Subscriber(epoch, callback, self.current(epoch)))

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval):
            try:
                self._values = read_epochs(self._db)
            except PasserelleError as exc:
                if not failing:
                    log.warning("cannot read the change counters: %s", exc)
                failing = True
                continue
            failing = False
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                value = self.current(subscriber.epoch)
                if value == subscriber.seen:
                    continue
                try:
                    subscriber.callback()
                except PasserelleError as exc:
                    log.warning("reloading after a change failed, retrying: %s", exc)
                else:
                    subscriber.seen = value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def watch_epochs(db: Database, interval: float | None = None) -> PolledEpoch:
    """The polling thread for ``db``: every 0.05 s on SQLite (a local file read), 0.1 s on
    PostgreSQL (a network round trip, for every instance)."""
    return PolledEpoch(db, interval or (0.05 if db.is_sqlite else 0.1))
