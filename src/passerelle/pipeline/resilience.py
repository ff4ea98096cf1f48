"""Calling upstream: circuit breakers, weighted choice of the first route, retries with backoff
on retryable failures, then fallback to the next route.

For each request, the routes the data policy allows are ordered (configured order, or the first
drawn by weight: ``balancing``), then tried one after the other:

* a route whose deployment's breaker is open, or that a 429 asked not to call yet, is skipped at
  once: no connection, an attempt recorded as ``circuit_open`` (or ``rate_limited``) for the
  audit trail (``breakers``); only the last route's short ``retry-after`` is waited out instead,
  since there is nothing left to fall back to;
* connection refused or reset, timeouts, 408, 409, 429, 500, 502, 503, 504, 529: retried on the
  same route with exponential backoff and full jitter (or the upstream's ``retry-after`` when it
  is short enough), then the next route is tried;
* 401, 403, 404 from upstream: the route is misconfigured (credentials, deployment name), so the
  next route is tried at once, without retrying;
* any other 4xx: the caller's request is wrong, so the upstream's answer goes back as it is.

When no route was called because every one is paused, the caller gets a 503 ``circuit_open``
(or a 429 when they are all rate limited) with a ``retry-after`` of the shortest pause left.

A streamed answer counts as a success only once its first body bytes have arrived (the send
function waits for them): a stream that breaks before its first byte is a failed attempt like a
5xx, retried and then fallen back from. After its first byte it is never retried: a later
failure ends the caller's stream with an error event in the caller's format (``relay``).
"""

from __future__ import annotations

import asyncio
import math
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
from passerelle.pipeline.balancing import weighted_order
from passerelle.pipeline.breakers import (
    CIRCUIT_OPEN,
    FAILURE_STATUS,
    RATE_LIMITED,
    CircuitBreakers,
    Refused,
)
from passerelle.pipeline.routing import RouteTarget
from passerelle.providers.transport import (
    ConnectFailed,
    ReadTimeout,
    TransportError,
    UpstreamResponse,
)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
NEXT_ROUTE_STATUS = frozenset({401, 403, 404})
PAUSED = frozenset({CIRCUIT_OPEN, RATE_LIMITED})

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
    breakers: CircuitBreakers | None = None,
    sleep: SleepFn = asyncio.sleep,
    rng: random.Random | None = None,
) -> Outcome:
    """Try each route with its retry policy, skipping those whose breaker is open, and return
    the first final response. ``targets`` are the routes the policy allows, in configured order;
    when routes carry weights, the first one is drawn by weight (``balancing``).

    Without ``breakers`` (tests, tools), breakers live for this call only."""
    rng = rng or random.Random()
    breakers = breakers if breakers is not None else CircuitBreakers()
    ordered = weighted_order(targets, lambda t: breakers.of(t).refusal() is None, rng)
    last_error: GatewayError | None = None
    refusals: list[Refused] = []
    called = False
    last = len(ordered) - 1
    for index, target in enumerate(ordered):
        breaker = breakers.of(target)
        policy = target.provider.config.retry
        for attempt in range(1, policy.max_attempts + 1):
            started = time.perf_counter()
            # A 429's retry-after defers a deployment for everyone, except for the request that
            # chose to wait it out: its retry is the one the upstream asked for.
            admitted = breaker.admit(honour_deferral=attempt == 1)
            if (
                isinstance(admitted, Refused)
                and admitted.reason == RATE_LIMITED
                and index == last
                and admitted.wait_s <= policy.max_retry_after_s
            ):
                # No route left to fall back to: wait as if this request had got the 429.
                await sleep(admitted.wait_s)
                admitted = breaker.admit(honour_deferral=False)
            if isinstance(admitted, Refused):
                ctx.attempts.append(_attempt(target, None, admitted.reason, started))
                refusals.append(admitted)
                break
            try:
                response = await send(target)
            except RouteSkipped as skipped:
                breaker.release(admitted)
                ctx.attempts.append(_attempt(target, None, skipped.code, started))
                last_error = UpstreamUnavailable(
                    f"Route '{target.provider.name}' skipped: {skipped.reason}.",
                    code=skipped.code,
                )
                break
            except TransportError as exc:
                called = True
                breaker.failure(admitted)
                ctx.attempts.append(_attempt(target, None, exc.kind, started))
                last_error = _transport_error(target, exc)
                if attempt < policy.max_attempts:
                    await sleep(
                        backoff_s(attempt, policy.backoff_initial_ms, policy.backoff_max_ms, rng)
                    )
                continue
            except BaseException:  # cancelled (the caller left): no verdict on the deployment
                breaker.release(admitted)
                raise
            called = True
            status = response.status
            if status < 400:
                breaker.success(admitted)
                ctx.attempts.append(_attempt(target, status, None, started))
                return Outcome(target, response)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if status == 429:
                breaker.release(admitted)  # busy is not ill: no verdict, but do not send before
                if retry_after is not None:
                    breaker.defer(retry_after)
            elif status in FAILURE_STATUS:
                breaker.failure(admitted)
            else:
                breaker.success(admitted)  # it answered: up, whatever it thinks of the request
            if status not in RETRYABLE_STATUS and status not in NEXT_ROUTE_STATUS:
                ctx.attempts.append(_attempt(target, status, None, started))
                return Outcome(target, response)
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
    if not called and refusals:
        raise _every_route_paused(ctx, refusals)
    assert last_error is not None, "a model alias always has at least one route"
    tried = ", ".join(f"{a.provider}: {a.error or a.status}" for a in ctx.attempts)
    last_error.message = f"{last_error.message} Every route failed ({tried})."
    raise last_error


def _transport_error(target: RouteTarget, exc: TransportError) -> GatewayError:
    name = target.provider.name
    if isinstance(exc, ReadTimeout):
        return UpstreamTimeout(
            f"Provider '{name}' did not answer in time.", code="upstream_timeout"
        )
    if isinstance(exc, ConnectFailed):
        return UpstreamUnavailable(
            f"Provider '{name}' cannot be reached.", code="upstream_unreachable"
        )
    return UpstreamError(f"Provider '{name}' closed the connection.", code="upstream_disconnected")


def _every_route_paused(ctx: RequestContext, refusals: list[Refused]) -> GatewayError:
    """No route was called: each is paused by its breaker or by an upstream's retry-after. The
    caller is told when the first of them may be tried again."""
    wait = max(1, math.ceil(min(refused.wait_s for refused in refusals)))
    names = ", ".join(dict.fromkeys(a.provider for a in ctx.attempts if a.error in PAUSED))
    model = f"model '{ctx.model_alias}'" if ctx.model_alias else "this model"
    headers = {"retry-after": str(wait)}
    if all(refused.reason == RATE_LIMITED for refused in refusals):
        return RateLimited(
            f"Every provider of {model} is rate limiting the gateway ({names}); retry in {wait} s.",
            code="upstream_rate_limited",
            headers=headers,
        )
    return UpstreamUnavailable(
        f"The providers of {model} are failing ({names}): after repeated failures the gateway "
        f"stopped sending to them for a while (circuit breaker open). Retry in {wait} s.",
        code=CIRCUIT_OPEN,
        headers=headers,
    )


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
