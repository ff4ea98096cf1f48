"""Kill switches through the running gateway: each scope refuses or reroutes as documented,
with the real OpenAI and Anthropic SDKs; set and lift through the admin API, audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from passerelle.audit.export import iter_records
from passerelle.core.context import KeyScope
from passerelle.storage.killswitch import KillSwitchBoard

from .conftest import Fake, RunningGateway

FAKE_AWS_KEY = "AKIA2OGYBAH6STMJXYZQ"  # shaped like an access key id; not a published example


def client(gateway: RunningGateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or gateway.key, max_retries=0)


def chat(gateway: RunningGateway, model: str = "chat", key: str | None = None) -> Any:
    with client(gateway, key) as sdk:
        return sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )


def admin(gateway: RunningGateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {gateway.admin_key}"}
    return httpx.request(method, gateway.url + path, headers=headers, timeout=10, **kwargs)


def kill(gateway: RunningGateway, scope: str, target: str, reason: str = "test") -> int:
    response = admin(
        gateway,
        "POST",
        "/admin/kill-switches",
        json={"scope": scope, "target": target, "reason": reason},
    )
    assert response.status_code == 201, response.text
    switch_id: int = response.json()["id"]
    return switch_id


def board(gateway: RunningGateway) -> KillSwitchBoard:
    result: KillSwitchBoard = gateway.app.state.gateway.kill_switches
    return result


@pytest.fixture(autouse=True)
def _lift_everything(gateway: RunningGateway) -> Iterator[None]:
    yield
    store = board(gateway).store
    for switch in store.list():
        store.lift(switch.id, by="test")


def test_a_killed_user_is_refused_in_the_callers_format(gateway: RunningGateway) -> None:
    switch = kill(gateway, "user", "DEV@acme.test", reason="laptop reported stolen")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gateway)
    error = refused.value
    assert error.status_code == 403
    body = error.body
    assert isinstance(body, dict) and body["code"] == "user_disabled"
    assert f"kill switch {switch}" in body["message"]
    assert "laptop reported stolen" in body["message"]
    assert error.response.headers["x-passerelle-kill-switch"] == str(switch)

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)
    with claude, pytest.raises(anthropic.PermissionDeniedError) as refused_anthropic:
        claude.messages.create(
            model="chat", max_tokens=16, messages=[{"role": "user", "content": "hello"}]
        )
    assert refused_anthropic.value.body == {
        "type": "error",
        "error": {"type": "permission_error", "message": body["message"]},
    }


def test_a_killed_project_is_refused_and_others_are_not(gateway: RunningGateway) -> None:
    switch = kill(gateway, "project", "beta", reason="client contract paused")
    beta_key = gateway.new_key(project="beta")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gateway, model="secret-model", key=beta_key)
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "project_disabled"
    assert f"kill switch {switch}" in body["message"] and "contract paused" in body["message"]
    assert chat(gateway).http_response.status_code == 200  # project alpha still served


def test_a_killed_model_is_refused_with_403_and_the_others_serve(
    gateway: RunningGateway, primary: Fake
) -> None:
    switch = kill(gateway, "model", "chat", reason="wrong answers reported, under review")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gateway)
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "model_disabled"
    assert "model 'chat'" in body["message"] and f"passerelle kill lift {switch}" in body["message"]
    assert primary.requests() == []  # refused before any provider was asked
    assert chat(gateway, model="azure-chat").http_response.status_code == 200


def test_a_killed_provider_falls_back_to_another_providers_route(
    gateway: RunningGateway, primary: Fake, backup: Fake
) -> None:
    kill(gateway, "provider", "primary", reason="provider incident")
    raw = chat(gateway)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-passerelle-route"] == "backup"
    assert primary.requests() == []
    assert backup.requests()[-1]["body"]["model"] == "gpt-4o"


def test_a_killed_provider_without_fallback_is_503_naming_the_switch(
    gateway: RunningGateway, primary: Fake
) -> None:
    switch = kill(gateway, "provider", "primary", reason="provider incident")
    with client(gateway) as sdk, pytest.raises(openai.InternalServerError) as refused:
        sdk.embeddings.create(model="embed", input="hello")
    assert refused.value.status_code == 503
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "provider_disabled"
    assert f"kill switch {switch}" in body["message"] and "provider incident" in body["message"]
    assert primary.requests() == []


def test_routes_a_kill_switch_removed_never_come_back(gateway: RunningGateway) -> None:
    """The data policy allows only the restricted-cleared route (primary) for a request with a
    secret; with primary killed, no route is left: 503 naming the switch, nothing sent."""
    switch = kill(gateway, "provider", "primary", reason="provider incident")
    with client(gateway) as sdk, pytest.raises(openai.InternalServerError) as refused:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"key {FAKE_AWS_KEY}"}]
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "no_route_left"
    assert f"kill switch {switch}" in body["message"]


def test_lifting_restores_service_and_set_and_lift_are_audited(gateway: RunningGateway) -> None:
    switch = kill(gateway, "model", "chat", reason="maintenance")
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway)
    lifted = admin(gateway, "POST", f"/admin/kill-switches/{switch}/lift")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["active"] is False and lifted.json()["lifted_by"] == "dev@acme.test"
    assert chat(gateway).http_response.status_code == 200

    again = kill(gateway, "model", "chat", reason="maintenance, again")
    assert admin(gateway, "DELETE", f"/admin/kill-switches/{again}").status_code == 200
    assert chat(gateway).http_response.status_code == 200

    listing = admin(gateway, "GET", "/admin/kill-switches", params={"all": "true"}).json()["data"]
    assert {s["id"] for s in listing} >= {switch, again}
    assert admin(gateway, "GET", "/admin/kill-switches").json()["data"] == []

    gateway.flush_audit()
    actions = [
        (r["details"]["action"], r["details"]["switch_id"], r["actor"])
        for r in iter_records(gateway.keys.db, kind="admin")
        if str(r["details"].get("action", "")).startswith("kill.")
    ]
    assert ("kill.set", switch, "dev@acme.test") in actions
    assert ("kill.lift", switch, "dev@acme.test") in actions
    assert ("kill.lift", again, "dev@acme.test") in actions


def test_a_refused_request_names_its_switch_in_the_audit_trail(gateway: RunningGateway) -> None:
    switch = kill(gateway, "model", "chat", reason="maintenance")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gateway)
    request_id = refused.value.response.headers["x-request-id"]
    gateway.flush_audit()
    record = next(r for r in iter_records(gateway.keys.db) if r["record_id"] == request_id)
    assert record["status"] == 403
    assert record["details"]["blocked_by"] == "kill_switch.model"
    assert record["details"]["kill_switches"] == [switch]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"scope": "model", "target": "nope", "reason": "x"}, 400, "target"),
        ({"scope": "provider", "target": "nope", "reason": "x"}, 400, "target"),
        ({"scope": "project", "target": "nope", "reason": "x"}, 400, "target"),
        ({"scope": "user", "target": "nobody@acme.test", "reason": "x"}, 404, None),
        ({"scope": "galaxy", "target": "chat", "reason": "x"}, 400, "scope"),
        ({"scope": "model", "target": "chat"}, 400, "reason"),
        ({"scope": "model", "target": "chat", "reason": "   "}, 400, "reason"),
        ({"scope": "model", "target": "chat", "reason": "x" * 201}, 400, "reason"),
        ({"scope": "model", "target": "chat", "reason": f"leaked {FAKE_AWS_KEY}"}, 400, "reason"),
    ],
)
def test_switches_are_validated(
    gateway: RunningGateway, body: dict[str, str], status: int, param: str | None
) -> None:
    response = admin(gateway, "POST", "/admin/kill-switches", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert FAKE_AWS_KEY not in response.text
    assert board(gateway).store.list() == []


def test_duplicates_and_bad_lifts_are_refused(gateway: RunningGateway) -> None:
    switch = kill(gateway, "model", "chat")
    duplicate = admin(
        gateway,
        "POST",
        "/admin/kill-switches",
        json={"scope": "model", "target": "chat", "reason": "again"},
    )
    assert duplicate.status_code == 400 and duplicate.json()["error"]["code"] == "conflict"
    assert f"kill switch {switch}" in duplicate.json()["error"]["message"]
    assert admin(gateway, "DELETE", f"/admin/kill-switches/{switch}").status_code == 200
    twice = admin(gateway, "DELETE", f"/admin/kill-switches/{switch}")
    assert twice.status_code == 400 and twice.json()["error"]["code"] == "conflict"
    assert admin(gateway, "DELETE", "/admin/kill-switches/999999").status_code == 404
    assert admin(gateway, "DELETE", "/admin/kill-switches/abc").status_code == 404


def test_only_admin_keys_may_set_switches(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.url + "/admin/kill-switches",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"scope": "model", "target": "chat", "reason": "x"},
    )
    assert response.status_code == 403
    assert board(gateway).store.list() == []


def test_an_admin_key_of_a_killed_user_still_administers(gateway: RunningGateway) -> None:
    """A switch on a user stops their model calls, not the admin API: an administrator can
    never lock everybody out with a switch."""
    user = gateway.keys.get_user("dev@acme.test")
    other_admin, _ = gateway.keys.create_key(user, project=None, scope=KeyScope.ADMIN)
    switch = kill(gateway, "user", "dev@acme.test", reason="test")
    response = httpx.delete(
        f"{gateway.url}/admin/kill-switches/{switch}",
        headers={"authorization": f"Bearer {other_admin}"},
    )
    assert response.status_code == 200
