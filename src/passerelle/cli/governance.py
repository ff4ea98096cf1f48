"""``passerelle policy`` and ``passerelle review``: the data policy, from a terminal.

``policy explain`` shows what the gateway would do with a sample text for one project: the
class it gets, and for each of the project's models which routes may receive it. ``review``
works the queue of held requests. Neither ever prints a value that DLP found.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from passerelle.cli.main import Context


def _fail(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


@click.group()
def policy() -> None:
    """Data classification and routing: what may go where."""


@policy.command("explain")
@click.option("--project", "-p", required=True, help="The project whose policy applies.")
@click.argument("text", required=False, default="-")
@click.option(
    "--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True
)
@click.pass_obj
def policy_explain(obj: Context, project: str, text: str, fmt: str) -> None:
    """Show the data class TEXT gets in PROJECT (- or nothing: standard input), what DLP finds
    in it (types and counts, never values), and, for each model the project may use, which
    routes are cleared for it and what the policy does."""
    from passerelle.pipeline.explain import explain

    config = obj.config
    if config.project(project) is None:
        _fail(f"unknown project {project!r}; projects: {', '.join(sorted(config.file.projects))}")
    sample = sys.stdin.read() if text == "-" else text
    report = explain(config, project, sample)
    if fmt == "json":
        click.echo(orjson.dumps(report).decode())
        return
    _print_explanation(report)


def _print_explanation(report: dict[str, Any]) -> None:
    found = report["found"]
    click.echo(
        f"project    {report['project']} (client {report['client']}, class "
        f"{report['project_class']}, regions {', '.join(report['regions']) or 'any'})"
    )
    click.echo(
        "found      "
        + (", ".join(f"{n} {rule}" for rule, n in found.items()) if found else "nothing")
        + ("   (prompt-injection signature)" if report["injection"] else "")
    )
    click.echo(f"class      {report['class']}")
    for model in report["models"]:
        click.echo("")
        verdict = model["action"]
        if model["routes_used"]:
            verdict += " -> " + ", ".join(model["routes_used"])
        if model.get("class_after") and model["class_after"] != report["class"]:
            verdict += f" (class after {model['action']}: {model['class_after']})"
        click.echo(click.style(model["model"], bold=True) + f"   {verdict}")
        if model["rule"]:
            click.echo(f"  rule     {model['rule']}")
        for route in model["routes"]:
            click.echo(
                f"  {route['provider']:18} {route['model']:36} clearance {route['clearance']:13}"
                f" region {route['region']:8} {route['status']}"
            )


# -- review ------------------------------------------------------------------------------------


@click.group()
def review() -> None:
    """Requests held by the data policy for a human reviewer.

    \b
    A held request is never stored: the queue keeps who sent it, why, what was found (types
    and counts) and its text with every finding replaced by a placeholder. Approving lets the
    same key send that same request again, once.
    """


def _reviews(obj: Context) -> tuple[Any, Any]:
    from passerelle.runtime import open_database
    from passerelle.storage.reviews import ReviewStore

    db = open_database(obj.config)
    return db, ReviewStore(db, hours=obj.config.file.policy.review_hours)


def _when(us: int | None) -> str:
    import datetime as dt

    if us is None:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _findings(findings: dict[str, int]) -> str:
    from passerelle.pipeline.data_policy import found_list

    return found_list(findings)


@review.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "used", "expired", "all"]),
    default="pending",
    show_default=True,
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
def review_list(obj: Context, status: str, fmt: str) -> None:
    """List reviews, newest first."""
    from passerelle.http.admin import review_json
    from passerelle.storage.reviews import ReviewStatus

    _db, store = _reviews(obj)
    rows = store.list(None if status == "all" else ReviewStatus(status))
    if fmt == "json":
        click.echo(orjson.dumps([review_json(r) for r in rows]).decode())
        return
    click.echo(
        f"{'ID':28} {'CREATED':16} {'STATUS':9} {'USER':28} {'PROJECT':16} {'MODEL':16} FOUND"
    )
    for row in rows:
        click.echo(
            f"{row.id:28} {_when(row.created_at):16} {row.status.value:9} {row.actor:28} "
            f"{row.project or '-':16} {row.model:16} {_findings(row.findings)}"
        )
    if not rows:
        click.echo(f"(no {status} reviews)" if status != "all" else "(no reviews)")


@review.command("show")
@click.argument("review_id")
@click.pass_obj
def review_show(obj: Context, review_id: str) -> None:
    """Show one review, with the request's text as the reviewer may see it (every finding
    replaced by a placeholder)."""
    _db, store = _reviews(obj)
    row = store.get(review_id)
    for label, value in (
        ("id", row.id),
        ("status", row.status.value),
        ("created", _when(row.created_at)),
        ("expires", _when(row.expires_at)),
        ("user", row.actor),
        ("project", row.project or "-"),
        ("model", row.model),
        ("endpoint", row.endpoint),
        ("request", row.request_id),
        ("class", row.data_class),
        ("rule", row.rule),
        ("found", _findings(row.findings)),
        ("why", row.reason),
    ):
        click.echo(f"{label:9}{value}")
    if row.decided_by:
        click.echo(f"{'decided':9}{row.decided_by} at {_when(row.decided_at)}")
        if row.note:
            click.echo(f"{'note':9}{row.note}")
    if row.used_at:
        click.echo(f"{'used':9}{_when(row.used_at)} by request {row.used_by_request}")
    if row.preview is not None:
        click.echo("\n" + row.preview)


def _decide(obj: Context, review_id: str, note: str | None, approve: bool) -> None:
    from passerelle.audit.writer import append_now
    from passerelle.cli.main import resolve_secrets_subset
    from passerelle.runtime import admin_record, audit_key

    db, store = _reviews(obj)
    action = "review.approve" if approve else "review.reject"
    reviewer = admin_record(action).actor or "cli:unknown"
    decided = store.decide(review_id, approve=approve, reviewer=reviewer, note=note)
    record = admin_record(
        action,
        actor=reviewer,
        target=decided.id,
        project=decided.project,
        requester=decided.actor,
        request_id=decided.request_id,
        data_class=decided.data_class,
        rule=decided.rule,
        findings=decided.findings,
    )
    append_now(db, [record], key=audit_key(obj.config, resolve_secrets_subset(obj.config)))
    if approve:
        click.echo(
            f"approved {decided.id}: {decided.actor} may send that same request again, once, "
            f"until {_when(decided.expires_at)} UTC"
        )
    else:
        click.echo(f"rejected {decided.id}")


@review.command("approve")
@click.argument("review_id")
@click.option("--note", default=None, help="Why; shown to the requester and kept in the queue.")
@click.pass_obj
def review_approve(obj: Context, review_id: str, note: str | None) -> None:
    """Approve a pending review: the same request from the same key goes through once."""
    _decide(obj, review_id, note, approve=True)


@review.command("purge")
@click.pass_obj
def review_purge(obj: Context) -> None:
    """Drop the previews of expired reviews now (every gateway also does it every 5 minutes)."""
    _db, store = _reviews(obj)
    click.echo(f"dropped the previews of {store.purge_expired()} expired reviews")


@review.command("reject")
@click.argument("review_id")
@click.option("--note", default=None, help="Why; shown to the requester if they resend.")
@click.pass_obj
def review_reject(obj: Context, review_id: str, note: str | None) -> None:
    """Reject a pending review: a resend of the same request is refused, naming the review."""
    _decide(obj, review_id, note, approve=False)
