"""Canary roll-outs in the database: their rows, the compare-and-set that moves them, the
in-memory board every gateway routes from, and the incremental read of a stage's window.

**Rows.** One per roll-out, kept when it ends; an alias's current roll-out is its row with the
highest ``number`` (unique per alias, so two instances starting the same roll-out at once
insert one row: the second insert fails and that instance reads the first's). A roll-out is::

    running ──► (next stage) ──► … ──► promoted
       │  ▲
       ▼  │ resume                 any of them ──► rolled_back   (by the gates or by hand)
     paused                        running/paused ──► superseded (a new roll-out of the alias)

**Transitions** are compare-and-set: ``UPDATE … WHERE id = :id AND status = :seen_status AND
stage = :seen_stage AND stage_started_at = :seen_start``. Whoever evaluated an older state (an
instance a moment behind, a person looking at a stale status) changes nothing, so three
instances reaching the same verdict make one transition, and only the one whose update counted
writes its audit record. Each transition bumps the canary change counter in its transaction
(:mod:`passerelle.storage.epochs`), so every instance routes by it within 0.05 s (SQLite) or
0.1 s (PostgreSQL), and the instance that made it at once.

**Windows.** Each stage keeps the audit trail's head when it began (``stage_seq``): records are
committed in ``seq`` order under the chain's lock, and a request can only be routed by a stage
once the stage is committed, so every request of the stage comes after it
(``pipeline/canary_evaluator.py`` reads them from there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import orjson
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from passerelle.errors import PasserelleError, StorageError
from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import Epoch, PolledEpoch, bump_epoch, lock_epoch
from passerelle.storage.keys import ConflictError
from passerelle.storage.tables import audit_head, canary_rollouts

log = logging.getLogger("passerelle.canary")


class RolloutStatus(StrEnum):
    RUNNING = "running"
    """At a stage, the gates deciding."""
    PAUSED = "paused"
    """At a stage, same split, no automatic decision until resumed."""
    PROMOTED = "promoted"
    """Every request goes to the new version first (the stable routes stay its fallbacks)."""
    ROLLED_BACK = "rolled_back"
    """No request goes to the new version."""
    SUPERSEDED = "superseded"
    """Replaced by a newer roll-out of the alias (its canary changed, or it was restarted)."""


LIVE = frozenset({RolloutStatus.RUNNING, RolloutStatus.PAUSED})
"""The statuses in which a roll-out is at a stage."""


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    alias: str
    number: int
    """1 for the alias's first roll-out, then 2…"""
    fingerprint: str
    routes: tuple[tuple[str, str], ...]
    """The new version's (provider, model) pairs, in the configured order."""
    stages: tuple[int, ...]
    """Shares of the requests, in basis points (100 = 1 %)."""
    status: RolloutStatus
    stage: int
    started_at: int
    started_by: str
    stage_started_at: int
    stage_seq: int
    updated_at: int
    updated_by: str
    reason: str | None = None
    verdict: Mapping[str, Any] | None = None
    """The gate figures behind the last transition (None: never judged)."""

    @property
    def basis_points(self) -> int:
        """The share of the requests the new version gets now, in basis points."""
        if self.status is RolloutStatus.PROMOTED:
            return 10_000
        if self.status in LIVE:
            return self.stages[self.stage]
        return 0

    @property
    def percent(self) -> float:
        return percent(self.basis_points)

    @property
    def stage_percent(self) -> float:
        return percent(self.stages[self.stage])

    @property
    def last_stage(self) -> bool:
        return self.stage == len(self.stages) - 1

    @property
    def deployments(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.routes)


def percent(basis_points: int) -> float | int:
    """25 for 2500 basis points, 0.5 for 50: a whole number when it is one (for JSON)."""
    whole, rest = divmod(basis_points, 100)
    return whole if not rest else basis_points / 100


def _rollout(row: Any) -> Rollout:
    verdict = orjson.loads(row.verdict) if row.verdict else None
    return Rollout(
        id=int(row.id),
        alias=row.alias,
        number=int(row.number),
        fingerprint=row.fingerprint,
        routes=tuple((str(p), str(m)) for p, m in orjson.loads(row.routes)),
        stages=tuple(int(s) for s in orjson.loads(row.stages)),
        status=RolloutStatus(row.status),
        stage=int(row.stage),
        started_at=int(row.started_at),
        started_by=row.started_by,
        stage_started_at=int(row.stage_started_at),
        stage_seq=int(row.stage_seq),
        updated_at=int(row.updated_at),
        updated_by=row.updated_by,
        reason=row.reason,
        verdict=verdict if isinstance(verdict, dict) else None,
    )


def head_seq(conn: Connection) -> int:
    """The audit trail's last sequence number (0 before the first record)."""
    value = conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar()
    return int(value or 0)


class CanaryStore:
    """Roll-out rows. Callers check the configuration and write the audit records."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Called after each committed change, so that this process routes by it at once.
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    def list(self, alias: str | None = None) -> list[Rollout]:
        """Roll-outs, oldest first; only ``alias``'s when given."""
        query = select(canary_rollouts).order_by(canary_rollouts.c.id)
        if alias is not None:
            query = query.where(canary_rollouts.c.alias == alias)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_rollout(row) for row in rows]

    def current(self, alias: str) -> Rollout | None:
        """The alias's latest roll-out, whatever its status."""
        query = (
            select(canary_rollouts)
            .where(canary_rollouts.c.alias == alias)
            .order_by(canary_rollouts.c.number.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _rollout(row)

    def start(
        self,
        alias: str,
        *,
        fingerprint: str,
        routes: Iterable[tuple[str, str]],
        stages: Iterable[int],
        by: str,
        reason: str | None = None,
        only_if_new: bool = False,
    ) -> Rollout | None:
        """Start a roll-out of ``alias`` at its first stage; the alias's live roll-out, if any,
        becomes superseded. With ``only_if_new`` (automatic starts), nothing happens when a
        roll-out with this fingerprint ever existed: a canary rolled back is not started again
        by itself, and an instance still on an older configuration does not undo a newer one.
        Returns None when nothing was started, because of that or because another process
        started one at the same moment."""
        now = now_us()
        try:
            with self.db.begin() as conn:
                table = canary_rollouts
                # One start at a time: without it, a process could check that the fingerprint
                # is new, another commit its start, and the first supersede it (seen with three
                # instances starting together on PostgreSQL).
                lock_epoch(conn, Epoch.CANARY)
                if only_if_new:
                    seen = conn.execute(
                        select(table.c.id).where(
                            table.c.alias == alias, table.c.fingerprint == fingerprint
                        )
                    ).first()
                    if seen is not None:
                        return None
                last = conn.execute(
                    select(func.max(table.c.number)).where(table.c.alias == alias)
                ).scalar()
                conn.execute(
                    table.update()
                    .where(table.c.alias == alias, table.c.status.in_([s.value for s in LIVE]))
                    .values(status=RolloutStatus.SUPERSEDED.value, updated_at=now, updated_by=by)
                )
                result = conn.execute(
                    table.insert().values(
                        alias=alias,
                        number=int(last or 0) + 1,
                        fingerprint=fingerprint,
                        routes=orjson.dumps([list(r) for r in routes]).decode(),
                        stages=orjson.dumps(list(stages)).decode(),
                        status=RolloutStatus.RUNNING.value,
                        stage=0,
                        started_at=now,
                        started_by=by,
                        stage_started_at=now,
                        stage_seq=head_seq(conn),
                        updated_at=now,
                        updated_by=by,
                        reason=reason,
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                bump_epoch(conn, Epoch.CANARY)
                row = conn.execute(select(table).where(table.c.id == key[0])).one()
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return None  # another process inserted this number first
            raise
        self._changed()
        return _rollout(row)

    def transition(
        self,
        seen: Rollout,
        status: RolloutStatus,
        stage: int,
        *,
        by: str,
        reason: str | None = None,
        verdict: Mapping[str, Any] | None = None,
    ) -> Rollout | None:
        """Move ``seen`` to ``status`` at ``stage`` if it is still exactly as seen; None when it
        is not (someone else moved it first). A new stage, or a resume, opens a new window."""
        now = now_us()
        table = canary_rollouts
        values: dict[str, Any] = {
            "status": status.value,
            "stage": stage,
            "updated_at": now,
            "updated_by": by,
            "reason": reason,
        }
        if verdict is not None:
            values["verdict"] = orjson.dumps(verdict, option=orjson.OPT_SORT_KEYS).decode()
        with self.db.begin() as conn:
            if stage != seen.stage or (
                seen.status is RolloutStatus.PAUSED and status is RolloutStatus.RUNNING
            ):
                values["stage_started_at"] = now
                values["stage_seq"] = head_seq(conn)
            changed = conn.execute(
                table.update()
                .where(
                    table.c.id == seen.id,
                    table.c.status == seen.status.value,
                    table.c.stage == seen.stage,
                    table.c.stage_started_at == seen.stage_started_at,
                )
                .values(**values)
            ).rowcount
            if changed != 1:
                return None
            bump_epoch(conn, Epoch.CANARY)
            row = conn.execute(select(table).where(table.c.id == seen.id)).one()
        self._changed()
        return _rollout(row)


def stale(rollout: Rollout, fresh: Rollout | None) -> ConflictError:
    """The error of a person's action on a roll-out that moved meanwhile."""
    now = "gone" if fresh is None else f"{fresh.status.value} at stage {fresh.stage + 1}"
    return ConflictError(
        f"roll-out {rollout.id} of {rollout.alias!r} changed meanwhile (now {now}); look at "
        "its status again"
    )


# -- the board: what every request is routed by ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanarySnapshot:
    """Every roll-out, as loaded: the current one per alias, and the fingerprints each alias
    ever rolled out. Immutable: the board replaces it whole, and ``version`` tells readers
    that keep something derived from it when to rebuild."""

    version: int = 0
    current: Mapping[str, Rollout] = field(default_factory=lambda: MappingProxyType({}))
    fingerprints: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, version: int, rollouts: Iterable[Rollout]) -> CanarySnapshot:
        current: dict[str, Rollout] = {}
        seen: dict[str, set[str]] = {}
        for rollout in rollouts:
            kept = current.get(rollout.alias)
            if kept is None or rollout.number > kept.number:
                current[rollout.alias] = rollout
            seen.setdefault(rollout.alias, set()).add(rollout.fingerprint)
        return cls(
            version,
            MappingProxyType(current),
            MappingProxyType({alias: frozenset(f) for alias, f in seen.items()}),
        )


class CanaryBoard:
    """The roll-outs of this process, as :attr:`snapshot`, reloaded when the canary counter
    moves (``watch``) and after each change made through ``store``. Without ``watch`` (tests,
    tools) only changes made through ``store`` are seen.

    If the database cannot be read, the last snapshot stays in force and the reload is retried
    on the next poll."""

    def __init__(self, store: CanaryStore, watch: PolledEpoch | None = None) -> None:
        self.store = store
        self.snapshot = CanarySnapshot()
        self._lock = threading.Lock()
        store.on_change.append(self._reload_after_change)
        if watch is not None:
            watch.subscribe(Epoch.CANARY, self.reload)
        self.reload()

    def reload(self) -> None:
        with self._lock:
            rollouts = self.store.list()
            self.snapshot = CanarySnapshot.of(self.snapshot.version + 1, rollouts)

    def _reload_after_change(self) -> None:
        # The change is committed: if reading it back fails, the polling thread retries.
        try:
            self.reload()
        except PasserelleError as exc:
            log.warning("canary roll-outs changed but could not be reloaded yet: %s", exc)
