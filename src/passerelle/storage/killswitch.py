"""Kill switches: a provider, a model, a project or a user disabled by an operator, at once, on
every gateway instance.

**Stored.** One row per switch, kept when lifted (who lifted it and when), so the table is the
history of every switch ever set; each set and lift is also an admin audit record. Setting or
lifting a switch bumps the kill-switch counter (:mod:`passerelle.storage.epochs`) in the same
transaction.

**Enforced from memory.** :class:`KillSwitchBoard` holds the active switches as an immutable
:class:`ActiveSwitches` snapshot, which the first pipeline step reads on every request without
touching the database. The board reloads the snapshot when the counter moves (read by the
process's polling thread every 0.05 s on SQLite, 0.1 s on PostgreSQL), so a switch set by the
command line or on another instance applies within that interval plus one small query; a switch
set through this process's admin API applies before the API answers.

If the database cannot be read, the last snapshot stays in force and the reload is retried on
every poll: switches already set keep refusing, and new ones apply as soon as the database is
back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from sqlalchemy import select

from passerelle.errors import PasserelleError
from passerelle.storage.db import Database, now_us
from passerelle.storage.epochs import Epoch, PolledEpoch, bump_epoch
from passerelle.storage.keys import ConflictError, NotFoundError
from passerelle.storage.tables import kill_switches

log = logging.getLogger("passerelle.kill_switches")

MAX_REASON_CHARS = 200
"""A reason is shown to every refused caller: a sentence, not a report."""


class Scope(StrEnum):
    """What a switch disables."""

    PROVIDER = "provider"
    """Every route to this provider: requests fall back to other providers' routes."""
    MODEL = "model"
    """Requests for this model alias are refused."""
    PROJECT = "project"
    """Requests made with the project's keys are refused."""
    USER = "user"
    """Requests made with the user's keys are refused."""


class InvalidSwitch(PasserelleError):
    """A switch that cannot be set as asked: no reason, a reason too long, an unknown target.
    ``param`` names the field at fault (``reason`` or ``target``)."""

    def __init__(self, message: str, *, param: str = "target") -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class KillSwitch:
    id: int
    scope: Scope
    target: str
    """The name as configured (provider, model alias, project), or the user's e-mail."""
    user_id: str | None
    """For a user switch, the user's id: what requests are matched on."""
    reason: str
    set_by: str
    set_at: int
    lifted_by: str | None = None
    lifted_at: int | None = None

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def describe(self) -> str:
        """``kill switch 7 on model 'chat': <reason>``, for error messages."""
        return f"kill switch {self.id} on {self.scope.value} '{self.target}': {self.reason}"


def check_reason(reason: str | None) -> str:
    """The reason, trimmed, or :class:`InvalidSwitch` saying what is wrong with it."""
    text = (reason or "").strip()
    if not text:
        raise InvalidSwitch(
            "a kill switch needs a reason: callers it refuses are shown it (e.g. 'provider "
            "outage, use the fallback')",
            param="reason",
        )
    if len(text) > MAX_REASON_CHARS:
        raise InvalidSwitch(
            f"the reason is {len(text)} characters; keep it under {MAX_REASON_CHARS}: it is "
            "shown to every caller the switch refuses",
            param="reason",
        )
    if any(not ch.isprintable() for ch in text):
        raise InvalidSwitch("the reason must be one line of printable text", param="reason")
    return text


def _switch(row: object) -> KillSwitch:
    return KillSwitch(
        id=int(row.id),  # type: ignore[attr-defined]
        scope=Scope(row.scope),  # type: ignore[attr-defined]
        target=row.target,  # type: ignore[attr-defined]
        user_id=row.user_id,  # type: ignore[attr-defined]
        reason=row.reason,  # type: ignore[attr-defined]
        set_by=row.set_by,  # type: ignore[attr-defined]
        set_at=row.set_at,  # type: ignore[attr-defined]
        lifted_by=row.lifted_by,  # type: ignore[attr-defined]
        lifted_at=row.lifted_at,  # type: ignore[attr-defined]
    )


class KillSwitchStore:
    """Kill switches in the database. Callers check that the target exists (the configuration
    for providers, models and projects; the user table for users) and audit the change."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Called after each committed change, so that this process applies it at once.
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    def set(
        self,
        scope: Scope,
        target: str,
        *,
        reason: str,
        by: str,
        user_id: str | None = None,
    ) -> KillSwitch:
        """Set a switch. A target can have one active switch: a second one is a conflict that
        names the first (lift it, or leave it)."""
        reason = check_reason(reason)
        if (scope is Scope.USER) != (user_id is not None):
            raise InvalidSwitch("a user switch, and only a user switch, names a user id")
        key = (
            kill_switches.c.user_id == user_id
            if scope is Scope.USER
            else kill_switches.c.target == target
        )
        with self.db.begin() as conn:
            existing = conn.execute(
                select(kill_switches).where(
                    kill_switches.c.scope == scope.value, key, kill_switches.c.lifted_at.is_(None)
                )
            ).first()
            if existing is not None:
                first = _switch(existing)
                raise ConflictError(
                    f"{scope.value} '{target}' is already disabled by kill switch {first.id} "
                    f"({first.reason}); lift it first to change the reason"
                )
            set_at = now_us()
            result = conn.execute(
                kill_switches.insert().values(
                    scope=scope.value,
                    target=target,
                    user_id=user_id,
                    reason=reason,
                    set_by=by,
                    set_at=set_at,
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            bump_epoch(conn, Epoch.KILL_SWITCHES)
        self._changed()
        return KillSwitch(int(primary_key[0]), scope, target, user_id, reason, by, set_at)

    def lift(self, switch_id: int, *, by: str) -> KillSwitch:
        """Lift an active switch; the row stays, with who lifted it and when."""
        with self.db.begin() as conn:
            row = conn.execute(select(kill_switches).where(kill_switches.c.id == switch_id)).first()
            if row is None:
                raise NotFoundError(f"no kill switch {switch_id}; see 'passerelle kill list --all'")
            switch = _switch(row)
            if not switch.active:
                raise ConflictError(
                    f"kill switch {switch_id} was already lifted by {switch.lifted_by}"
                )
            lifted_at = now_us()
            conn.execute(
                kill_switches.update()
                .where(kill_switches.c.id == switch_id, kill_switches.c.lifted_at.is_(None))
                .values(lifted_by=by, lifted_at=lifted_at)
            )
            bump_epoch(conn, Epoch.KILL_SWITCHES)
        self._changed()
        return replace(switch, lifted_by=by, lifted_at=lifted_at)

    def get(self, switch_id: int) -> KillSwitch:
        with self.db.read() as conn:
            row = conn.execute(select(kill_switches).where(kill_switches.c.id == switch_id)).first()
        if row is None:
            raise NotFoundError(f"no kill switch {switch_id}")
        return _switch(row)

    def list(self, *, include_lifted: bool = False) -> list[KillSwitch]:
        """Switches, newest first; only the active ones unless ``include_lifted``."""
        query = select(kill_switches).order_by(kill_switches.c.id.desc())
        if not include_lifted:
            query = query.where(kill_switches.c.lifted_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_switch(row) for row in rows]


def _empty() -> Mapping[str, KillSwitch]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ActiveSwitches:
    """The switches in force, indexed the way requests are matched: providers, models and
    projects by name, users by id. Immutable: the board replaces it whole."""

    providers: Mapping[str, KillSwitch] = field(default_factory=_empty)
    models: Mapping[str, KillSwitch] = field(default_factory=_empty)
    projects: Mapping[str, KillSwitch] = field(default_factory=_empty)
    users: Mapping[str, KillSwitch] = field(default_factory=_empty)

    @classmethod
    def of(cls, switches: Iterable[KillSwitch]) -> ActiveSwitches:
        by_scope: dict[Scope, dict[str, KillSwitch]] = {scope: {} for scope in Scope}
        # Oldest first, so that if two instances raced to set the same target the first wins.
        for switch in sorted(switches, key=lambda s: s.id):
            if not switch.active:
                continue
            key = switch.user_id if switch.scope is Scope.USER else switch.target
            by_scope[switch.scope].setdefault(key or "", switch)
        return cls(
            providers=MappingProxyType(by_scope[Scope.PROVIDER]),
            models=MappingProxyType(by_scope[Scope.MODEL]),
            projects=MappingProxyType(by_scope[Scope.PROJECT]),
            users=MappingProxyType(by_scope[Scope.USER]),
        )

    def __bool__(self) -> bool:
        return bool(self.providers or self.models or self.projects or self.users)


class KillSwitchBoard:
    """The active switches of this process, as :attr:`snapshot`; see the module docstring.

    Without ``watch`` (tests, tools) only changes made through ``store`` are seen."""

    def __init__(self, store: KillSwitchStore, watch: PolledEpoch | None = None) -> None:
        self.store = store
        self.snapshot = ActiveSwitches()
        self.reloads = 0
        self._lock = threading.Lock()
        store.on_change.append(self._reload_after_change)
        if watch is not None:
            watch.subscribe(Epoch.KILL_SWITCHES, self.reload)
        self.reload()

    def reload(self) -> None:
        """Read the active switches and swap the snapshot; StorageError if the database
        cannot be read (the previous snapshot stays)."""
        with self._lock:
            self.snapshot = ActiveSwitches.of(self.store.list())
            self.reloads += 1

    def _reload_after_change(self) -> None:
        # The change is committed: if reading it back fails, the polling thread retries (the
        # counter moved), and the caller who made the change must not be told it failed.
        try:
            self.reload()
        except PasserelleError as exc:
            log.warning("kill switches changed but could not be reloaded yet: %s", exc)
