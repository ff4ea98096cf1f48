"""Feedback on answers: a thumbs up or down, a reason code and a comment, from the person who
made the request.

**Who may rate.** Only the requester: the request is looked up in the audit trail by its id
(the ``x-request-id`` of the answer) and its ``actor`` must be the caller's e-mail. A request id
is a name, not a credential, so knowing one does not let anybody else rate the answer. One
rating per request: rating again replaces the previous rating (the mind changes; the count
must not).

**What is kept.** The rating (+1 or -1), a reason from the fixed lists below, the comment with
every DLP finding redacted by the caller of :meth:`FeedbackStore.rate` (a comment is typed by a
person, who may paste anything: it is never stored unscanned), and, copied from the request's
audit record, its time, project, model alias and route (provider and provider model), so that
canary gates and program reports aggregate without joining the audit log.

**Reason codes.** Fixed, so that they can be counted:

===============  ===========================================================================
up               ``helpful`` (it did the job), ``accurate`` (correct, checked),
                 ``time_saved`` (faster than without), ``other``
down             ``wrong`` (incorrect or invented), ``incomplete`` (partial, cut short),
                 ``unhelpful`` (beside the point), ``unsafe`` (harmful, insecure code or
                 advice), ``slow`` (too long to answer), ``off_policy`` (refused or redacted
                 when it should not have been, or the reverse), ``other``
===============  ===========================================================================

:func:`feedback_stats` is what a canary gate calls: counts up and down and the negative ratio
per model alias, or per route, since a given time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Select, case, func, select

from passerelle.errors import PasserelleError
from passerelle.storage.db import Database, now_us, upsert
from passerelle.storage.keys import NotFoundError
from passerelle.storage.tables import audit_log, feedback

UP_REASONS = ("helpful", "accurate", "time_saved", "other")
DOWN_REASONS = ("wrong", "incomplete", "unhelpful", "unsafe", "slow", "off_policy", "other")
MAX_COMMENT_CHARS = 2000

RATINGS = {"up": 1, "down": -1}


class InvalidFeedback(PasserelleError):
    """A rating, reason or comment that is not one the lists allow; the message says which."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class NotYourRequest(PasserelleError):
    """The request exists, but somebody else made it: only its requester may rate it."""


class RequestNotRecorded(NotFoundError):
    """No request with this id is in the audit trail (yet: records are committed in batches,
    within milliseconds; another instance's may still be on its way)."""


def check_rating(rating: object, reason: object) -> tuple[int, str]:
    """``("up", "helpful")`` -> ``(1, "helpful")``, or :class:`InvalidFeedback` naming the
    allowed values."""
    if not isinstance(rating, str) or rating not in RATINGS:
        raise InvalidFeedback("'rating' must be up or down.", param="rating")
    allowed = UP_REASONS if rating == "up" else DOWN_REASONS
    if not isinstance(reason, str) or reason not in allowed:
        raise InvalidFeedback(
            f"'reason' for a rating {rating} must be one of: {', '.join(allowed)}.",
            param="reason",
        )
    return RATINGS[rating], reason


def check_comment(comment: object) -> str | None:
    """The comment, trimmed (None when empty), or :class:`InvalidFeedback`."""
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise InvalidFeedback("'comment' must be a string.", param="comment")
    text = comment.strip()
    if len(text) > MAX_COMMENT_CHARS:
        raise InvalidFeedback(
            f"'comment' is {len(text)} characters; the limit is {MAX_COMMENT_CHARS}.",
            param="comment",
        )
    return text or None


@dataclass(frozen=True, slots=True)
class RatedRequest:
    """What the audit trail says about the request being rated."""

    request_id: str
    actor: str | None
    ts_us: int
    project: str | None
    model: str | None
    provider: str | None
    route_model: str | None


@dataclass(frozen=True, slots=True)
class Feedback:
    id: str
    request_id: str
    key_id: str
    actor: str
    rating: int
    """+1 (up) or -1 (down)."""
    reason: str
    comment: str | None
    """As stored: every DLP finding redacted."""
    created_us: int
    """When the (latest) rating was given."""
    request_ts_us: int
    project: str | None
    model: str | None
    provider: str | None
    route_model: str | None

    @property
    def rating_name(self) -> str:
        return "up" if self.rating > 0 else "down"


def _feedback(row: Any) -> Feedback:
    return Feedback(
        id=row.id,
        request_id=row.request_id,
        key_id=row.key_id,
        actor=row.actor,
        rating=int(row.rating),
        reason=row.reason,
        comment=row.comment,
        created_us=row.created_us,
        request_ts_us=row.request_ts_us,
        project=row.project,
        model=row.model,
        provider=row.provider,
        route_model=row.route_model,
    )


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find_request(self, request_id: str) -> RatedRequest | None:
        """The model call ``request_id`` names, from the audit trail; None if there is none
        (admin actions and calls without a model cannot be rated)."""
        query = select(
            audit_log.c.record_id,
            audit_log.c.actor,
            audit_log.c.ts,
            audit_log.c.project,
            audit_log.c.model,
            audit_log.c.provider,
            audit_log.c.payload,
        ).where(audit_log.c.record_id == request_id, audit_log.c.kind == "request")
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.model is None:
            return None
        try:
            details = orjson.loads(row.payload).get("details") or {}
        except (orjson.JSONDecodeError, AttributeError):
            details = {}
        route_model = details.get("route_model") if isinstance(details, dict) else None
        return RatedRequest(
            request_id=row.record_id,
            actor=row.actor,
            ts_us=row.ts,
            project=row.project,
            model=row.model,
            provider=row.provider,
            route_model=route_model if isinstance(route_model, str) else None,
        )

    def rate(
        self,
        request_id: str,
        *,
        actor: str,
        key_id: str,
        rating: int,
        reason: str,
        comment: str | None,
    ) -> tuple[Feedback, bool]:
        """Store ``actor``'s rating of ``request_id``, replacing theirs if they rated it before.
        Returns the stored rating and whether it replaced one.

        ``comment`` must already be redacted. Raises :class:`RequestNotRecorded` when the
        request is not (yet) in the audit trail and :class:`NotYourRequest` when somebody else
        made it."""
        if rating not in (1, -1):
            raise InvalidFeedback("rating must be +1 or -1", param="rating")
        request = self.find_request(request_id)
        if request is None:
            raise RequestNotRecorded(f"no request {request_id!r} in the audit trail")
        if (request.actor or "").casefold() != actor.casefold():
            raise NotYourRequest(f"request {request_id!r} was made by another user")
        values = {
            "id": "fb_" + secrets.token_hex(12),
            "request_id": request.request_id,
            "key_id": key_id,
            "actor": actor,
            "rating": rating,
            "reason": reason,
            "comment": comment,
            "created_us": now_us(),
            "request_ts_us": request.ts_us,
            "project": request.project,
            "model": request.model,
            "provider": request.provider,
            "route_model": request.route_model,
        }
        changed = ("key_id", "rating", "reason", "comment", "created_us")
        statement = upsert(feedback, sqlite=self.db.is_sqlite).values(**values)
        # One statement, so that two instances storing ratings of the same request at once
        # leave exactly one row (the later one).
        statement = statement.on_conflict_do_update(
            index_elements=[feedback.c.request_id],
            set_={name: statement.excluded[name] for name in changed},
        )
        with self.db.begin() as conn:
            replaced = (
                conn.execute(
                    select(feedback.c.id).where(feedback.c.request_id == request.request_id)
                ).first()
                is not None
            )
            conn.execute(statement)
            row = conn.execute(
                select(feedback).where(feedback.c.request_id == request.request_id)
            ).one()
        return _feedback(row), replaced

    def list(
        self,
        *,
        project: str | None = None,
        model: str | None = None,
        since_us: int | None = None,
        rating: int | None = None,
        limit: int = 200,
    ) -> list[Feedback]:
        """Ratings, newest first."""
        query = _filtered(
            select(feedback), project=project, model=model, since_us=since_us, rating=rating
        )
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(feedback.c.created_us.desc()).limit(limit)).all()
        return [_feedback(row) for row in rows]


def _filtered(
    query: Select[Any],
    *,
    project: str | None,
    model: str | None,
    since_us: int | None,
    rating: int | None = None,
) -> Select[Any]:
    if project is not None:
        query = query.where(feedback.c.project == project)
    if model is not None:
        query = query.where(feedback.c.model == model)
    if since_us is not None:
        query = query.where(feedback.c.created_us >= since_us)
    if rating is not None:
        query = query.where(feedback.c.rating == rating)
    return query


class StatsBy(StrEnum):
    """How :func:`feedback_stats` groups ratings."""

    MODEL = "model"
    """Per model alias."""
    ROUTE = "route"
    """Per model alias, provider and provider model: a canary's new version against the old."""


@dataclass(frozen=True, slots=True)
class FeedbackStats:
    model: str | None
    provider: str | None
    """None when grouped by model."""
    route_model: str | None
    """None when grouped by model."""
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def negative_ratio(self) -> float:
        """Share of ratings that are down, 0.0 to 1.0 (a group has at least one rating)."""
        return self.down / self.total if self.total else 0.0


def feedback_stats(
    db: Database,
    *,
    by: StatsBy = StatsBy.MODEL,
    model: str | None = None,
    project: str | None = None,
    since_us: int | None = None,
) -> list[FeedbackStats]:
    """Ratings up and down per model alias (or per route), rated at ``since_us`` or later,
    optionally for one model alias or one project; the groups with no rating are absent.

    A canary gate compares the negative ratio of its new route with the stable one's::

        stats = feedback_stats(db, by=StatsBy.ROUTE, model="chat", since_us=rollout_started)
    """
    up = func.sum(case((feedback.c.rating > 0, 1), else_=0))
    down = func.sum(case((feedback.c.rating < 0, 1), else_=0))
    keys = [feedback.c.model]
    if by is StatsBy.ROUTE:
        keys += [feedback.c.provider, feedback.c.route_model]
    query = _filtered(
        select(*keys, up.label("up"), down.label("down")),
        project=project,
        model=model,
        since_us=since_us,
    )
    query = query.group_by(*keys).order_by(*keys)
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [
        FeedbackStats(
            model=row.model,
            provider=row.provider if by is StatsBy.ROUTE else None,
            route_model=row.route_model if by is StatsBy.ROUTE else None,
            up=int(row.up or 0),
            down=int(row.down or 0),
        )
        for row in rows
    ]
