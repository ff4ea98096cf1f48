"""The first pipeline step: requests that a kill switch disables stop here.

What each scope does, and why:

- **user**, **project**: 403 (``user_disabled``, ``project_disabled``). An operator decided
  that these keys may not be used for now; it is a permission, and retrying will not help.
- **model**: 403 (``model_disabled``) too, not 503. A disabled model is a decision that holds
  until a person lifts it, not an outage: SDKs and coding agents retry a 503 (Claude Code up to
  ten times), which would only delay the message and add load, while a 403 is shown at once
  with its reason, and the caller can pick another model.
- **provider**: its routes are removed (a :class:`Reroute`), so the model's fallback routes on
  other providers serve the request, and later steps cannot bring the removed routes back
  (:func:`~passerelle.pipeline.steps.run_steps` only narrows). When no route is left the answer
  is 503 (``provider_disabled``): the model is unavailable, which is what a provider outage
  looks like to callers, and the situation is usually short.

Every refusal names the switch (its id, also in the ``x-passerelle-kill-switch`` header) and its
reason, and the switch ids that applied go into the request's audit record. The step reads the
board's in-memory snapshot (:mod:`passerelle.storage.killswitch`): no database call per request.
"""

from __future__ import annotations

from passerelle.config import Config
from passerelle.dlp.findings import Category
from passerelle.dlp.scanner import Scanner
from passerelle.errors import GatewayError, PermissionDenied, UpstreamUnavailable
from passerelle.pipeline.decisions import CONTINUE, Block, Decision, Reroute
from passerelle.pipeline.routing import Router
from passerelle.pipeline.steps import PipelineRequest
from passerelle.storage.killswitch import (
    InvalidSwitch,
    KillSwitch,
    KillSwitchBoard,
    Scope,
    check_reason,
)

SWITCH_HEADER = "x-passerelle-kill-switch"


def _lift_hint(switch: KillSwitch) -> str:
    return f"An administrator lifts it with 'passerelle kill lift {switch.id}'."


class KillSwitches:
    """Refuse killed users, projects and models; remove killed providers' routes."""

    name = "kill_switch"

    def __init__(self, board: KillSwitchBoard, config: Config, router: Router) -> None:
        self._board = board
        self._config = config
        self._router = router

    def decide(self, request: PipelineRequest) -> Decision:
        active = self._board.snapshot
        if not active:
            return CONTINUE
        ctx = request.ctx
        principal = ctx.principal
        assert principal is not None
        alias = ctx.model_alias
        switch = active.users.get(principal.user_id)
        if switch is not None:
            return self._refuse(
                request, switch, f"Requests from user '{principal.email}' are disabled"
            )
        switch = active.projects.get(principal.project or "")
        if switch is not None:
            return self._refuse(
                request, switch, f"Requests of project '{principal.project}' are disabled"
            )
        switch = active.models.get(alias or "")
        if switch is not None:
            return self._refuse(request, switch, f"The model '{alias}' is disabled")
        if not active.providers or alias is None or alias not in self._config.models:
            return CONTINUE
        targets = request.targets if request.targets is not None else self._router.targets(alias)
        killed: dict[int, KillSwitch] = {}
        for target in targets:
            found = active.providers.get(target.provider.name)
            if found is not None:
                killed[found.id] = found
        if not killed:
            return CONTINUE
        ctx.notes["kill_switches"] = sorted(killed)
        why = "; ".join(
            f"provider '{s.target}' is disabled by kill switch {s.id}: {s.reason}"
            for s in killed.values()
        )
        remaining = tuple(t for t in targets if t.provider.name not in active.providers)
        if remaining:
            return Reroute(remaining, rule="kill_switch.provider", why=why)
        first = min(killed.values(), key=lambda s: s.id)
        error: GatewayError = UpstreamUnavailable(
            f"No route of model '{alias}' is available: {why}. Use another model, or ask an "
            f"administrator to lift the switch ('passerelle kill lift {first.id}').",
            code="provider_disabled",
            headers={SWITCH_HEADER: ",".join(str(i) for i in sorted(killed))},
        )
        return Block(error, rule="kill_switch.provider")

    @staticmethod
    def _refuse(request: PipelineRequest, switch: KillSwitch, what: str) -> Block:
        request.ctx.notes["kill_switches"] = [switch.id]
        error = PermissionDenied(
            f"{what} by kill switch {switch.id}: {switch.reason}. {_lift_hint(switch)}",
            code=f"{switch.scope.value}_disabled",
            headers={SWITCH_HEADER: str(switch.id)},
        )
        return Block(error, rule=f"kill_switch.{switch.scope.value}")


# -- checks shared by the admin API and the command line -----------------------------------------


def check_target(config: Config, scope: Scope, name: str) -> str:
    """The provider, model or project name as configured, or :class:`InvalidSwitch` listing
    what exists. Users are checked against the user table by the caller."""
    names = {
        Scope.PROVIDER: config.providers,
        Scope.MODEL: config.models,
        Scope.PROJECT: config.file.projects,
    }.get(scope)
    assert names is not None, "users are looked up in the database"
    value = name.strip()
    if value not in names:
        known = ", ".join(sorted(names)) or "none"
        raise InvalidSwitch(f"there is no {scope.value} '{value}' in the configuration ({known})")
    return value


def check_reason_text(reason: str | None, scanner: Scanner | None) -> str:
    """The reason, trimmed and checked (:func:`~passerelle.storage.killswitch.check_reason`),
    and scanned when a scanner is given: every caller the switch refuses reads it, so a reason
    holding a secret, personal data or a client's terms is refused (by type, never by value)."""
    text = check_reason(reason)
    if scanner is None:
        return text
    found: dict[str, int] = {}
    for finding in scanner.scan(text).findings:
        if finding.category is not Category.INJECTION:
            found[finding.rule] = found.get(finding.rule, 0) + 1
    if found:
        listed = ", ".join(f"{n} {rule}" for rule, n in sorted(found.items()))
        raise InvalidSwitch(
            f"the reason is shown to every caller the switch refuses and must not carry "
            f"secrets, personal data or client names; it contains {listed}",
            param="reason",
        )
    return text
