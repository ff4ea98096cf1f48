"""The ``passerelle`` command: everything an operator does, from a terminal."""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from passerelle import __version__
from passerelle.cli.canary import canary
from passerelle.cli.controls import feedback, kill
from passerelle.cli.governance import policy, review
from passerelle.config import Config, load_config
from passerelle.core.context import KeyScope
from passerelle.errors import ConfigError, PasserelleError
from passerelle.storage.spend import Dimension, SpendFilter, format_usd, query_spend

DEFAULT_CONFIG = "passerelle.yaml"


class Context:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


def _fail(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns Passerelle's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PasserelleError as exc:
            _fail(str(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    default=lambda: os.environ.get("PASSERELLE_CONFIG", DEFAULT_CONFIG),
    show_default=f"$PASSERELLE_CONFIG or {DEFAULT_CONFIG}",
    help="The configuration file (policy as code).",
)
@click.version_option(__version__, prog_name="passerelle")
@click.pass_context
def cli(ctx: click.Context, config_path: str) -> None:
    """Passerelle, the governed AI gateway.

    \b
    Start here:
      passerelle demo                      run on the example config with an offline fake provider
      passerelle config check FILE         validate a configuration file
      passerelle serve -c passerelle.yaml  run the gateway
      passerelle users add / keys create   give people access
      passerelle spend --group-by project  who spends what
      passerelle audit verify              prove the audit trail is intact
      passerelle scan FILES                find secrets and personal data before they leave
      passerelle policy explain -p P TEXT  what class a text gets and where it may go
      passerelle review list               requests held for a human reviewer
      passerelle kill model M --reason R   disable a model now (or provider, project, user)
      passerelle feedback summary          thumbs up and down per model
      passerelle canary status             where each new model version's roll-out stands
    """
    ctx.obj = Context(config_path)


# -- serve and demo -------------------------------------------------------------------------


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default: from the config).")
@click.option("--port", type=int, default=None, help="Port (default: from the config).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway."""
    from passerelle.cli.serving import run_gateway

    config = obj.config
    run_gateway(
        config,
        host=host or config.file.gateway.host,
        port=port or config.file.gateway.port,
        log_level=log_level,
    )


@cli.command()
@click.option("--port", type=int, default=4000, show_default=True, help="Gateway port.")
@click.option(
    "--upstream-port", type=int, default=4100, show_default=True, help="Fake upstream's port."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its SQLite database and audit spool.",
)
def demo(port: int, upstream_port: int, data_dir: Path) -> None:
    """Run the example configuration offline: every provider is replaced by the fake upstream
    shipped with Passerelle (clearly labelled fake replies), with SQLite in --data-dir."""
    from passerelle.cli.serving import run_demo

    run_demo(port=port, upstream_port=upstream_port, data_dir=data_dir)


# -- config -----------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Check configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE strictly: unknown keys, bad values and broken references are errors that
    name the line. Prints the configuration hash stamped on every audit record."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        _fail(str(exc))
        return
    click.echo(f"{file}: OK")
    click.echo(f"  hash       {cfg.hash}")
    click.echo(
        f"  {len(cfg.providers)} providers, {len(cfg.models)} models, "
        f"{len(cfg.file.clients)} clients, {len(cfg.file.projects)} projects, "
        f"{len(cfg.file.teams)} teams"
    )
    refs = sorted(
        {ref.env_name for p in cfg.providers.values() for ref in p.secret_refs()}
        | ({cfg.file.audit.key.env_name} if cfg.file.audit.key else set())
    )
    unset = [name for name in refs if not os.environ.get(name)]
    if unset:
        click.echo(f"  note: not set in this environment: {', '.join(unset)}")


# -- users and keys --------------------------------------------------------------------------


def _stores(obj: Context) -> tuple[Any, Any]:
    from passerelle.runtime import open_database
    from passerelle.storage.keys import KeyStore

    db = open_database(obj.config)
    return db, KeyStore(db)


def _audit_now(obj: Context, db: Any, record: Any) -> None:
    from passerelle.audit.writer import append_now
    from passerelle.runtime import audit_key

    key = None
    if obj.config.file.audit.key is not None:
        key = audit_key(obj.config, resolve_secrets_subset(obj.config))
    append_now(db, [record], key=key)


def resolve_secrets_subset(config: Config) -> dict[str, str]:
    """Only the audit key: administrative commands do not need provider credentials."""
    ref = config.file.audit.key
    if ref is None:
        return {}
    value = os.environ.get(ref.env_name)
    if not value:
        raise ConfigError(
            f"environment variable {ref.env_name} (the audit key) is not set", source=config.source
        )
    return {ref.env_name: value}


@cli.group()
def users() -> None:
    """People who use the gateway."""


@users.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--team", default=None, help="A team defined in the configuration.")
@click.option(
    "--profile",
    type=click.Choice(["dev", "devops", "test", "architect", "ops", "manager"]),
    default=None,
    help="Job profile, used by the maturity grid.",
)
@click.pass_obj
def users_add(obj: Context, email: str, name: str, team: str | None, profile: str | None) -> None:
    """Add a user."""
    from passerelle.runtime import admin_record

    if team is not None and team not in obj.config.file.teams:
        _fail(f"unknown team {team!r}; teams: {', '.join(sorted(obj.config.file.teams))}")
    db, keys = _stores(obj)
    user = keys.add_user(email, name=name, team=team, profile=profile)
    _audit_now(obj, db, admin_record("user.add", target=user.email, team=team))
    click.echo(f"added {user.email} (id {user.id})")


@users.command("list")
@click.pass_obj
def users_list(obj: Context) -> None:
    """List users."""
    _db, keys = _stores(obj)
    for user in keys.list_users():
        click.echo(f"{user.email:40} {user.team or '-':20} {user.profile or '-':10} {user.name}")


@cli.group()
def keys() -> None:
    """Virtual API keys: create (shown once), list, revoke."""


@keys.command("create")
@click.option("--user", "email", required=True, help="The user the key belongs to.")
@click.option("--project", default=None, help="The project the key's requests are charged to.")
@click.option("--admin", is_flag=True, help="An admin key (admin API only, no inference).")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None)
@click.option("--description", default="")
@click.option("--quiet", "-q", is_flag=True, help="Print only the key.")
@click.pass_obj
def keys_create(
    obj: Context,
    email: str,
    project: str | None,
    admin: bool,
    expires_in_days: int | None,
    description: str,
    quiet: bool,
) -> None:
    """Create a key. It is printed once and never stored: copy it now."""
    from passerelle.runtime import admin_record
    from passerelle.storage.db import now_us

    projects = obj.config.file.projects
    if not admin and (project is None or project not in projects):
        _fail(f"--project must be one of: {', '.join(sorted(projects))}")
    db, store = _stores(obj)
    user = store.get_user(email)
    expires_at = now_us() + expires_in_days * 86_400_000_000 if expires_in_days else None
    scope = KeyScope.ADMIN if admin else KeyScope.INFERENCE
    plaintext, info = store.create_key(
        user, project=project, scope=scope, description=description, expires_at=expires_at
    )
    _audit_now(
        obj,
        db,
        admin_record(
            "key.create", target=info.prefix, user=user.email, project=project, scope=scope.value
        ),
    )
    if quiet:
        click.echo(plaintext)
        return
    click.echo(f"key id   {info.id}")
    click.echo(f"user     {user.email}   project {project or '-'}   scope {scope.value}")
    click.echo(click.style(plaintext, bold=True))
    click.echo("This key is shown once and cannot be recovered; store it in a secret manager.")


def _when(us: int | None) -> str:
    if us is None:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M")


@keys.command("list")
@click.option("--user", "email", default=None)
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.pass_obj
def keys_list(obj: Context, email: str | None, include_revoked: bool) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    _db, store = _stores(obj)
    rows = store.list_keys(email=email, include_revoked=include_revoked)
    click.echo(f"{'PREFIX':14} {'USER':32} {'PROJECT':18} {'SCOPE':9} {'EXPIRES':16} STATUS")
    for key in rows:
        status = "revoked" if key.revoked_at else "active"
        click.echo(
            f"{key.prefix:14} {key.email:32} {key.project or '-':18} {key.scope.value:9} "
            f"{_when(key.expires_at):16} {status}"
        )


@keys.command("revoke")
@click.argument("key")
@click.pass_obj
def keys_revoke(obj: Context, key: str) -> None:
    """Revoke KEY (its id or prefix). Takes effect on the next request, on every instance."""
    from passerelle.runtime import admin_record

    db, store = _stores(obj)
    info = store.revoke_key(key)
    _audit_now(obj, db, admin_record("key.revoke", target=info.prefix, user=info.email))
    click.echo(f"revoked {info.prefix} ({info.email})")


# -- spend -------------------------------------------------------------------------------------


@cli.command()
@click.option("--since", default=None, help="First day, YYYY-MM-DD (UTC), inclusive.")
@click.option("--until", default=None, help="Last day, YYYY-MM-DD (UTC), inclusive.")
@click.option("--user", default=None)
@click.option("--team", default=None)
@click.option("--project", default=None)
@click.option("--client", default=None)
@click.option("--model", default=None)
@click.option(
    "--group-by",
    default="project",
    show_default=True,
    help="Comma-separated: " + ", ".join(d.value for d in Dimension) + " (empty for a total).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
def spend(
    obj: Context,
    since: str | None,
    until: str | None,
    user: str | None,
    team: str | None,
    project: str | None,
    client: str | None,
    model: str | None,
    group_by: str,
    fmt: str,
) -> None:
    """Requests, tokens and cost (USD), from the audit trail."""
    for day in (since, until):
        if day is not None:
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                _fail(f"{day!r} is not a day; write YYYY-MM-DD")
    dims: list[Dimension] = []
    for name in filter(None, (part.strip() for part in group_by.split(","))):
        try:
            dims.append(Dimension(name))
        except ValueError:
            _fail(f"cannot group by {name!r}; use: {', '.join(d.value for d in Dimension)}")
    db, _key = _audit_db(obj)  # spend is read from the trail: ingest what a dead process left
    rows = query_spend(
        db,
        dims,
        SpendFilter(since, until, user, team, project, client, model),
    )
    header = [d.value for d in dims] + ["requests", "input_tokens", "output_tokens", "cost_usd"]
    table = [
        [
            *(row.group[d.value] or "-" for d in dims),
            row.requests,
            row.input_tokens,
            row.output_tokens,
            format_usd(row.cost_micro_usd),
        ]
        for row in rows
    ]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
    elif fmt == "json":
        click.echo(orjson.dumps([dict(zip(header, line, strict=True)) for line in table]).decode())
    else:
        widths = [
            max(len(str(x)) for x in [h, *(line[i] for line in table)])
            for i, h in enumerate(header)
        ]
        click.echo("  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)))
        for line in table:
            click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
        if not table:
            click.echo("(no requests match)")


# -- budgets -----------------------------------------------------------------------------------


@cli.group()
def budgets() -> None:
    """Where each budget stands this period, and the alerts they raised."""


@budgets.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def budgets_status(obj: Context, fmt: str) -> None:
    """Spend against every configured budget this day or month, most used first."""
    from passerelle.pipeline.budgets import budget_report, scope_members
    from passerelle.storage.keys import KeyStore

    db, _key = _audit_db(obj)
    rows = budget_report(obj.config, db, scope_members(obj.config, KeyStore(db)))
    if fmt == "json":
        click.echo(orjson.dumps([row.as_json() for row in rows]).decode())
        return
    if not rows:
        configured = bool(obj.config.file.budgets)
        click.echo("(no budget has spend this period)" if configured else "(no budgets)")
        return
    header = ["budget", "name", "period", "spent_usd", "soft_usd", "hard_usd", "used", "state"]
    table = [
        [
            r.budget,
            r.name,
            r.period,
            j["spent_usd"],
            j["soft_usd"] or "-",
            j["hard_usd"],
            f"{j['used_percent']}%",
            r.state,
        ]
        for r in rows
        for j in [r.as_json()]
    ]
    widths = [max(len(str(x)) for x in [h, *(t[i] for t in table)]) for i, h in enumerate(header)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)))
    for line in table:
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))


@budgets.command("alerts")
@click.option("--since", default=None, help="First day, YYYY-MM-DD (UTC).")
@click.pass_obj
def budgets_alerts(obj: Context, since: str | None) -> None:
    """Soft thresholds crossed and caps reached, newest first (one JSON object a line)."""
    from passerelle.storage.spend import budget_alerts

    db, _key = _audit_db(obj)
    for alert in budget_alerts(db, since_day=since):
        click.echo(orjson.dumps(alert).decode())


# -- scan --------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
)
@click.option(
    "--fail-on",
    default="secret,personal,client_term,injection",
    show_default=True,
    help="Comma-separated categories whose findings make the exit code 1.",
)
@click.option(
    "--names", is_flag=True, help="Also look for person names (heuristic, off by default)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.pass_context
def scan(
    ctx: click.Context, paths: tuple[str, ...], fmt: str, fail_on: str, names: bool, quiet: bool
) -> None:
    """Look for secrets, personal data, client terms and prompt injections in PATHS (files,
    directories, or - for standard input, the default).

    Reports the type and position of each finding, never its value. Client terms come from the
    configuration only when one is given (-c or $PASSERELLE_CONFIG); no configuration is needed
    otherwise. Exit code: 0 clean, 1 findings in a --fail-on category, 2 an error (a file that
    cannot be read, a bad configuration). Suitable for a pre-commit hook:

    \b
      git diff --cached --name-only --diff-filter=ACM -z | xargs -0 -r passerelle scan
    """
    from click.core import ParameterSource

    from passerelle.dlp import Category, DlpSettings, Scanner, TermSet
    from passerelle.dlp.files import UnreadableFile, expand, json_finding, locate, read_text

    try:
        failing = {Category(name.strip()) for name in fail_on.split(",") if name.strip()}
    except ValueError:
        raise click.BadParameter(
            f"use: {', '.join(c.value for c in Category)}", param_hint="--fail-on"
        ) from None
    term_sets: tuple[TermSet, ...] = ()
    parent = ctx.parent
    explicit = parent is not None and (
        parent.get_parameter_source("config_path") is ParameterSource.COMMANDLINE
        or "PASSERELLE_CONFIG" in os.environ
    )
    if explicit:
        obj: Context = ctx.obj
        clients = obj.config.file.clients
        term_sets = tuple(
            TermSet(client_id, client.data_class, (client.name, *client.terms))
            for client_id, client in sorted(clients.items())
        )
    scanner = Scanner(DlpSettings(term_sets=term_sets, person_names=names))
    files = list(expand(paths or ("-",)))
    results: list[dict[str, object]] = []
    errors: list[dict[str, str]] = []
    failed = False

    def scan_one(name: str) -> None:
        nonlocal failed
        shown = "<stdin>" if name == "-" else name
        try:
            text = read_text(name)
        except UnreadableFile as exc:
            errors.append({"path": shown, "error": str(exc)})
            return
        if text is None:
            return  # binary
        for item in locate(text, scanner.scan(text).findings):
            results.append(json_finding(shown, item))
            failed = failed or item.finding.category in failing
            if fmt == "human":
                finding = item.finding
                click.echo(
                    f"{shown}:{item.line}:{item.column}: {finding.rule} ({finding.category.value})"
                )

    if len(files) > 20 and not quiet and fmt == "human" and sys.stderr.isatty():
        with click.progressbar(files, label="scanning", file=sys.stderr) as bar:
            for name in bar:
                scan_one(name)
    else:
        for name in files:
            scan_one(name)
    if fmt == "json":
        by_rule: dict[str, int] = {}
        for item in results:
            by_rule[str(item["rule"])] = by_rule.get(str(item["rule"]), 0) + 1
        summary = {"files": len(files), "findings": len(results), "by_rule": by_rule}
        click.echo(
            orjson.dumps({"findings": results, "errors": errors, "summary": summary}).decode()
        )
    else:
        for error in errors:
            click.echo(f"{error['path']}: error: {error['error']}", err=True)
        if not quiet:
            click.echo(f"{len(results)} finding(s) in {len(files)} file(s)", err=True)
    if errors:
        sys.exit(2)
    if failed:
        sys.exit(1)


# -- audit -------------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


def _audit_db(obj: Context) -> tuple[Any, bytes | None]:
    from passerelle.audit.writer import recover_spools
    from passerelle.runtime import audit_key, open_database

    db = open_database(obj.config)
    key = audit_key(obj.config, resolve_secrets_subset(obj.config))
    recover_spools(db, obj.config.spool_dir, key=key)
    return db, key


@audit.command("verify")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_obj
def audit_verify(obj: Context, quiet: bool) -> None:
    """Check the hash chain: any modified, deleted, inserted or reordered record is reported
    with its sequence number. Exit code 1 when the trail does not verify."""
    from passerelle.audit.verify import verify_chain

    db, key = _audit_db(obj)
    if quiet or not sys.stderr.isatty():
        report = verify_chain(db, key)
    else:
        with click.progressbar(length=1, label="verifying", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            report = verify_chain(db, key, progress=progress)
    if report.ok:
        click.echo(f"audit trail OK: {report.checked} records verified")
        return
    click.echo(f"audit trail BROKEN: {len(report.problems)} problem(s) in {report.checked} records")
    for problem in report.problems:
        where = "" if problem.seq is None else f"seq {problem.seq}"
        if problem.record_id is not None:
            where += f" ({problem.record_id})"
        click.echo(f"  {where or 'chain'}: {problem.kind}: {problem.message}")
    sys.exit(1)


@audit.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to a file instead of standard output.",
)
@click.option("--since", default=None, help="First day, YYYY-MM-DD (UTC).")
@click.option("--until", default=None, help="Last day, YYYY-MM-DD (UTC), inclusive.")
@click.option("--kind", type=click.Choice(["request", "admin"]), default=None)
@click.option("--project", default=None)
@click.pass_obj
def audit_export(
    obj: Context,
    output: Path | None,
    since: str | None,
    until: str | None,
    kind: str | None,
    project: str | None,
) -> None:
    """Export records as JSON lines, with their sequence numbers and hashes."""
    from passerelle.audit.export import iter_records

    def day_us(day: str | None, end: bool) -> int | None:
        if day is None:
            return None
        try:
            start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)
        except ValueError:
            _fail(f"{day!r} is not a day; write YYYY-MM-DD")
            return None
        if end:
            start += dt.timedelta(days=1)
        return int(start.timestamp() * 1_000_000)

    db, _key = _audit_db(obj)
    records = iter_records(
        db,
        since_us=day_us(since, False),
        until_us=day_us(until, True),
        kind=kind,
        project=project,
    )
    count = 0
    out = output.open("wb") if output else sys.stdout.buffer
    try:
        for record in records:
            out.write(orjson.dumps(record) + b"\n")
            count += 1
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"exported {count} records to {output}", err=True)


cli.add_command(policy)
cli.add_command(review)
cli.add_command(kill)
cli.add_command(feedback)
cli.add_command(canary)


def main() -> None:
    cli(prog_name="passerelle")
