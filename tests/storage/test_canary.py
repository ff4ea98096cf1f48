"""Canary roll-outs in the database, on SQLite and PostgreSQL: the compare-and-set that makes
three instances judging at once produce one transition and one audit record, automatic starts,
the incremental window, and the decisions taken by hand."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import append_now
from passerelle.config import Config, parse_config
from passerelle.config.schema import Canary
from passerelle.pipeline.canary import fingerprint
from passerelle.pipeline.canary_evaluator import (
    CanaryEvaluator,
    ManualAction,
    WindowReader,
    act,
    evaluate,
)
from passerelle.pipeline.canary_gates import Action
from passerelle.storage.canary import CanaryBoard, CanaryStore, Rollout, RolloutStatus
from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import Epoch, read_epochs
from passerelle.storage.keys import ConflictError, NotFoundError

T = TypeVar("T")

CONFIG = """\
version: 1
providers:
  old: {{kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: restricted}}
  new: {{kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: restricted}}
models:
  chat:
    routes: [{{provider: old, model: m1}}]
    canary:
      routes: [{{provider: new, model: {model}}}]
      stages: [20, 50, 100]
      min_duration_s: 0
      min_requests: 5
      start: {start}
"""


def config(model: str = "m2", start: str = "auto") -> Config:
    return parse_config(CONFIG.format(model=model, start=start), source="test.yaml")


@dataclass
class Instance:
    """One gateway process's canary machinery, on its own engine."""

    db: Database
    board: CanaryBoard
    evaluator: CanaryEvaluator
    audit: list[AuditRecord] = field(default_factory=list)


@pytest.fixture
def instances(db: Database) -> Iterator[list[Instance]]:
    made: list[Instance] = []
    for index in range(3):
        own = db if index == 0 else Database(db.url)
        board = CanaryBoard(CanaryStore(own))
        records: list[AuditRecord] = []
        made.append(Instance(own, board, CanaryEvaluator(config(), board, records.append), records))
    yield made
    for instance in made[1:]:
        instance.db.dispose()


def at_once(workers: list[Callable[[], T]]) -> list[T]:
    """Run ``workers`` in threads released together; their results in order."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = workers[index]()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


_ids = itertools.count(1)


def requests(
    db: Database,
    rollout: Rollout,
    *,
    canary_ok: int = 0,
    canary_failed: int = 0,
    stable_ok: int = 0,
) -> None:
    """Append request records as the gateway writes them for ``rollout``'s current stage."""
    now = now_us()
    records = []
    kinds = [("canary", 200)] * canary_ok + [("canary", 502)] * canary_failed
    kinds += [("stable", 200)] * stable_ok
    for arm, status in kinds:
        canary = arm == "canary"
        provider, model = ("new", "m2") if canary else ("old", "m1")
        records.append(
            AuditRecord(
                record_id=f"req_{next(_ids):024x}",
                kind="request",
                ts_us=now,
                actor="dev@acme.test",
                team=None,
                project="p1",
                client=None,
                model="chat",
                provider=provider,
                status=status,
                details={
                    "rollout": {"id": rollout.id, "stage": rollout.stage, "arm": arm},
                    "canary": canary,
                    "attempts": [{"provider": provider, "model": model, "status": status}],
                    "route_model": model,
                    "stream": False,
                    "latency_ms": 50.0,
                    "first_byte_ms": 50.0,
                },
            )
        )
    append_now(db, records)


def reload(instances: list[Instance]) -> None:
    for instance in instances:
        instance.board.reload()


def actions(instances: list[Instance]) -> list[str]:
    return [str(r.details["action"]) for i in instances for r in i.audit]


def test_three_instances_starting_together_start_one_rollout(instances: list[Instance]) -> None:
    moved = at_once([i.evaluator.tick for i in instances])
    assert sorted(len(m) for m in moved) == [0, 0, 1]
    rows = instances[0].board.store.list("chat")
    assert len(rows) == 1 and rows[0].status is RolloutStatus.RUNNING and rows[0].stage == 0
    assert rows[0].fingerprint == fp()
    assert actions(instances) == ["canary.start"]
    # Every instance knows it after its next reload; nobody starts it twice.
    reload(instances)
    at_once([i.evaluator.tick for i in instances])
    assert len(instances[0].board.store.list("chat")) == 1
    assert actions(instances) == ["canary.start"]


def test_three_instances_judging_together_make_one_transition(
    instances: list[Instance],
) -> None:
    store = instances[0].board.store
    rollout = store.start("chat", fingerprint=fp(), routes=[("new", "m2")], stages=STAGES, by="t")
    assert rollout is not None
    requests(instances[0].db, rollout, canary_ok=5, stable_ok=20)
    reload(instances)
    epoch = read_epochs(instances[0].db)[Epoch.CANARY]

    moved = at_once([i.evaluator.tick for i in instances])

    assert sorted(len(m) for m in moved) == [0, 0, 1]
    current = store.current("chat")
    assert current is not None and current.stage == 1 and current.status is RolloutStatus.RUNNING
    assert read_epochs(instances[0].db)[Epoch.CANARY] == epoch + 1
    (record,) = [r for i in instances for r in i.audit]
    assert record.details["action"] == "canary.advance" and record.actor == "gateway"
    assert (record.details["from_percent"], record.details["percent"]) == (20, 50)
    figures = record.details["figures"]
    assert figures["canary"] == {"requests": 5, "errors": 0, "error_rate": 0.0, "p95_ms": 50.0}
    assert figures["stable"]["requests"] == 20 and figures["decision"] == "advance"
    assert current.verdict is not None and current.verdict["canary"]["requests"] == 5

    # Stage 2 fails: one rollback, once.
    requests(instances[0].db, current, canary_ok=2, canary_failed=3, stable_ok=5)
    reload(instances)
    moved = at_once([i.evaluator.tick for i in instances])
    assert sorted(len(m) for m in moved) == [0, 0, 1]
    final = store.current("chat")
    assert final is not None and final.status is RolloutStatus.ROLLED_BACK
    assert actions(instances).count("canary.rollback") == 1
    rollback = next(
        r for i in instances for r in i.audit if r.details["action"] == "canary.rollback"
    )
    assert rollback.details["figures"]["canary"]["errors"] == 3
    assert "error_rate 0.6 > 0.05" in str(rollback.details["reason"])


def test_a_healthy_rollout_is_promoted_stage_by_stage(instances: list[Instance]) -> None:
    first = instances[0]
    store = first.board.store
    first.evaluator.tick()  # starts it
    for expected in (1, 2):
        current = store.current("chat")
        assert current is not None
        requests(first.db, current, canary_ok=5, stable_ok=5 if current.stage < 2 else 0)
        first.evaluator.tick()
        current = store.current("chat")
        assert current is not None and current.stage == expected
    current = store.current("chat")
    assert current is not None
    requests(first.db, current, canary_ok=5)
    first.evaluator.tick()
    done = store.current("chat")
    assert done is not None and done.status is RolloutStatus.PROMOTED and done.percent == 100
    assert actions(instances) == [
        "canary.start",
        "canary.advance",
        "canary.advance",
        "canary.promote",
    ]
    # At 100 % there is no stable arm: the relative gates used the previous stage's figures.
    assert first.audit[-1].details["figures"]["reference"] == "previous_stage"


def test_a_stale_judgement_changes_nothing(instances: list[Instance]) -> None:
    store = instances[0].board.store
    rollout = store.start("chat", fingerprint=fp(), routes=[("new", "m2")], stages=STAGES, by="t")
    assert rollout is not None
    requests(instances[0].db, rollout, canary_ok=5, stable_ok=5)
    verdict = evaluate(spec(), rollout, WindowReader(store.db), store.db)
    assert verdict.action is Action.ADVANCE
    paused = store.transition(rollout, RolloutStatus.PAUSED, 0, by="person")
    assert paused is not None
    assert instances[1].evaluator.apply(rollout, verdict) is None
    resumed = store.transition(paused, RolloutStatus.RUNNING, 0, by="person")
    assert resumed is not None and resumed.stage_started_at > rollout.stage_started_at
    # Same status and stage as judged, but a new window: still refused.
    assert instances[1].evaluator.apply(rollout, verdict) is None
    assert instances[1].audit == []


def test_the_window_reads_only_what_is_new_and_restarts_with_the_stage(db: Database) -> None:
    store = CanaryStore(db)
    rollout = store.start("chat", fingerprint=fp(), routes=[("new", "m2")], stages=STAGES, by="t")
    assert rollout is not None
    reader = WindowReader(db)
    requests(db, rollout, canary_ok=2, stable_ok=3)
    canary, stable = reader.read(rollout)
    assert (canary.requests, stable.requests) == (2, 3)
    requests(db, rollout, canary_failed=1)
    canary, stable = reader.read(rollout)
    assert (canary.requests, canary.errors, stable.requests) == (3, 1, 3)
    moved = store.transition(rollout, RolloutStatus.RUNNING, 1, by="t")
    assert moved is not None
    canary, stable = reader.read(moved)
    assert (canary.requests, stable.requests) == (0, 0)
    requests(db, moved, canary_ok=1)
    assert reader.read(moved)[0].requests == 1
    # A fresh reader (the command line) finds the same from the stage's start.
    assert WindowReader(db).read(moved)[0].requests == 1


def test_an_automatic_start_never_restarts_a_rolled_back_canary(db: Database) -> None:
    board = CanaryBoard(CanaryStore(db))
    records: list[AuditRecord] = []
    evaluator = CanaryEvaluator(config(), board, records.append)
    (started,) = evaluator.tick()
    rolled = board.store.transition(started, RolloutStatus.ROLLED_BACK, 0, by="t")
    assert rolled is not None
    assert evaluator.tick() == []
    assert len(board.store.list("chat")) == 1
    # A changed canary is a new roll-out, from the first stage.
    changed = CanaryEvaluator(config(model="m3"), board, records.append)
    (second,) = changed.tick()
    assert second.number == 2 and second.stage == 0 and second.routes == (("new", "m3"),)
    # The instance still on the old configuration does not undo it.
    assert evaluator.tick() == []
    assert board.store.current("chat") == second


def test_a_newer_rollout_supersedes_a_live_one(db: Database) -> None:
    store = CanaryStore(db)
    first = store.start("chat", fingerprint="a" * 64, routes=[("new", "m2")], stages=STAGES, by="t")
    assert first is not None
    second = store.start("chat", fingerprint=fp(), routes=[("new", "m2")], stages=STAGES, by="t")
    assert second is not None and second.number == 2
    rows = {r.id: r for r in store.list("chat")}
    assert rows[first.id].status is RolloutStatus.SUPERSEDED
    assert store.transition(first, RolloutStatus.RUNNING, 1, by="t") is None


def test_decisions_by_hand(db: Database) -> None:
    store = CanaryStore(db)
    manual = config(start="manual")
    with pytest.raises(NotFoundError, match="canary start chat"):
        act(manual, store, "chat", ManualAction.PAUSE, by="ops@acme.test")
    with pytest.raises(NotFoundError, match="no model alias"):
        act(manual, store, "nope", ManualAction.START, by="ops@acme.test")
    rollout, record = act(manual, store, "chat", ManualAction.START, by="ops@acme.test")
    assert record.details["action"] == "canary.start" and record.actor == "ops@acme.test"
    with pytest.raises(ConflictError, match="roll it back first"):
        act(manual, store, "chat", ManualAction.START, by="ops@acme.test")
    requests(db, rollout, canary_ok=1, stable_ok=4)

    paused, record = act(
        manual, store, "chat", ManualAction.PAUSE, by="ops@acme.test", reason="looking"
    )
    assert paused.status is RolloutStatus.PAUSED and record.details["reason"] == "looking"
    assert record.details["figures"]["decision"] == "manual"
    assert record.details["figures"]["gates_say"] == "wait"
    assert record.details["figures"]["canary"]["requests"] == 1
    with pytest.raises(ConflictError, match="cannot be paused"):
        act(manual, store, "chat", ManualAction.PAUSE, by="ops@acme.test")
    resumed, _ = act(manual, store, "chat", ManualAction.RESUME, by="ops@acme.test")
    assert resumed.status is RolloutStatus.RUNNING and resumed.stage == 0
    promoted, record = act(manual, store, "chat", ManualAction.PROMOTE, by="ops@acme.test")
    assert (promoted.stage, promoted.percent, record.details["action"]) == (1, 50, "canary.advance")
    full, record = act(manual, store, "chat", ManualAction.PROMOTE, by="ops@acme.test", full=True)
    assert full.status is RolloutStatus.PROMOTED and full.stage == 2
    assert record.details["action"] == "canary.promote"
    back, record = act(manual, store, "chat", ManualAction.ROLLBACK, by="ops@acme.test")
    assert back.status is RolloutStatus.ROLLED_BACK and back.percent == 0
    assert record.details["from_status"] == "promoted" and record.details["figures"] is None
    with pytest.raises(ConflictError, match="cannot be rolled back"):
        act(manual, store, "chat", ManualAction.ROLLBACK, by="ops@acme.test")
    again, _ = act(manual, store, "chat", ManualAction.START, by="ops@acme.test")
    assert again.number == 2 and again.status is RolloutStatus.RUNNING


STAGES = (2000, 5000, 10_000)


def spec() -> Canary:
    canary = config().models["chat"].canary
    assert canary is not None
    return canary


def fp() -> str:
    return fingerprint(spec())
