"""Canary roll-outs, decided: by the gates in the background, or by a person.

**The evaluator.** Each gateway process runs one :class:`CanaryEvaluator`, a background task
that every few seconds (a quarter of the shortest stage, between 0.2 and 5 s):

1. starts the roll-out of every canary the configuration declares with ``start: auto`` that
   was never rolled out (an automatic start never restarts a canary that was rolled back, or
   one the alias already moved on from);
2. for each roll-out at a stage, reads what its window gained since the last look (the audit
   records appended since: :class:`WindowReader`, one indexed range of ``audit_log``) and the
   canary's ratings (one grouped query on ``feedback``), and judges it
   (:func:`~passerelle.pipeline.canary_gates.judge`);
3. applies an advance or a rollback as a compare-and-set on the roll-out's row
   (:meth:`~passerelle.storage.canary.CanaryStore.transition`). Every instance judges; the
   first whose update counts makes the transition and writes its audit record, the others
   change nothing. A paused roll-out is judged (its figures stay current) but never moved.

**By hand** (:func:`act`, shared by ``passerelle canary`` and the admin API): start (again),
pause, resume, promote (to the next stage, or ``full``y) and roll back, with a reason. Every
transition, automatic or not, is an admin audit record (``canary.start``, ``canary.advance``,
``canary.promote``, ``canary.rollback``, ``canary.pause``, ``canary.resume``) naming the
roll-out, the stages before and after, and the gate figures of the window at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import select

from passerelle.audit.records import AuditRecord
from passerelle.config import Config
from passerelle.config.schema import Canary, CanaryStart
from passerelle.dlp.findings import Category
from passerelle.dlp.scanner import Scanner
from passerelle.errors import PasserelleError
from passerelle.pipeline.canary import canaries, deployments, fingerprint, stage_points
from passerelle.pipeline.canary_gates import (
    Action,
    ArmFigures,
    ArmSample,
    FeedbackFigures,
    Verdict,
    Window,
    judge,
    outcome_of,
)
from passerelle.runtime import admin_record
from passerelle.storage.canary import (
    LIVE,
    CanaryBoard,
    CanaryStore,
    Rollout,
    RolloutStatus,
    head_seq,
    stale,
)
from passerelle.storage.db import Database, now_us
from passerelle.storage.feedback import StatsBy, feedback_stats
from passerelle.storage.keys import ConflictError, NotFoundError
from passerelle.storage.tables import audit_log

log = logging.getLogger("passerelle.canary")

GATEWAY_ACTOR = "gateway"
"""Who the audit trail says made an automatic transition."""
_PAGE = 5000
"""Audit records read per query."""

AuditSink = Callable[[AuditRecord], None]


# -- windows ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Window:
    key: tuple[int, int, int]
    cursor: int
    canary: ArmSample = field(default_factory=ArmSample)
    stable: ArmSample = field(default_factory=ArmSample)


class WindowReader:
    """The two arms of each roll-out's current window, read incrementally from the audit trail.

    Each call reads only the records appended since the previous call: sequence numbers above
    the last one read, up to the trail's head (``audit_log``'s primary key, so an index range).
    A new stage, or a resume, starts over from the stage's ``stage_seq``. Not thread-safe: one
    reader per evaluator, or a new one for a one-off read."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._windows: dict[str, _Window] = {}

    def read(self, rollout: Rollout) -> tuple[ArmSample, ArmSample]:
        """The canary and stable arms of ``rollout``'s current window, so far."""
        key = (rollout.id, rollout.stage, rollout.stage_started_at)
        window = self._windows.get(rollout.alias)
        if window is None or window.key != key:
            window = _Window(key, rollout.stage_seq)
            self._windows[rollout.alias] = window
        pairs = rollout.deployments
        with self._db.read() as conn:
            head = head_seq(conn)
            while window.cursor < head:
                rows = conn.execute(
                    select(audit_log.c.seq, audit_log.c.payload)
                    .where(
                        audit_log.c.seq > window.cursor,
                        audit_log.c.seq <= head,
                        audit_log.c.kind == "request",
                        audit_log.c.model == rollout.alias,
                    )
                    .order_by(audit_log.c.seq)
                    .limit(_PAGE)
                ).all()
                for row in rows:
                    outcome = outcome_of(
                        orjson.loads(row.payload),
                        rollout.id,
                        rollout.stage,
                        rollout.stage_started_at,
                        pairs,
                    )
                    if outcome is not None:
                        (window.canary if outcome.canary else window.stable).add(outcome)
                window.cursor = int(rows[-1].seq) if len(rows) == _PAGE else head
        return window.canary, window.stable

    def forget(self, alias: str) -> None:
        self._windows.pop(alias, None)


def feedback_figures(db: Database, rollout: Rollout) -> FeedbackFigures:
    """Ratings given since the roll-out started to answers of the canary's deployments."""
    up = down = 0
    pairs = rollout.deployments
    for row in feedback_stats(
        db, by=StatsBy.ROUTE, model=rollout.alias, since_us=rollout.started_at
    ):
        if (row.provider, row.route_model) in pairs:
            up += row.up
            down += row.down
    return FeedbackFigures(up, down)


def evaluate(
    canary: Canary, rollout: Rollout, reader: WindowReader, db: Database, now: int | None = None
) -> Verdict:
    """Judge ``rollout``'s current window against ``canary``'s gates."""
    canary_arm, stable_arm = reader.read(rollout)
    previous = None
    if rollout.verdict is not None and rollout.stage > 0:
        previous = ArmFigures.from_json(rollout.verdict.get("stable"))
    window = Window(
        stage=rollout.stage,
        percent=rollout.stage_percent,
        since_us=rollout.stage_started_at,
        elapsed_s=max(0.0, ((now or now_us()) - rollout.stage_started_at) / 1e6),
        canary=canary_arm.figures(),
        stable=stable_arm.figures(),
        feedback=feedback_figures(db, rollout),
        previous_stable=previous,
    )
    return judge(canary, window)


# -- audit records and JSON ---------------------------------------------------------------------


def transition_record(
    event: str,
    before: Rollout | None,
    after: Rollout,
    *,
    by: str | None,
    reason: str | None,
    figures: Mapping[str, Any] | None,
) -> AuditRecord:
    """The admin audit record of a transition; ``by`` None: the command line's user."""
    return admin_record(
        f"canary.{event}",
        actor=by,
        target=f"model:{after.alias}",
        rollout_id=after.id,
        rollout_number=after.number,
        rollout_status=after.status.value,
        from_status=None if before is None else before.status.value,
        from_stage=None if before is None else before.stage,
        from_percent=None if before is None else before.percent,
        stage=after.stage,
        percent=after.percent,
        routes=[f"{provider}/{model}" for provider, model in after.routes],
        reason=reason,
        figures=dict(figures) if figures is not None else None,
    )


def rollout_json(
    rollout: Rollout, *, applies: bool = True, verdict: Verdict | None = None
) -> dict[str, Any]:
    """A roll-out as the admin API and ``passerelle canary status --format json`` show it.
    ``current`` is its window judged now (when it is at a stage); ``last_verdict`` the figures
    behind its last transition."""
    return {
        "id": rollout.id,
        "model": rollout.alias,
        "number": rollout.number,
        "status": rollout.status.value,
        "stage": rollout.stage,
        "stages": [points / 100 for points in rollout.stages],
        "stage_percent": rollout.stage_percent,
        "percent": rollout.percent,
        "routes": [f"{provider}/{model}" for provider, model in rollout.routes],
        "configured": applies,
        "started_at_us": rollout.started_at,
        "started_by": rollout.started_by,
        "stage_started_at_us": rollout.stage_started_at,
        "updated_at_us": rollout.updated_at,
        "updated_by": rollout.updated_by,
        "reason": rollout.reason,
        "last_verdict": dict(rollout.verdict) if rollout.verdict is not None else None,
        "current": verdict.as_json() if verdict is not None else None,
    }


def not_started_json(alias: str, canary: Canary) -> dict[str, Any]:
    return {
        "id": None,
        "model": alias,
        "status": "not_started",
        "start": canary.start.value,
        "stages": list(canary.stages),
        "percent": 0,
        "routes": [f"{provider}/{model}" for provider, model in deployments(canary)],
        "configured": True,
    }


# -- the background evaluator ---------------------------------------------------------------------


class CanaryEvaluator:
    """Judges this configuration's roll-outs every :attr:`interval` seconds; see the module
    docstring. ``verdicts`` holds the latest judgement of each alias at a stage, for the admin
    API to show without reading the audit trail again."""

    def __init__(self, config: Config, board: CanaryBoard, audit: AuditSink) -> None:
        self._canaries = canaries(config)
        self._fingerprints = {alias: fingerprint(c) for alias, c in self._canaries.items()}
        self._board = board
        self._store: CanaryStore = board.store
        self._db = board.store.db
        self._audit = audit
        self._reader = WindowReader(self._db)
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.verdicts: dict[str, Verdict] = {}
        shortest = min((c.min_duration_s for c in self._canaries.values()), default=20.0)
        self.interval = min(5.0, max(0.2, shortest / 4))

    def start(self) -> None:
        """Run in the background on the running event loop (nothing to do without canaries)."""
        if self._canaries and self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))
            self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """Stop after the round in progress, whose audit records must reach the writer."""
        task, self._task = self._task, None
        if task is None or self._stopping is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, 10.0)
        except TimeoutError:
            log.warning("the canary evaluator did not stop within 10 s")

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.to_thread(self.tick)
            except PasserelleError as exc:  # the database: try again next time
                log.warning("canary roll-outs could not be evaluated: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)

    def tick(self) -> list[Rollout]:
        """One round: start, judge, act. Returns the roll-outs this process moved."""
        moved: list[Rollout] = []
        snapshot = self._board.snapshot
        for alias, canary in self._canaries.items():
            wanted = self._fingerprints[alias]
            current = snapshot.current.get(alias)
            never = wanted not in snapshot.fingerprints.get(alias, frozenset())
            if canary.start is CanaryStart.AUTO and never:
                started = self._store.start(
                    alias,
                    fingerprint=wanted,
                    routes=deployments(canary),
                    stages=stage_points(canary),
                    by=GATEWAY_ACTOR,
                    reason="the configuration declares this canary",
                    only_if_new=True,
                )
                if started is None:
                    continue  # another instance started it: judged from the next round
                self._audit(
                    transition_record(
                        "start",
                        None,
                        started,
                        by=GATEWAY_ACTOR,
                        reason=started.reason,
                        figures=None,
                    )
                )
                moved.append(started)
                current = started
            if current is None or current.fingerprint != wanted or current.status not in LIVE:
                self._reader.forget(alias)
                self.verdicts.pop(alias, None)
                continue
            verdict = evaluate(canary, current, self._reader, self._db)
            self.verdicts[alias] = verdict
            if current.status is RolloutStatus.RUNNING and verdict.action is not Action.WAIT:
                done = self.apply(current, verdict)
                if done is not None:
                    moved.append(done)
        return moved

    def apply(self, rollout: Rollout, verdict: Verdict) -> Rollout | None:
        """Make the verdict's transition if ``rollout`` is still as judged, and audit it; None
        when another process (or a person) moved it first."""
        if verdict.action is Action.ROLLBACK:
            event, status, stage = "rollback", RolloutStatus.ROLLED_BACK, rollout.stage
        elif rollout.last_stage:
            event, status, stage = "promote", RolloutStatus.PROMOTED, rollout.stage
        else:
            event, status, stage = "advance", RolloutStatus.RUNNING, rollout.stage + 1
        figures = verdict.as_json()
        moved = self._store.transition(
            rollout, status, stage, by=GATEWAY_ACTOR, reason=verdict.reason, verdict=figures
        )
        if moved is None:
            return None
        log.info("canary %s of %s: %s (%s)", rollout.id, rollout.alias, event, verdict.reason)
        self._audit(
            transition_record(
                event, rollout, moved, by=GATEWAY_ACTOR, reason=verdict.reason, figures=figures
            )
        )
        return moved


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the canary evaluator stopped", exc_info=task.exception())


# -- by hand ------------------------------------------------------------------------------------


class ManualAction(StrEnum):
    START = "start"
    """Start a roll-out of the configured canary at its first stage (again, after a rollback)."""
    PAUSE = "pause"
    """Keep the current split, stop the gates from deciding."""
    RESUME = "resume"
    """Let the gates decide again, over a new window."""
    PROMOTE = "promote"
    """To the next stage (``full``: to promoted), whatever the gates say."""
    ROLLBACK = "rollback"
    """No more requests to the new version."""


_ALLOWED: dict[ManualAction, frozenset[RolloutStatus]] = {
    ManualAction.PAUSE: frozenset({RolloutStatus.RUNNING}),
    ManualAction.RESUME: frozenset({RolloutStatus.PAUSED}),
    ManualAction.PROMOTE: LIVE,
    ManualAction.ROLLBACK: LIVE | {RolloutStatus.PROMOTED},
}


def act(
    config: Config,
    store: CanaryStore,
    alias: str,
    action: ManualAction,
    *,
    by: str,
    reason: str | None = None,
    full: bool = False,
) -> tuple[Rollout, AuditRecord]:
    """Apply a person's decision to ``alias``'s roll-out; the moved roll-out and the audit
    record to write. Raises :class:`NotFoundError` (no such canary or roll-out) or
    :class:`ConflictError` (not possible in its status, or it moved meanwhile)."""
    if alias not in config.models:
        raise NotFoundError(f"there is no model alias {alias!r} in the configuration")
    canary = canaries(config).get(alias)
    if canary is None:
        raise NotFoundError(f"model {alias!r} declares no canary in the configuration")
    wanted = fingerprint(canary)
    current = store.current(alias)
    if action is ManualAction.START:
        if current is not None and current.fingerprint == wanted and current.status in LIVE:
            raise ConflictError(
                f"roll-out {current.id} of {alias!r} is {current.status.value} at "
                f"{current.percent:g} %; roll it back first to start over"
            )
        started = store.start(
            alias,
            fingerprint=wanted,
            routes=deployments(canary),
            stages=stage_points(canary),
            by=by,
            reason=reason,
        )
        if started is None:
            raise ConflictError(f"another roll-out of {alias!r} started at the same moment")
        return started, transition_record(
            "start", None, started, by=by, reason=reason, figures=None
        )
    if current is None or current.fingerprint != wanted:
        raise NotFoundError(
            f"no roll-out of the canary of {alias!r} as configured now; start one with "
            f"'passerelle canary start {alias}'"
        )
    if current.status not in _ALLOWED[action]:
        raise ConflictError(
            f"roll-out {current.id} of {alias!r} is {current.status.value}: it cannot be "
            f"{_PAST[action]}"
        )
    figures: dict[str, Any] | None = None
    if current.status in LIVE:
        verdict = evaluate(canary, current, WindowReader(store.db), store.db)
        figures = verdict.as_json()
        figures["gates_say"], figures["decision"] = figures["decision"], "manual"
    event = action.value
    status, stage = current.status, current.stage
    if action is ManualAction.PAUSE:
        status = RolloutStatus.PAUSED
    elif action is ManualAction.RESUME:
        status = RolloutStatus.RUNNING
    elif action is ManualAction.ROLLBACK:
        status = RolloutStatus.ROLLED_BACK
    elif full or current.last_stage:
        event, status, stage = "promote", RolloutStatus.PROMOTED, len(current.stages) - 1
    else:
        event, status, stage = "advance", RolloutStatus.RUNNING, current.stage + 1
    moved = store.transition(current, status, stage, by=by, reason=reason, verdict=figures)
    if moved is None:
        raise stale(current, store.current(alias))
    return moved, transition_record(event, current, moved, by=by, reason=reason, figures=figures)


_PAST = {
    ManualAction.PAUSE: "paused",
    ManualAction.RESUME: "resumed",
    ManualAction.PROMOTE: "promoted",
    ManualAction.ROLLBACK: "rolled back",
}


def status_entries(
    config: Config, store: CanaryStore, alias: str | None = None
) -> list[tuple[str, Rollout | None, Canary | None]]:
    """Every alias with a canary in the configuration or a roll-out in the database (or only
    ``alias``): its current roll-out and its configured canary."""
    rollouts = store.list(alias)
    current: dict[str, Rollout] = {}
    for rollout in rollouts:
        current[rollout.alias] = rollout  # oldest first: the last one wins
    configured = canaries(config)
    names = sorted(set(configured) | set(current))
    if alias is not None:
        names = [alias] if alias in names else []
    return [(name, current.get(name), configured.get(name)) for name in names]


MAX_REASON_CHARS = 200


class InvalidReason(PasserelleError):
    """A reason that cannot be recorded: too long, several lines, or holding what DLP finds."""


def check_reason(reason: object, scanner: Scanner | None) -> str | None:
    """The reason, trimmed (None when empty), or :class:`InvalidReason`. The audit trail keeps
    it for good, so a reason holding a secret, personal data or a client's terms is refused
    (by type, never by value) when a scanner is given."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidReason("the reason must be a string")
    text = reason.strip()
    if len(text) > MAX_REASON_CHARS:
        raise InvalidReason(
            f"the reason is {len(text)} characters; keep it under {MAX_REASON_CHARS}"
        )
    if any(not ch.isprintable() for ch in text):
        raise InvalidReason("the reason must be one line of printable text")
    if text and scanner is not None:
        found: dict[str, int] = {}
        for finding in scanner.scan(text).findings:
            if finding.category is not Category.INJECTION:
                found[finding.rule] = found.get(finding.rule, 0) + 1
        if found:
            listed = ", ".join(f"{n} {rule}" for rule, n in sorted(found.items()))
            raise InvalidReason(
                "the reason is kept in the audit trail and must not carry secrets, personal "
                f"data or client names; it contains {listed}"
            )
    return text or None
