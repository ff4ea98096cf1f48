"""The review queue: requests the data policy held for a human reviewer.

**What is kept.** Never the request: a held request holds exactly what the policy would not let
out, and a copy in the database would be a second leak, readable by whoever reads backups. The
queue keeps who sent it (user, key, project, model), why (class, rule, finding types and
counts), a preview of its text with every finding replaced by a placeholder (``[EMAIL_1]``,
enough for a reviewer to judge the context, and no value found), and a keyed hash of the exact
request.

**What an approval does.** It lets *that exact request* through *once*: the same key sends the
same request again (the same body to the same model and endpoint), its hash matches, and the
approval is consumed by a single conditional ``UPDATE`` so that two gateway instances cannot
both use it. The gateway does not replay the request itself: it does not have it, and the
caller that was refused is the one waiting for an answer. A resend after the approval was used
is held again. Pending reviews and unused approvals expire after ``policy.review_hours``.

The preview is dropped when the review is rejected, its approval used, or once it expired
(:meth:`ReviewStore.purge_expired`, run by every gateway every few minutes and by
``passerelle review purge``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson
from sqlalchemy import select

from passerelle.errors import PasserelleError
from passerelle.storage.db import Database, now_us
from passerelle.storage.keys import NotFoundError
from passerelle.storage.tables import reviews

HOUR_US = 3_600_000_000


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    USED = "used"
    EXPIRED = "expired"
    """Never stored: a pending review or an unused approval past its ``expires_at``."""


class ReviewClosed(PasserelleError):
    """A decision on a review that is no longer pending."""


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    created_at: int
    expires_at: int
    status: ReviewStatus
    request_id: str
    actor: str
    key_id: str
    project: str | None
    model: str
    endpoint: str
    data_class: str
    rule: str
    findings: dict[str, int]
    reason: str
    preview: str | None
    decided_by: str | None
    decided_at: int | None
    note: str | None
    used_at: int | None
    used_by_request: str | None


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """A request to queue: everything but the request itself."""

    request_id: str
    actor: str
    key_id: str
    project: str | None
    model: str
    endpoint: str
    data_class: str
    rule: str
    findings: Mapping[str, int]
    reason: str
    preview: str
    request_hash: str


def _review(row: object, now: int) -> Review:
    status = ReviewStatus(row.status)  # type: ignore[attr-defined]
    expired = row.expires_at <= now  # type: ignore[attr-defined]
    if expired and status in (ReviewStatus.PENDING, ReviewStatus.APPROVED):
        status = ReviewStatus.EXPIRED
    return Review(
        id=row.id,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        expires_at=row.expires_at,  # type: ignore[attr-defined]
        status=status,
        request_id=row.request_id,  # type: ignore[attr-defined]
        actor=row.actor,  # type: ignore[attr-defined]
        key_id=row.key_id,  # type: ignore[attr-defined]
        project=row.project,  # type: ignore[attr-defined]
        model=row.model,  # type: ignore[attr-defined]
        endpoint=row.endpoint,  # type: ignore[attr-defined]
        data_class=row.data_class,  # type: ignore[attr-defined]
        rule=row.rule,  # type: ignore[attr-defined]
        findings=orjson.loads(row.findings),  # type: ignore[attr-defined]
        reason=row.reason,  # type: ignore[attr-defined]
        preview=row.preview,  # type: ignore[attr-defined]
        decided_by=row.decided_by,  # type: ignore[attr-defined]
        decided_at=row.decided_at,  # type: ignore[attr-defined]
        note=row.note,  # type: ignore[attr-defined]
        used_at=row.used_at,  # type: ignore[attr-defined]
        used_by_request=row.used_by_request,  # type: ignore[attr-defined]
    )


class ReviewStore:
    def __init__(self, db: Database, *, hours: int = 24) -> None:
        self.db = db
        self.hours = hours

    # -- the gateway's side --------------------------------------------------------------------

    def latest(self, key_id: str, request_hash: str) -> Review | None:
        """The newest review of this exact request by this key that still counts: pending,
        approved or rejected, within its ``expires_at`` (a used approval does not count; after
        a rejection expires, the request may be held, and decided, again)."""
        now = now_us()
        query = (
            select(reviews)
            .where(reviews.c.key_id == key_id, reviews.c.request_hash == request_hash)
            .where(reviews.c.status != ReviewStatus.USED.value, reviews.c.expires_at > now)
            .order_by(reviews.c.created_at.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _review(row, now)

    def hold(self, held: HeldRequest) -> Review:
        """Queue a held request; returns the new review."""
        now = now_us()
        review_id = "rev_" + secrets.token_hex(12)
        with self.db.begin() as conn:
            conn.execute(
                reviews.insert().values(
                    id=review_id,
                    created_at=now,
                    expires_at=now + self.hours * HOUR_US,
                    status=ReviewStatus.PENDING.value,
                    request_id=held.request_id,
                    actor=held.actor,
                    key_id=held.key_id,
                    project=held.project,
                    model=held.model,
                    endpoint=held.endpoint,
                    data_class=held.data_class,
                    rule=held.rule,
                    findings=orjson.dumps(dict(held.findings)).decode(),
                    reason=held.reason,
                    preview=held.preview,
                    request_hash=held.request_hash,
                )
            )
        return self.get(review_id)

    def consume(self, review_id: str, key_id: str, request_hash: str, request_id: str) -> bool:
        """Use an approval, once: True for exactly one caller, whatever the number of gateway
        instances asking at the same time."""
        now = now_us()
        with self.db.begin() as conn:
            result = conn.execute(
                reviews.update()
                .where(
                    reviews.c.id == review_id,
                    reviews.c.key_id == key_id,
                    reviews.c.request_hash == request_hash,
                    reviews.c.status == ReviewStatus.APPROVED.value,
                    reviews.c.expires_at > now,
                )
                .values(
                    status=ReviewStatus.USED.value,
                    used_at=now,
                    used_by_request=request_id,
                    preview=None,
                )
            )
        return result.rowcount == 1

    def purge_expired(self) -> int:
        """Drop the previews of reviews that expired undecided or approved but unused: the
        decision they were kept for can no longer be made. Returns how many were dropped."""
        now = now_us()
        with self.db.begin() as conn:
            result = conn.execute(
                reviews.update()
                .where(reviews.c.expires_at <= now, reviews.c.preview.is_not(None))
                .values(preview=None)
            )
        return int(result.rowcount or 0)

    # -- the reviewer's side -------------------------------------------------------------------

    def get(self, review_id: str) -> Review:
        with self.db.read() as conn:
            row = conn.execute(select(reviews).where(reviews.c.id == review_id)).first()
        if row is None:
            raise NotFoundError(f"no review {review_id!r}; 'passerelle review list' shows them")
        return _review(row, now_us())

    def list(self, status: ReviewStatus | None = None, limit: int = 200) -> list[Review]:
        """Newest first; ``status`` as reviewers see it (expired is computed)."""
        now = now_us()
        query = select(reviews).order_by(reviews.c.created_at.desc())
        if status in (ReviewStatus.PENDING, ReviewStatus.APPROVED):
            query = query.where(reviews.c.status == status.value, reviews.c.expires_at > now)
        elif status is ReviewStatus.EXPIRED:
            query = query.where(
                reviews.c.status.in_([ReviewStatus.PENDING.value, ReviewStatus.APPROVED.value]),
                reviews.c.expires_at <= now,
            )
        elif status is not None:
            query = query.where(reviews.c.status == status.value)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_review(row, now) for row in rows]

    def decide(self, review_id: str, *, approve: bool, reviewer: str, note: str | None) -> Review:
        """Approve or reject a pending review. An approval is valid for ``hours`` from now."""
        now = now_us()
        values: dict[str, object] = {
            "status": (ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED).value,
            "decided_by": reviewer,
            "decided_at": now,
            "note": note,
        }
        if approve:
            values["expires_at"] = now + self.hours * HOUR_US
        else:
            values["preview"] = None
        with self.db.begin() as conn:
            result = conn.execute(
                reviews.update()
                .where(
                    reviews.c.id == review_id,
                    reviews.c.status == ReviewStatus.PENDING.value,
                    reviews.c.expires_at > now,
                )
                .values(**values)
            )
        if result.rowcount != 1:
            current = self.get(review_id)  # NotFoundError when there is no such review
            raise ReviewClosed(
                f"review {review_id} is {current.status.value}, not pending: "
                "only a pending review can be approved or rejected"
            )
        return self.get(review_id)
