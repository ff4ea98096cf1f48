"""Retries, fallbacks, circuit breakers and weighted routing, with a scripted upstream."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from passerelle.config import parse_config
from passerelle.config.schema import CircuitBreaker, ProviderConfig, RetryPolicy
from passerelle.core.context import RequestContext
from passerelle.errors import (
    ConfigError,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
    WireFormat,
)
from passerelle.pipeline.balancing import weighted_order
from passerelle.pipeline.breakers import BreakerState, CircuitBreakers
from passerelle.pipeline.resilience import RouteSkipped, call_with_fallback
from passerelle.pipeline.routing import RouteTarget
from passerelle.providers.transport import ConnectFailed, EmptyStream, TransportError


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StubProvider:
    name: str
    config: ProviderConfig


@dataclass
class StubResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    closed: bool = False

    def close(self) -> None:
        self.closed = True


Script = int | tuple[int, float] | TransportError | RouteSkipped


class Upstream:
    """What each provider answers, in order; then 200. Counts the calls it receives."""

    def __init__(self, **scripts: list[Script]) -> None:
        self.scripts = {name: list(items) for name, items in scripts.items()}
        self.calls: Counter[str] = Counter()

    async def send(self, target: RouteTarget) -> Any:
        name = target.provider.name
        script = self.scripts.get(name, [])
        item: Script = script.pop(0) if script else 200
        if isinstance(item, RouteSkipped):
            raise item
        self.calls[name] += 1
        if isinstance(item, TransportError):
            raise item
        if isinstance(item, tuple):
            return StubResponse(item[0], {"retry-after": str(item[1])})
        return StubResponse(item)


def target(
    name: str,
    *,
    weight: int | None = None,
    attempts: int = 2,
    retry_after_s: float = 10,
    **breaker: Any,
) -> RouteTarget:
    config = ProviderConfig(
        kind="openai_compatible",  # type: ignore[arg-type]
        base_url=f"http://{name}.test/v1",
        region="eu",
        clearance="restricted",
        retry=RetryPolicy(
            max_attempts=attempts,
            backoff_initial_ms=1,
            backoff_max_ms=1,
            max_retry_after_s=retry_after_s,
        ),
        circuit_breaker=CircuitBreaker.model_validate(breaker),
    )
    return RouteTarget(StubProvider(name, config), f"{name}-model", None, weight)  # type: ignore[arg-type]


def context() -> RequestContext:
    ctx = RequestContext("req_test", WireFormat.OPENAI, "/v1/chat/completions")
    ctx.model_alias = "chat"
    return ctx


async def no_sleep(seconds: float) -> None:
    return None


def run(
    targets: tuple[RouteTarget, ...],
    upstream: Upstream,
    breakers: CircuitBreakers,
    rng: random.Random | None = None,
) -> tuple[RequestContext, str]:
    ctx = context()
    outcome = asyncio.run(
        call_with_fallback(ctx, targets, upstream.send, breakers=breakers, sleep=no_sleep, rng=rng)
    )
    return ctx, outcome.target.provider.name


def fails(
    targets: tuple[RouteTarget, ...], upstream: Upstream, breakers: CircuitBreakers
) -> tuple[RequestContext, Exception]:
    ctx = context()
    with pytest.raises(Exception) as info:
        asyncio.run(
            call_with_fallback(ctx, targets, upstream.send, breakers=breakers, sleep=no_sleep)
        )
    return ctx, info.value


def errors(ctx: RequestContext) -> list[tuple[str, str | int | None]]:
    return [(a.provider, a.error or a.status) for a in ctx.attempts]


# -- circuit breakers through call_with_fallback ---------------------------------------------


def test_an_open_breaker_skips_the_route_without_calling_it() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (target("primary", failures=3, cooldown_s=30), target("backup"))
    upstream = Upstream(primary=[500, 500, 503, 502])
    ctx, name = run(routes, upstream, breakers)
    assert name == "backup"
    assert errors(ctx) == [("primary", "http_500"), ("primary", "http_500"), ("backup", 200)]
    ctx, _ = run(routes, upstream, breakers)
    # The third failure in a row opens it: the retry is not sent.
    assert errors(ctx) == [("primary", "http_503"), ("primary", "circuit_open"), ("backup", 200)]
    calls = upstream.calls["primary"]
    ctx, name = run(routes, upstream, breakers)
    assert name == "backup" and upstream.calls["primary"] == calls
    assert errors(ctx) == [("primary", "circuit_open"), ("backup", 200)]
    assert breakers.states()["primary/primary-model"] is BreakerState.OPEN


def test_half_open_probe_recovers_the_route() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (target("primary", failures=1, cooldown_s=30, attempts=1), target("backup"))
    upstream = Upstream(primary=[ConnectFailed("refused"), 502])
    assert run(routes, upstream, breakers)[1] == "backup"
    clock.now += 30
    ctx, _ = run(routes, upstream, breakers)  # the probe fails: open again, for 60 s
    assert errors(ctx) == [("primary", "http_502"), ("backup", 200)]
    clock.now += 59
    assert errors(run(routes, upstream, breakers)[0])[0] == ("primary", "circuit_open")
    clock.now += 1
    ctx, name = run(routes, upstream, breakers)  # this probe succeeds: closed
    assert name == "primary" and errors(ctx) == [("primary", 200)]
    assert breakers.states()["primary/primary-model"] is BreakerState.CLOSED


def test_every_route_open_is_a_503_with_the_shortest_cooldown() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (
        target("primary", failures=1, cooldown_s=40, attempts=1),
        target("backup", failures=1, cooldown_s=20, attempts=1),
    )
    upstream = Upstream(primary=[500], backup=[500])
    ctx, error = fails(routes, upstream, breakers)
    assert isinstance(error, UpstreamError) and error.status == 502  # they were called
    clock.now += 2.5
    ctx, error = fails(routes, upstream, breakers)
    assert isinstance(error, UpstreamUnavailable) and error.status == 503
    assert error.code == "circuit_open"
    assert error.headers == {"retry-after": "18"}  # ceil(17.5)
    assert "primary, backup" in error.message and "'chat'" in error.message
    assert errors(ctx) == [("primary", "circuit_open"), ("backup", "circuit_open")]
    assert upstream.calls == Counter({"primary": 1, "backup": 1})


def test_429_is_not_a_failure_but_its_retry_after_defers_the_route() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (
        target("primary", failures=1, attempts=3, retry_after_s=5),
        target("backup"),
    )
    upstream = Upstream(primary=[(429, 1), (429, 30)])
    ctx, _ = run(routes, upstream, breakers)
    # A short retry-after is waited out on the same route; a long one falls back at once.
    assert errors(ctx) == [("primary", "http_429"), ("primary", "http_429"), ("backup", 200)]
    assert breakers.states()["primary/primary-model"] is BreakerState.CLOSED
    ctx, _ = run(routes, upstream, breakers)
    assert errors(ctx) == [("primary", "rate_limited"), ("backup", 200)]
    assert upstream.calls["primary"] == 2
    clock.now += 30
    assert run(routes, upstream, breakers)[1] == "primary"


def test_with_no_route_left_a_short_deferral_is_waited_out() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (target("only", attempts=1, retry_after_s=5),)
    upstream = Upstream(only=[(429, 3)])
    fails(routes, upstream, breakers)  # its own 429: one attempt only, so it fails
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    ctx = context()
    outcome = asyncio.run(
        call_with_fallback(ctx, routes, upstream.send, breakers=breakers, sleep=sleep)
    )
    assert outcome.response.status == 200 and slept == [3.0]
    assert errors(ctx) == [("only", 200)] and upstream.calls["only"] == 2


def test_every_route_rate_limited_is_a_429_with_retry_after() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (target("primary", attempts=1), target("backup", attempts=1))
    upstream = Upstream(primary=[(429, 45)], backup=[(429, 12)])
    fails(routes, upstream, breakers)
    ctx, error = fails(routes, upstream, breakers)
    assert isinstance(error, RateLimited) and error.code == "upstream_rate_limited"
    assert error.headers == {"retry-after": "12"}
    assert errors(ctx) == [("primary", "rate_limited"), ("backup", "rate_limited")]


def test_a_stream_that_ends_before_its_first_byte_is_a_failure() -> None:
    breakers = CircuitBreakers(Clock())
    routes = (target("primary", failures=2, attempts=2), target("backup"))
    upstream = Upstream(primary=[EmptyStream("no byte"), EmptyStream("no byte")])
    ctx, name = run(routes, upstream, breakers)
    assert name == "backup"
    assert errors(ctx) == [("primary", "stream_empty")] * 2 + [("backup", 200)]
    assert breakers.states()["primary/primary-model"] is BreakerState.OPEN


def test_skipped_routes_leave_the_breaker_alone() -> None:
    breakers = CircuitBreakers(Clock())
    routes = (target("primary", failures=1), target("backup"))
    upstream = Upstream(primary=[RouteSkipped("no embeddings", code="route_unsupported")] * 3)
    for _ in range(3):
        assert run(routes, upstream, breakers)[1] == "backup"
    assert breakers.states()["primary/primary-model"] is BreakerState.CLOSED


def test_a_cancelled_probe_gives_its_slot_back() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (target("primary", failures=1, cooldown_s=1, attempts=1),)
    fails(routes, Upstream(primary=[500]), breakers)
    clock.now += 1

    async def hang(route: RouteTarget) -> Any:
        await asyncio.sleep(3600)

    async def cancelled() -> None:
        task = asyncio.create_task(call_with_fallback(context(), routes, hang, breakers=breakers))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert run(routes, Upstream(), breakers)[1] == "primary"  # the slot was released


# -- weighted routing --------------------------------------------------------------------------


def test_weights_draw_the_first_route_in_proportion() -> None:
    """10,000 seeded draws over weights 5:3:2. Each count is binomial (n=10,000, p=w/10); the
    tolerance is 4.5 standard deviations (about 70 for p=0.5), so a correct draw fails it with
    a probability under 1 in 100,000 whatever the seed, while a draw that ignored the weights
    (3,333 each) or favoured one route by 2 points would be off by 100 or more."""
    routes = (
        target("a", weight=5),
        target("b", weight=3),
        target("c", weight=2),
        target("fallback"),
    )
    rng = random.Random(20240501)
    n = 10_000
    firsts = Counter(weighted_order(routes, lambda t: True, rng)[0].provider.name for _ in range(n))
    assert set(firsts) == {"a", "b", "c"}  # a route without a weight is a fallback only
    for name, weight in (("a", 5), ("b", 3), ("c", 2)):
        p = weight / 10
        assert abs(firsts[name] - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)), firsts


def test_the_others_stay_fallbacks_in_configured_order() -> None:
    routes = (target("a", weight=1), target("b"), target("c", weight=1), target("d"))
    rng = random.Random(7)
    orders = {
        tuple(t.provider.name for t in weighted_order(routes, lambda t: True, rng))
        for _ in range(200)
    }
    assert orders == {("a", "b", "c", "d"), ("c", "a", "b", "d")}


def test_without_weights_the_order_is_the_configured_one() -> None:
    routes = (target("a"), target("b"), target("c"))
    assert weighted_order(routes, lambda t: False, random.Random(1)) is routes


def test_the_draw_skips_unavailable_routes_and_adds_none() -> None:
    allowed = (target("a", weight=9), target("b", weight=1), target("c"))
    rng = random.Random(3)
    for _ in range(100):
        order = weighted_order(allowed, lambda t: t.provider.name != "a", rng)
        assert [t.provider.name for t in order] == ["b", "a", "c"]
    # The data policy removed b: only what it kept comes out, whatever the weights.
    kept = (allowed[0], allowed[2])
    for _ in range(100):
        assert weighted_order(kept, lambda t: True, rng) == kept
    assert weighted_order(kept, lambda t: False, rng) == kept  # all open: configured order


def test_weighted_routing_with_breakers_sends_the_share_of_an_open_route_elsewhere() -> None:
    clock = Clock()
    breakers = CircuitBreakers(clock)
    routes = (
        target("a", weight=1, failures=1, cooldown_s=60, attempts=1),
        target("b", weight=1),
    )
    upstream = Upstream(a=[500])
    picked = Counter(run(routes, upstream, breakers, random.Random(i))[1] for i in range(40))
    assert upstream.calls["a"] == 1  # failed once, then never called while open
    assert picked["b"] == 40


CONFIG = """\
version: 1
providers:
  p: {{kind: openai_compatible, base_url: "http://p.test/v1", region: eu, clearance: public}}
models:
  chat:
    routes:
      - {{provider: p, model: m1, weight: {weight}}}
      - {{provider: p, model: m2}}
"""


@pytest.mark.parametrize("weight", ["0", "-2", '"3"', "1.5", "true"])
def test_a_weight_must_be_a_positive_integer(weight: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(weight=weight))
    assert str(info.value).startswith("<config>:7: models.chat.routes.0.weight: ")


def test_weights_and_breaker_settings_load() -> None:
    text = CONFIG.format(weight=3).replace(
        "clearance: public}", "clearance: public, circuit_breaker: {failures: 2, cooldown_s: 5}}"
    )
    config = parse_config(text)
    assert [r.weight for r in config.models["chat"].routes] == [3, None]
    assert config.providers["p"].circuit_breaker.failures == 2
    assert config.providers["p"].circuit_breaker.max_cooldown_s == 300
