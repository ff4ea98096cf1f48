"""``passerelle kill`` and ``passerelle feedback``: kill switches and ratings, from a terminal.

A switch set here is in the database at once and every running gateway obeys it within a
second (each polls a change counter, see ``storage/epochs.py``); setting and lifting are admin
audit records, like the admin API's.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from passerelle.cli.main import Context
    from passerelle.storage.killswitch import Scope


def _fail(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _when(us: int | None) -> str:
    import datetime as dt

    if us is None:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _audit_key(obj: Context) -> bytes | None:
    """The audit key, resolved before anything changes: a change whose audit record cannot be
    written (its key's variable unset) is refused instead of made unaudited."""
    from passerelle.cli.main import resolve_secrets_subset
    from passerelle.runtime import audit_key

    return audit_key(obj.config, resolve_secrets_subset(obj.config))


def _audit(db: Any, record: Any, key: bytes | None) -> None:
    from passerelle.audit.writer import append_now

    append_now(db, [record], key=key)


# -- kill switches ---------------------------------------------------------------------------


@click.group()
def kill() -> None:
    """Kill switches: disable a provider, a model, a project or a user at once.

    \b
    Every running gateway obeys within a second. A killed user's or project's requests are
    refused (403), and so are a killed model's; a killed provider's routes are skipped, so
    fallback routes on other providers serve its models (503 when none is left). Callers see
    the switch's id and reason: write the reason for them, without secrets or names.
    """


def _set_switch(obj: Context, scope: Scope, name: str, reason: str) -> None:
    from passerelle.dlp.scanner import Scanner
    from passerelle.http.controls import switch_record
    from passerelle.pipeline.kill_switches import check_reason_text, check_target
    from passerelle.pipeline.scanning import dlp_settings
    from passerelle.runtime import admin_record, open_database
    from passerelle.storage.keys import KeyStore
    from passerelle.storage.killswitch import KillSwitchStore, Scope

    config = obj.config
    key = _audit_key(obj)
    text = check_reason_text(reason, Scanner(dlp_settings(config)))
    target, user_id = name, None
    if scope is not Scope.USER:
        target = check_target(config, scope, name)
    db = open_database(config)
    if scope is Scope.USER:
        user = KeyStore(db).get_user(name)
        target, user_id = user.email, user.id
    by = admin_record("kill.set").actor or "cli:unknown"
    switch = KillSwitchStore(db).set(scope, target, reason=text, by=by, user_id=user_id)
    _audit(db, switch_record("kill.set", switch, by), key)
    click.echo(
        f"kill switch {switch.id} set: {scope.value} '{target}' is disabled on every gateway "
        f"within a second. Lift it with 'passerelle kill lift {switch.id}'."
    )


def _scope_command(scope_name: str, argument: str, what: str) -> click.Command:
    @click.command(scope_name, help=f"Disable {what}.")
    @click.argument("name", metavar=argument)
    @click.option(
        "--reason",
        required=True,
        help="Why, in a short sentence shown to the callers it refuses (no secrets, no names).",
    )
    @click.pass_obj
    def command(obj: Context, name: str, reason: str) -> None:
        from passerelle.storage.killswitch import Scope

        _set_switch(obj, Scope(scope_name), name, reason)

    return command


kill.add_command(
    _scope_command("provider", "NAME", "a provider: its routes are skipped, fallbacks serve")
)
kill.add_command(_scope_command("model", "ALIAS", "a model alias: its requests are refused"))
kill.add_command(_scope_command("project", "NAME", "a project: its keys' requests are refused"))
kill.add_command(
    _scope_command("user", "EMAIL_OR_ID", "a user: the requests of all their keys are refused")
)


@kill.command("list")
@click.option("--all", "include_lifted", is_flag=True, help="Include lifted switches.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
def kill_list(obj: Context, include_lifted: bool, fmt: str) -> None:
    """List kill switches in force (with --all, every switch ever set), newest first."""
    from passerelle.http.controls import switch_json
    from passerelle.runtime import open_database
    from passerelle.storage.killswitch import KillSwitchStore

    rows = KillSwitchStore(open_database(obj.config)).list(include_lifted=include_lifted)
    if fmt == "json":
        click.echo(orjson.dumps([switch_json(s) for s in rows]).decode())
        return
    click.echo(f"{'ID':5} {'SCOPE':9} {'TARGET':30} {'SET':20} {'BY':24} {'LIFTED':20} REASON")
    for s in rows:
        click.echo(
            f"{s.id:<5} {s.scope.value:9} {s.target:30} {_when(s.set_at):20} {s.set_by:24} "
            f"{_when(s.lifted_at):20} {s.reason}"
        )
    if not rows:
        click.echo("(no kill switches)" if include_lifted else "(no kill switch in force)")


@kill.command("lift")
@click.argument("switch_id", type=int, metavar="ID")
@click.pass_obj
def kill_lift(obj: Context, switch_id: int) -> None:
    """Lift switch ID: what it disabled serves again, on every gateway within a second."""
    from passerelle.http.controls import switch_record
    from passerelle.runtime import admin_record, open_database
    from passerelle.storage.killswitch import KillSwitchStore

    key = _audit_key(obj)
    db = open_database(obj.config)
    by = admin_record("kill.lift").actor or "cli:unknown"
    switch = KillSwitchStore(db).lift(switch_id, by=by)
    _audit(db, switch_record("kill.lift", switch, by), key)
    click.echo(
        f"kill switch {switch.id} lifted: {switch.scope.value} '{switch.target}' serves again"
    )


# -- feedback --------------------------------------------------------------------------------


@click.group()
def feedback() -> None:
    """Ratings of answers, given by the people who asked (POST /v1/feedback).

    \b
    Reasons, up:   helpful, accurate, time_saved, other
    Reasons, down: wrong, incomplete, unhelpful, unsafe, slow, off_policy, other
    Comments are stored with secrets and personal data redacted.
    """


def _since(day: str | None) -> int | None:
    from passerelle.errors import InvalidRequest
    from passerelle.http.controls import day_start_us

    try:
        return day_start_us(day)
    except InvalidRequest:
        _fail(f"{day!r} is not a day; write YYYY-MM-DD")
        return None


_filters = [
    click.option("--project", default=None, help="Only this project's requests."),
    click.option("--model", default=None, help="Only this model alias."),
    click.option("--since", default=None, help="Rated on or after this day, YYYY-MM-DD (UTC)."),
    click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
    ),
]


def _with_filters(command: Any) -> Any:
    for option in reversed(_filters):
        command = option(command)
    return command


@feedback.command("list")
@_with_filters
@click.option("--rating", type=click.Choice(["up", "down"]), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.pass_obj
def feedback_list(
    obj: Context,
    project: str | None,
    model: str | None,
    since: str | None,
    fmt: str,
    rating: str | None,
    limit: int,
) -> None:
    """List ratings, newest first."""
    from passerelle.http.controls import feedback_json
    from passerelle.runtime import open_database
    from passerelle.storage.feedback import RATINGS, FeedbackStore

    rows = FeedbackStore(open_database(obj.config)).list(
        project=project,
        model=model,
        since_us=_since(since),
        rating=RATINGS[rating] if rating else None,
        limit=limit,
    )
    if fmt == "json":
        click.echo(orjson.dumps([feedback_json(r) for r in rows]).decode())
        return
    click.echo(
        f"{'RATED':20} {'RATING':6} {'REASON':11} {'USER':28} {'PROJECT':16} {'MODEL':16} "
        "REQUEST / COMMENT"
    )
    for row in rows:
        click.echo(
            f"{_when(row.created_us):20} {row.rating_name:6} {row.reason:11} {row.actor:28} "
            f"{row.project or '-':16} {row.model or '-':16} {row.request_id}"
        )
        if row.comment:
            click.echo(f"{'':20} {row.comment}")
    if not rows:
        click.echo("(no ratings match)")


@feedback.command("summary")
@_with_filters
@click.option("--by", type=click.Choice(["model", "route"]), default="model", show_default=True)
@click.pass_obj
def feedback_summary(
    obj: Context, project: str | None, model: str | None, since: str | None, fmt: str, by: str
) -> None:
    """Ratings up and down and the share of down ratings, per model alias or per route."""
    from passerelle.http.controls import stats_json
    from passerelle.runtime import open_database
    from passerelle.storage.feedback import StatsBy, feedback_stats

    rows = feedback_stats(
        open_database(obj.config),
        by=StatsBy(by),
        model=model,
        project=project,
        since_us=_since(since),
    )
    if fmt == "json":
        click.echo(orjson.dumps([stats_json(r) for r in rows]).decode())
        return
    route = by == "route"
    head = f"{'MODEL':20} " + (f"{'PROVIDER':16} {'ROUTE MODEL':24} " if route else "")
    click.echo(head + f"{'UP':>6} {'DOWN':>6} {'NEGATIVE':>8}")
    for row in rows:
        line = f"{row.model or '-':20} "
        if route:
            line += f"{row.provider or '-':16} {row.route_model or '-':24} "
        click.echo(line + f"{row.up:>6} {row.down:>6} {row.negative_ratio:>8.1%}")
    if not rows:
        click.echo("(no ratings match)")
