"""Budgets and rate limits through a running gateway, with the real SDKs, on both backends.

Each test uses a project of its own, so that their counters never meet. The gateway runs once
with in-process counters and once with Redis: every behaviour here holds on both.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.audit.export import iter_records
from passerelle.cli.main import cli
from passerelle.config import load_config
from passerelle.core.context import KeyScope
from passerelle.http.app import create_app
from passerelle.testing.server import serve_in_thread
from tests.net import REDIS_URL, delete_redis_keys, new_redis_prefix, require_redis

from .conftest import UPSTREAM_KEY, Fake, closed_port

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
state: {state}
limits: {{alert_webhook: env:ALERT_WEBHOOK, default_output_tokens: 64}}
providers:
  primary:
    kind: openai_compatible
    base_url: {primary}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: on-prem
    clearance: restricted
models:
  chat: {{routes: [{{provider: primary, model: gpt-4o-mini}}]}}
  cheap: {{routes: [{{provider: primary, model: cheap-model}}]}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  capped: {{client: acme, models: [chat]}}
  downgrading: {{client: acme, models: [chat, cheap]}}
  limited: {{client: acme, models: [chat]}}
  tokens: {{client: acme, models: [chat]}}
  seeded: {{client: acme, models: [chat]}}
budgets:
  - {{scope: project, match: capped, period: day, soft_usd: 0.002, hard_usd: 0.005}}
  - {{scope: project, match: downgrading, period: month, soft_usd: 0, hard_usd: 10,
     action: downgrade, downgrade_to: cheap}}
  - {{scope: project, match: seeded, period: month, hard_usd: 0.003}}
  - {{scope: user, period: month, hard_usd: 100}}
rate_limits:
  - {{scope: project, match: limited, rpm: 3}}
  - {{scope: project, match: tokens, tpm: 400}}
prices:
  # 10 micro-USD a token: a request of a few dozen tokens costs a few hundred micro-USD.
  openai_compatible/gpt-4o-mini: {{input: 10000000, output: 10000000}}
  openai_compatible/cheap-model: {{input: 100000, output: 100000}}
"""


@dataclass
class Alerts:
    received: list[dict[str, Any]]


@pytest.fixture(scope="module")
def alerts() -> Iterator[tuple[str, Alerts]]:
    """A webhook receiver standing in for a chat or incident tool."""
    got = Alerts([])

    async def hook(request: Request) -> Response:
        got.received.append(await request.json())
        return Response(status_code=204)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield f"{url}/hook", got


@dataclass
class Limited:
    url: str
    app: Any
    backend: str
    prefix: str
    keys: dict[str, str]  # project -> inference key
    alerts: Alerts
    data: Path

    def flush(self) -> None:
        assert self.app.state.audit_writer.flush(10.0)

    def records(self, project: str | None = None, kind: str = "request") -> list[dict[str, Any]]:
        self.flush()
        return [
            r
            for r in iter_records(self.app.state.gateway.keys.db)
            if r["kind"] == kind and (project is None or r["project"] == project)
        ]

    def counter(self, key: str) -> int | None:
        if self.backend == "memory":
            entry = self.app.state.gateway.counters._budgets.get(key)
            return None if entry is None else int(entry[0])
        client = redis.Redis.from_url(REDIS_URL)
        try:
            value = client.get(self.prefix + key)
        finally:
            client.close()
        return None if value is None else int(value)

    def openai(self, project: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=self.keys[project], base_url=f"{self.url}/v1", max_retries=0)


def _state(backend: str, prefix: str) -> str:
    if backend == "memory":
        return "{backend: memory}"
    return f'{{backend: redis, redis_url: "{REDIS_URL}", key_prefix: "{prefix}"}}'


@pytest.fixture(scope="module", params=["memory", "redis"])
def limited(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    primary: Fake,
    alerts: tuple[str, Alerts],
) -> Iterator[Limited]:
    backend = request.param
    if backend == "redis":
        require_redis()
    prefix = new_redis_prefix()
    data = tmp_path_factory.mktemp(f"limits-{backend}")
    path = data / "passerelle.yaml"
    path.write_text(CONFIG.format(data=data, primary=primary.url, state=_state(backend, prefix)))
    hook_url, received = alerts
    received.received.clear()
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "ALERT_WEBHOOK": hook_url}
    app = create_app(load_config(path), environ=env)
    with serve_in_thread(app) as url:
        store = app.state.gateway.keys
        user = store.add_user("dev@acme.test", name="Dev", team=None, profile="dev")
        keys = {
            project: store.create_key(user, project=project)[0]
            for project in ("capped", "downgrading", "limited", "tokens", "seeded")
        }
        keys["admin"] = store.create_key(user, project=None, scope=KeyScope.ADMIN)[0]
        yield Limited(url, app, backend, prefix, keys, received, data)
    if backend == "redis":
        delete_redis_keys(prefix)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _month() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


def _eventually(check: Any, timeout: float = 3.0) -> None:
    """Settlement runs just after the answer: wait for it, briefly."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# -- budgets ---------------------------------------------------------------------------------


def test_a_hard_cap_holds_and_the_counter_matches_the_ledger(limited: Limited) -> None:
    client = limited.openai("capped")
    answered = 0
    refused: openai.RateLimitError | None = None
    for i in range(200):
        try:
            if i % 2:
                stream = client.chat.completions.create(
                    model="chat",
                    messages=[{"role": "user", "content": f"stream number {i}"}],
                    max_tokens=40,
                    stream=True,
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                client.chat.completions.create(
                    model="chat",
                    messages=[{"role": "user", "content": f"question number {i}"}],
                    max_tokens=40,
                )
            answered += 1
        except openai.RateLimitError as exc:
            refused = exc
            break
    assert refused is not None, "the cap never refused a request"
    assert answered >= 3
    error = refused.body
    assert isinstance(error, dict)
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert "project 'capped'" in error["message"] and "0.005000 USD cap" in error["message"]
    assert refused.response.headers["x-passerelle-budget"] == "project:capped/day"

    records = limited.records("capped")
    spent = sum(r["cost_micro_usd"] for r in records)
    assert 0 < spent <= 5_000
    assert sum(1 for r in records if r["status"] == 200) == answered
    assert all(
        "project:capped/day" in r["details"]["budgets"] for r in records if r["status"] == 200
    )
    key = f"budget:project:capped:capped:{_today()}"
    _eventually(lambda: _equal(limited.counter(key), spent))

    # One alert per threshold, in the audit trail and through the webhook. (These two ask for
    # more output than the refused one did: their reservation cannot fit either.)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "again"}], max_tokens=400
            )
    alerts = [
        r["details"]
        for r in limited.records(kind="admin")
        if r["details"]["target"] == "project:capped/day"
    ]
    assert sorted(a["action"] for a in alerts) == ["budget.hard", "budget.soft"]
    _eventually(
        lambda: _equal(
            sorted(
                a["event"] for a in limited.alerts.received if a["budget"] == "project:capped/day"
            ),
            ["budget.hard", "budget.soft"],
        )
    )
    soft = next(a for a in limited.alerts.received if a["event"] == "budget.soft")
    assert soft["threshold_usd"] == "0.002000" and soft["name"] == "capped"


def test_the_admin_api_and_the_cli_show_where_budgets_stand(limited: Limited) -> None:
    headers = {"authorization": f"Bearer {limited.keys['admin']}"}
    status = httpx.get(f"{limited.url}/admin/budgets", headers=headers)
    assert status.status_code == 200, status.text
    rows = {(r["budget"], r["name"]): r for r in status.json()["data"]}
    capped = rows[("project:capped/day", "capped")]
    assert capped["state"] == "soft"  # spent is under the cap by less than one reservation
    assert capped["hard_usd"] == "0.005000" and capped["period"] == _today()
    assert 40 < capped["used_percent"] <= 100
    mine = rows[("user:*/month", "dev@acme.test")]
    assert mine["state"] == "ok"
    alerts = httpx.get(f"{limited.url}/admin/budgets/alerts", headers=headers).json()["data"]
    levels = sorted(a["level"] for a in alerts if a["budget"] == "project:capped/day")
    assert levels == ["hard", "soft"]
    refused = httpx.get(
        f"{limited.url}/admin/budgets",
        headers={"authorization": f"Bearer {limited.keys['capped']}"},
    )
    assert refused.status_code == 403

    limited.flush()
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "ALERT_WEBHOOK": "http://127.0.0.1:1/"}
    config = str(limited.data / "passerelle.yaml")
    shown = CliRunner().invoke(cli, ["-c", config, "budgets", "status"], env=env)
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if x.startswith("project:capped/day"))
    assert "0.005000" in line and line.rstrip().endswith("soft")
    listed = CliRunner().invoke(cli, ["-c", config, "budgets", "alerts"], env=env)
    assert listed.exit_code == 0, listed.output
    assert '"level":"soft"' in listed.output and '"budget":"project:capped/day"' in listed.output


def _equal(got: Any, want: Any) -> None:
    assert got == want, f"{got!r} != {want!r}"


def test_the_anthropic_surface_is_capped_the_same_way(limited: Limited) -> None:
    client = anthropic.Anthropic(
        api_key=limited.keys["capped"], base_url=limited.url, max_retries=0
    )
    # The capped project spent its budget in the test above (module order), or does it now.
    for _ in range(100):
        try:
            client.messages.create(
                model="chat", max_tokens=40, messages=[{"role": "user", "content": "hello"}]
            )
        except anthropic.RateLimitError as exc:
            assert "Budget reached" in str(exc)
            assert exc.response.headers["x-passerelle-budget"] == "project:capped/day"
            return
    raise AssertionError("the cap never refused an Anthropic request")


def test_a_budget_past_its_soft_threshold_downgrades(limited: Limited, primary: Fake) -> None:
    client = limited.openai("downgrading")
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "downgrade me"}]
    )
    assert raw.headers["x-passerelle-downgraded"] == (
        "chat -> cheap; budget=project:downgrading/month"
    )
    assert raw.parse().choices[0].message.content
    assert [r["body"]["model"] for r in primary.requests()] == ["cheap-model"]
    record = next(r for r in limited.records("downgrading") if r["status"] == 200)
    assert record["model"] == "cheap"
    assert record["details"]["downgraded_from"] == "chat"
    assert record["details"]["downgrade_budget"] == "project:downgrading/month"


def test_a_lost_counter_starts_again_from_the_ledger(limited: Limited) -> None:
    """A restarted lone instance (memory) or a flushed Redis: the counter is rebuilt from what
    the audit trail says was spent, so the cap still holds."""
    client = limited.openai("seeded")
    for _ in range(100):
        try:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "spend"}], max_tokens=40
            )
        except openai.RateLimitError:
            break
    else:
        raise AssertionError("the cap never refused")
    spent = sum(r["cost_micro_usd"] for r in limited.records("seeded"))
    assert spent > 0
    key = f"budget:project:seeded:seeded:{_month()}"
    _eventually(lambda: _equal(limited.counter(key), spent))
    if limited.backend == "redis":
        flushed = redis.Redis.from_url(REDIS_URL)
        try:
            assert flushed.delete(limited.prefix + key) == 1
        finally:
            flushed.close()
        with pytest.raises(openai.RateLimitError, match="Budget reached"):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "spend"}], max_tokens=40
            )
        assert limited.counter(key) == spent
        return
    # A second process on the same database: its counter starts from what the trail says.
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "ALERT_WEBHOOK": "http://127.0.0.1:1/"}
    app = create_app(load_config(limited.data / "passerelle.yaml"), environ=env)
    with serve_in_thread(app) as url:
        fresh = openai.OpenAI(api_key=limited.keys["seeded"], base_url=f"{url}/v1", max_retries=0)
        with pytest.raises(openai.RateLimitError, match="Budget reached"):
            fresh.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "spend"}], max_tokens=40
            )
        assert app.state.gateway.counters._budgets[key][0] == spent


# -- rate limits -----------------------------------------------------------------------------


def test_requests_per_minute_with_headers_in_each_format(limited: Limited, primary: Fake) -> None:
    client = limited.openai("limited")
    remaining = []
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"n{i}"}]
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert remaining == ["2", "1", "0"]
    sent = len(primary.requests())
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "n3"}])
    assert len(primary.requests()) == sent  # refused before any provider call
    headers = caught.value.response.headers
    assert 55 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert "at most 3 requests a minute for project 'limited'" in str(caught.value)

    claude = anthropic.Anthropic(
        api_key=limited.keys["limited"], base_url=limited.url, max_retries=0
    )
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(
            model="chat", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.response.headers["retry-after"]

    gemini = httpx.post(
        f"{limited.url}/v1beta/models/chat:generateContent",
        headers={"x-goog-api-key": limited.keys["limited"]},
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
    )
    assert gemini.status_code == 429
    error = gemini.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert error["details"][0]["retryDelay"].endswith("s")
    refusals = [r for r in limited.records("limited") if r["status"] == 429]
    assert len(refusals) == 3
    assert all(r["details"]["error_code"] == "rate_limit_exceeded" for r in refusals)


def test_anthropic_callers_get_anthropic_rate_limit_headers(limited: Limited) -> None:
    claude = anthropic.Anthropic(
        api_key=limited.keys["tokens"], base_url=limited.url, max_retries=0
    )
    raw = claude.messages.with_raw_response.create(
        model="chat", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["anthropic-ratelimit-tokens-limit"] == "400"
    remaining = int(raw.headers["anthropic-ratelimit-tokens-remaining"])
    assert 0 < remaining < 400
    reset = dt.datetime.fromisoformat(raw.headers["anthropic-ratelimit-tokens-reset"])
    assert reset > dt.datetime.now(dt.UTC)
    assert "x-ratelimit-limit-tokens" not in raw.headers


def test_tokens_per_minute_count_what_was_really_used(limited: Limited) -> None:
    client = limited.openai("tokens")
    with pytest.raises(openai.RateLimitError, match="prompt alone"):
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "word " * 500}]
        )
    used = 0
    for i in range(50):
        try:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"count my tokens {i}"}]
            )
        except openai.RateLimitError as exc:
            assert "400 tokens a minute for project 'tokens'" in str(exc)
            break
    else:
        raise AssertionError("the token limit never refused")
    records = [r for r in limited.records("tokens") if r["status"] == 200]
    used = sum(r["input_tokens"] + r["output_tokens"] for r in records)
    # Refused once the real counts (not the estimates) came near the limit.
    assert 400 - 60 <= used <= 400


# -- failing closed --------------------------------------------------------------------------


def test_an_unreachable_redis_fails_closed(
    tmp_path: Path, primary: Fake, alerts: tuple[str, Alerts]
) -> None:
    path = tmp_path / "passerelle.yaml"
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    state = f'{{backend: redis, redis_url: "{dead}", redis_timeout_s: 0.3}}'
    path.write_text(CONFIG.format(data=tmp_path, primary=primary.url, state=state))
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "ALERT_WEBHOOK": alerts[0]}
    app = create_app(load_config(path), environ=env)
    with serve_in_thread(app) as url:
        store = app.state.gateway.keys
        user = store.add_user("dev@acme.test", name="Dev", team=None, profile="dev")
        key, _ = store.create_key(user, project="capped")
        client = openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.status_code == 503
        body = caught.value.body
        assert isinstance(body, dict) and body["code"] == "limits_unavailable"
        assert "was not sent" in body["message"] and "redis://" not in body["message"]
        claude = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as refused:
            claude.messages.create(
                model="chat", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert refused.value.status_code == 503
    assert primary.requests() == []
