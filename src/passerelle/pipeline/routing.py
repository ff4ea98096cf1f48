"""From a model alias to the ordered list of concrete destinations that may serve it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from passerelle.config import Config
from passerelle.providers.base import Provider


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One destination for one request: a provider and the model id to ask it for."""

    provider: Provider
    model: str
    pricing_model: str | None
    weight: int | None = None
    """Share of the traffic this route takes first (see ``pipeline.balancing``); None: by order."""


class Router:
    """Resolves aliases to targets; built once per configuration."""

    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self._routes: dict[str, tuple[RouteTarget, ...]] = {
            alias: tuple(
                RouteTarget(
                    provider=providers[route.provider],
                    model=route.model,
                    pricing_model=route.pricing_model,
                    weight=route.weight,
                )
                for route in model.routes
            )
            for alias, model in config.models.items()
        }
        # The new version's routes of an alias under a canary roll-out (``pipeline/canary.py``).
        self._canary: dict[str, tuple[RouteTarget, ...]] = {
            alias: tuple(
                RouteTarget(
                    provider=providers[route.provider],
                    model=route.model,
                    pricing_model=route.pricing_model,
                    weight=route.weight,
                )
                for route in model.canary.routes
            )
            for alias, model in config.models.items()
            if model.canary is not None
        }

    def targets(self, alias: str) -> tuple[RouteTarget, ...]:
        return self._routes[alias]

    def canary_targets(self, alias: str) -> tuple[RouteTarget, ...]:
        """The routes of the alias's canary (its new version); empty when it declares none."""
        return self._canary.get(alias, ())
