"""Budget counters and sliding windows in Redis, for several gateway instances.

The same algorithms as :class:`~passerelle.state.counters.MemoryCounters`, in two Lua scripts
(admit and reserve; settle) so that Redis runs each check and its change as one atomic step
whatever the number of instances.
Windows use Redis's own clock (``TIME``), so instances whose clocks drift still share one window.

One Redis server (or a Sentinel-managed primary) is assumed: a request's counters are several
keys, which Redis Cluster would spread over slots a script cannot span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from passerelle.state.counters import (
    WINDOW_S,
    Admitted,
    Charge,
    Reserved,
    StateUnavailableError,
    Window,
)

# The sliding windows' check on the first ``windows`` keys, then the budgets' on the others;
# both counted only when both pass (admit alone and reserve alone are this script with no
# budget or no window). ARGV: window_s, windows, then (limit, cost) per window, then amount,
# then the cap of each budget counter.
_ADMIT_AND_RESERVE = """
local t = redis.call('TIME')
local second = tonumber(t[1])
local now = second + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local used = {}
local resets = {}
for i = 1, n do
  local flat = redis.call('HGETALL', KEYS[i])
  local secs = {}
  local counts = {}
  local total = 0
  for j = 1, #flat, 2 do
    local s = tonumber(flat[j])
    if s <= second - window then
      redis.call('HDEL', KEYS[i], flat[j])
    else
      secs[#secs + 1] = s
      counts[s] = tonumber(flat[j + 1])
      total = total + counts[s]
    end
  end
  table.sort(secs)
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  if total + cost > limit then
    local retry = window
    if cost <= limit then
      local freed = 0
      for _, s in ipairs(secs) do
        freed = freed + counts[s]
        if total - freed + cost <= limit then
          retry = s + window - now
          break
        end
      end
    end
    return {0, i - 1, tostring(retry)}
  end
  used[i] = total
  if #secs > 0 then
    resets[i] = tostring(secs[1] + window - now)
  elseif cost > 0 then
    resets[i] = tostring(second + window - now)
  else
    resets[i] = '0'
  end
end
local base = 3 + 2 * n
local amount = tonumber(ARGV[base])
local values = {}
local missing = {}
for i = n + 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then missing[#missing + 1] = i - n - 1 else values[i - n] = tonumber(v) end
end
if #missing > 0 then return {-1, missing} end
for i = n + 1, #KEYS do
  if values[i - n] + amount > tonumber(ARGV[base + i - n]) then
    return {2, i - n - 1, values, used, resets}
  end
end
for i = 1, n do
  local cost = tonumber(ARGV[2 + 2 * i])
  if cost ~= 0 then redis.call('HINCRBY', KEYS[i], second, cost) end
  redis.call('EXPIRE', KEYS[i], window + 2)
end
for i = n + 1, #KEYS do values[i - n] = redis.call('INCRBY', KEYS[i], amount) end
return {1, used, resets, values}
"""


# ARGV: budget count, window_s, then one delta per key, budgets first.
_SETTLE = """
local budgets = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i = 1, budgets do
  local delta = tonumber(ARGV[2 + i])
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], delta)
  end
end
if #KEYS > budgets then
  local second = tonumber(redis.call('TIME')[1])
  for i = budgets + 1, #KEYS do
    local cost = tonumber(ARGV[2 + i])
    if cost ~= 0 then
      redis.call('HINCRBY', KEYS[i], second, cost)
      redis.call('EXPIRE', KEYS[i], window + 2)
    end
  end
end
return 1
"""


class RedisCounters:
    """:class:`~passerelle.state.counters.Counters` on one Redis server; every failure (refused,
    timed out, an unexpected reply) becomes :class:`StateUnavailableError`."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, timeout_s: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._timeout = timeout_s
        self._settle = client.register_script(_SETTLE)
        self._admit_and_reserve = client.register_script(_ADMIT_AND_RESERVE)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _run(self, what: str, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):  # no task per call, unlike wait_for
                return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateUnavailableError(
                f"Redis did not answer ({what}: {type(exc).__name__})"
            ) from None

    async def reserve(self, charges: Sequence[Charge], amount: int) -> Reserved:
        return (await self.admit_and_reserve((), charges, amount))[1]

    async def seed(self, charge: Charge, value: int) -> None:
        await self._run(
            "seed", self._redis.set(self._k(charge.key), value, nx=True, exat=charge.expires_at)
        )

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        await self.settle(dict.fromkeys(keys, delta), {})

    async def read(self, keys: Sequence[str]) -> list[int | None]:
        if not keys:
            return []
        values = await self._run("read", self._redis.mget([self._k(k) for k in keys]))
        return [None if v is None else int(v) for v in values]

    async def admit(self, windows: Sequence[Window]) -> Admitted:
        return (await self.admit_and_reserve(windows, (), 0))[0]

    async def admit_and_reserve(
        self, windows: Sequence[Window], charges: Sequence[Charge], amount: int
    ) -> tuple[Admitted, Reserved]:
        keys = [*(self._k(w.key) for w in windows), *(self._k(c.key) for c in charges)]
        args: list[int] = [WINDOW_S, len(windows)]
        for window in windows:
            args += [window.limit, window.cost]
        args += [amount, *(c.hard for c in charges)]
        reply = await self._run("admit and reserve", self._admit_and_reserve(keys=keys, args=args))
        status = int(reply[0])
        if status == 0:
            denied = Admitted(False, denied=int(reply[1]), retry_after=max(0.0, float(reply[2])))
            return denied, Reserved(False)
        if status == -1:
            return Admitted(True), Reserved(False, unseeded=tuple(int(i) for i in reply[1]))
        if status == 2:
            admitted = _admitted(reply[3], reply[4])
            totals = tuple(int(v) for v in reply[2])
            return admitted, Reserved(False, totals=totals, breached=int(reply[1]))
        return _admitted(reply[1], reply[2]), Reserved(True, totals=tuple(int(v) for v in reply[3]))

    async def add(self, windows: Sequence[Window]) -> None:
        counted: dict[str, int] = {}
        for window in windows:
            counted[window.key] = counted.get(window.key, 0) + window.cost
        await self.settle({}, counted)

    async def settle(self, budgets: Mapping[str, int], windows: Mapping[str, int]) -> None:
        spent = {k: d for k, d in budgets.items() if d}
        counted = {k: c for k, c in windows.items() if c}
        if not spent and not counted:
            return
        await self._run(
            "settle",
            self._settle(
                keys=[*(self._k(k) for k in spent), *(self._k(k) for k in counted)],
                args=[len(spent), WINDOW_S, *spent.values(), *counted.values()],
            ),
        )

    async def once(self, key: str, expires_at: int) -> bool:
        created = await self._run(
            "once", self._redis.set(self._k(key), 1, nx=True, exat=expires_at)
        )
        return bool(created)

    async def ping(self) -> None:
        await self._run("ping", self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)


def _admitted(used: Any, resets: Any) -> Admitted:
    return Admitted(
        True,
        used=tuple(int(v) for v in used),
        resets_in=tuple(max(0.0, float(v)) for v in resets),
    )
