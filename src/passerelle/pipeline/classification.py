"""Data classification and routing as pure functions: which class a request has, which routes
may receive it, and what the policy does when none may.

::

    class    = max(project class, classes implied by the findings)
               (secrets -> restricted, personal data -> confidential, a client's terms -> that
               client's class)
    in reach = the model's routes whose region the project allows (no regions listed: any)
    cleared  = the routes in reach whose clearance >= class, in the model's order

When some route is cleared, the first cleared one is used and the others remain its fallbacks:
that is *allow* when it is the model's preferred route and *reroute* otherwise (a confidential
project's prompt holding a secret goes to the on-prem deployment of a model that has one).
When none is cleared, ``policy.not_cleared`` decides for the request's class:

- *pseudonymize* or *redact*: the findings whose class is above the best clearance in reach
  (the *ceiling*) are replaced, which lowers the class to the ceiling at most; the routes are
  then chosen again for the class that remains;
- *hold*: the request waits for a human reviewer;
- *block* (also for a class the policy does not list): the caller gets an error naming the rule.

Some requests cannot be helped by any action: no route of the model runs in a region the project
allows, or the project's own class is above every route's clearance. Those are blocked and the
error says which configuration to change. Everything here works on names and ranks, never on
the request's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from passerelle.config.schema import InjectionAction, PolicyAction


class Action(StrEnum):
    ALLOW = "allow"
    REROUTE = "reroute"
    PSEUDONYMIZE = "pseudonymize"
    REDACT = "redact"
    HOLD = "hold"
    BLOCK = "block"


class Refusal(StrEnum):
    """Why a request was blocked, for the wording of the error."""

    POLICY = "policy"  # policy.not_cleared said block (or does not list the class)
    INJECTION = "injection"  # a prompt-injection signature and policy.injection: block
    REGION = "region"  # no route of the model runs in a region the project allows
    CLEARANCE = "clearance"  # the project's own class is above every route in reach


@dataclass(frozen=True, slots=True)
class Destination:
    """One route of a model alias, as the policy sees it."""

    provider: str
    clearance: str
    region: str


@dataclass(frozen=True, slots=True)
class Ranks:
    """The configured data classes, least to most sensitive."""

    order: tuple[str, ...]

    def rank(self, data_class: str) -> int:
        return self.order.index(data_class)

    def highest(self, classes: Iterable[str]) -> str | None:
        ranked = [self.rank(c) for c in classes]
        return self.order[max(ranked)] if ranked else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request."""

    data_class: str
    """The request's class as received."""
    action: Action
    routes: tuple[int, ...] = ()
    """Indexes of the usable routes in the model's order (allow and reroute)."""
    ceiling: str | None = None
    """For pseudonymize and redact: the class the request must be brought down to."""
    rule: str | None = None
    """The configuration rule that decided, for the audit record and the error."""
    refusal: Refusal | None = None
    """For block: why."""


def effective_class(project_class: str, found: Iterable[str], ranks: Ranks) -> str:
    """max(project class, classes the findings imply)."""
    highest = ranks.highest([project_class, *found])
    assert highest is not None
    return highest


def in_reach(routes: Sequence[Destination], regions: Sequence[str]) -> tuple[int, ...]:
    """The routes whose region the project allows (an empty list allows any region)."""
    if not regions:
        return tuple(range(len(routes)))
    allowed = set(regions)
    return tuple(i for i, route in enumerate(routes) if route.region in allowed)


def cleared(
    routes: Sequence[Destination], data_class: str, regions: Sequence[str], ranks: Ranks
) -> tuple[int, ...]:
    """The routes that may receive ``data_class`` for a project allowing ``regions``."""
    needed = ranks.rank(data_class)
    return tuple(i for i in in_reach(routes, regions) if ranks.rank(routes[i].clearance) >= needed)


def decide(
    *,
    routes: Sequence[Destination],
    project: str,
    project_class: str,
    found_classes: Iterable[str],
    regions: Sequence[str],
    ranks: Ranks,
    not_cleared: Mapping[str, PolicyAction],
    injection: bool = False,
    injection_action: InjectionAction = InjectionAction.FLAG,
) -> Verdict:
    """The policy's verdict for a request of a project, given what its scan found."""
    data_class = effective_class(project_class, found_classes, ranks)
    if injection and injection_action is InjectionAction.BLOCK:
        return Verdict(data_class, Action.BLOCK, rule="policy.injection", refusal=Refusal.INJECTION)
    reach = in_reach(routes, regions)
    if not reach:
        return Verdict(
            data_class, Action.BLOCK, rule=f"projects.{project}.regions", refusal=Refusal.REGION
        )
    usable = cleared(routes, data_class, regions, ranks)
    if usable:
        action = Action.ALLOW if usable[0] == 0 else Action.REROUTE
        return Verdict(data_class, action, routes=usable, rule="routes.clearance")
    best = ranks.highest(routes[i].clearance for i in reach)
    assert best is not None
    if ranks.rank(best) < ranks.rank(project_class):
        # Nothing the findings did: the project's own class is above every route in reach.
        return Verdict(
            data_class,
            Action.BLOCK,
            rule=f"projects.{project}.data_class",
            refusal=Refusal.CLEARANCE,
        )
    rule = f"policy.not_cleared.{data_class}"
    chosen = not_cleared.get(data_class, PolicyAction.BLOCK)
    if chosen is PolicyAction.PSEUDONYMIZE:
        return Verdict(data_class, Action.PSEUDONYMIZE, ceiling=best, rule=rule)
    if chosen is PolicyAction.REDACT:
        return Verdict(data_class, Action.REDACT, ceiling=best, rule=rule)
    if chosen is PolicyAction.HOLD:
        return Verdict(data_class, Action.HOLD, rule=rule)
    return Verdict(data_class, Action.BLOCK, rule=rule, refusal=Refusal.POLICY)
