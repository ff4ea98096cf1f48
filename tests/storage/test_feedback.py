"""Ratings in the database: found through the audit trail, one per request, aggregated per model
or per route for canary gates, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import append_now
from passerelle.storage.db import Database, now_us
from passerelle.storage.feedback import (
    FeedbackStore,
    InvalidFeedback,
    NotYourRequest,
    RequestNotRecorded,
    StatsBy,
    check_comment,
    check_rating,
    feedback_stats,
)


def request_record(
    request_id: str,
    actor: str = "ana@acme.test",
    model: str | None = "chat",
    provider: str = "openai",
    route_model: str = "gpt-4o",
) -> AuditRecord:
    return AuditRecord(
        record_id=request_id,
        kind="request",
        ts_us=now_us(),
        actor=actor,
        team=None,
        project="alpha",
        client="acme",
        model=model,
        provider=provider,
        status=200,
        details={"route_model": route_model},
    )


def rate(store: FeedbackStore, request_id: str, rating: int, reason: str = "other") -> None:
    store.rate(
        request_id, actor="ana@acme.test", key_id="k1", rating=rating, reason=reason, comment=None
    )


def test_rating_copies_the_requests_context_and_replaces(db: Database) -> None:
    append_now(db, [request_record("req_1")])
    store = FeedbackStore(db)
    first, replaced = store.rate(
        "req_1", actor="ANA@acme.test", key_id="k1", rating=1, reason="helpful", comment=None
    )
    assert not replaced and first.rating_name == "up"
    assert (first.project, first.model, first.provider, first.route_model) == (
        "alpha",
        "chat",
        "openai",
        "gpt-4o",
    )
    second, replaced = store.rate(
        "req_1", actor="ana@acme.test", key_id="k2", rating=-1, reason="wrong", comment="no"
    )
    assert replaced and second.id == first.id
    assert (second.rating, second.reason, second.comment, second.key_id) == (
        -1,
        "wrong",
        "no",
        "k2",
    )
    assert [f.id for f in store.list()] == [first.id]


def test_only_recorded_model_calls_of_the_caller_are_rated(db: Database) -> None:
    append_now(
        db,
        [
            request_record("req_bob", actor="bob@acme.test"),
            request_record("req_models", model=None),
        ],
    )
    store = FeedbackStore(db)
    with pytest.raises(NotYourRequest):
        rate(store, "req_bob", 1)
    with pytest.raises(RequestNotRecorded):
        rate(store, "req_models", 1)
    with pytest.raises(RequestNotRecorded):
        rate(store, "req_unknown", 1)
    assert store.list() == []


def test_stats_per_model_and_per_route(db: Database) -> None:
    append_now(
        db,
        [
            request_record("req_a"),
            request_record("req_b"),
            request_record("req_c", route_model="gpt-4o-2026"),
            request_record("req_d", model="embed"),
        ],
    )
    store = FeedbackStore(db)
    started = now_us()
    rate(store, "req_a", 1)
    rate(store, "req_b", -1)
    rate(store, "req_c", -1)
    rate(store, "req_d", 1)
    by_model = {s.model: (s.up, s.down, s.negative_ratio) for s in feedback_stats(db)}
    assert by_model == {"chat": (1, 2, pytest.approx(2 / 3)), "embed": (1, 0, 0.0)}
    by_route = feedback_stats(db, by=StatsBy.ROUTE, model="chat", since_us=started)
    assert [(s.route_model, s.up, s.down) for s in by_route] == [
        ("gpt-4o", 1, 1),
        ("gpt-4o-2026", 0, 1),
    ]
    assert feedback_stats(db, since_us=now_us() + 1_000_000) == []
    assert feedback_stats(db, project="beta") == []
    assert len(FeedbackStore(db).list(model="chat", rating=-1)) == 2


def test_rating_and_comment_checks() -> None:
    assert check_rating("down", "off_policy") == (-1, "off_policy")
    with pytest.raises(InvalidFeedback, match="time_saved"):
        check_rating("up", "wrong")
    assert check_comment("  ") is None
    with pytest.raises(InvalidFeedback):
        check_comment("x" * 2001)
