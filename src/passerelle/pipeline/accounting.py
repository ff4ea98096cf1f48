"""Turning a provider's usage report into tokens and integer micro-USD on the request context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.core.canonical import Usage
from passerelle.core.context import RequestContext
from passerelle.pipeline.routing import RouteTarget
from passerelle.providers.pricing import PriceTable, TokenUsage, cost_micro_usd


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from_openai(usage: Mapping[str, Any]) -> TokenUsage:
    """OpenAI reports cached tokens inside ``prompt_tokens`` and reasoning inside
    ``completion_tokens``, which is exactly :class:`TokenUsage`'s convention."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = (
        _int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    return TokenUsage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )


def estimate_tokens(chars: int) -> int:
    """A rough count (4 characters a token) for when the provider reported nothing."""
    return (chars + 3) // 4


def settle(
    ctx: RequestContext,
    target: RouteTarget,
    usage: TokenUsage | Usage,
    prices: PriceTable,
    *,
    reported: bool,
    response_model: str | None = None,
) -> None:
    """Record tokens and cost on the context. The price is looked up as the route's
    ``pricing_model``, then the model the provider says answered, then the route's model id."""
    if isinstance(usage, Usage):  # the codecs' usage: the same convention, another type
        usage = TokenUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
    ctx.input_tokens = usage.input_tokens
    ctx.output_tokens = usage.output_tokens
    ctx.cached_tokens = usage.cached_input_tokens
    ctx.reasoning_tokens = usage.reasoning_tokens
    ctx.usage_reported = reported
    kind = target.provider.config.kind.value
    price = None
    for candidate in (target.pricing_model, response_model, target.model):
        if candidate:
            price = prices.lookup(kind, candidate)
            if price is not None:
                break
    ctx.price_known = price is not None
    ctx.cost_micro_usd = cost_micro_usd(usage, price) if price is not None else 0
