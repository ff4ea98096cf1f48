"""Rate limits: requests and tokens per minute per key, user, project and model.

Each configured limit that applies to a request is a sliding window (``state/counters.py``).
Requests are counted when admitted. Tokens cannot be known before the answer, so a request is
admitted on its prompt's estimated size, and the window is corrected by the real count once the
provider has reported it (or the relayed text has been counted): a minute's token total is
exact, and only the admission of the requests in flight works from an estimate.

Every answer carries the most constraining limit in the caller's own headers (OpenAI's
``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``); a refusal is a 429 with
``retry-after`` (and, for Gemini callers, a ``RetryInfo`` detail in the error body).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from passerelle.config.schema import RateLimit, RateLimitScope
from passerelle.core.context import Principal
from passerelle.errors import RateLimited, WireFormat
from passerelle.state.counters import Admitted, Window


@dataclass(frozen=True, slots=True)
class Applied:
    rule: RateLimit
    index: int
    name: str
    tokens: bool
    window: Window


@dataclass(slots=True)
class LimitTicket:
    """The windows one admitted request was counted in; corrected when its tokens are known."""

    applied: tuple[Applied, ...]
    admitted: Admitted
    estimated_tokens: int

    def token_windows(self, delta: int) -> list[Window]:
        return [Window(a.window.key, a.window.limit, delta) for a in self.applied if a.tokens]


class RateLimiter:
    """The configured rate limits: which windows a request is counted in, and what an
    admission or a refusal says. Counting is the counters' (``state/counters.py``), done with
    the budget reservation in one atomic step (``Budgets.reserve``)."""

    def __init__(self, rules: Sequence[RateLimit]) -> None:
        self._rules = tuple(rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def plan(self, principal: Principal, alias: str, tokens: int) -> tuple[Applied, ...]:
        """The windows this request is to be counted in: a request, ``tokens`` tokens."""
        out: list[Applied] = []
        for index, rule in enumerate(self._rules):
            name = _name_for(rule.scope, principal, alias)
            if name is None or (rule.match != "*" and rule.match != name):
                continue
            base = f"rl:{rule.scope.value}:{rule.match}:{name}"
            if rule.rpm is not None:
                out.append(Applied(rule, index, name, False, Window(f"{base}:r", rule.rpm, 1)))
            if rule.tpm is not None:
                out.append(Applied(rule, index, name, True, Window(f"{base}:t", rule.tpm, tokens)))
        return tuple(out)

    @staticmethod
    def ticket(plan: tuple[Applied, ...], admitted: Admitted, tokens: int) -> LimitTicket:
        """The ticket of a request the counters admitted, or the refusal of one they did not."""
        if not admitted.ok:
            assert admitted.denied is not None
            raise _refusal(plan[admitted.denied], admitted.retry_after)
        return LimitTicket(plan, admitted, tokens)


def _name_for(scope: RateLimitScope, principal: Principal, alias: str) -> str | None:
    if scope is RateLimitScope.KEY:
        return principal.key_prefix
    if scope is RateLimitScope.USER:
        return principal.email
    if scope is RateLimitScope.PROJECT:
        return principal.project
    return alias


def _refusal(applied: Applied, retry_after: float) -> RateLimited:
    rule, window = applied.rule, applied.window
    unit = "tokens" if applied.tokens else "requests"
    wait = max(1, math.ceil(retry_after))
    if window.cost > window.limit:
        message = (
            f"This request's prompt alone (about {window.cost} tokens) is more than the "
            f"{window.limit} tokens a minute allowed for {rule.scope.value} '{applied.name}' "
            f"(rate_limits[{applied.index}]); shorten it or ask an administrator to raise the "
            "limit."
        )
    else:
        message = (
            f"Rate limit reached: at most {window.limit} {unit} a minute for "
            f"{rule.scope.value} '{applied.name}' (rate_limits[{applied.index}]). "
            f"Retry in {wait} s."
        )
    return RateLimited(
        message,
        code="rate_limit_exceeded",
        headers={"retry-after": str(wait), **_limit_headers(applied, 0, retry_after)},
    )


def _limit_headers(applied: Applied, remaining: int, reset_s: float) -> dict[str, str]:
    """The headers of one window, in OpenAI's names (Anthropic's added by :func:`headers`)."""
    unit = "tokens" if applied.tokens else "requests"
    return {
        f"x-ratelimit-limit-{unit}": str(applied.window.limit),
        f"x-ratelimit-remaining-{unit}": str(max(0, remaining)),
        f"x-ratelimit-reset-{unit}": _duration(reset_s),
    }


def headers(ticket: LimitTicket, wire: WireFormat) -> dict[str, str]:
    """Rate-limit headers for an admitted request: the most constraining window of each unit,
    in the caller's convention (Gemini's API has none)."""
    if not ticket.applied or wire is WireFormat.GEMINI:
        return {}
    out: dict[str, str] = {}
    for tokens in (False, True):
        best: tuple[int, Applied, float] | None = None
        for i, applied in enumerate(ticket.applied):
            if applied.tokens is not tokens:
                continue
            used = ticket.admitted.used[i] + applied.window.cost
            remaining = applied.window.limit - used
            if best is None or remaining < best[0]:
                best = (remaining, applied, ticket.admitted.resets_in[i])
        if best is None:
            continue
        remaining, applied, reset_s = best
        unit = "tokens" if tokens else "requests"
        if wire is WireFormat.ANTHROPIC:
            at = dt.datetime.fromtimestamp(math.ceil(time.time() + reset_s), dt.UTC)
            out[f"anthropic-ratelimit-{unit}-limit"] = str(applied.window.limit)
            out[f"anthropic-ratelimit-{unit}-remaining"] = str(max(0, remaining))
            out[f"anthropic-ratelimit-{unit}-reset"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            out.update(_limit_headers(applied, remaining, reset_s))
    return out


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``6s``, ``1m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
