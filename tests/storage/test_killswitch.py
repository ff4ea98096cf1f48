"""Kill switches in the database and in memory: history kept, one active switch per target, and
every process's board follows a change made anywhere, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from passerelle.errors import StorageError
from passerelle.storage.db import Database
from passerelle.storage.epochs import Epoch, PolledEpoch, read_epochs
from passerelle.storage.keys import ConflictError, NotFoundError
from passerelle.storage.killswitch import (
    ActiveSwitches,
    InvalidSwitch,
    KillSwitchBoard,
    KillSwitchStore,
    Scope,
)


def eventually(check: Callable[[], bool], limit: float = 3.0) -> float:
    """Seconds until ``check`` holds; fails after ``limit``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise AssertionError("not seen in time")
        time.sleep(0.005)
    return time.monotonic() - started


@pytest.fixture
def watch(db: Database) -> Iterator[PolledEpoch]:
    polled = PolledEpoch(db, 0.05)
    yield polled
    polled.close()


def test_set_list_lift_keeps_history(db: Database) -> None:
    store = KillSwitchStore(db)
    first = store.set(Scope.MODEL, "chat", reason="  wrong answers  ", by="ops@acme.test")
    assert first.id > 0 and first.reason == "wrong answers" and first.active
    user = store.set(Scope.USER, "ana@acme.test", reason="stolen laptop", by="ops", user_id="u1")
    assert [s.id for s in store.list()] == [user.id, first.id]  # newest first

    lifted = store.lift(first.id, by="lead@acme.test")
    assert lifted.lifted_by == "lead@acme.test" and lifted.lifted_at is not None
    assert not lifted.active
    assert [s.id for s in store.list()] == [user.id]
    assert [s.id for s in store.list(include_lifted=True)] == [user.id, first.id]
    assert store.get(first.id) == lifted

    # Lifted, the target can be switched off again: a new row, the old one stays.
    again = store.set(Scope.MODEL, "chat", reason="still wrong", by="ops")
    assert again.id not in (first.id, user.id)
    assert len(store.list(include_lifted=True)) == 3


def test_one_active_switch_per_target_and_lifts_are_checked(db: Database) -> None:
    store = KillSwitchStore(db)
    switch = store.set(Scope.PROVIDER, "openai", reason="incident", by="ops")
    with pytest.raises(ConflictError, match=f"kill switch {switch.id}"):
        store.set(Scope.PROVIDER, "openai", reason="again", by="ops")
    store.set(Scope.MODEL, "openai", reason="a model of the same name", by="ops")
    store.set(Scope.USER, "a@x.test", reason="r", by="ops", user_id="u1")
    with pytest.raises(ConflictError):
        store.set(Scope.USER, "A@X.test", reason="r", by="ops", user_id="u1")
    store.lift(switch.id, by="ops")
    with pytest.raises(ConflictError, match="already lifted"):
        store.lift(switch.id, by="ops")
    with pytest.raises(NotFoundError):
        store.lift(424242, by="ops")


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "two\nlines"])
def test_reasons_are_short_and_required(db: Database, reason: str) -> None:
    with pytest.raises(InvalidSwitch) as refused:
        KillSwitchStore(db).set(Scope.MODEL, "chat", reason=reason, by="ops")
    assert refused.value.param == "reason"
    assert KillSwitchStore(db).list(include_lifted=True) == []


def test_active_switches_index_users_by_id_and_skip_lifted() -> None:
    from passerelle.storage.killswitch import KillSwitch

    active = ActiveSwitches.of(
        [
            KillSwitch(3, Scope.USER, "ana@acme.test", "u1", "r", "ops", 1),
            KillSwitch(1, Scope.MODEL, "chat", None, "r", "ops", 1),
            KillSwitch(2, Scope.PROJECT, "p", None, "r", "ops", 1, "ops", 2),
        ]
    )
    assert set(active.users) == {"u1"} and set(active.models) == {"chat"}
    assert not active.projects and not active.providers
    assert active and not ActiveSwitches()


def test_a_change_through_this_process_applies_at_once(db: Database) -> None:
    store = KillSwitchStore(db)
    board = KillSwitchBoard(store)
    switch = store.set(Scope.PROJECT, "alpha", reason="paused", by="ops")
    assert board.snapshot.projects["alpha"].id == switch.id
    store.lift(switch.id, by="ops")
    assert not board.snapshot


def test_a_change_by_another_process_is_seen_within_the_polling_interval(
    db: Database, watch: PolledEpoch
) -> None:
    board = KillSwitchBoard(KillSwitchStore(db), watch)
    other = Database(db.url)  # stands for the command line or another gateway instance
    try:
        elsewhere = KillSwitchStore(other)
        switch = elsewhere.set(Scope.MODEL, "chat", reason="bad", by="ops")
        seen = eventually(lambda: "chat" in board.snapshot.models)
        elsewhere.lift(switch.id, by="ops")
        gone = eventually(lambda: "chat" not in board.snapshot.models)
    finally:
        other.dispose()
    assert seen < 0.5 and gone < 0.5, (seen, gone)


def test_the_kill_switch_counter_is_its_own(db: Database, watch: PolledEpoch) -> None:
    """Key caches do not drop their entries when a switch changes, nor the reverse."""
    before = read_epochs(db)
    KillSwitchStore(db).set(Scope.MODEL, "chat", reason="bad", by="ops")
    after = read_epochs(db)
    assert after[Epoch.KILL_SWITCHES] == before[Epoch.KILL_SWITCHES] + 1
    assert after[Epoch.CREDENTIALS] == before[Epoch.CREDENTIALS]
    eventually(lambda: watch.current(Epoch.KILL_SWITCHES) == after[Epoch.KILL_SWITCHES])
    assert watch.current() == after[Epoch.CREDENTIALS]


def test_a_failed_reload_is_retried_on_the_next_poll(db: Database, watch: PolledEpoch) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("database went away for a moment")

    watch.subscribe(Epoch.KILL_SWITCHES, flaky)
    other = Database(db.url)
    try:
        KillSwitchStore(other).set(Scope.MODEL, "chat", reason="bad", by="ops")
    finally:
        other.dispose()
    eventually(lambda: len(calls) >= 2)
    time.sleep(0.2)
    assert len(calls) == 2  # retried once it failed, then quiet: the counter did not move again
