"""The pre-call steps, in the order they run. Each is pure: it reads the request and decides.

Kill switches (``kill_switches.py``), model access and the data policy (``data_policy.py``)
plug into the same :class:`Step` seam.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from passerelle.config import Config
from passerelle.config.schema import ModelKind
from passerelle.core.context import RequestContext
from passerelle.errors import InvalidRequest, NotFound, PermissionDenied, UpstreamUnavailable
from passerelle.pipeline.decisions import (
    CONTINUE,
    Block,
    Decision,
    Hold,
    Offer,
    Reroute,
    Rewrite,
)

if TYPE_CHECKING:
    from passerelle.dlp.actions import Vault
    from passerelle.pipeline.routing import RouteTarget


@dataclass(slots=True)
class PipelineRequest:
    """A request as the steps see it. Steps never change it: :func:`run_steps` applies their
    decisions (a rewritten body, fewer routes) before the next step runs."""

    ctx: RequestContext
    body: dict[str, Any]
    kind: ModelKind
    targets: tuple[RouteTarget, ...] | None = None
    """The routes still allowed, in order; None: all the model's routes."""
    routes: tuple[RouteTarget, ...] | None = None
    """The routes the model offers this request before any step narrowed them; None: its
    configured routes. A canary roll-out offers its new version's routes first (``Offer``)."""
    vault: Vault | None = None
    """Pseudonyms in ``body``, to restore in the answer."""


class Step(Protocol):
    name: str

    def decide(self, request: PipelineRequest) -> Decision: ...


class ModelAccess:
    """The alias must exist, be of the right kind, and be allowed for the key's project."""

    name = "model_access"

    def __init__(self, config: Config) -> None:
        self._config = config
        self._allowed = {
            project: frozenset(config.models_for_project(project))
            for project in config.file.projects
        }

    def decide(self, request: PipelineRequest) -> Decision:
        ctx = request.ctx
        alias = ctx.model_alias
        assert alias is not None and ctx.principal is not None
        project = ctx.principal.project
        allowed = self._allowed.get(project or "", frozenset())
        model = self._config.models.get(alias)
        if model is None:
            hint = ", ".join(sorted(allowed)) or "none: ask an administrator"
            return Block(
                NotFound(
                    f"The model '{alias}' does not exist. Models available to your key: {hint}.",
                    code="model_not_found",
                    param="model",
                ),
                rule=self.name,
            )
        if alias not in allowed:
            return Block(
                PermissionDenied(
                    f"The model '{alias}' is not allowed for project '{project}'. "
                    "Use GET /v1/models to list the models your key may use.",
                    code="model_not_allowed",
                    param="model",
                ),
                rule=self.name,
            )
        if model.kind is not request.kind:
            return Block(
                InvalidRequest(
                    f"The model '{alias}' is a {model.kind.value} model and cannot serve this "
                    "endpoint.",
                    code="wrong_model_kind",
                    param="model",
                ),
                rule=self.name,
            )
        return CONTINUE


def run_steps(steps: tuple[Step, ...], request: PipelineRequest) -> Block | Hold | None:
    """Run the steps in order, applying each offer, rewrite and reroute to ``request`` before
    the next step; the first Block or Hold stops the run and is returned.

    Routes only ever narrow: the routes a step chooses are intersected with those the earlier
    steps left, so that a step choosing among all of a model's routes (the data policy) cannot
    bring back one a kill switch removed. When nothing is left, the run stops with a 503 that
    says why each step removed routes."""
    removed: list[str] = []
    for step in steps:
        decision = step.decide(request)
        left = request.targets
        if isinstance(decision, (Reroute, Rewrite, Hold)) and decision.targets and left is not None:
            chosen = tuple(target for target in decision.targets if target in left)
            if chosen:
                decision = replace(decision, targets=chosen)
            else:
                decision = _no_route_left(request, removed, step.name, decision.rule)
        if isinstance(decision, (Block, Hold)):
            request.ctx.notes["blocked_by"] = decision.rule
            return decision
        if isinstance(decision, Offer):
            request.routes = decision.targets
            if left is None:
                request.targets = decision.targets
            else:  # offered after a narrowing step: it cannot bring a removed route back
                request.targets = tuple(t for t in decision.targets if t in left) or left
        elif isinstance(decision, Reroute):
            request.targets = decision.targets
            removed.append(decision.why or f"{_named(step.name, decision.rule)} removed some")
        elif isinstance(decision, Rewrite):
            request.body = decision.body
            if decision.targets is not None:
                request.targets = decision.targets
            if decision.vault is not None:
                request.vault = decision.vault
    return None


def _no_route_left(request: PipelineRequest, removed: list[str], step: str, rule: str) -> Block:
    alias = request.ctx.model_alias
    earlier = "; ".join(removed) or "earlier checks removed some routes"
    return Block(
        UpstreamUnavailable(
            f"No route of model '{alias}' can take this request: {earlier}; and "
            f"{_named(step, rule)} allows none of the routes left.",
            code="no_route_left",
        ),
        rule=rule or step,
    )


def _named(step: str, rule: str) -> str:
    return f"{step} (rule {rule})" if rule else step
