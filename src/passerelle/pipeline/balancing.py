"""Weighted load balancing across the deployments of one model alias.

Without weights, a model's routes are tried in the order of the configuration: the first is
preferred, the others are fallbacks. When any route carries a ``weight``, the first route of
each request is drawn among the weighted routes, in proportion to their weights, and every other
route stays a fallback in configured order; a route without a weight is then a fallback only
(a last resort, such as an on-prem model behind two cloud deployments).

The draw skips deployments that would be skipped anyway (breaker open, or told by a 429 not to
be called yet), so their share goes to the healthy ones instead of costing each of their
requests a wasted first attempt. When every weighted route is skipped, the order is left as
configured and resilience records the skips.

This only reorders the routes it is given. The data policy may have removed routes the request's
data may not go to; a removed route is never added back. Pure: the randomness comes in as an
argument, so a seeded generator makes the draw reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from passerelle.pipeline.routing import RouteTarget


def weighted_order(
    targets: tuple[RouteTarget, ...],
    available: Callable[[RouteTarget], bool],
    rng: random.Random,
) -> tuple[RouteTarget, ...]:
    """``targets`` with the first route drawn by weight among the available weighted ones, the
    others following in their given order; ``targets`` itself when no route has a weight."""
    if not any(target.weight is not None for target in targets):
        return targets
    candidates = [t for t in targets if t.weight is not None and available(t)]
    if not candidates:
        return targets
    first = candidates[0]
    if len(candidates) > 1:
        point = rng.randrange(sum(t.weight or 0 for t in candidates))
        for candidate in candidates:
            point -= candidate.weight or 0
            if point < 0:
                first = candidate
                break
    if first is targets[0]:
        return targets
    return (first, *(target for target in targets if target is not first))
