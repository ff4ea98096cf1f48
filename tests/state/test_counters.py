"""The counters' contract, held by the in-process and the Redis backends alike."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from passerelle.config.schema import StateSettings
from passerelle.state.counters import (
    WINDOW_S,
    Charge,
    Counters,
    MemoryCounters,
    StateUnavailableError,
    Window,
)
from passerelle.state.factory import build_counters
from passerelle.state.redis_counters import RedisCounters
from tests.net import REDIS_URL

FAR = int(time.time()) + 3600

Scenario = Callable[[Counters], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def run(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Runs a scenario against a fresh backend on its own event loop."""

    def runner(scenario: Scenario) -> None:
        async def main() -> None:
            counters: Counters
            if request.param == "memory":
                counters = MemoryCounters()
            else:
                prefix: str = request.getfixturevalue("redis_prefix")
                settings = StateSettings(backend="redis", redis_url=REDIS_URL, key_prefix=prefix)
                counters = build_counters(settings, {})
            try:
                await scenario(counters)
            finally:
                await counters.close()

        asyncio.run(main())

    return runner


def test_a_counter_must_be_seeded_before_it_is_reserved(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        a, b = Charge("a", 100, FAR), Charge("b", 100, FAR)
        first = await c.reserve([a, b], 10)
        assert not first.ok and first.unseeded == (0, 1)
        await c.seed(a, 30)
        await c.seed(a, 99)  # the first seed wins: another instance got there first
        again = await c.reserve([a, b], 10)
        assert not again.ok and again.unseeded == (1,)
        await c.seed(b, 0)
        done = await c.reserve([a, b], 10)
        assert done.ok and done.totals == (40, 10)

    run(scenario)


def test_reserve_is_all_or_nothing_at_the_cap(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        small, large = Charge("small", 50, FAR), Charge("large", 1000, FAR)
        await c.seed(small, 45)
        await c.seed(large, 0)
        refused = await c.reserve([large, small], 10)
        assert not refused.ok and refused.breached == 1 and refused.totals == (0, 45)
        assert await c.read(["small", "large"]) == [45, 0]  # nothing added anywhere
        fits = await c.reserve([large, small], 5)
        assert fits.ok and fits.totals == (5, 50)

    run(scenario)


def test_adjust_settles_and_releases(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        charge = Charge("x", 100, FAR)
        await c.seed(charge, 0)
        assert (await c.reserve([charge], 60)).ok
        await c.adjust(["x"], -45)  # cost 15 instead of 60
        assert await c.read(["x"]) == [15]
        await c.adjust(["never-seeded"], 5)  # a counter that does not exist is not created
        assert await c.read(["never-seeded"]) == [None]

    run(scenario)


def test_concurrent_reservations_never_pass_the_cap(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        charge = Charge("cap", 10_000, FAR)
        await c.seed(charge, 0)
        rng = random.Random(7)
        amounts = [rng.randint(1, 300) for _ in range(400)]
        results = await asyncio.gather(*(c.reserve([charge], a) for a in amounts))
        granted = sum(a for a, r in zip(amounts, results, strict=True) if r.ok)
        assert granted <= 10_000
        assert await c.read(["cap"]) == [granted]
        assert 10_000 - granted < 300  # refused only when nearly full

    run(scenario)


def test_window_admits_up_to_the_limit_then_says_when(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        results = [await c.admit([Window("w", 5, 1)]) for _ in range(7)]
        assert [r.ok for r in results] == [True] * 5 + [False] * 2
        assert [r.used for r in results[:5]] == [(0,), (1,), (2,), (3,), (4,)]
        refused = results[5]
        assert refused.denied == 0
        # Everything was counted within the last second or two: it leaves in about a minute.
        assert WINDOW_S - 3 <= refused.retry_after <= WINDOW_S

    run(scenario)


def test_window_admission_is_all_or_nothing(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        assert (await c.admit([Window("req", 10, 1), Window("tok", 100, 90)])).ok
        refused = await c.admit([Window("req", 10, 1), Window("tok", 100, 20)])
        assert not refused.ok and refused.denied == 1
        # The request window was not charged for the refused request.
        again = await c.admit([Window("req", 10, 0), Window("tok", 100, 10)])
        assert again.ok and again.used == (1, 90)

    run(scenario)


def test_add_corrects_a_window(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        assert (await c.admit([Window("tok", 100, 50)])).ok
        await c.add([Window("tok", 100, -30)])  # the request used 20 tokens, not 50
        result = await c.admit([Window("tok", 100, 80)])
        assert result.ok and result.used == (20,)

    run(scenario)


def test_admission_and_reservation_count_together_or_not_at_all(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(c: Counters) -> None:
        charge = Charge("cap", 100, FAR)
        window = Window("rpm", 3, 1)
        admitted, reserved = await c.admit_and_reserve([window], [charge], 60)
        assert admitted.ok and reserved.unseeded == (0,)  # nothing counted yet
        await c.seed(charge, 0)
        admitted, reserved = await c.admit_and_reserve([window], [charge], 60)
        assert admitted.ok and admitted.used == (0,) and reserved.ok and reserved.totals == (60,)
        # The budget refuses: the window does not count the refused request either.
        admitted, reserved = await c.admit_and_reserve([window], [charge], 60)
        assert admitted.ok and not reserved.ok and reserved.breached == 0
        assert reserved.totals == (60,)
        admitted, reserved = await c.admit_and_reserve([window], [charge], 10)
        assert reserved.ok and admitted.used == (1,)
        # The window refuses: the budget is not touched.
        assert (await c.admit_and_reserve([window], [charge], 10))[1].ok
        admitted, reserved = await c.admit_and_reserve([window], [charge], 10)
        assert not admitted.ok and admitted.denied == 0 and not reserved.ok
        assert await c.read(["cap"]) == [80]
        # No window, or no budget, works too.
        assert (await c.admit_and_reserve([], [charge], 5))[1].totals == (85,)
        only_window = await c.admit_and_reserve([Window("other", 5, 1)], [], 0)
        assert only_window[0].ok and only_window[1].ok

    run(scenario)


def test_settle_adjusts_budgets_and_windows_at_once(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        charge = Charge("spend", 1000, FAR)
        await c.seed(charge, 0)
        assert (await c.reserve([charge], 300)).ok
        assert (await c.admit([Window("tok", 1000, 100)])).ok
        await c.settle({"spend": -250}, {"tok": 40})  # cost 50, 140 tokens
        assert await c.read(["spend"]) == [50]
        result = await c.admit([Window("tok", 1000, 0)])
        assert result.used == (140,)
        await c.settle({}, {})  # nothing to do is fine
        await c.settle({"spend": 5, "never-seeded": 9}, {})  # only existing counters move
        assert await c.read(["spend", "never-seeded"]) == [55, None]

    run(scenario)


def test_a_request_larger_than_the_limit_is_told_so(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        refused = await c.admit([Window("tok", 100, 500)])
        assert not refused.ok and refused.retry_after == WINDOW_S

    run(scenario)


def test_once_is_true_once(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Counters) -> None:
        assert await c.once("alert:x", FAR)
        assert not await c.once("alert:x", FAR)
        assert await c.once("alert:y", FAR)

    run(scenario)


def test_the_memory_window_slides_second_by_second() -> None:
    now = [1_000.0]
    counters = MemoryCounters(clock=lambda: now[0])

    async def scenario() -> list[Any]:
        out = []
        for second in range(0, 70, 10):  # one request every 10 s, limit 6 a minute
            now[0] = 1_000.0 + second
            out.append((await counters.admit([Window("w", 6, 1)])).ok)
        now[0] = 1_000.0 + 70
        out.append((await counters.admit([Window("w", 6, 1)])).ok)
        return out

    # t=0..50: six admitted; t=60: the request of t=0 left the window, so admitted; t=70 too.
    assert asyncio.run(scenario()) == [True] * 8

    burst = MemoryCounters(clock=lambda: now[0])

    async def boundary() -> tuple[int, float]:
        now[0] = 2_059.5
        admitted = sum([(await burst.admit([Window("w", 10, 1)])).ok for _ in range(10)])
        now[0] = 2_060.2  # a fixed window would reset here and let 10 more through
        refused = await burst.admit([Window("w", 10, 1)])
        return admitted, refused.retry_after

    admitted, retry_after = asyncio.run(boundary())
    assert admitted == 10
    # Counted in the bucket of second 2059, they leave the window at 2119.0: 58.8 s later.
    assert retry_after == pytest.approx(58.8)


def test_redis_that_does_not_answer_is_reported(redis_prefix: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(
            "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
        )
        counters = RedisCounters(client, redis_prefix, timeout_s=0.3)
        with pytest.raises(StateUnavailableError) as caught:
            await counters.reserve([Charge("x", 1, FAR)], 1)
        assert "redis://" not in str(caught.value)
        with pytest.raises(StateUnavailableError):
            await counters.admit([Window("w", 1, 1)])
        await counters.close()

    asyncio.run(scenario())
