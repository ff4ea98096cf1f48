"""The schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create it;
``tests/storage`` checks that the migrated database matches these definitions.

Times are integer microseconds since the Unix epoch (UTC): portable across SQLite and
PostgreSQL, cheap to compare, and exact. Money is integer micro-USD.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("team", String(100), nullable=True),
    Column("profile", String(40), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    # The first characters of the key, shown in listings so a person can tell keys apart.
    Column("prefix", String(16), nullable=False),
    # SHA-256 of the whole key; the key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("project", String(100), nullable=True),
    Column("scope", String(20), nullable=False),
    Column("description", String(200), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

# Change counters, one row each, bumped in the same transaction as every change to what they
# count, so that every process knows when its in-memory copy is stale (``epochs.py``): id 1 for
# ``users`` and ``api_keys`` (key caches), id 2 for ``kill_switches``, id 3 for
# ``canary_rollouts``.
auth_epoch = Table(
    "auth_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
)

# One row per request and per admin action, hash-chained in ``seq`` order. ``payload`` is the
# canonical JSON the hash covers; the other columns are copies of payload fields, kept for
# queries (spend, filters) and checked against the payload by ``audit verify``.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("day", String(10), nullable=False),
    Column("actor", String(320), nullable=True),
    Column("team", String(100), nullable=True),
    Column("project", String(100), nullable=True),
    Column("client", String(100), nullable=True),
    Column("model", String(200), nullable=True),
    Column("provider", String(100), nullable=True),
    Column("status", Integer, nullable=True),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cost_micro_usd", BigInteger, nullable=False, default=0),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_log_day", audit_log.c.day)
Index("ix_audit_log_project_day", audit_log.c.project, audit_log.c.day)
Index("ix_audit_log_actor_day", audit_log.c.actor, audit_log.c.day)

# The chain's head: the last sequence number and hash. Updated in the same transaction as the
# rows it covers, so that removing rows from the end of the chain is detected too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Requests held by the data policy for a human reviewer. The request itself is not kept: only
# who sent it, what was found (types and counts), the rule, a preview of its text with every
# finding replaced by a placeholder, and a keyed hash of the exact request. An approval lets
# the same key send that same request once more (``status`` pending -> approved -> used).
reviews = Table(
    "reviews",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("key_id", String(36), nullable=False),
    Column("project", String(100), nullable=True),
    Column("model", String(200), nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("data_class", String(100), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("findings", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("preview", Text, nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("decided_by", String(320), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("note", Text, nullable=True),
    Column("used_at", BigInteger, nullable=True),
    Column("used_by_request", String(64), nullable=True),
)
Index("ix_reviews_key_hash", reviews.c.key_id, reviews.c.request_hash)
Index("ix_reviews_status_created", reviews.c.status, reviews.c.created_at)

# Kill switches: a provider, model, project or user disabled by an operator. A lifted switch
# stays, with who lifted it and when: the table is the switches' history. ``target`` is the
# name as configured (for a user, the e-mail); ``user_id`` identifies a user for matching.
# ``reason`` is shown to every caller refused by the switch: short, and checked for secrets.
kill_switches = Table(
    "kill_switches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(320), nullable=False),
    Column("user_id", String(36), nullable=True),
    Column("reason", String(200), nullable=False),
    Column("set_by", String(320), nullable=False),
    Column("set_at", BigInteger, nullable=False),
    Column("lifted_by", String(320), nullable=True),
    Column("lifted_at", BigInteger, nullable=True),
)
Index("ix_kill_switches_lifted_at", kill_switches.c.lifted_at)

# Ratings of answers by the people who asked (thumbs up or down, a reason code, a comment).
# One per request: a new rating replaces the previous one. The request's project, model alias
# and route are copied from its audit record so that canary gates and reports aggregate without
# joining the audit log. ``comment`` is stored with DLP findings redacted.
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("key_id", String(36), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("request_ts_us", BigInteger, nullable=False),
    Column("project", String(100), nullable=True),
    Column("model", String(200), nullable=True),
    Column("provider", String(100), nullable=True),
    Column("route_model", String(200), nullable=True),
)
Index("ix_feedback_model_created", feedback.c.model, feedback.c.created_us)
Index("ix_feedback_project_created", feedback.c.project, feedback.c.created_us)

# Canary roll-outs: a new version of a model rolled out behind its alias, stage by stage
# (``pipeline/canary.py``). One row per roll-out, kept when it ends: an alias's current roll-out
# is its row with the highest ``number``. ``fingerprint`` identifies the canary's routes and
# stages in the configuration, so a changed canary starts a new roll-out instead of inheriting a
# stage. Every transition is a compare-and-set on (``id``, ``stage``, ``stage_started_at``,
# ``status``) that bumps the canary change counter. ``stage_seq`` is the audit trail's last
# sequence number when the stage (or its window, after a resume) began: the stage's requests
# all come after it. ``verdict`` is the JSON of the gate figures behind the last transition.
canary_rollouts = Table(
    "canary_rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alias", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("routes", Text, nullable=False),
    Column("stages", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stage", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("started_by", String(320), nullable=False),
    Column("stage_started_at", BigInteger, nullable=False),
    Column("stage_seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(320), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("verdict", Text, nullable=True),
    UniqueConstraint("alias", "number", name="uq_canary_rollouts_alias_number"),
)
