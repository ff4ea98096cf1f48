"""The gates of a canary roll-out: pure arithmetic over what one stage's window holds.

A stage's window is every request the split routed while the stage ran (its audit records say
``rollout.id`` and ``rollout.stage``), from when the stage began (or was resumed). Its requests
fall in two arms, drawn by the split:

- **canary**: drawn for the new version and sent to it first (``details.canary`` true). Such a
  request is an **error** when the new version did not answer it: a 5xx, a transport failure
  or a broken stream, and also an answer that came from a stable fallback (the caller got an
  answer, but not from the new version; a canary that always falls back must not look healthy);
- **stable**: drawn for the stable routes. An error is a 5xx answer (whichever stable route
  gave it: fallbacks among the stable routes are the stable service working).

A caller's own mistakes (4xx from upstream or from the gateway) are requests, not errors: they
say nothing about the version. Requests that never reached a route (refused by a policy,
answered from the cache) are in neither arm, nor is a request drawn for the canary whose canary
routes a step removed (a kill switch, a clearance too low for its data) or whose provider does
not serve that kind of call (a token count).

**Latency** is what the caller waits before the answer starts: the first byte of a stream, the
whole answer otherwise. One number for both kinds makes one p95 per arm; the comparison is fair
because the split draws streamed and buffered requests alike for both arms. Only successful
answers count (a fast error is not a fast answer; errors have their own gate). The p95 is kept
in logarithmic buckets 2 % wide (:class:`LatencySketch`): bounded memory whatever the traffic,
and never below the exact value, so a gate errs on the strict side.

**Gates**, checked by :func:`judge`:

================================  ===========================================================
``max_error_rate``                absolute ceiling of the canary's error rate
``max_error_rate_increase``       canary rate minus stable rate, in points: a version worse
                                  than what it replaces fails even under the ceiling; a
                                  difference, not a ratio, because a stable rate of 0 makes any
                                  ratio infinite and one error in a small sample doubles it
``max_p95_ms``                    absolute ceiling of the canary's p95
``max_p95_ratio``                 canary p95 over stable p95, failing only when the excess is
                                  also above ``p95_tolerance_ms`` (a few milliseconds of noise
                                  on a fast model are not a regression)
``max_negative_ratio``            share of thumbs-down ratings of the canary's answers since
                                  the roll-out started (ratings are few and late: one stage is
                                  too short to gather them), once ``min_ratings`` is reached
================================  ===========================================================

The error and latency gates decide once the stage has ``min_requests`` canary requests: then
any failing gate rolls back at once; a stage is promoted when, in addition, it has lasted
``min_duration_s`` and no gate fails (a feedback gate still short of ratings does not hold a
stage back). The relative gates compare with the stable arm of the same window; when that arm
is smaller than ``min_requests`` (at 100 % it is empty), with the stable figures measured in
the previous stage, kept with the verdict that promoted it; without those, they are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from passerelle.config.schema import Canary

_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_MS = 0.01
"""Latencies below this share the first bucket."""
P95 = 0.95
UNSUPPORTED = "route_unsupported"
"""The attempt error of a route whose provider does not serve the call (``resilience.py``)."""


class LatencySketch:
    """Latencies in logarithmic buckets, each 2 % wider than the one before: any quantile within
    2 % of the exact value and never below it (the bucket's largest latency), in a few hundred
    numbers whatever the number of requests."""

    __slots__ = ("_buckets", "_largest", "count")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._largest: dict[int, float] = {}
        self.count = 0

    def add(self, ms: float) -> None:
        index = max(0, math.ceil(math.log(max(ms, _FLOOR_MS) / _FLOOR_MS) / _LOG_GROWTH))
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self._largest[index] = max(ms, self._largest.get(index, ms))
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (the value at rank ceil(q * n)), or None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return self._largest[index]
        raise AssertionError("the ranks of a sketch add up to its count")


@dataclass(slots=True)
class ArmSample:
    """One arm's requests in a window, as they are read."""

    requests: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)

    def add(self, outcome: Outcome) -> None:
        self.requests += 1
        if outcome.error:
            self.errors += 1
        elif outcome.latency_ms is not None:
            self.latency.add(outcome.latency_ms)

    def figures(self) -> ArmFigures:
        p95 = self.latency.quantile(P95)
        return ArmFigures(self.requests, self.errors, None if p95 is None else round(p95, 3))


@dataclass(frozen=True, slots=True)
class ArmFigures:
    requests: int
    errors: int
    p95_ms: float | None
    """Of the successful answers; None when there is none."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p95_ms": self.p95_ms,
        }

    @classmethod
    def from_json(cls, data: object) -> ArmFigures | None:
        """Figures kept with an earlier verdict; None when ``data`` is not such figures."""
        if not isinstance(data, Mapping):
            return None
        requests, errors, p95 = data.get("requests"), data.get("errors"), data.get("p95_ms")
        if not isinstance(requests, int) or not isinstance(errors, int):
            return None
        return cls(requests, errors, float(p95) if isinstance(p95, int | float) else None)


@dataclass(frozen=True, slots=True)
class FeedbackFigures:
    """Ratings of the canary's answers since the roll-out started."""

    up: int = 0
    down: int = 0

    @property
    def ratings(self) -> int:
        return self.up + self.down

    @property
    def negative_ratio(self) -> float:
        return self.down / self.ratings if self.ratings else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "down": self.down,
            "ratings": self.ratings,
            "negative_ratio": round(self.negative_ratio, 6),
        }


@dataclass(frozen=True, slots=True)
class Window:
    """What a stage's window holds, as :func:`judge` needs it."""

    stage: int
    percent: float
    since_us: int
    elapsed_s: float
    canary: ArmFigures
    stable: ArmFigures
    feedback: FeedbackFigures = FeedbackFigures()
    previous_stable: ArmFigures | None = None
    """The stable figures of the previous stage, from the verdict that promoted it."""

    def reference(self, min_requests: int) -> tuple[ArmFigures | None, str | None]:
        """The stable figures relative gates compare with, and where they come from."""
        if self.stable.requests >= min_requests:
            return self.stable, "window"
        previous = self.previous_stable
        if previous is not None and previous.requests >= min_requests:
            return previous, "previous_stage"
        return None, None


class GateState(StrEnum):
    PASS = "pass"  # noqa: S105 - a gate state, not a password
    FAIL = "fail"
    WAITING = "waiting"
    """Its sample is below the minimum: no verdict yet."""
    SKIPPED = "skipped"
    """Nothing to compare with (a relative gate without stable figures, a p95 without a
    successful answer): not checked."""


@dataclass(frozen=True, slots=True)
class GateCheck:
    gate: str
    state: GateState
    value: float | None
    limit: float
    sample: int
    needed: int

    def describe(self) -> str:
        value = "-" if self.value is None else f"{self.value:g}"
        relation = {GateState.PASS: "<=", GateState.FAIL: ">"}.get(self.state)
        if relation is None:
            return f"{self.gate} {self.state.value} ({self.sample}/{self.needed})"
        return f"{self.gate} {value} {relation} {self.limit:g} (n={self.sample})"

    def as_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "state": self.state.value,
            "value": None if self.value is None else round(self.value, 6),
            "limit": self.limit,
            "sample": self.sample,
            "needed": self.needed,
        }


class Action(StrEnum):
    ADVANCE = "advance"
    """Every gate passes and the stage's minimums are met: the next stage (or, after the last,
    the roll-out is promoted)."""
    ROLLBACK = "rollback"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str
    window: Window
    checks: tuple[GateCheck, ...]
    reference: str | None
    """Where the relative gates' stable figures came from: window, previous_stage, or None."""

    def as_json(self) -> dict[str, Any]:
        window = self.window
        return {
            "decision": self.action.value,
            "reason": self.reason,
            "stage": window.stage,
            "percent": window.percent,
            "since_us": window.since_us,
            "elapsed_s": round(window.elapsed_s, 3),
            "canary": window.canary.as_json(),
            "stable": window.stable.as_json(),
            "reference": self.reference,
            "feedback": window.feedback.as_json(),
            "gates": [check.as_json() for check in self.checks],
        }


def judge(canary: Canary, window: Window) -> Verdict:
    """Advance, roll back or wait: see the module docstring."""
    gates = canary.gates
    needed = canary.min_requests
    arm = window.canary
    sampled = arm.requests >= needed
    reference, source = window.reference(needed)
    checks: list[GateCheck] = []

    def check(gate: str, value: float | None, limit: float | None, failed: bool) -> None:
        if limit is None:
            return
        if not sampled:
            state = GateState.WAITING
        elif value is None:
            state = GateState.SKIPPED
        else:
            state = GateState.FAIL if failed else GateState.PASS
        checks.append(GateCheck(gate, state, value, limit, arm.requests, needed))

    limit = gates.max_error_rate
    check("error_rate", arm.error_rate, limit, limit is not None and arm.error_rate > limit)
    limit = gates.max_error_rate_increase
    increase = None if reference is None else arm.error_rate - reference.error_rate
    check(
        "error_rate_increase",
        increase,
        limit,
        increase is not None and limit is not None and increase > limit + 1e-12,
    )
    limit = gates.max_p95_ms
    check(
        "p95_ms",
        arm.p95_ms,
        limit,
        arm.p95_ms is not None and limit is not None and arm.p95_ms > limit,
    )
    limit = gates.max_p95_ratio
    ratio = None
    if reference is not None and reference.p95_ms and arm.p95_ms is not None:
        ratio = arm.p95_ms / reference.p95_ms
    slower = (
        ratio is not None
        and limit is not None
        and reference is not None
        and reference.p95_ms is not None
        and arm.p95_ms is not None
        and ratio > limit
        and arm.p95_ms - reference.p95_ms > gates.p95_tolerance_ms
    )
    check("p95_ratio", ratio, limit, slower)
    if gates.max_negative_ratio is not None:
        ratings = window.feedback
        enough = ratings.ratings >= gates.min_ratings
        negative = ratings.negative_ratio
        state = GateState.WAITING
        if enough:
            state = GateState.FAIL if negative > gates.max_negative_ratio else GateState.PASS
        checks.append(
            GateCheck(
                "negative_feedback",
                state,
                negative if ratings.ratings else None,
                gates.max_negative_ratio,
                ratings.ratings,
                gates.min_ratings,
            )
        )
    failed = [c for c in checks if c.state is GateState.FAIL]
    if failed:
        reason = "failed: " + "; ".join(c.describe() for c in failed)
        return Verdict(Action.ROLLBACK, reason, window, tuple(checks), source)
    lasted = window.elapsed_s >= canary.min_duration_s
    if sampled and lasted:
        passed = [c.describe() for c in checks if c.state is GateState.PASS]
        reason = "passed: " + ("; ".join(passed) or "no gate configured")
        return Verdict(Action.ADVANCE, reason, window, tuple(checks), source)
    waiting = []
    if not sampled:
        waiting.append(f"{arm.requests}/{needed} canary requests")
    if not lasted:
        waiting.append(f"{window.elapsed_s:.0f}/{canary.min_duration_s:g} s")
    return Verdict(
        Action.WAIT, "waiting for " + " and ".join(waiting), window, tuple(checks), source
    )


# -- what one audit record says ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a window, as the gates count it."""

    canary: bool
    """Its arm: the new version (True) or the stable routes."""
    error: bool
    latency_ms: float | None
    """What the caller waited before the answer started; None for an error or a 4xx."""


def outcome_of(
    payload: Mapping[str, Any],
    rollout_id: int,
    stage: int,
    since_us: int,
    deployments: frozenset[tuple[str, str]],
) -> Outcome | None:
    """How a request record counts in roll-out ``rollout_id``'s window for ``stage`` (which
    began at ``since_us``), or None when it is not in it; ``deployments`` are the canary's
    (provider, model) pairs. See the module docstring for the rules."""
    details = payload.get("details")
    if not isinstance(details, Mapping):
        return None
    rollout = details.get("rollout")
    if not isinstance(rollout, Mapping) or rollout.get("id") != rollout_id:
        return None
    ts = payload.get("ts_us")
    if rollout.get("stage") != stage or not isinstance(ts, int) or ts < since_us:
        return None
    status = payload.get("status")
    attempts = details.get("attempts")
    if not isinstance(status, int) or not attempts:
        return None  # never reached a route
    drawn = rollout.get("arm") == "canary"
    sent = details.get("canary") is True
    if drawn and not sent:
        return None  # drawn for the canary, but a step removed its routes
    if sent and any(
        isinstance(a, Mapping)
        and a.get("error") == UNSUPPORTED
        and (a.get("provider"), a.get("model")) in deployments
        for a in attempts
    ):
        return None  # a call the new version's provider does not serve (a token count, say)
    error = status >= 500
    if sent and not error:
        answered_by = (payload.get("provider"), details.get("route_model"))
        error = answered_by not in deployments
    latency: float | None = None
    if not error and status < 400:
        key = "first_byte_ms" if details.get("stream") else "latency_ms"
        value = details.get(key)
        if not isinstance(value, int | float):
            value = details.get("latency_ms")
        latency = float(value) if isinstance(value, int | float) else None
    return Outcome(canary=sent, error=error, latency_ms=latency)
