"""Settlements are coalesced: many finished requests, one call to the counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import pytest

from passerelle.state.counters import Charge, MemoryCounters, StateUnavailableError, Window
from passerelle.state.settler import Settler

FAR = int(time.time()) + 3600


class Recording(MemoryCounters):
    """In-process counters that also remember each settle call (and can be made to fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[dict[str, int], dict[str, int]]] = []
        self.failing = False
        self.slow_s = 0.0

    async def settle(self, budgets: Mapping[str, int], windows: Mapping[str, int]) -> None:
        self.calls.append((dict(budgets), dict(windows)))
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.failing:
            raise StateUnavailableError("Redis did not answer (settle: TimeoutError)")
        await super().settle(budgets, windows)


def test_many_requests_are_settled_in_one_call() -> None:
    async def scenario() -> None:
        counters = Recording()
        await counters.seed(Charge("b", 10_000, FAR), 0)
        assert (await counters.reserve([Charge("b", 10_000, FAR)], 1000)).ok
        settler = Settler(counters, linger_s=0.01)
        for _ in range(10):
            settler.add({"b": -90}, {"tok": 5})  # ten requests, each 90 under its reservation
        await asyncio.sleep(0.05)
        assert counters.calls == [({"b": -900}, {"tok": 50})]
        assert await counters.read(["b"]) == [100]
        used = await counters.admit([Window("tok", 1000, 0)])
        assert used.used == (50,)

    asyncio.run(scenario())


def test_deltas_queued_during_a_send_go_in_the_next_batch() -> None:
    async def scenario() -> None:
        counters = Recording()
        counters.slow_s = 0.05
        settler = Settler(counters, linger_s=0.01)
        settler.add({"b": 1}, {})
        await asyncio.sleep(0.03)  # the first batch is being sent
        settler.add({"b": 2}, {})
        settler.add({"c": 3}, {})
        await asyncio.sleep(0.2)
        assert counters.calls == [({"b": 1}, {}), ({"b": 2, "c": 3}, {})]

    asyncio.run(scenario())


def test_close_sends_what_is_queued_and_in_flight() -> None:
    async def scenario() -> None:
        counters = Recording()
        settler = Settler(counters, linger_s=10.0)  # would wait ten seconds on its own
        settler.add({"b": -5}, {"tok": 7})
        await settler.close()
        assert counters.calls == [({"b": -5}, {"tok": 7})]

    asyncio.run(scenario())


def test_a_batch_that_cannot_be_sent_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        counters = Recording()
        counters.failing = True
        settler = Settler(counters, linger_s=0.0)
        settler.add({"b": -5}, {})
        await asyncio.sleep(0.02)
        counters.failing = False
        settler.add({"c": 1}, {})
        await asyncio.sleep(0.02)
        assert counters.calls == [({"b": -5}, {}), ({"c": 1}, {})]  # -5 not sent twice

    asyncio.run(scenario())
    assert "stay counted as reserved" in caplog.text


def test_settle_now_says_whether_budgets_were_waiting() -> None:
    async def scenario() -> None:
        counters = Recording()
        settler = Settler(counters, linger_s=10.0)
        assert not await settler.settle_now(settler.sent)
        settler.add({}, {"tok": 3})  # a window correction alone frees no budget
        seen = settler.sent
        assert not await settler.settle_now(seen)
        settler.add({"b": -40}, {})
        assert await settler.settle_now(settler.sent)
        # A reservation made before the last batch went out may have seen it pending.
        assert await settler.settle_now(seen)
        assert counters.calls == [({}, {"tok": 3}), ({"b": -40}, {})]
        await settler.close()

    asyncio.run(scenario())


def test_settle_now_waits_for_the_batch_being_sent() -> None:
    async def scenario() -> None:
        counters = Recording()
        counters.slow_s = 0.05
        settler = Settler(counters, linger_s=0.0)
        settler.add({"b": -10}, {})
        await asyncio.sleep(0.01)  # that batch is being sent now
        async with asyncio.timeout(2):
            seen = settler.sent
            assert await settler.settle_now(seen)  # it was in flight: the budget may retry
            assert not await settler.settle_now(settler.sent)
        assert counters.calls == [({"b": -10}, {})]
        async with asyncio.timeout(2):
            await settler.close()

    asyncio.run(scenario())
