"""The DLP scan and the data classification and routing step.

It scans every text of the body at once (``dlp/body.py``), asks the pure policy
(``classification.py``) what to do, and turns the verdict into a pipeline decision:

- allow or reroute: :class:`Reroute` to the cleared routes (fallbacks included, uncleared ones
  dropped);
- pseudonymize or redact: :class:`Rewrite` with the findings above the ceiling replaced, the
  routes chosen again for the class that remains, and the vault to restore the answer with;
- hold: :class:`Hold` with a ticket for the review queue (the gateway stores it);
- block, and any scanner failure: :class:`Block` with an error that names the rule and the
  types and counts of what was found, and says what to do.

What was found and decided goes on the request's context for its audit record: detector types
and counts, classes, action, rule. Never a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passerelle.config import Config
from passerelle.core.context import DataPolicyRecord
from passerelle.dlp.actions import Vault, pseudonymize, redact
from passerelle.dlp.body import (
    EMPTY_SCAN,
    SEPARATOR,
    BodyScan,
    copy_with,
    scan_body,
    scan_texts,
)
from passerelle.dlp.findings import Category, Finding, ScanError
from passerelle.dlp.scanner import Scanner
from passerelle.errors import DlpUnavailable, PolicyViolation
from passerelle.pipeline.classification import (
    Action,
    Destination,
    Ranks,
    Refusal,
    Verdict,
    cleared,
    decide,
    effective_class,
)
from passerelle.pipeline.decisions import (
    CONTINUE,
    Block,
    Decision,
    Hold,
    HoldTicket,
    Reroute,
    Rewrite,
)
from passerelle.pipeline.routing import Router, RouteTarget
from passerelle.pipeline.scanning import ScannerHandle
from passerelle.pipeline.steps import PipelineRequest

PREVIEW_CHARS = 64 * 1024
"""The most of a held request's (pseudonymized) text the review queue keeps."""


def found_list(counts: Mapping[str, int]) -> str:
    """``2 email, 1 aws_access_key``: what was found, by type and count, never by value."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{count} {rule}" for rule, count in ordered) or "nothing"


def _destinations_of(targets: Sequence[RouteTarget]) -> tuple[Destination, ...]:
    return tuple(
        Destination(t.provider.name, t.provider.config.clearance, t.provider.config.region)
        for t in targets
    )


@dataclass(frozen=True, slots=True)
class Lowered:
    body: dict[str, Any]
    vault: Vault | None
    data_class: str


class DataPolicy:
    """Scan, classify, route; see the module docstring."""

    name = "data_policy"

    def __init__(
        self, config: Config, scanner: ScannerHandle | None, router: Router | None = None
    ) -> None:
        self._config = config
        self._router = router
        self._scanner = scanner
        self._ranks = Ranks(tuple(config.file.data_classes))
        providers = config.providers
        self._destinations: dict[str, tuple[Destination, ...]] = {
            alias: tuple(
                Destination(
                    route.provider,
                    providers[route.provider].clearance,
                    providers[route.provider].region,
                )
                for route in model.routes
            )
            for alias, model in config.models.items()
        }

    @property
    def ranks(self) -> Ranks:
        return self._ranks

    def destinations(self, alias: str) -> tuple[Destination, ...]:
        return self._destinations[alias]

    # -- the step ----------------------------------------------------------------------------

    def decide(self, request: PipelineRequest) -> Decision:
        ctx = request.ctx
        alias = ctx.model_alias
        assert alias is not None and ctx.principal is not None and self._router is not None
        project = ctx.principal.project
        spec = self._config.project(project or "")
        assert project is not None and spec is not None  # model access let it through
        project_class = self._config.project_data_class(project)
        try:
            scan = self.scan(request.body)
        except ScanError:
            ctx.policy = DataPolicyRecord(
                project_class, project_class, action="block", rule="dlp.fail_closed"
            )
            return Block(
                DlpUnavailable(
                    "The request was not sent: the DLP scanner could not scan it, and requests "
                    "are never forwarded unscanned. Retry in a moment; if this persists, ask an "
                    "administrator to check the gateway's /readyz and logs.",
                    code="dlp_unavailable",
                    headers={"retry-after": "1"},
                ),
                rule="dlp.fail_closed",
            )
        # The routes offered to this request: the model's own, or a canary roll-out's new
        # version followed by them. Each is checked against the request's class like the rest.
        targets = request.routes if request.routes is not None else self._router.targets(alias)
        destinations = (
            self._destinations[alias] if request.routes is None else _destinations_of(targets)
        )
        verdict = decide(
            routes=destinations,
            project=project,
            project_class=project_class,
            found_classes=scan.data_classes,
            regions=spec.regions,
            ranks=self._ranks,
            not_cleared=self._config.file.policy.not_cleared,
            injection=scan.injection,
            injection_action=self._config.file.policy.injection,
        )
        record = DataPolicyRecord(
            data_class=verdict.data_class,
            found_class=verdict.data_class,
            findings=scan.counts(),
            action=verdict.action.value,
            rule=verdict.rule,
            injection=scan.injection,
        )
        ctx.policy = record
        if verdict.action in (Action.ALLOW, Action.REROUTE):
            if len(verdict.routes) == len(targets):
                return CONTINUE
            return Reroute(tuple(targets[i] for i in verdict.routes), rule=verdict.rule or "")
        rule = verdict.rule or ""
        if verdict.action in (Action.PSEUDONYMIZE, Action.REDACT):
            assert verdict.ceiling is not None
            lowered = self.lower(request.body, scan, verdict.ceiling, project_class, verdict.action)
            if lowered is not None:
                usable = cleared(destinations, lowered.data_class, spec.regions, self._ranks)
                if usable:
                    record.data_class = lowered.data_class
                    return Rewrite(
                        lowered.body,
                        rule=rule,
                        targets=tuple(targets[i] for i in usable),
                        vault=lowered.vault,
                    )
            record.action = Action.BLOCK.value
            message = self._message(verdict, scan, alias, project, lowering_failed=True)
            return Block(PolicyViolation(message), rule)
        if verdict.action is Action.HOLD:
            reach = [
                i
                for i, d in enumerate(destinations)
                if not spec.regions or d.region in spec.regions
            ]
            ticket = HoldTicket(
                data_class=verdict.data_class,
                findings=scan.counts(),
                reason=self._not_cleared(verdict, scan, alias),
                preview=self.preview(scan),
            )
            return Hold(ticket, rule, tuple(targets[i] for i in reach))
        return Block(PolicyViolation(self._message(verdict, scan, alias, project)), rule)

    # -- pieces, also used by `passerelle policy explain` --------------------------------------

    def scan(self, body: Any) -> BodyScan:
        """Scan a body, or raise ScanError (also when DLP is on but the scanner is not built)."""
        if self._scanner is None:
            return EMPTY_SCAN
        return scan_body(self._scanner.scanner(), body)

    def lower(
        self,
        body: dict[str, Any],
        scan: BodyScan,
        ceiling: str,
        project_class: str,
        action: Action,
    ) -> Lowered | None:
        """The body with every finding above ``ceiling`` pseudonymized or redacted, or None
        when what remains is still above it.

        A detection hidden by a finding that wins the overlap (a client term inside an e-mail
        address) still counts for the class. So the replaced texts are scanned again, and if
        anything above the ceiling remains, every finding of those texts is replaced."""
        assert self._scanner is not None
        scanner = self._scanner.scanner()
        rank = self._ranks.rank
        limit = rank(ceiling)
        vault = Vault() if action is Action.PSEUDONYMIZE else None
        if vault is not None:
            vault.observe(SEPARATOR.join(slot.text for slot in scan.slots))

        def replace(text: str, findings: Sequence[Finding]) -> str:
            if vault is not None:
                return pseudonymize(text, findings, vault)
            return redact(text, findings)

        texts = {i: scan.slots[i].text for i, found in enumerate(scan.findings) if found}
        for everything in (False, True):
            changed = dict(texts)
            for i, text in texts.items():
                findings = (
                    scan.findings[i] if not everything else tuple(self._rescan(scanner, text))
                )
                chosen = [
                    f
                    for f in findings
                    if f.data_class is not None and (everything or rank(f.data_class) > limit)
                ]
                if chosen:
                    changed[i] = replace(text, chosen)
            indexes = sorted(changed)
            _, result = scan_texts(scanner, [changed[i] for i in indexes])
            remaining = effective_class(project_class, result.data_classes, self._ranks)
            texts = changed
            if rank(remaining) <= limit:
                new_texts = {i: t for i, t in changed.items() if t != scan.slots[i].text}
                return Lowered(copy_with(body, new_texts), vault, remaining)
        return None

    @staticmethod
    def _rescan(scanner: Scanner, text: str) -> tuple[Finding, ...]:
        return scanner.scan(text).findings

    def preview(self, scan: BodyScan) -> str:
        """The body's text with every finding pseudonymized, for a reviewer: no values."""
        vault = Vault()
        parts: list[str] = []
        size = 0
        for slot, findings in zip(scan.slots, scan.findings, strict=True):
            text = pseudonymize(slot.text, findings, vault) if findings else slot.text
            parts.append(text)
            size += len(text)
            if size >= PREVIEW_CHARS:
                break
        return "\n---\n".join(parts)[:PREVIEW_CHARS]

    # -- messages ------------------------------------------------------------------------------

    def suggestions(self, project: str, data_class: str) -> list[str]:
        """The project's models of which some route may receive ``data_class``."""
        spec = self._config.project(project)
        regions = spec.regions if spec is not None else []
        return [
            alias
            for alias in self._config.models_for_project(project)
            if cleared(self._destinations[alias], data_class, regions, self._ranks)
        ]

    def _not_cleared(self, verdict: Verdict, scan: BodyScan, alias: str) -> str:
        return (
            f"the request is classified '{verdict.data_class}' because it contains "
            f"{found_list(scan.counts())}, and no route of model '{alias}' is cleared for "
            f"'{verdict.data_class}' data"
        )

    def _message(
        self,
        verdict: Verdict,
        scan: BodyScan,
        alias: str,
        project: str,
        *,
        lowering_failed: bool = False,
    ) -> str:
        data_class = verdict.data_class
        others = [a for a in self.suggestions(project, data_class) if a != alias]
        instead = f" such as {', '.join(others[:5])}" if others else ""
        if verdict.refusal is Refusal.INJECTION:
            injections = {
                f.rule
                for findings in scan.findings
                for f in findings
                if f.category is Category.INJECTION
            }
            counts = {rule: n for rule, n in scan.counts().items() if rule in injections}
            return (
                "Blocked by the data policy (rule policy.injection: block): the request contains "
                f"prompt-injection signatures ({found_list(counts)}). Remove them from the "
                "prompt, or ask an administrator to set policy.injection to flag."
            )
        if verdict.refusal is Refusal.REGION:
            spec = self._config.project(project)
            regions = ", ".join(spec.regions) if spec is not None else ""
            return (
                f"Blocked by the data policy (rule {verdict.rule}): no route of model '{alias}' "
                f"runs in a region project '{project}' allows ({regions}). Use another "
                f"model{instead}, or ask an administrator to change the project's regions or "
                "the model's routes."
            )
        if verdict.refusal is Refusal.CLEARANCE:
            return (
                f"Blocked by the data policy (rule {verdict.rule}): project '{project}' handles "
                f"'{data_class}' data and no route of model '{alias}' is cleared for it. Use a "
                f"model cleared for '{data_class}' data{instead}."
            )
        if lowering_failed:
            what = f"rule {verdict.rule}: {verdict.action.value}"
            why = (
                f"{self._not_cleared(verdict, scan, alias)}, and replacing what was found did "
                "not bring it down to a class a route is cleared for"
            )
        else:
            what = f"rule {verdict.rule}: block"
            why = self._not_cleared(verdict, scan, alias)
        return (
            f"Blocked by the data policy ({what}): {why}. Remove these values from the "
            f"request, or use a model cleared for '{data_class}' data{instead}."
        )
