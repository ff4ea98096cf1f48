"""Circuit breakers: stop sending to a deployment that keeps failing, and try it again later.

A deployment is one route target: a provider and the model id asked of it. Each has a breaker::

               failures in a row                      cooldown over
    closed ─────────────────────────► open ──────────────────────────► half-open
      ▲                                 ▲                                  │
      │                                 └──── a probe fails (cooldown x2) ─┤
      └──────────────────────── a probe succeeds ──────────────────────────┘

* **closed**: every request goes through; failures in a row are counted, a success resets them.
* **open**: the deployment is skipped at once, without a connection, for the cooldown
  (``circuit_breaker.cooldown_s``); the attempt is recorded as ``circuit_open`` and the next route
  is tried.
* **half-open**: once the cooldown is over, up to ``half_open_probes`` requests at a time go
  through. A success closes the breaker; a failure opens it again for twice the last cooldown,
  up to ``max_cooldown_s``, as Envoy's ejection time grows with each ejection of a host.

Why failures *in a row* rather than a failure ratio over a window: the traffic of one deployment
of an AI model is low and bursty (a few requests a minute for many of them), and a ratio needs a
minimum volume in its window to mean anything; below it, it is either blind or as jumpy as a
count. A count in a row needs no window, no volume threshold and no clock, it is what Envoy's
outlier detection does by default (``consecutive_5xx``), and the two errors it can make are
cheap here: a deployment that fails one request in three never opens, but the retries on the
same route absorb those failures; one that fails every request opens after ``failures`` calls.

What counts:

* **failure**: a refused or reset connection, a timeout (no answer, or no first byte of a
  stream), HTTP 500, 502, 503, 504 and 529 (Anthropic's "overloaded"), and a stream that breaks
  after it started;
* **success**: any other answer, 4xx included: the deployment answered, so it is up (a 401 or
  404 says the route is misconfigured, which no cooldown repairs; resilience moves on to the
  next route for those);
* **neither**: 429. Rate limiting says the account is busy, not that the deployment is ill, so
  it never opens a breaker. When it comes with a ``retry-after``, the deployment is not sent to
  before that time (at most ``max_cooldown_s``): other requests go to the next route meanwhile,
  or get a 429 with that ``retry-after`` when no route is left, instead of adding to the load.

The state lives in each gateway process, not in Redis: each instance learns on its own, within a
few requests, which is what Envoy and most gateways do; sharing it would put a network round trip
on every request for little gain. The event loop runs one callback at a time and every method
here is synchronous (called between two awaits), so no lock is needed; time is the monotonic
clock, which a wall-clock jump cannot move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from passerelle.config.schema import CircuitBreaker as BreakerSettings
from passerelle.pipeline.routing import RouteTarget

log = logging.getLogger("passerelle.breakers")

CIRCUIT_OPEN = "circuit_open"
"""The attempt record (and error code) of a deployment skipped because its breaker is open."""
RATE_LIMITED = "rate_limited"
"""The attempt record of a deployment skipped because it asked not to be called before a time."""

# How long to tell a caller to wait when the deployment's probe is in flight: its answer, one
# way or the other, is expected within about that long for most calls.
PROBE_WAIT_S = 1.0

FAILURE_STATUS = frozenset({500, 502, 503, 504, 529})
"""Upstream statuses that count as a failure of the deployment."""

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request may go to the deployment; ``probe`` when it is one of the half-open probes."""

    probe: bool


_PASS = Admitted(probe=False)
_PROBE = Admitted(probe=True)


@dataclass(frozen=True, slots=True)
class Refused:
    """The deployment must be skipped: ``reason`` is ``circuit_open`` or ``rate_limited``, and
    ``wait_s`` how long until it may be tried again."""

    reason: str
    wait_s: float


class Breaker:
    """The breaker of one deployment. Every :meth:`admit` that returns :class:`Admitted` must be
    followed by exactly one of :meth:`success`, :meth:`failure` or :meth:`release`."""

    __slots__ = (
        "_clock",
        "_cooldown_s",
        "_failures",
        "_not_before",
        "_open_until",
        "_probes",
        "name",
        "settings",
        "state",
    )

    def __init__(self, name: str, settings: BreakerSettings, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self.state = BreakerState.CLOSED
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._cooldown_s = settings.cooldown_s
        self._probes = 0
        self._not_before = 0.0

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def state_now(self) -> BreakerState:
        """The state as the next request would find it (an open breaker whose cooldown is over
        is half-open), without changing it."""
        if self.state is BreakerState.OPEN and self._clock() >= self._open_until:
            return BreakerState.HALF_OPEN
        return self.state

    # -- asking ------------------------------------------------------------------------------

    def refusal(self) -> Refused | None:
        """Why the deployment would be skipped now, or None; takes no probe slot (for choosing
        among routes)."""
        if not self.settings.enabled:
            return None
        now = self._clock()
        if now < self._not_before:
            return Refused(RATE_LIMITED, self._not_before - now)
        return self._circuit(now)

    def admit(self, *, honour_deferral: bool = True) -> Admitted | Refused:
        """Let one request through, or say why not. In half-open state this takes a probe slot.

        ``honour_deferral=False`` is for the request that was itself told to wait by a 429 and
        did wait: its retry is the one the upstream asked for."""
        if self.state is BreakerState.CLOSED and not self._not_before:
            return _PASS  # the common case, without reading the clock
        if not self.settings.enabled:
            return _PASS
        now = self._clock()
        if now >= self._not_before:
            self._not_before = 0.0
        elif honour_deferral:
            return Refused(RATE_LIMITED, self._not_before - now)
        refused = self._circuit(now)
        if refused is not None:
            return refused
        if self.state is BreakerState.HALF_OPEN:
            self._probes += 1
            return _PROBE
        return _PASS

    def _circuit(self, now: float) -> Refused | None:
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.OPEN:
            if now < self._open_until:
                return Refused(CIRCUIT_OPEN, self._open_until - now)
            self.state = BreakerState.HALF_OPEN
            self._probes = 0
            log.info("circuit breaker of %s: half-open, probing", self.name)
        if self._probes >= self.settings.half_open_probes:
            return Refused(CIRCUIT_OPEN, PROBE_WAIT_S)
        return None

    # -- reporting ---------------------------------------------------------------------------

    def success(self, admitted: Admitted) -> None:
        """The deployment answered (anything but a failure status or a 429)."""
        if not self.settings.enabled:
            return
        if admitted.probe:
            self._probes = max(0, self._probes - 1)
        if self.state is BreakerState.OPEN:
            return  # a request from before the breaker opened; the cooldown runs its course
        if self.state is BreakerState.HALF_OPEN:
            log.info("circuit breaker of %s: closed, the deployment answers again", self.name)
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown_s = self.settings.cooldown_s

    def failure(self, admitted: Admitted = _PASS) -> None:
        """The deployment failed: no connection, a timeout, a failure status, a broken stream
        (reported without an admission: its request was admitted and succeeded earlier)."""
        if not self.settings.enabled:
            return
        if admitted.probe:
            self._probes = max(0, self._probes - 1)
            if self.state is BreakerState.HALF_OPEN:
                self._cooldown_s = min(self._cooldown_s * 2, self.settings.max_cooldown_s)
                self._open("its probe failed")
            return
        if self.state is not BreakerState.CLOSED:
            return  # already open, or probing: only probes decide now
        self._failures += 1
        if self._failures >= self.settings.failures:
            self._open(f"{self._failures} failures in a row")

    def release(self, admitted: Admitted) -> None:
        """The request ended without a verdict on the deployment's health (a 429, a route that
        could not be prepared, a cancelled call): give its probe slot back."""
        if admitted.probe:
            self._probes = max(0, self._probes - 1)

    def defer(self, retry_after_s: float) -> None:
        """A 429 with ``retry-after``: do not send before then (at most ``max_cooldown_s``)."""
        if not self.settings.enabled or retry_after_s <= 0:
            return
        until = self._clock() + min(retry_after_s, self.settings.max_cooldown_s)
        self._not_before = max(self._not_before, until)

    def _open(self, why: str) -> None:
        self.state = BreakerState.OPEN
        self._open_until = self._clock() + self._cooldown_s
        self._probes = 0
        log.warning(
            "circuit breaker of %s: open after %s; skipped for %g s",
            self.name,
            why,
            self._cooldown_s,
        )


class CircuitBreakers:
    """The breakers of one gateway process, one per deployment, made on first use."""

    __slots__ = ("_breakers", "_clock")

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[tuple[str, str], Breaker] = {}

    def of(self, target: RouteTarget) -> Breaker:
        key = (target.provider.name, target.model)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = Breaker(
                f"{key[0]}/{key[1]}", target.provider.config.circuit_breaker, self._clock
            )
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        """Every deployment called so far and the state of its breaker, e.g. for a health page."""
        return {breaker.name: breaker.state_now() for breaker in self._breakers.values()}

    def reset(self) -> None:
        """Forget everything learned: every breaker closed, every deferral dropped."""
        self._breakers.clear()
