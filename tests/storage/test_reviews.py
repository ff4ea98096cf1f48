"""The review queue on both backends: one use per approval, expiry, decisions only once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from passerelle.storage.db import Database
from passerelle.storage.keys import NotFoundError
from passerelle.storage.reviews import HeldRequest, ReviewClosed, ReviewStatus, ReviewStore
from passerelle.storage.tables import reviews


def held(request_hash: str = "h" * 64, key_id: str = "key-1") -> HeldRequest:
    return HeldRequest(
        request_id="req_1",
        actor="dev@acme.test",
        key_id=key_id,
        project="alpha",
        model="gpt",
        endpoint="/v1/chat/completions",
        data_class="restricted",
        rule="policy.not_cleared.restricted",
        findings={"aws_access_key": 1},
        reason="classified 'restricted'",
        preview="key [AWS_ACCESS_KEY_1]",
        request_hash=request_hash,
    )


def test_an_approval_is_used_once_even_when_raced(db: Database) -> None:
    store = ReviewStore(db)
    review = store.hold(held())
    assert store.latest("key-1", "h" * 64) == review and review.status is ReviewStatus.PENDING
    assert not store.consume(review.id, "key-1", "h" * 64, "req_2")  # not approved yet
    store.decide(review.id, approve=True, reviewer="boss@acme.test", note=None)
    assert not store.consume(review.id, "key-2", "h" * 64, "req_2")  # another key
    assert not store.consume(review.id, "key-1", "x" * 64, "req_2")  # another request
    with ThreadPoolExecutor(8) as pool:
        used = list(
            pool.map(lambda n: store.consume(review.id, "key-1", "h" * 64, f"req_{n}"), range(8))
        )
    assert used.count(True) == 1
    after = store.get(review.id)
    assert after.status is ReviewStatus.USED and after.preview is None
    assert store.latest("key-1", "h" * 64) is None  # a resend is held again


def test_decisions_are_made_once_and_expired_reviews_are_closed(db: Database) -> None:
    store = ReviewStore(db)
    review = store.hold(held())
    rejected = store.decide(review.id, approve=False, reviewer="boss@acme.test", note="no")
    assert rejected.status is ReviewStatus.REJECTED and rejected.preview is None
    with pytest.raises(ReviewClosed, match="rejected, not pending"):
        store.decide(review.id, approve=True, reviewer="boss@acme.test", note=None)
    with pytest.raises(NotFoundError):
        store.get("rev_missing")
    late = store.hold(held("e" * 64))
    with db.begin() as conn:
        conn.execute(update(reviews).where(reviews.c.id == late.id).values(expires_at=0))
    assert store.get(late.id).status is ReviewStatus.EXPIRED
    assert [r.id for r in store.list(ReviewStatus.EXPIRED)] == [late.id]
    assert store.list(ReviewStatus.PENDING) == []
    assert store.latest("key-1", "e" * 64) is None
    with pytest.raises(ReviewClosed, match="expired"):
        store.decide(late.id, approve=True, reviewer="boss@acme.test", note=None)


def test_expired_reviews_lose_their_preview(db: Database) -> None:
    store = ReviewStore(db)
    expired = store.hold(held("a" * 64))
    approved = store.hold(held("b" * 64))
    store.decide(approved.id, approve=True, reviewer="boss@acme.test", note=None)
    live = store.hold(held("c" * 64))
    with db.begin() as conn:
        conn.execute(
            update(reviews).where(reviews.c.id.in_([expired.id, approved.id])).values(expires_at=0)
        )
    assert store.purge_expired() == 2
    assert store.get(expired.id).preview is None and store.get(approved.id).preview is None
    assert store.get(live.id).preview == "key [AWS_ACCESS_KEY_1]"  # still waiting: kept
    assert store.get(expired.id).findings == {"aws_access_key": 1}  # the record stays
    assert store.purge_expired() == 0
