"""Opening what a configuration points at: database, secrets, audit key.

Shared by the HTTP server and the CLI so that both see the same database the same way.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from passerelle.config import Config
from passerelle.errors import ConfigError
from passerelle.storage.db import Database, now_us

if TYPE_CHECKING:
    from passerelle.audit.records import AuditRecord


def open_database(config: Config, *, migrate: bool = True) -> Database:
    db = Database(config.database_url)
    if migrate:
        db.migrate()
    return db


def resolve_secrets(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every env:NAME the configuration references, read once at start-up.

    A missing variable is an error naming it; the values never appear in any message."""
    env = os.environ if environ is None else environ
    names = [ref.env_name for p in config.providers.values() for ref in p.secret_refs()]
    if config.file.audit.key is not None:
        names.append(config.file.audit.key.env_name)
    if config.file.limits.alert_webhook is not None:
        names.append(config.file.limits.alert_webhook.env_name)
    if config.file.state.redis_password is not None:
        names.append(config.file.state.redis_password.env_name)
    missing = sorted({name for name in names if not env.get(name)})
    if missing:
        raise ConfigError(
            "these environment variables are referenced as env:NAME but not set: "
            + ", ".join(missing),
            source=config.source,
        )
    return {name: env[name] for name in names}


def audit_key(config: Config, secrets: Mapping[str, str]) -> bytes | None:
    ref = config.file.audit.key
    return secrets[ref.env_name].encode("utf-8") if ref is not None else None


def admin_record(
    action: str, *, actor: str | None = None, target: str | None = None, **details: Any
) -> AuditRecord:
    """An audit record for an administrative action (key created, user added…)."""
    from passerelle.audit.records import AuditRecord

    if actor is None:
        try:
            actor = f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            actor = "cli:unknown"
    return AuditRecord(
        record_id="adm_" + uuid.uuid4().hex,
        kind="admin",
        ts_us=now_us(),
        actor=actor,
        team=None,
        project=details.get("project"),
        client=None,
        model=None,
        provider=None,
        status=None,
        details={"action": action, "target": target, **details},
    )
