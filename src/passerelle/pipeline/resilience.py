"""Calling upstream: retries with backoff on retryable failures, then fallback to the next route.

What is retried and what is not:

* connection refused or reset, read timeouts, 408, 409, 429, 500, 502, 503, 504: retried on the
  same route with exponential backoff and full jitter (or the upstream's ``retry-after`` when it
  is short enough), then the next route is tried;
* 401, 403, 404 from upstream: the route is misconfigured (credentials, deployment name), so the
  next route is tried at once, without retrying;
* any other 4xx: the caller's request is wrong, so the upstream's answer goes back as it is.

A response whose headers have arrived is final: a stream is never retried once it has started.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from passerelle.core.context import Attempt, RequestContext
from passerelle.errors import (
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from passerelle.pipeline.routing import RouteTarget
from passerelle.providers.transport import (
    ConnectFailed,
    ReadTimeout,
    TransportError,
    UpstreamResponse,
)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
NEXT_ROUTE_STATUS = frozenset({401, 403, 404})

SendFn = Callable[[RouteTarget], Awaitable[UpstreamResponse]]


class RouteSkipped(Exception):
    """Raised by a send function when a route cannot take this call at all (the provider does
    not serve the operation, its cloud credentials cannot be obtained): the next route is
    tried at once, without retrying. The message names the reason and never a secret."""

    def __init__(self, reason: str, *, code: str = "route_skipped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


SleepFn = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The response to relay, and the route that produced it."""

    target: RouteTarget
    response: UpstreamResponse


def backoff_s(attempt: int, initial_ms: int, max_ms: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff for the ``attempt``-th retry (1-based)."""
    ceiling = min(max_ms, initial_ms * (2 ** (attempt - 1)))
    return rng.uniform(0, ceiling) / 1000


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` (or ``retry-after-ms``) header; None when absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


async def call_with_fallback(
    ctx: RequestContext,
    targets: tuple[RouteTarget, ...],
    send: SendFn,
    *,
    sleep: SleepFn = asyncio.sleep,
    rng: random.Random | None = None,
) -> Outcome:
    """Try each route in order with its retry policy; return the first final response."""
    rng = rng or random.Random()
    last_error: GatewayError | None = None
    for target in targets:
        policy = target.provider.config.retry
        for attempt in range(1, policy.max_attempts + 1):
            started = time.perf_counter()
            try:
                response = await send(target)
            except RouteSkipped as skipped:
                ctx.attempts.append(_attempt(target, None, skipped.code, started))
                last_error = UpstreamUnavailable(
                    f"Route '{target.provider.name}' skipped: {skipped.reason}.",
                    code=skipped.code,
                )
                break
            except TransportError as exc:
                ctx.attempts.append(_attempt(target, None, exc.kind, started))
                if isinstance(exc, ReadTimeout):
                    last_error = UpstreamTimeout(
                        f"Provider '{target.provider.name}' did not answer in time.",
                        code="upstream_timeout",
                    )
                elif isinstance(exc, ConnectFailed):
                    last_error = UpstreamUnavailable(
                        f"Provider '{target.provider.name}' cannot be reached.",
                        code="upstream_unreachable",
                    )
                else:
                    last_error = UpstreamError(
                        f"Provider '{target.provider.name}' closed the connection.",
                        code="upstream_disconnected",
                    )
                if attempt < policy.max_attempts:
                    await sleep(
                        backoff_s(attempt, policy.backoff_initial_ms, policy.backoff_max_ms, rng)
                    )
                continue
            status = response.status
            if status < 400 or (status not in RETRYABLE_STATUS and status not in NEXT_ROUTE_STATUS):
                ctx.attempts.append(_attempt(target, status, None, started))
                return Outcome(target, response)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            response.close()
            ctx.attempts.append(_attempt(target, status, f"http_{status}", started))
            last_error = _status_error(target, status, retry_after)
            if status in NEXT_ROUTE_STATUS:
                break
            if attempt == policy.max_attempts:
                break
            if retry_after is not None:
                if retry_after > policy.max_retry_after_s:
                    break  # waiting that long is worse than trying the next route
                await sleep(retry_after)
            else:
                await sleep(
                    backoff_s(attempt, policy.backoff_initial_ms, policy.backoff_max_ms, rng)
                )
    assert last_error is not None, "a model alias always has at least one route"
    tried = ", ".join(f"{a.provider}: {a.error or a.status}" for a in ctx.attempts)
    last_error.message = f"{last_error.message} Every route failed ({tried})."
    raise last_error


def _attempt(target: RouteTarget, status: int | None, error: str | None, started: float) -> Attempt:
    return Attempt(
        provider=target.provider.name,
        model=target.model,
        status=status,
        error=error,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _status_error(target: RouteTarget, status: int, retry_after: float | None) -> GatewayError:
    name = target.provider.name
    if status == 429:
        headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after else {}
        return RateLimited(
            f"Provider '{name}' is rate limiting the gateway; retry later.",
            code="upstream_rate_limited",
            headers=headers,
        )
    if status in (401, 403):
        return UpstreamError(
            f"Provider '{name}' rejected the gateway's credentials; an administrator must "
            "check the provider's api_key.",
            code="upstream_auth_failed",
        )
    if status == 404:
        return UpstreamError(
            f"Provider '{name}' does not know the model or deployment '{target.model}'; an "
            "administrator must check the route.",
            code="upstream_model_not_found",
        )
    if status in (408, 504):
        return UpstreamTimeout(f"Provider '{name}' timed out.", code="upstream_timeout")
    return UpstreamError(f"Provider '{name}' failed with HTTP {status}.", code="upstream_error")
