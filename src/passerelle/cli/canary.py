"""``passerelle canary``: canary roll-outs of new model versions, from a terminal.

A change made here is in the database at once, and every running gateway routes by it within a
second (each polls a change counter, see ``storage/epochs.py``); every change is an admin audit
record with the gate figures of the moment, like the gateways' own decisions.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from passerelle.cli.main import Context
    from passerelle.pipeline.canary_evaluator import ManualAction


def _fail(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _when(us: int | None) -> str:
    import datetime as dt

    if us is None:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def canary() -> None:
    """Canary roll-outs: a new model version behind an alias, stage by stage.

    \b
    A model alias declares its new version under 'canary:' in the configuration, with the
    stages (default 5, 25, 50, 100 %) and the gates: error rate, p95 latency, negative
    feedback. Gateways send each stage's share of the requests to the new version (the stable
    routes stay its fallbacks), judge the gates every few seconds, and move to the next stage
    or roll back by themselves. These commands show where each roll-out stands and let a
    person decide instead.
    """


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:g} %"


def _arm(arm: dict[str, Any] | None) -> str:
    if not arm:
        return "-"
    p95 = arm.get("p95_ms")
    latency = "-" if p95 is None else f"{p95:.0f} ms"
    return f"{arm['requests']} req, {arm['error_rate']:.1%} err, p95 {latency}"


@canary.command("status")
@click.argument("alias", required=False, metavar="[ALIAS]")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
def canary_status(obj: Context, alias: str | None, fmt: str) -> None:
    """Where each roll-out stands, with its current window judged now."""
    from passerelle.pipeline.canary import applies
    from passerelle.pipeline.canary_evaluator import (
        WindowReader,
        evaluate,
        not_started_json,
        rollout_json,
        status_entries,
    )
    from passerelle.runtime import open_database
    from passerelle.storage.canary import LIVE, CanaryStore

    config = obj.config
    db = open_database(config)
    store = CanaryStore(db)
    reader = WindowReader(db)
    entries: list[dict[str, Any]] = []
    for name, rollout, declared in status_entries(config, store, alias):
        if rollout is None:
            assert declared is not None
            entries.append(not_started_json(name, declared))
            continue
        configured = declared is not None and applies(declared, rollout)
        verdict = None
        if declared is not None and configured and rollout.status in LIVE:
            verdict = evaluate(declared, rollout, reader, db)
        entry = rollout_json(rollout, applies=configured, verdict=verdict)
        if alias is not None:
            entry["history"] = [rollout_json(r) for r in reversed(store.list(name))]
        entries.append(entry)
    if alias is not None and not entries:
        _fail(f"model {alias!r} has no canary in the configuration and no roll-out")
    if fmt == "json":
        click.echo(orjson.dumps(entries).decode())
        return
    if not entries:
        click.echo("(no model declares a canary)")
        return
    for entry in entries:
        _print_entry(entry, detailed=alias is not None)


def _print_entry(entry: dict[str, Any], *, detailed: bool) -> None:
    routes = ", ".join(entry["routes"])
    if entry["id"] is None:
        how = "starts when a gateway runs" if entry.get("start") == "auto" else "canary start"
        click.echo(f"{entry['model']}: not started ({how}); new version {routes}")
        return
    stages = entry["stages"]
    stage = f"stage {entry['stage'] + 1}/{len(stages)}"
    click.echo(
        f"{entry['model']}: roll-out {entry['id']} {entry['status']}, {stage}, "
        f"{_share(entry['percent'])} of requests to {routes}"
    )
    if not entry["configured"]:
        click.echo("  (the configuration's canary is no longer this one: it routes nothing)")
    click.echo(
        f"  stage since {_when(entry['stage_started_at_us'])}, last change by "
        f"{entry['updated_by']}" + (f": {entry['reason']}" if entry["reason"] else "")
    )
    current = entry.get("current")
    if current is not None:
        click.echo(f"  canary  {_arm(current['canary'])}")
        click.echo(f"  stable  {_arm(current['stable'])}")
        feedback = current["feedback"]
        click.echo(
            f"  ratings {feedback['ratings']} ({feedback['down']} down, "
            f"{feedback['negative_ratio']:.0%})"
        )
        click.echo(f"  gates   {current['decision']}: {current['reason']}")
        if detailed:
            for check in current["gates"]:
                value = "-" if check["value"] is None else f"{check['value']:g}"
                click.echo(
                    f"    {check['gate']:22} {check['state']:8} {value:>10} "
                    f"limit {check['limit']:g}  n={check['sample']}/{check['needed']}"
                )
    if detailed:
        for old in entry.get("history", [])[1:]:
            click.echo(
                f"  earlier: roll-out {old['id']} {old['status']} at stage {old['stage'] + 1} "
                f"(started {_when(old['started_at_us'])} by {old['started_by']})"
            )


def _act(obj: Context, alias: str, action: ManualAction, reason: str | None, full: bool) -> None:
    from passerelle.audit.writer import append_now
    from passerelle.cli.main import resolve_secrets_subset
    from passerelle.pipeline.canary_evaluator import InvalidReason, act, check_reason
    from passerelle.runtime import admin_record, audit_key, open_database
    from passerelle.storage.canary import CanaryStore

    config = obj.config
    scanner = None
    if reason:
        from passerelle.dlp.scanner import Scanner
        from passerelle.pipeline.scanning import dlp_settings

        scanner = Scanner(dlp_settings(config))
    try:
        text = check_reason(reason, scanner)
    except InvalidReason as exc:
        _fail(str(exc))
        return
    # The audit key first: a change is never made that its audit record could not follow.
    key = audit_key(config, resolve_secrets_subset(config))
    db = open_database(config)
    by = admin_record("canary").actor or "cli:unknown"
    rollout, record = act(config, CanaryStore(db), alias, action, by=by, reason=text, full=full)
    append_now(db, [record], key=key)
    click.echo(
        f"roll-out {rollout.id} of {alias}: {rollout.status.value}, stage "
        f"{rollout.stage + 1}/{len(rollout.stages)}, {_share(rollout.percent)} of requests to "
        "the new version; every gateway follows within a second"
    )


_REASON = click.option("--reason", default=None, help="Why, kept in the audit trail.")


def _action_command(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("alias", metavar="ALIAS")
    @_REASON
    @click.pass_obj
    def command(obj: Context, alias: str, reason: str | None) -> None:
        from passerelle.pipeline.canary_evaluator import ManualAction

        _act(obj, alias, ManualAction(name), reason, False)

    return command


canary.add_command(
    _action_command(
        "start",
        "Start a roll-out of ALIAS's configured canary at its first stage (again, after a "
        "rollback or with start: manual).",
    )
)
canary.add_command(
    _action_command("pause", "Keep the current split but stop the gates from deciding.")
)
canary.add_command(
    _action_command("resume", "Let the gates decide again, over a new window of the stage.")
)
canary.add_command(
    _action_command("rollback", "Send no more requests to the new version, at once.")
)


@canary.command("promote")
@click.argument("alias", metavar="ALIAS")
@_REASON
@click.option("--full", is_flag=True, help="Straight to promoted: every request, no more gates.")
@click.pass_obj
def canary_promote(obj: Context, alias: str, reason: str | None, full: bool) -> None:
    """Move ALIAS's roll-out to its next stage (or, with --full or from the last stage, to
    promoted), whatever the gates say."""
    from passerelle.pipeline.canary_evaluator import ManualAction

    _act(obj, alias, ManualAction.PROMOTE, reason, full)
