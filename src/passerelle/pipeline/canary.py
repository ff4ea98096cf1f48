"""Canary roll-out of a new model version behind an alias: the split.

A model alias may declare a ``canary``: the new version's routes and the stages of its
roll-out (5, 25, 50, 100 % by default). While a roll-out runs, :class:`CanarySplit`, the first
pipeline step, draws each request for the new version or for the stable routes:

- **Deterministic on the request id.** A request's place in 0..9999 is a hash of its id
  (:func:`bucket`); it goes to the canary when its place is below the stage's share in basis
  points. Ids are random, so the places are uniform and the share is met in aggregate (within
  the binomial spread: about ±1.3 points at 25 % over 1000 requests, 2 standard deviations);
  and any request's arm can be recomputed from its id, which is what the tests do.
- **A canary request keeps the stable routes as its fallbacks.** The step *offers* it the new
  version's routes followed by the stable ones (:class:`~passerelle.pipeline.decisions.Offer`):
  a failing canary costs a retry, not an error to the caller. The stable routes lose their
  ``weight`` there, so that balancing never draws a stable route before the canary.
- **Policy still applies.** The kill switches, then the data policy, choose among the offered
  routes like among the model's own: a canary route on a provider not cleared for a request's
  data class (or outside its project's regions) is removed and the request goes to a stable
  route, and never reaches the canary.
- **From memory.** The step reads the roll-outs from the board's snapshot
  (:class:`~passerelle.storage.canary.CanaryBoard`), reloaded when the canary counter moves;
  never the database per request.

By status: running and paused roll-outs split at their stage's share; promoted sends every
request to the new version first; rolled back (and superseded) none. A roll-out applies only
while the configuration declares the very canary it was started for (:func:`fingerprint`: its
routes and stages), so a changed canary never inherits a stage.

Each request routed during a roll-out carries, in its audit record, ``rollout`` (id, stage,
share, and the arm drawn) and ``canary``: true when it was sent to the new version first. The
gates (``canary_gates.py``) and their evaluator (``canary_evaluator.py``) read those records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import orjson

from passerelle.config import Config
from passerelle.config.schema import Canary
from passerelle.core.context import Attempt, RequestContext
from passerelle.pipeline.decisions import CONTINUE, Decision, Offer
from passerelle.pipeline.routing import Router, RouteTarget
from passerelle.pipeline.steps import PipelineRequest
from passerelle.storage.canary import CanaryBoard, CanarySnapshot, Rollout

BUCKETS = 10_000
"""A request's place is one of these; shares are in basis points."""
NOTE = "canary"
"""The key of a request's :class:`CanaryNote` in ``ctx.notes``."""


def bucket(request_id: str) -> int:
    """The request's place in 0..9999: a hash of its id, so the same id always lands in the
    same place and random ids spread evenly."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def drawn_for_canary(request_id: str, basis_points: int) -> bool:
    return bucket(request_id) < basis_points


def stage_points(canary: Canary) -> tuple[int, ...]:
    """The stages in basis points: [5, 25, 50, 100] -> (500, 2500, 5000, 10000)."""
    return tuple(round(stage * 100) for stage in canary.stages)


def deployments(canary: Canary) -> tuple[tuple[str, str], ...]:
    return tuple((route.provider, route.model) for route in canary.routes)


def fingerprint(canary: Canary) -> str:
    """What identifies a roll-out in the configuration: the new version's deployments and the
    stages. Gates, minimums and weights may change during a roll-out; these may not."""
    canonical = orjson.dumps(
        {"routes": [list(d) for d in deployments(canary)], "stages": list(stage_points(canary))}
    )
    return hashlib.sha256(canonical).hexdigest()


def canaries(config: Config) -> dict[str, Canary]:
    """The aliases that declare a canary, and their canary."""
    return {alias: m.canary for alias, m in config.models.items() if m.canary is not None}


def applies(canary: Canary, rollout: Rollout | None) -> bool:
    """Whether ``rollout`` is a roll-out of this very canary (it routes requests if so)."""
    return rollout is not None and rollout.fingerprint == fingerprint(canary)


@dataclass(frozen=True, slots=True)
class CanaryNote:
    """What the split decided for one request, for its audit record."""

    rollout_id: int
    stage: int
    percent: float
    drawn: bool
    """Drawn for the new version."""
    deployments: frozenset[tuple[str, str]]

    def details(self, attempts: list[Attempt]) -> dict[str, Any]:
        """``canary`` and ``rollout`` for the audit record's details. ``canary`` is true when
        the request was sent to the new version first: drawn for it, and its first attempt went
        to one of its routes (not so when a step removed them)."""
        sent = (
            self.drawn
            and bool(attempts)
            and (attempts[0].provider, attempts[0].model) in self.deployments
        )
        return {
            "canary": sent,
            "rollout": {
                "id": self.rollout_id,
                "stage": self.stage,
                "percent": self.percent,
                "arm": "canary" if self.drawn else "stable",
            },
        }


def audit_details(ctx: RequestContext) -> dict[str, Any]:
    """The canary fields of a request's audit record: empty unless a roll-out applied."""
    note = ctx.notes.get(NOTE)
    return note.details(ctx.attempts) if isinstance(note, CanaryNote) else {}


@dataclass(frozen=True, slots=True)
class _Plan:
    rollout: Rollout
    basis_points: int
    offered: tuple[RouteTarget, ...]
    note_drawn: CanaryNote
    note_stable: CanaryNote


class CanarySplit:
    """The pipeline step; see the module docstring."""

    name = "canary"

    def __init__(self, board: CanaryBoard, config: Config, router: Router) -> None:
        self._board = board
        self._fingerprints = {alias: fingerprint(c) for alias, c in canaries(config).items()}
        self._router = router
        self._plans: Mapping[str, _Plan] = MappingProxyType({})
        self._version = -1

    def decide(self, request: PipelineRequest) -> Decision:
        ctx = request.ctx
        ctx.notes.pop(NOTE, None)  # a budget downgrade runs the steps again for another alias
        snapshot = self._board.snapshot
        if snapshot.version != self._version:
            self._plans = self._build(snapshot)
            self._version = snapshot.version
        plan = self._plans.get(ctx.model_alias or "")
        if plan is None:
            return CONTINUE
        if not drawn_for_canary(ctx.request_id, plan.basis_points):
            ctx.notes[NOTE] = plan.note_stable
            return CONTINUE
        ctx.notes[NOTE] = plan.note_drawn
        return Offer(plan.offered, rule=f"canary.rollout.{plan.rollout.id}")

    def _build(self, snapshot: CanarySnapshot) -> Mapping[str, _Plan]:
        """Plans for the aliases whose current roll-out is one of their configured canary and
        sends it some requests; rebuilt whenever the board reloads (rarely: per transition)."""
        plans: dict[str, _Plan] = {}
        for alias, wanted in self._fingerprints.items():
            rollout = snapshot.current.get(alias)
            if rollout is None or rollout.fingerprint != wanted or not rollout.basis_points:
                continue
            stable = tuple(
                replace(t, weight=None) if t.weight is not None else t
                for t in self._router.targets(alias)
            )
            offered = (*self._router.canary_targets(alias), *stable)
            notes = [
                CanaryNote(rollout.id, rollout.stage, rollout.percent, drawn, rollout.deployments)
                for drawn in (True, False)
            ]
            plans[alias] = _Plan(rollout, rollout.basis_points, offered, *notes)
        return MappingProxyType(plans)
