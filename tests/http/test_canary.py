"""Canary roll-outs end to end: a running gateway, its background evaluator, fake upstreams
with fault injection, the official OpenAI SDK, feedback and the admin API.

The new versions run on their own fake (``fresh``), whose request log tells exactly which
requests reached a canary; the stable routes run on the shared ``primary`` fake. Stages are
made short (tenths of a second, a handful of requests) so that whole roll-outs run in seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from passerelle.audit.export import iter_records
from passerelle.audit.writer import append_now
from passerelle.config import load_config
from passerelle.core.context import KeyScope
from passerelle.http.app import create_app
from passerelle.pipeline.canary import drawn_for_canary
from passerelle.pipeline.canary_evaluator import ManualAction, act
from passerelle.storage.canary import CanaryStore, Rollout, RolloutStatus
from passerelle.storage.db import Database
from passerelle.testing.fake_openai import FakeSettings
from passerelle.testing.fake_openai import create_app as create_fake
from passerelle.testing.server import serve_in_thread

from .conftest import UPSTREAM_KEY, Fake

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
providers:
  primary:
    kind: openai_compatible
    base_url: {primary}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: on-prem
    clearance: restricted
  fresh:
    kind: openai_compatible
    base_url: {fresh}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: on-prem
    clearance: internal
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 5}}
models:
  healthy:
    routes: [{{provider: primary, model: stable-healthy}}]
    canary:
      routes: [{{provider: fresh, model: canary-healthy}}]
      stages: [20, 50, 100]
      min_duration_s: 0.3
      min_requests: 4
  failing:
    routes: [{{provider: primary, model: stable-failing}}]
    canary:
      routes: [{{provider: fresh, model: canary-failing}}]
      stages: [50, 100]
      min_duration_s: 60
      min_requests: 5
  disliked:
    routes: [{{provider: primary, model: stable-disliked}}]
    canary:
      routes: [{{provider: fresh, model: canary-disliked}}]
      stages: [50, 100]
      min_duration_s: 600
      min_requests: 1000
      gates: {{max_negative_ratio: 0.5, min_ratings: 4}}
  split:
    routes: [{{provider: primary, model: stable-split}}]
    canary:
      routes: [{{provider: fresh, model: canary-split}}]
      stages: [25, 100]
      min_duration_s: 3600
      min_requests: 100000
  cleared:
    routes: [{{provider: primary, model: stable-cleared}}]
    canary:
      routes: [{{provider: fresh, model: canary-cleared}}]
      stages: [100]
      min_duration_s: 3600
      min_requests: 100000
  manual:
    routes: [{{provider: primary, model: stable-manual}}]
    canary:
      start: manual
      routes: [{{provider: fresh, model: canary-manual}}]
      stages: [10, 100]
      min_duration_s: 3600
      min_requests: 100000
teams:
  web: {{name: Web}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
"""


@dataclass
class Canaried:
    url: str
    app: Any
    key: str
    admin_key: str
    fresh: Fake
    config_path: Path
    sdk: openai.OpenAI = field(init=False)

    def __post_init__(self) -> None:
        self.sdk = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    @property
    def store(self) -> CanaryStore:
        store: CanaryStore = self.app.state.gateway.canary_board.store
        return store

    def chat(self, model: str, text: str = "hello") -> str:
        """A model call that must succeed; its request id."""
        raw = self.sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
        assert raw.http_response.status_code == 200
        request_id: str = raw.headers["x-request-id"]
        return request_id

    def stream(self, model: str) -> str:
        """A streamed model call that must succeed; its request id."""
        raw = self.sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hello"}], stream=True
        )
        assert raw.http_response.status_code == 200
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
        )
        assert text
        request_id: str = raw.headers["x-request-id"]
        return request_id

    def records(self, kind: str = "request") -> list[dict[str, Any]]:
        assert self.app.state.audit_writer.flush(10.0)
        return list(iter_records(self.app.state.gateway.keys.db, kind=kind))

    def by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        wanted = set(ids)
        return {r["record_id"]: r for r in self.records() if r["record_id"] in wanted}

    def transitions(self, alias: str) -> list[dict[str, Any]]:
        return [
            {**r["details"], "actor": r["actor"]}
            for r in self.records("admin")
            if r["details"]["target"] == f"model:{alias}"
            and str(r["details"]["action"]).startswith("canary.")
        ]

    def transitions_until(
        self, alias: str, action: str, timeout: float = 5
    ) -> list[dict[str, Any]]:
        """The transitions, once ``action`` is among them: the instance that makes a transition
        hands its record to the audit writer right after the row changes."""
        deadline = time.monotonic() + timeout
        while True:
            steps = self.transitions(alias)
            if any(s["action"] == action for s in steps) or time.monotonic() > deadline:
                return steps
            time.sleep(0.02)

    def reached_canary(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.fresh.requests() if r["body"].get("model") == model]

    def admin(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key or self.admin_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def wait_for(self, alias: str, *statuses: RolloutStatus, timeout: float = 10) -> Rollout:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.store.current(alias)
            if current is not None and current.status in statuses:
                return current
            time.sleep(0.02)
        raise AssertionError(f"{alias} did not reach {statuses}: {self.store.current(alias)}")


@pytest.fixture(scope="module")
def fresh() -> Iterator[Fake]:
    with serve_in_thread(create_fake(FakeSettings(request_log_size=5000))) as url:
        yield Fake(url)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, primary: Fake, fresh: Fake) -> Iterator[Canaried]:
    data = Path(tmp_path_factory.mktemp("canary"))
    path = data / "passerelle.yaml"
    path.write_text(CONFIG.format(data=data, primary=primary.url, fresh=fresh.url))
    app = create_app(load_config(path), environ={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    with serve_in_thread(app) as url:
        keys = app.state.gateway.keys
        user = keys.add_user("dev@acme.test", name="Dev", team="web", profile="dev")
        key, _ = keys.create_key(user, project="alpha")
        admin_key, _ = keys.create_key(user, project=None, scope=KeyScope.ADMIN)
        canaried = Canaried(url, app, key, admin_key, fresh, path)
        try:
            yield canaried
        finally:
            canaried.sdk.close()


@pytest.fixture(autouse=True)
def _clean_fresh(fresh: Fake) -> None:
    fresh.reset()


def test_a_healthy_canary_is_promoted_stage_by_stage(gw: Canaried) -> None:
    gw.wait_for("healthy", RolloutStatus.RUNNING)
    started = time.monotonic()
    ids: list[str] = []
    while gw.store.current("healthy").status is not RolloutStatus.PROMOTED:  # type: ignore[union-attr]
        assert time.monotonic() - started < 60, "not promoted within a minute"
        ids.append(gw.stream("healthy") if len(ids) % 4 == 3 else gw.chat("healthy"))
    elapsed = time.monotonic() - started

    steps = gw.transitions_until("healthy", "canary.promote")
    assert [s["action"] for s in steps] == [
        "canary.start",
        "canary.advance",
        "canary.advance",
        "canary.promote",
    ]
    assert {s["actor"] for s in steps} == {"gateway"}
    assert [(s["from_percent"], s["percent"]) for s in steps] == [
        (None, 20),
        (20, 50),
        (50, 100),
        (100, 100),
    ]
    for step in steps[1:]:
        figures = step["figures"]
        assert figures["decision"] == "advance" and figures["elapsed_s"] >= 0.3
        assert figures["canary"]["requests"] >= 4 and figures["canary"]["errors"] == 0
        assert {g["state"] for g in figures["gates"]} <= {"pass", "waiting", "skipped"}
    assert steps[-1]["rollout_status"] == "promoted"
    # At 100 % there are no stable requests: the relative gates used the 50 % stage's figures.
    assert steps[-1]["figures"]["reference"] == "previous_stage"

    # Every request of the roll-out says where it went, and the canary ones reached the canary.
    records = gw.by_id(ids)
    canary_ids = [i for i, r in records.items() if r["details"].get("canary")]
    assert len(gw.reached_canary("canary-healthy")) == len(canary_ids)
    streamed = 0
    for record in records.values():
        details = record["details"]
        if "rollout" in details:
            assert record["provider"] == ("fresh" if details["canary"] else "primary")
            assert record["status"] == 200
            streamed += details["stream"] and details["canary"]
    assert streamed, "some canary requests were streamed"
    print(f"healthy canary promoted through 3 stages in {elapsed:.2f} s, {len(ids)} requests")


def test_a_failing_canary_is_rolled_back_and_callers_never_see_it(gw: Canaried) -> None:
    gw.wait_for("failing", RolloutStatus.RUNNING)
    gw.fresh.faults(*[{"status": 500}] * 400, match_model="canary-failing")
    started = time.monotonic()
    ids: list[str] = []
    while gw.store.current("failing").status is RolloutStatus.RUNNING:  # type: ignore[union-attr]
        assert time.monotonic() - started < 30, "not rolled back within 30 s"
        ids.append(gw.chat("failing"))  # raises unless the caller got a 200
    elapsed = time.monotonic() - started

    steps = gw.transitions_until("failing", "canary.rollback")
    (rollback,) = [s for s in steps if s["action"] == "canary.rollback"]
    figures = rollback["figures"]
    assert figures["decision"] == "rollback" and figures["canary"]["requests"] >= 5
    assert figures["canary"]["error_rate"] == 1.0 and figures["stable"]["errors"] == 0
    assert "error_rate 1 > 0.05" in rollback["reason"] and rollback["percent"] == 0
    assert rollback["rollout_status"] == "rolled_back"

    records = gw.by_id(ids)
    sent = [r for r in records.values() if r["details"].get("canary")]
    assert sent, "some requests went to the canary first"
    for record in sent:
        # The canary failed; its stable fallback answered the caller.
        assert record["status"] == 200 and record["provider"] == "primary"
        assert record["details"]["attempts"][0]["provider"] == "fresh"
        assert record["details"]["attempts"][-1]["provider"] == "primary"

    # Rolled back: nothing reaches the canary any more.
    before = len(gw.reached_canary("canary-failing"))
    for _ in range(20):
        gw.chat("failing")
    assert len(gw.reached_canary("canary-failing")) == before
    print(f"failing canary rolled back after {len(ids)} requests, {elapsed:.2f} s")


def test_negative_feedback_past_its_threshold_rolls_back(gw: Canaried) -> None:
    gw.wait_for("disliked", RolloutStatus.RUNNING)
    canary_ids: list[str] = []
    stable_ids: list[str] = []
    while len(canary_ids) < 7 or len(stable_ids) < 2:
        request_id = gw.chat("disliked")
        records = gw.by_id([request_id])
        (canary_ids if records[request_id]["details"]["canary"] else stable_ids).append(request_id)

    def rate(request_id: str, rating: str) -> None:
        reason = "helpful" if rating == "up" else "wrong"
        response = httpx.post(
            gw.url + "/v1/feedback",
            headers={"authorization": f"Bearer {gw.key}"},
            json={"request_id": request_id, "rating": rating, "reason": reason},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def still_running(seconds: float) -> None:
        time.sleep(seconds)
        current = gw.store.current("disliked")
        assert current is not None and current.status is RolloutStatus.RUNNING

    for request_id in stable_ids[:2]:
        rate(request_id, "down")  # the stable routes' ratings do not count
    for request_id in canary_ids[:3]:
        rate(request_id, "up")
    rate(canary_ids[3], "down")
    still_running(1.0)  # 4 ratings, 25 % down: under the 50 % limit
    for request_id in canary_ids[4:7]:
        rate(request_id, "down")
    rated = time.monotonic()
    gw.wait_for("disliked", RolloutStatus.ROLLED_BACK)
    elapsed = time.monotonic() - rated

    steps = gw.transitions_until("disliked", "canary.rollback")
    (rollback,) = [s for s in steps if s["action"] == "canary.rollback"]
    feedback = rollback["figures"]["feedback"]
    assert (feedback["up"], feedback["down"], feedback["ratings"]) == (3, 4, 7)
    assert "negative_feedback 0.571429 > 0.5 (n=7)" in rollback["reason"]
    gates = {g["gate"]: g["state"] for g in rollback["figures"]["gates"]}
    assert gates["negative_feedback"] == "fail" and gates["error_rate"] == "waiting"
    print(f"disliked canary rolled back {elapsed:.2f} s after the rating that tipped it")


def test_the_split_is_the_stage_share_request_by_request(gw: Canaried) -> None:
    gw.wait_for("split", RolloutStatus.RUNNING)
    n = 400
    ids = [gw.chat("split") for _ in range(n)]
    records = gw.by_id(ids)
    assert len(records) == n
    drawn = [i for i in ids if drawn_for_canary(i, 2500)]
    for request_id, record in records.items():
        details = record["details"]
        expected = request_id in drawn
        assert details["rollout"]["arm"] == ("canary" if expected else "stable")
        assert details["canary"] is expected and details["rollout"]["percent"] == 25
        assert record["provider"] == ("fresh" if expected else "primary")
    # Exactly the requests drawn reached the new version.
    assert len(gw.reached_canary("canary-split")) == len(drawn)
    # In aggregate, the share is 25 % within 4 standard deviations of a binomial draw
    # (n = 400: sigma = 8.7 requests, so 100 +- 35; a correct split fails this once in 16 000).
    sigma = math.sqrt(n * 0.25 * 0.75)
    assert abs(len(drawn) - n * 0.25) < 4 * sigma
    print(f"split at 25 %: {len(drawn)}/{n} = {len(drawn) / n:.1%} to the canary")


def test_a_canary_route_never_receives_data_it_is_not_cleared_for(gw: Canaried) -> None:
    gw.wait_for("cleared", RolloutStatus.RUNNING)  # at 100 %: every request drawn for it
    plain = gw.chat("cleared", "hello there")
    personal = [
        gw.chat("cleared", f"Write to ana.martin{i}@acme.fr about the invoice") for i in range(5)
    ]
    received = [str(r["body"]) for r in gw.reached_canary("canary-cleared")]
    assert len(received) == 1 and "hello there" in received[0]
    assert not any("ana.martin" in text for text in received)
    records = gw.by_id([plain, *personal])
    assert records[plain]["details"]["canary"] is True
    for request_id in personal:
        details = records[request_id]["details"]
        assert details["rollout"]["arm"] == "canary" and details["canary"] is False
        assert details["data_class"] == "confidential"
        assert records[request_id]["provider"] == "primary"
        assert [a["provider"] for a in details["attempts"]] == ["primary"]


def test_decisions_by_hand_through_the_admin_api(gw: Canaried) -> None:
    listed = gw.admin("GET", "/admin/canaries")
    assert listed.status_code == 200, listed.text
    entries = {e["model"]: e for e in listed.json()["data"]}
    assert set(entries) == {"healthy", "failing", "disliked", "split", "cleared", "manual"}
    assert entries["manual"]["status"] == "not_started"
    assert gw.admin("GET", "/admin/canaries", key=gw.key).status_code == 403
    assert gw.admin("POST", "/admin/canaries/manual/pause").status_code == 404
    assert gw.admin("POST", "/admin/canaries/manual/jump").status_code == 404
    refused = gw.admin(
        "POST", "/admin/canaries/manual/start", json={"reason": "ask ana.martin@acme.fr"}
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "reason"

    def do(action: str, **body: Any) -> dict[str, Any]:
        response = gw.admin("POST", f"/admin/canaries/manual/{action}", json=body or None)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    started = do("start", reason="new version approved")
    assert (started["status"], started["percent"], started["stage"]) == ("running", 10, 0)
    shown = gw.admin("GET", "/admin/canaries/manual").json()
    assert shown["status"] == "running" and len(shown["history"]) == 1
    assert do("pause")["status"] == "paused"
    assert do("resume")["status"] == "running"
    assert do("promote")["percent"] == 100
    promoted = do("promote", full=True)
    assert promoted["status"] == "promoted"
    for _ in range(3):
        gw.chat("manual")
    assert len(gw.reached_canary("canary-manual")) == 3

    # Rolled back by another process (the command line): this gateway follows within the
    # change counter's polling interval.
    other = Database(gw.app.state.gateway.keys.db.url)
    try:
        config = load_config(gw.config_path)
        _, record = act(config, CanaryStore(other), "manual", ManualAction.ROLLBACK, by="cli:ops")
        append_now(other, [record])
    finally:
        other.dispose()
    changed = time.monotonic()
    board = gw.app.state.gateway.canary_board
    while board.snapshot.current["manual"].status is not RolloutStatus.ROLLED_BACK:
        assert time.monotonic() - changed < 2
        time.sleep(0.005)
    propagated = time.monotonic() - changed
    for _ in range(3):
        gw.chat("manual")
    assert len(gw.reached_canary("canary-manual")) == 3

    again = gw.admin("POST", "/admin/canaries/manual/rollback")
    assert again.status_code == 400 and again.json()["error"]["code"] == "conflict"
    steps = gw.transitions("manual")
    assert [(s["action"], s["rollout_status"]) for s in steps] == [
        ("canary.start", "running"),
        ("canary.pause", "paused"),
        ("canary.resume", "running"),
        ("canary.advance", "running"),
        ("canary.promote", "promoted"),
        ("canary.rollback", "rolled_back"),
    ]
    assert steps[0]["reason"] == "new version approved"
    assert [s["actor"] for s in steps] == ["dev@acme.test"] * 5 + ["cli:ops"]
    assert steps[1]["figures"]["decision"] == "manual"
    print(f"a rollback made by another process applied here after {propagated * 1000:.0f} ms")
