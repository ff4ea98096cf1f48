"""Counters that budgets and rate limits share: their contract and the in-process backend.

Two kinds of counters, each changed atomically however many requests run at once:

* **budget counters** hold the micro-USD spent (and reserved) on one budget in one period.
  :meth:`Counters.reserve` adds an amount to several counters at once, all or none, and only if
  none of them would pass its cap: that check-and-add being one atomic step is what keeps a
  cap from being overspent by concurrent requests. A counter that does not exist yet (the first
  request of a period, a restarted instance, a flushed Redis) is reported as unseeded: the
  caller reads what the audit trail says was spent and seeds it, then reserves again.
* **sliding windows** count requests or tokens over the last ``WINDOW_S`` seconds, in one-second
  buckets: a limit of 600 a minute admits at most 600 in any 60 consecutive whole seconds, with
  no burst at a window boundary (the classic fixed-window flaw that lets 2x through).

:class:`MemoryCounters` keeps them in this process: exact for one instance, since the event loop
runs one coroutine at a time and no method awaits in the middle of a change. Several instances
need the Redis backend (``redis_counters.py``), which runs the same algorithms as Lua scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60


class StateUnavailableError(Exception):
    """The shared state cannot be reached or answered out of time. The message never carries a
    credential (Redis URLs with passwords are refused by the configuration)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One budget counter a request is charged to."""

    key: str
    hard: int
    """The cap, micro-USD."""
    expires_at: int
    """Unix seconds after which the counter may be forgotten (its period is long over)."""


@dataclass(frozen=True, slots=True)
class Reserved:
    """What :meth:`Counters.reserve` did.

    ``ok``: the amount was added to every counter; ``totals`` are the new values.
    Not ``ok``: nothing was added. ``unseeded`` lists the counters to seed before trying again;
    otherwise ``breached`` is the first counter that the amount would take past its cap, and
    ``totals`` the values as they are."""

    ok: bool
    totals: tuple[int, ...] = ()
    breached: int | None = None
    unseeded: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding-window limit: ``cost`` more must keep the last minute within ``limit``."""

    key: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """What :meth:`Counters.admit` did.

    ``ok``: every window took its cost; ``used`` holds each window's total before this request
    and ``resets_in`` the seconds until its oldest bucket leaves the window. Not ``ok``: nothing
    was counted; ``denied`` is the first window that would pass its limit, ``retry_after`` the
    seconds until enough of it has left the window for this request to fit."""

    ok: bool
    used: tuple[int, ...] = ()
    resets_in: tuple[float, ...] = ()
    denied: int | None = None
    retry_after: float = 0.0


class Counters(Protocol):
    async def reserve(self, charges: Sequence[Charge], amount: int) -> Reserved:
        """Add ``amount`` to every counter if none passes its cap; all or nothing."""

    async def seed(self, charge: Charge, value: int) -> None:
        """Create the counter with ``value`` unless it exists (another instance seeded it)."""

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        """Add ``delta`` (negative to release) to the counters that exist."""

    async def read(self, keys: Sequence[str]) -> list[int | None]:
        """Current values; None for a counter that does not exist."""

    async def admit(self, windows: Sequence[Window]) -> Admitted:
        """Count each window's cost if every window stays within its limit; all or nothing."""

    async def admit_and_reserve(
        self, windows: Sequence[Window], charges: Sequence[Charge], amount: int
    ) -> tuple[Admitted, Reserved]:
        """:meth:`admit` and :meth:`reserve` as one atomic step (one round trip for Redis):
        nothing is counted unless the windows admit and the budgets reserve. A refusal by the
        windows is reported in the first value (the budgets were not tried), anything else in
        the second."""

    async def add(self, windows: Sequence[Window]) -> None:
        """Count ``cost`` (which may be negative: a correction) now, whatever the limit."""

    async def settle(self, budgets: Mapping[str, int], windows: Mapping[str, int]) -> None:
        """Add each delta to its budget counter (those that exist) and to its window, in one
        step (one round trip for Redis): what finished requests do, one or many at once."""

    async def once(self, key: str, expires_at: int) -> bool:
        """True the first time ``key`` is seen (until ``expires_at``), across instances."""

    async def ping(self) -> None:
        """Raise :class:`StateUnavailableError` unless the state answers."""

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters in this process. Every method runs to completion without awaiting, so on one
    event loop each is atomic."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._budgets: dict[str, tuple[int, int]] = {}  # key -> (value, expires_at)
        self._windows: dict[str, dict[int, int]] = {}  # key -> {second: count}
        self._seen: dict[str, int] = {}
        self._sweep_at = 0.0

    async def reserve(self, charges: Sequence[Charge], amount: int) -> Reserved:
        self._sweep()
        values: list[int] = []
        missing = tuple(i for i, c in enumerate(charges) if c.key not in self._budgets)
        if missing:
            return Reserved(False, unseeded=missing)
        for index, charge in enumerate(charges):
            value = self._budgets[charge.key][0]
            if value + amount > charge.hard:
                current = tuple(self._budgets[c.key][0] for c in charges)
                return Reserved(False, totals=current, breached=index)
            values.append(value + amount)
        for charge, value in zip(charges, values, strict=True):
            self._budgets[charge.key] = (value, charge.expires_at)
        return Reserved(True, totals=tuple(values))

    async def seed(self, charge: Charge, value: int) -> None:
        self._budgets.setdefault(charge.key, (value, charge.expires_at))

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        for key in keys:
            entry = self._budgets.get(key)
            if entry is not None:
                self._budgets[key] = (entry[0] + delta, entry[1])

    async def read(self, keys: Sequence[str]) -> list[int | None]:
        return [self._budgets[k][0] if k in self._budgets else None for k in keys]

    async def admit(self, windows: Sequence[Window]) -> Admitted:
        now = self._clock()
        admitted = self._check(windows, now)
        if admitted.ok:
            self._count(windows, int(now))
        return admitted

    async def admit_and_reserve(
        self, windows: Sequence[Window], charges: Sequence[Charge], amount: int
    ) -> tuple[Admitted, Reserved]:
        now = self._clock()
        admitted = self._check(windows, now)
        if not admitted.ok:
            return admitted, Reserved(False)
        reserved = await self.reserve(charges, amount)  # runs to completion: still atomic
        if reserved.ok:
            self._count(windows, int(now))
        return admitted, reserved

    def _check(self, windows: Sequence[Window], now: float) -> Admitted:
        second = int(now)
        used: list[int] = []
        resets: list[float] = []
        for index, window in enumerate(windows):
            buckets = self._live_buckets(window.key, second)
            total = sum(buckets.values())
            if total + window.cost > window.limit:
                return Admitted(
                    False,
                    denied=index,
                    retry_after=_retry_after(buckets, total, window, now),
                )
            used.append(total)
            oldest = min(buckets) if buckets else second
            resets.append(max(0.0, oldest + WINDOW_S - now) if total + window.cost else 0.0)
        return Admitted(True, used=tuple(used), resets_in=tuple(resets))

    def _count(self, windows: Sequence[Window], second: int) -> None:
        for window in windows:
            if window.cost:
                buckets = self._windows.setdefault(window.key, {})
                buckets[second] = buckets.get(second, 0) + window.cost

    async def add(self, windows: Sequence[Window]) -> None:
        self._count(windows, int(self._clock()))

    async def settle(self, budgets: Mapping[str, int], windows: Mapping[str, int]) -> None:
        for key, delta in budgets.items():
            await self.adjust([key], delta)
        await self.add([Window(key, 0, cost) for key, cost in windows.items()])

    async def once(self, key: str, expires_at: int) -> bool:
        self._sweep()
        if key in self._seen:
            return False
        self._seen[key] = expires_at
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live_buckets(self, key: str, second: int) -> dict[int, int]:
        buckets = self._windows.get(key)
        if buckets is None:
            return {}
        oldest = second - WINDOW_S
        for stale in [s for s in buckets if s <= oldest]:
            del buckets[stale]
        return buckets

    def _sweep(self) -> None:
        """Forget counters of periods long over (at most once a minute)."""
        now = self._clock()
        if now < self._sweep_at:
            return
        self._sweep_at = now + 60
        for key in [k for k, (_, exp) in self._budgets.items() if exp < now]:
            del self._budgets[key]
        for key in [k for k, exp in self._seen.items() if exp < now]:
            del self._seen[key]
        second = int(now)
        for key in [k for k, b in self._windows.items() if not self._live_buckets(k, second)]:
            del self._windows[key]


def _retry_after(buckets: dict[int, int], total: int, window: Window, now: float) -> float:
    """Seconds until enough buckets have left the window for ``window.cost`` to fit."""
    if window.cost > window.limit:
        return float(WINDOW_S)  # can never fit: say a minute, the caller's message says why
    freed = 0
    for second in sorted(buckets):
        freed += buckets[second]
        if total - freed + window.cost <= window.limit:
            return max(0.0, second + WINDOW_S - now)
    return float(WINDOW_S)
