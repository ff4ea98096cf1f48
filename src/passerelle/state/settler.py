"""Settling finished requests in batches: one call to the counters for many requests.

A finished request replaces its budget reservation by its real cost and its token estimate by
its real count. With Redis that is a round trip per request, which on a busy gateway costs as
much CPU as the admission itself. The settler adds each request's deltas to per-key totals and
sends them together after ``linger_s`` (or at once, when nothing is waiting): at 500 requests a
second and a 20 ms linger, one call carries about ten requests.

Waiting is safe: until it is settled, a request's reservation stays counted, so a budget can
only appear more spent than it is for those milliseconds, never less. So that it does not
refuse a request for that reason, a budget about to refuse settles what is queued first and
tries again (:meth:`Settler.settle_now`). A batch that cannot be
sent (Redis gone) is logged and dropped, with the same effect: reservations stay counted, and a
budget errs on the side of spending less.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Mapping

from passerelle.state.counters import Counters, StateUnavailableError

log = logging.getLogger("passerelle.budgets")


class Settler:
    """Coalesces settlements; every method runs on the gateway's event loop."""

    def __init__(self, counters: Counters, *, linger_s: float = 0.02) -> None:
        self._counters = counters
        self._linger_s = linger_s
        self._budgets: defaultdict[str, int] = defaultdict(int)
        self._windows: defaultdict[str, int] = defaultdict(int)
        self._flushing: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # clear while a batch is being sent
        self._idle.set()
        self.sent = 0
        """Batches sent so far: a reservation that saw another value may have counted a
        settlement as still pending."""

    def add(self, budgets: Mapping[str, int], windows: Mapping[str, int]) -> None:
        """Queue one request's deltas; they are sent within ``linger_s``."""
        for key, delta in budgets.items():
            self._budgets[key] += delta
        for key, delta in windows.items():
            self._windows[key] += delta
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        # Deltas queued while a batch is being sent go in the next one: keep going until
        # nothing waits (no other code runs between that check and this task ending).
        while True:
            await asyncio.sleep(self._linger_s)
            await self.flush()
            if not self._budgets and not self._windows:
                return

    async def flush(self) -> None:
        """Send what is queued now (also what ``close`` does before the process stops)."""
        budgets = {k: d for k, d in self._budgets.items() if d}
        windows = {k: d for k, d in self._windows.items() if d}
        self._budgets.clear()
        self._windows.clear()
        if not budgets and not windows:
            return
        self._idle.clear()
        try:
            await self._counters.settle(budgets, windows)
        except StateUnavailableError as exc:
            log.error(
                "%d budget and %d rate-limit settlements could not be sent (they stay "
                "counted as reserved): %s",
                len(budgets),
                len(windows),
                exc,
            )
        finally:
            self.sent += 1
            self._idle.set()

    async def settle_now(self, seen: int) -> bool:
        """Send what is queued at once. True if that may free budget for a reservation made
        when :attr:`sent` was ``seen``: something was queued or being sent, or a batch was
        sent since. A budget about to refuse a request calls it and, if True, tries again."""
        pending = any(self._budgets.values()) or not self._idle.is_set() or self.sent != seen
        await self._idle.wait()  # a batch being sent may hold the very settlement that frees it
        await self.flush()
        return pending

    async def close(self) -> None:
        """Send everything still queued, without waiting for the linger; a batch being sent
        is let finish first."""
        task, self._flushing = self._flushing, None
        if task is not None and not task.done():
            await self._idle.wait()  # never cancel a batch mid-send: it may be applied or not
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
