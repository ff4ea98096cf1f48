"""POST /v1/feedback through the running gateway: only the requester rates, once (a new rating
replaces the old), with a reason from the documented lists and a comment stored redacted."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from passerelle.storage.feedback import DOWN_REASONS, UP_REASONS, StatsBy, feedback_stats
from passerelle.storage.keys import KeyStore
from passerelle.storage.tables import feedback

from .conftest import RunningGateway

FAKE_AWS_KEY = "AKIA2OGYBAH6STMJXYZQ"  # shaped like an access key id; not a published example


def ask(gateway: RunningGateway, model: str = "chat", key: str | None = None) -> str:
    """A model call; its request id, as the caller sees it."""
    with openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=key or gateway.key, max_retries=0
    ) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
    request_id: str = raw.headers["x-request-id"]
    return request_id


def rate(gateway: RunningGateway, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/feedback",
        headers={"authorization": f"Bearer {key or gateway.key}"},
        json=body,
        timeout=10,
    )


def stored(gateway: RunningGateway, request_id: str) -> list[Any]:
    with gateway.keys.db.read() as conn:
        return list(conn.execute(select(feedback).where(feedback.c.request_id == request_id)))


def test_rating_right_after_the_answer_is_stored_with_the_requests_context(
    gateway: RunningGateway,
) -> None:
    request_id = ask(gateway)
    # No flush: the audit writer may not have committed the request yet; the gateway waits.
    response = rate(gateway, {"request_id": request_id, "rating": "up", "reason": "helpful"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rating"] == "up" and body["reason"] == "helpful" and body["replaced"] is False
    assert body["user"] == "dev@acme.test" and body["comment"] is None
    assert response.headers["x-request-id"].startswith("req_")
    (row,) = stored(gateway, request_id)
    assert row.rating == 1 and row.actor == "dev@acme.test" and row.project == "alpha"
    assert row.model == "chat" and row.provider == "primary" and row.route_model == "gpt-4o-mini"
    assert row.request_ts_us <= row.created_us


def test_a_second_rating_replaces_the_first(gateway: RunningGateway) -> None:
    request_id = ask(gateway)
    assert rate(gateway, {"request_id": request_id, "rating": "up", "reason": "helpful"}).is_success
    second = rate(
        gateway,
        {"request_id": request_id, "rating": "down", "reason": "wrong", "comment": "it invented"},
    )
    assert second.status_code == 200 and second.json()["replaced"] is True
    (row,) = stored(gateway, request_id)
    assert (row.rating, row.reason, row.comment) == (-1, "wrong", "it invented")


def test_the_comment_is_stored_redacted(gateway: RunningGateway) -> None:
    request_id = ask(gateway)
    comment = f"It printed my key {FAKE_AWS_KEY} back; mail ana.martin@acme.fr about it."
    response = rate(
        gateway,
        {"request_id": request_id, "rating": "down", "reason": "unsafe", "comment": comment},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert FAKE_AWS_KEY not in response.text and "ana.martin" not in response.text
    assert body["redacted"] == {"aws_access_key": 1, "email": 1}
    (row,) = stored(gateway, request_id)
    assert FAKE_AWS_KEY not in row.comment and "ana.martin" not in row.comment
    assert "[REDACTED:aws_access_key]" in row.comment and "It printed my key" in row.comment
    gateway.flush_audit()
    with gateway.keys.db.read() as conn:
        dumped = [str(tuple(r)) for r in conn.execute(select(feedback))]
    assert not any(FAKE_AWS_KEY in line for line in dumped)


def test_only_the_requester_may_rate(gateway: RunningGateway) -> None:
    request_id = ask(gateway)
    keys: KeyStore = gateway.keys
    other = keys.add_user("other@acme.test")
    other_key, _ = keys.create_key(other, project="alpha")
    response = rate(
        gateway, {"request_id": request_id, "rating": "down", "reason": "wrong"}, key=other_key
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_your_request"
    assert stored(gateway, request_id) == []
    # The requester's other keys are the same person.
    second_key = gateway.new_key()
    again = rate(
        gateway, {"request_id": request_id, "rating": "down", "reason": "slow"}, key=second_key
    )
    assert again.status_code == 200


def test_unknown_and_malformed_ids_are_404_saying_what_to_do(gateway: RunningGateway) -> None:
    unknown = rate(gateway, {"request_id": "req_" + "0" * 24, "rating": "up", "reason": "other"})
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["code"] == "request_not_found" and error["type"] == "not_found_error"
    assert "retry" in error["message"] and unknown.headers["retry-after"] == "1"
    malformed = rate(gateway, {"request_id": "hello", "rating": "up", "reason": "other"})
    assert malformed.status_code == 404 and "x-request-id" in malformed.json()["error"]["message"]
    # Only model calls can be rated: listing the models is in the audit trail, but not a call.
    listing = httpx.get(
        gateway.url + "/v1/models", headers={"authorization": f"Bearer {gateway.key}"}
    )
    gateway.flush_audit()
    not_a_call = {"request_id": listing.headers["x-request-id"], "rating": "up", "reason": "other"}
    assert rate(gateway, not_a_call).status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"rating": "up", "reason": "helpful"}, "request_id"),
        ({"request_id": "REQ", "rating": "meh", "reason": "helpful"}, "rating"),
        ({"request_id": "REQ", "rating": "up", "reason": "wrong"}, "reason"),
        ({"request_id": "REQ", "rating": "down", "reason": "helpful"}, "reason"),
        ({"request_id": "REQ", "rating": "down"}, "reason"),
        ({"request_id": "REQ", "rating": "down", "reason": "slow", "comment": 3}, "comment"),
        (
            {"request_id": "REQ", "rating": "down", "reason": "slow", "comment": "x" * 2001},
            "comment",
        ),
        ({"request_id": "REQ", "rating": "up", "reason": "helpful", "stars": 5}, "stars"),
    ],
)
def test_ratings_are_validated(gateway: RunningGateway, body: dict[str, Any], param: str) -> None:
    if body.get("request_id") == "REQ":
        body = {**body, "request_id": ask(gateway)}
    response = rate(gateway, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_every_documented_reason_is_accepted(gateway: RunningGateway) -> None:
    request_id = ask(gateway)
    for rating, reasons in (("up", UP_REASONS), ("down", DOWN_REASONS)):
        for reason in reasons:
            response = rate(gateway, {"request_id": request_id, "rating": rating, "reason": reason})
            assert response.status_code == 200, (rating, reason, response.text)


def test_admin_keys_and_missing_keys_cannot_rate(gateway: RunningGateway) -> None:
    request_id = ask(gateway)
    body = {"request_id": request_id, "rating": "up", "reason": "helpful"}
    as_admin = rate(gateway, body, key=gateway.admin_key)
    assert as_admin.status_code == 403
    assert as_admin.json()["error"]["code"] == "inference_key_required"
    assert httpx.post(gateway.url + "/v1/feedback", json=body).status_code == 401


def test_admin_lists_and_summarises_feedback(gateway: RunningGateway) -> None:
    with gateway.keys.db.begin() as conn:
        conn.execute(feedback.delete())
    ids = [ask(gateway) for _ in range(3)] + [ask(gateway, model="azure-chat")]
    for request_id, rating, reason in zip(
        ids, ["up", "down", "down", "up"], ["helpful", "wrong", "slow", "time_saved"], strict=True
    ):
        assert rate(gateway, {"request_id": request_id, "rating": rating, "reason": reason})

    headers = {"authorization": f"Bearer {gateway.admin_key}"}
    listed = httpx.get(gateway.url + "/admin/feedback", headers=headers, params={"model": "chat"})
    assert listed.status_code == 200
    assert {item["request_id"] for item in listed.json()["data"]} == set(ids[:3])
    downs = httpx.get(
        gateway.url + "/admin/feedback",
        headers=headers,
        params={"rating": "down", "project": "alpha", "since": "2000-01-01"},
    ).json()["data"]
    assert {item["request_id"] for item in downs} == set(ids[1:3])
    future = httpx.get(
        gateway.url + "/admin/feedback", headers=headers, params={"since": "2999-01-01"}
    )
    assert future.json()["data"] == []
    bad_day = httpx.get(gateway.url + "/admin/feedback", headers=headers, params={"since": "May"})
    assert bad_day.status_code == 400

    summary = httpx.get(gateway.url + "/admin/feedback/summary", headers=headers).json()["data"]
    assert summary == [
        {"model": "azure-chat", "up": 1, "down": 0, "total": 1, "negative_ratio": 0.0},
        {"model": "chat", "up": 1, "down": 2, "total": 3, "negative_ratio": 0.6667},
    ]
    routes = httpx.get(
        gateway.url + "/admin/feedback/summary", headers=headers, params={"by": "route"}
    ).json()["data"]
    assert {(r["model"], r["provider"], r["route_model"]) for r in routes} == {
        ("azure-chat", "azure", "my-deployment"),
        ("chat", "primary", "gpt-4o-mini"),
    }
    stats = feedback_stats(gateway.keys.db, by=StatsBy.ROUTE, model="chat")
    assert [(s.up, s.down, round(s.negative_ratio, 3)) for s in stats] == [(1, 2, 0.667)]
    inference = httpx.get(
        gateway.url + "/admin/feedback", headers={"authorization": f"Bearer {gateway.key}"}
    )
    assert inference.status_code == 403
