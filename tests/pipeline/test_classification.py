"""Classification and policy decisions as pure functions: names and ranks in, a verdict out."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from passerelle.config.schema import InjectionAction, PolicyAction
from passerelle.pipeline.classification import (
    Action,
    Destination,
    Ranks,
    Refusal,
    Verdict,
    cleared,
    decide,
    effective_class,
    in_reach,
)

RANKS = Ranks(("public", "internal", "confidential", "restricted"))
AZURE = Destination("azure-eu", "confidential", "eu")
OPENAI = Destination("openai", "internal", "us")
ONPREM = Destination("onprem", "restricted", "on-prem")

PSEUDONYMIZE_ALL: Mapping[str, PolicyAction] = {
    "internal": PolicyAction.PSEUDONYMIZE,
    "confidential": PolicyAction.PSEUDONYMIZE,
    "restricted": PolicyAction.PSEUDONYMIZE,
}


def verdict(
    routes: tuple[Destination, ...],
    project_class: str = "internal",
    found: tuple[str, ...] = (),
    regions: tuple[str, ...] = (),
    policy: Mapping[str, PolicyAction] | None = None,
    injection: bool = False,
    injection_action: InjectionAction = InjectionAction.FLAG,
) -> Verdict:
    return decide(
        routes=routes,
        project="p",
        project_class=project_class,
        found_classes=found,
        regions=regions,
        ranks=RANKS,
        not_cleared=policy if policy is not None else {},
        injection=injection,
        injection_action=injection_action,
    )


def test_the_class_is_the_highest_of_the_project_and_the_findings() -> None:
    assert effective_class("internal", [], RANKS) == "internal"
    assert effective_class("internal", ["confidential"], RANKS) == "confidential"
    assert effective_class("confidential", ["internal", "restricted"], RANKS) == "restricted"
    assert effective_class("restricted", ["public"], RANKS) == "restricted"


def test_routes_are_filtered_by_clearance_and_region() -> None:
    routes = (AZURE, OPENAI, ONPREM)
    assert cleared(routes, "internal", (), RANKS) == (0, 1, 2)
    assert cleared(routes, "confidential", (), RANKS) == (0, 2)
    assert cleared(routes, "restricted", (), RANKS) == (2,)
    assert cleared(routes, "internal", ("eu", "on-prem"), RANKS) == (0, 2)
    assert in_reach(routes, ()) == (0, 1, 2)  # no regions listed: any region
    assert in_reach(routes, ("us",)) == (1,)


def test_a_request_the_first_route_may_receive_is_allowed_with_its_cleared_fallbacks() -> None:
    result = verdict((AZURE, OPENAI), found=("internal",))
    assert result.action is Action.ALLOW and result.routes == (0, 1)
    result = verdict((AZURE, OPENAI), found=("confidential",))
    assert result.action is Action.ALLOW and result.routes == (0,)  # the US fallback dropped
    assert result.data_class == "confidential"


def test_a_secret_reroutes_to_the_first_route_cleared_for_it() -> None:
    result = verdict((AZURE, ONPREM), project_class="confidential", found=("restricted",))
    assert result == Verdict("restricted", Action.REROUTE, routes=(1,), rule="routes.clearance")


@pytest.mark.parametrize(
    ("chosen", "action"),
    [
        (PolicyAction.PSEUDONYMIZE, Action.PSEUDONYMIZE),
        (PolicyAction.REDACT, Action.REDACT),
        (PolicyAction.HOLD, Action.HOLD),
        (PolicyAction.BLOCK, Action.BLOCK),
    ],
)
def test_the_policy_of_the_class_decides_when_no_route_is_cleared(
    chosen: PolicyAction, action: Action
) -> None:
    result = verdict((AZURE, OPENAI), found=("restricted",), policy={"restricted": chosen})
    assert result.action is action
    assert result.rule == "policy.not_cleared.restricted"
    assert result.data_class == "restricted"
    if action in (Action.PSEUDONYMIZE, Action.REDACT):
        assert result.ceiling == "confidential"  # the best clearance in reach
    if action is Action.BLOCK:
        assert result.refusal is Refusal.POLICY


def test_a_class_the_policy_does_not_list_is_blocked() -> None:
    result = verdict((OPENAI,), found=("confidential",), policy={"restricted": PolicyAction.HOLD})
    assert result.action is Action.BLOCK
    assert result.rule == "policy.not_cleared.confidential"


def test_the_ceiling_only_counts_routes_in_the_projects_regions() -> None:
    result = verdict(
        (AZURE, OPENAI), found=("restricted",), regions=("us",), policy=PSEUDONYMIZE_ALL
    )
    assert result.action is Action.PSEUDONYMIZE and result.ceiling == "internal"


def test_nothing_helps_when_no_route_is_in_the_projects_regions() -> None:
    result = verdict((AZURE, OPENAI), regions=("on-prem",), policy=PSEUDONYMIZE_ALL)
    assert result.action is Action.BLOCK and result.refusal is Refusal.REGION
    assert result.rule == "projects.p.regions"


def test_nothing_helps_when_the_projects_own_class_is_above_every_route() -> None:
    result = verdict((AZURE, OPENAI), project_class="restricted", policy=PSEUDONYMIZE_ALL)
    assert result.action is Action.BLOCK and result.refusal is Refusal.CLEARANCE
    assert result.rule == "projects.p.data_class"


def test_prompt_injection_is_flagged_or_blocked() -> None:
    flagged = verdict((AZURE,), injection=True)
    assert flagged.action is Action.ALLOW
    blocked = verdict((AZURE,), injection=True, injection_action=InjectionAction.BLOCK)
    assert blocked.action is Action.BLOCK and blocked.refusal is Refusal.INJECTION
    assert blocked.rule == "policy.injection"
