"""What the data policy would do with a sample text, for ``passerelle policy explain``.

The same scan, classification and policy as a request through the gateway, for every model a
project may use, reported as plain data: types and counts of findings, classes, and route by
route whether it may receive the text. Never a value found.
"""

from __future__ import annotations

from typing import Any

from passerelle.config import Config
from passerelle.dlp.findings import ScanError
from passerelle.pipeline.classification import Action, cleared, decide, effective_class, in_reach
from passerelle.pipeline.data_policy import DataPolicy
from passerelle.pipeline.scanning import ScannerHandle, dlp_settings


def explain(config: Config, project: str, text: str) -> dict[str, Any]:
    """The policy's verdict on ``text`` sent by ``project`` to each of its models."""
    handle: ScannerHandle | None = None
    if config.file.dlp.enabled:
        handle = ScannerHandle(dlp_settings(config))
        if not handle.join():
            raise ScanError(handle.problem() or "the DLP scanner cannot be built")
    policy = DataPolicy(config, handle)
    ranks = policy.ranks
    spec = config.project(project)
    assert spec is not None
    project_class = config.project_data_class(project)
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    scan = policy.scan(body)
    data_class = effective_class(project_class, scan.data_classes, ranks)
    models: list[dict[str, Any]] = []
    for alias in config.models_for_project(project):
        destinations = policy.destinations(alias)
        verdict = decide(
            routes=destinations,
            project=project,
            project_class=project_class,
            found_classes=scan.data_classes,
            regions=spec.regions,
            ranks=ranks,
            not_cleared=config.file.policy.not_cleared,
            injection=scan.injection,
            injection_action=config.file.policy.injection,
        )
        action = verdict.action
        used = verdict.routes
        class_after: str | None = None
        if action in (Action.PSEUDONYMIZE, Action.REDACT):
            assert verdict.ceiling is not None
            lowered = policy.lower(body, scan, verdict.ceiling, project_class, action)
            if lowered is None:
                action = Action.BLOCK
            else:
                class_after = lowered.data_class
                used = cleared(destinations, class_after, spec.regions, ranks)
        reach = set(in_reach(destinations, spec.regions))
        routes = []
        for index, (destination, route) in enumerate(
            zip(destinations, config.models[alias].routes, strict=True)
        ):
            if index not in reach:
                status = "not in the project's regions"
            elif ranks.rank(destination.clearance) >= ranks.rank(data_class):
                status = "cleared"
            elif index in used:
                status = f"cleared after {action.value}"
            else:
                status = f"not cleared for {data_class}"
            routes.append(
                {
                    "provider": destination.provider,
                    "model": route.model,
                    "clearance": destination.clearance,
                    "region": destination.region,
                    "status": status,
                }
            )
        models.append(
            {
                "model": alias,
                "action": action.value,
                "rule": verdict.rule,
                "routes_used": [destinations[i].provider for i in used]
                if action not in (Action.BLOCK, Action.HOLD)
                else [],
                "class_after": class_after,
                "routes": routes,
            }
        )
    return {
        "project": project,
        "client": spec.client,
        "project_class": project_class,
        "regions": list(spec.regions),
        "found": dict(sorted(scan.counts().items())),
        "injection": scan.injection,
        "class": data_class,
        "models": models,
    }
