"""Bad input and failing upstreams: a clear error in OpenAI's shape, and always an audit record."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from passerelle.audit.export import iter_records
from passerelle.storage.db import now_us

from .conftest import UPSTREAM_KEY, Fake, RunningGateway

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


def post(
    gateway: RunningGateway,
    body: Any = None,
    *,
    key: str | None = "default",
    path: str = "/v1/chat/completions",
    **kwargs: Any,
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers.setdefault("authorization", f"Bearer {gateway.key if key == 'default' else key}")
    if body is not None:
        kwargs["json"] = body
    return httpx.post(gateway.url + path, headers=headers, timeout=30, **kwargs)


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert error["message"] and "Traceback" not in error["message"]
    assert response.headers["x-request-id"].startswith("req_")
    return dict(error)


def audited(gateway: RunningGateway, response: httpx.Response) -> dict[str, Any]:
    gateway.flush_audit()
    request_id = response.headers["x-request-id"]
    for record in iter_records(gateway.keys.db):
        if record["record_id"] == request_id:
            return record
    raise AssertionError(f"{request_id} not audited")


@pytest.fixture(autouse=True)
def _breakers_closed(gateway: RunningGateway) -> None:
    """Failures queued by one test must not leave a circuit breaker open for the next."""
    gateway.app.state.gateway.breakers.reset()


# -- authentication ----------------------------------------------------------------------------


def test_missing_key(gateway: RunningGateway) -> None:
    response = post(gateway, CHAT, key=None)
    error = assert_openai_error(response, 401, "missing_api_key")
    assert "Authorization: Bearer" in error["message"]
    assert audited(gateway, response)["status"] == 401


def test_wrong_key(gateway: RunningGateway) -> None:
    response = post(gateway, CHAT, key="psk-" + "x" * 43)
    assert_openai_error(response, 401, "invalid_api_key")
    record = audited(gateway, response)
    assert record["actor"] is None and record["status"] == 401


def test_revoked_key_stops_working_immediately(gateway: RunningGateway) -> None:
    key = gateway.new_key()
    assert post(gateway, CHAT, key=key).status_code == 200
    gateway.keys.revoke_key(key[:12])
    response = post(gateway, CHAT, key=key)
    error = assert_openai_error(response, 401, "revoked_api_key")
    assert "revoked" in error["message"]
    record = audited(gateway, response)
    assert record["details"]["key_prefix"] == key[:12]
    assert key not in str(record)


def test_expired_key(gateway: RunningGateway) -> None:
    key = gateway.new_key(expires_at=now_us() - 1)
    assert_openai_error(post(gateway, CHAT, key=key), 401, "expired_api_key")


def test_every_non_public_path_needs_a_key(gateway: RunningGateway) -> None:
    for method, path in [
        ("GET", "/v1/models"),
        ("GET", "/admin/keys"),
        ("GET", "/no/such/path"),
        ("POST", "/v1/embeddings"),
    ]:
        response = httpx.request(method, gateway.url + path)
        assert response.status_code == 401, path
    assert httpx.get(gateway.url + "/healthz").json()["status"] == "ok"
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["config_hash"] == gateway.config.hash


def test_inference_key_cannot_administer(gateway: RunningGateway) -> None:
    response = httpx.get(
        gateway.url + "/admin/keys", headers={"authorization": f"Bearer {gateway.key}"}
    )
    assert_openai_error(response, 403, "admin_required")


# -- bad requests ------------------------------------------------------------------------------


def test_malformed_json(gateway: RunningGateway) -> None:
    response = post(
        gateway,
        content=b'{"model": "chat", "messages": [',
        headers={"content-type": "application/json"},
    )
    error = assert_openai_error(response, 400, "invalid_json")
    assert "not valid JSON" in error["message"]
    assert audited(gateway, response)["status"] == 400


def test_wrong_content_type(gateway: RunningGateway) -> None:
    response = post(
        gateway,
        content=b"model=chat",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    error = assert_openai_error(response, 415, "unsupported_content_type")
    assert "application/json" in error["message"]


def test_body_too_large(gateway: RunningGateway) -> None:
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = post(gateway, big)
    error = assert_openai_error(response, 413, "request_too_large")
    assert "65536" in error["message"]
    assert audited(gateway, response)["status"] == 413


def test_missing_fields(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, {"messages": []}), 400, "missing_model")
    assert_openai_error(post(gateway, {"model": "chat", "messages": []}), 400, "invalid_messages")
    assert_openai_error(
        post(gateway, {"model": "embed"}, path="/v1/embeddings"), 400, "invalid_input"
    )
    assert_openai_error(post(gateway, [1, 2]), 400, "invalid_json")


def test_unknown_alias_lists_what_is_available(gateway: RunningGateway) -> None:
    response = post(gateway, {**CHAT, "model": "gpt-17"})
    error = assert_openai_error(response, 404, "model_not_found")
    assert "chat" in error["message"] and error["param"] == "model"
    assert audited(gateway, response)["model"] == "gpt-17"


def test_model_not_allowed_for_project(gateway: RunningGateway) -> None:
    response = post(gateway, {**CHAT, "model": "secret-model"})
    error = assert_openai_error(response, 403, "model_not_allowed")
    assert "alpha" in error["message"]
    record = audited(gateway, response)
    assert record["status"] == 403 and record["details"]["blocked_by"] == "model_access"


def test_unknown_endpoint_and_method(gateway: RunningGateway) -> None:
    assert_openai_error(post(gateway, CHAT, path="/v1/nothing"), 404, "not_found")
    response = httpx.get(
        gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {gateway.key}"}
    )
    assert_openai_error(response, 405, "method_not_allowed")


def test_upstream_bad_request_passes_through(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults(
        {
            "status": 400,
            "body": {
                "error": {
                    "message": "bad temperature",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": None,
                }
            },
        }
    )
    response = post(gateway, CHAT)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "bad temperature"
    assert len(primary.requests()) == 1  # a caller error is not retried


# -- resilience --------------------------------------------------------------------------------


def test_retry_on_503_then_success(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults({"status": 503}, {"status": 502})
    response = post(gateway, CHAT)
    assert response.status_code == 200
    assert response.headers["x-passerelle-route"] == "primary"
    assert len(primary.requests()) == 3
    attempts = audited(gateway, response)["details"]["attempts"]
    assert [a["status"] for a in attempts] == [503, 502, 200]


def test_fallback_to_next_route(gateway: RunningGateway, primary: Fake, backup: Fake) -> None:
    primary.faults({"status": 500}, {"status": 500}, {"status": 500})
    response = post(gateway, CHAT)
    assert response.status_code == 200
    assert response.headers["x-passerelle-route"] == "backup"
    assert backup.requests()[-1]["body"]["model"] == "gpt-4o"
    record = audited(gateway, response)
    assert record["provider"] == "backup"
    assert [a["provider"] for a in record["details"]["attempts"]] == ["primary"] * 3 + ["backup"]


def test_retry_after_is_honoured(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults({"status": 429, "retry_after": 1})
    response = post(gateway, CHAT)
    assert response.status_code == 200
    attempts = audited(gateway, response)["details"]["attempts"]
    assert attempts[0]["status"] == 429 and attempts[1]["status"] == 200
    assert audited(gateway, response)["details"]["latency_ms"] >= 1000


def test_upstream_auth_failure_falls_back(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults({"status": 401})
    response = post(gateway, CHAT)
    assert response.status_code == 200 and response.headers["x-passerelle-route"] == "backup"


def test_every_route_failing(gateway: RunningGateway, primary: Fake, backup: Fake) -> None:
    primary.faults(*[{"status": 503}] * 3)
    backup.faults(*[{"status": 503}] * 2)
    response = post(gateway, CHAT)
    error = assert_openai_error(response, 502, "upstream_error")
    assert "primary" in error["message"] and "backup" in error["message"]
    assert UPSTREAM_KEY not in response.text
    assert audited(gateway, response)["status"] == 502


def test_unreachable_upstream(gateway: RunningGateway) -> None:
    response = post(gateway, {**CHAT, "model": "unreachable"})
    error = assert_openai_error(response, 503, "upstream_unreachable")
    assert "dead" in error["message"]
    record = audited(gateway, response)
    assert [a["error"] for a in record["details"]["attempts"]] == ["connect_failed"] * 2


def test_upstream_timeout(gateway: RunningGateway, primary: Fake, backup: Fake) -> None:
    primary.faults(*[{"kind": "timeout", "seconds": 3}] * 3)
    backup.faults(*[{"kind": "timeout", "seconds": 3}] * 2)
    response = post(gateway, CHAT)
    # The backup route uses the default read timeout (120 s) and answers after 3 s.
    assert response.status_code == 200
    assert response.headers["x-passerelle-route"] == "backup"
    errors = [a["error"] for a in audited(gateway, response)["details"]["attempts"]]
    assert errors[:3] == ["timeout"] * 3


def test_disconnect_is_retried(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults({"kind": "disconnect"})
    response = post(gateway, CHAT)
    assert response.status_code == 200
    assert audited(gateway, response)["details"]["attempts"][0]["error"] == "disconnected"


def test_stream_cut_midway_ends_with_error_event(gateway: RunningGateway, primary: Fake) -> None:
    primary.faults({"kind": "stream_cut", "after_chunks": 2})
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
    stream = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "a long answer please"}], stream=True
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "ended before it was complete" in str(info.value)
    record = audited(gateway, httpx.Response(200, headers=dict(stream.response.headers)))
    assert record["status"] == 502
    assert record["details"]["error_code"].startswith("upstream_stream")
