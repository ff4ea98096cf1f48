"""The response cache through a running gateway, with the real OpenAI and Anthropic SDKs.

The fakes' request logs say whether the provider was called; the audit trail says what the
cache did. Redis tests use a key prefix of their own, deleted afterwards; without Redis they are
skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from passerelle.audit.export import iter_records
from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.storage.keys import KeyStore
from passerelle.testing.server import serve_in_thread
from tests.net import REDIS_URL

from .conftest import Fake, closed_port

AUDIT_KEY = "cache-test-audit-key-0123456789abcdef"
ENVIRON = {"UPSTREAM_KEY": "upstream-key-123456", "AUDIT_KEY": AUDIT_KEY}

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
audit: {{key: env:AUDIT_KEY}}
cache: {{enabled: true, ttl_s: 300}}
{state}
policy:
  not_cleared: {{confidential: pseudonymize}}
providers:
  oai:
    kind: openai
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
    retry: {{max_attempts: 1}}
  claude:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: internal
  gem:
    kind: gemini
    base_url: {gemini}
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: internal
models:
  gpt: {{routes: [{{provider: oai, model: gpt-4o-mini}}]}}
  claude-sonnet: {{routes: [{{provider: claude, model: claude-sonnet-4-6}}]}}
  gemini-flash: {{routes: [{{provider: gem, model: gemini-2.5-flash}}]}}
  embed: {{kind: embedding, routes: [{{provider: oai, model: text-embedding-3-small}}]}}
clients:
  acme: {{name: Acme, data_class: internal}}
  globex: {{name: Globex, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
  beta: {{client: globex, models: ["*"]}}
  uncached: {{client: acme, models: ["*"], cache: false}}
"""


@dataclass
class Gateway:
    url: str
    app: Any
    keys: dict[str, str]  # project -> inference key

    def oai(self, project: str = "alpha") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[project], max_retries=0)

    def claude(self, project: str = "alpha") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.keys[project], max_retries=0)

    def record(self, request_id: str) -> dict[str, Any]:
        assert self.app.state.audit_writer.flush(10.0)
        for record in iter_records(self.app.state.gateway.keys.db):
            if record["record_id"] == request_id:
                return record
        raise AssertionError(f"{request_id} is not in the audit trail")


@dataclass
class Upstreams:
    openai: Fake
    anthropic: Fake
    gemini: Fake

    def reset(self) -> None:
        for fake in (self.openai, self.anthropic, self.gemini):
            fake.reset()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        serve_in_thread("openai") as oai,
        serve_in_thread("anthropic") as claude,
        serve_in_thread("gemini") as gem,
    ):
        yield Upstreams(Fake(oai), Fake(claude), Fake(gem))


@pytest.fixture(autouse=True)
def _reset(upstreams: Upstreams) -> None:
    upstreams.reset()


def unique(text: str) -> str:
    """A prompt no other test sent: the module's gateways keep their caches between tests."""
    return f"{text} ({secrets.token_hex(4)})"


@contextmanager
def start(data: Path, upstreams: Upstreams, state: str = "") -> Iterator[Gateway]:
    path = data / "passerelle.yaml"
    path.write_text(
        CONFIG.format(
            data=data,
            state=state,
            openai=upstreams.openai.url,
            anthropic=upstreams.anthropic.url,
            gemini=upstreams.gemini.url,
        )
    )
    app = create_app(load_config(path), environ=ENVIRON)
    with serve_in_thread(app) as url:
        store: KeyStore = app.state.gateway.keys
        user = store.add_user("dev@acme.test", team=None, profile="dev")
        keys = {p: store.create_key(user, project=p)[0] for p in ("alpha", "beta", "uncached")}
        yield Gateway(url, app, keys)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Gateway]:
    with start(Path(tmp_path_factory.mktemp("cache")), upstreams) as gw:
        yield gw


def chat(gw: Gateway, prompt: str, project: str = "alpha", **kwargs: Any) -> Any:
    return gw.oai(project).chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": prompt}], **kwargs
    )


# -- one instance, in memory ----------------------------------------------------------------


def test_the_same_request_again_is_a_hit_with_no_provider_call(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    prompt = unique("Summarise ticket 42")
    first = chat(gateway, prompt, temperature=0)
    second = chat(gateway, prompt, temperature=0)
    assert first.headers["x-passerelle-cache"] == "miss"
    assert second.headers["x-passerelle-cache"] == "hit"
    assert second.headers["x-passerelle-route"] == "oai"
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert len(upstreams.openai.requests()) == 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content

    stored = gateway.record(first.headers["x-request-id"])
    assert stored["details"]["cache"] == "store" and stored["cost_micro_usd"] > 0
    hit = gateway.record(second.headers["x-request-id"])
    assert hit["details"]["cache"] == "hit"
    assert hit["details"]["cache_source"] == first.headers["x-request-id"]
    assert hit["cost_micro_usd"] == 0
    assert hit["input_tokens"] == 0 and hit["output_tokens"] == 0
    assert hit["provider"] is None and hit["status"] == 200
    assert hit["project"] == "alpha" and hit["model"] == "gpt"

    # The caller's JSON with its keys in another order is the same request.
    body = {"temperature": 0, "messages": [{"content": prompt, "role": "user"}], "model": "gpt"}
    raw = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=json.dumps(body, sort_keys=False),
        headers={"authorization": f"Bearer {gateway.keys['alpha']}"},
    )
    assert raw.status_code == 200 and raw.headers["x-passerelle-cache"] == "hit"
    assert len(upstreams.openai.requests()) == 1


def test_another_project_never_hits_and_an_opted_out_project_never_caches(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    prompt = unique("Draft a release note")
    chat(gateway, prompt)
    other = chat(gateway, prompt, project="beta")
    assert other.headers["x-passerelle-cache"] == "miss"
    for _ in range(2):
        uncached = chat(gateway, prompt, project="uncached")
        assert "x-passerelle-cache" not in uncached.headers
    assert len(upstreams.openai.requests()) == 4
    record = gateway.record(uncached.headers["x-request-id"])
    assert "cache" not in record["details"]


def test_a_streamed_answer_is_replayed_as_a_complete_stream(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    prompt = unique("Explain the retry policy")
    texts, ids = [], []
    for _ in range(2):
        with gateway.claude().messages.stream(
            model="claude-sonnet", max_tokens=200, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            message = stream.get_final_message()
            ids.append(stream.response.headers["x-request-id"])
            texts.append("".join(b.text for b in message.content if b.type == "text"))
            cache_header = stream.response.headers["x-passerelle-cache"]
        assert message.stop_reason == "end_turn"
    assert cache_header == "hit" and texts[0] == texts[1] and prompt in texts[0]
    assert len(upstreams.anthropic.requests()) == 1
    assert gateway.record(ids[0])["details"]["cache"] == "store"
    hit = gateway.record(ids[1])
    assert hit["details"]["cache"] == "hit" and hit["status"] == 200 and hit["details"]["stream"]

    # A buffered request does not hit the streamed entry.
    buffered = gateway.claude().messages.with_raw_response.create(
        model="claude-sonnet", max_tokens=200, messages=[{"role": "user", "content": prompt}]
    )
    assert buffered.headers["x-passerelle-cache"] == "miss"
    assert len(upstreams.anthropic.requests()) == 2


@pytest.mark.parametrize("model", ["claude-sonnet", "gemini-flash"])
def test_a_translated_stream_is_replayed_as_the_caller_received_it(
    gateway: Gateway, upstreams: Upstreams, model: str
) -> None:
    prompt = unique("List three risks")
    texts = []
    for _ in range(2):
        stream = gateway.oai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], stream=True
        )
        texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    assert texts[0] == texts[1] and prompt in texts[0]
    fake = upstreams.anthropic if model == "claude-sonnet" else upstreams.gemini
    assert len(fake.requests()) == 1


def test_callers_opt_out_per_request(gateway: Gateway, upstreams: Upstreams) -> None:
    prompt = unique("Write a unit test")
    chat(gateway, prompt)  # stored
    no_store = chat(gateway, prompt, extra_headers={"cache-control": "no-store"})
    off = chat(gateway, prompt, extra_headers={"x-passerelle-cache": "off"})
    assert no_store.headers["x-passerelle-cache"] == off.headers["x-passerelle-cache"] == "bypass"
    assert len(upstreams.openai.requests()) == 3
    assert gateway.record(off.headers["x-request-id"])["details"]["cache"] == "bypass"

    refreshed = chat(gateway, prompt, extra_headers={"cache-control": "no-cache"})
    assert refreshed.headers["x-passerelle-cache"] == "bypass"
    assert gateway.record(refreshed.headers["x-request-id"])["details"]["cache"] == "store"
    again = chat(gateway, prompt)
    assert again.headers["x-passerelle-cache"] == "hit"
    source = gateway.record(again.headers["x-request-id"])["details"]["cache_source"]
    assert source == refreshed.headers["x-request-id"]  # the refreshed answer replaced the old
    assert len(upstreams.openai.requests()) == 4

    fresh = unique("Never stored")
    chat(gateway, fresh, extra_headers={"cache-control": "no-store"})
    assert chat(gateway, fresh).headers["x-passerelle-cache"] == "miss"


def test_errors_are_never_cached(gateway: Gateway, upstreams: Upstreams) -> None:
    prompt = unique("Fail once")
    upstreams.openai.faults({"status": 400})
    with pytest.raises(openai.BadRequestError):
        chat(gateway, prompt)
    after = chat(gateway, prompt)
    assert after.headers["x-passerelle-cache"] == "miss"
    assert len(upstreams.openai.requests()) == 2


def test_a_pseudonymized_request_replays_the_restored_answer(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    prompt = unique("Write to jean.dupont@gmail.com about the invoice")
    first, second = chat(gateway, prompt), chat(gateway, prompt)
    assert first.headers["x-passerelle-policy"].startswith("pseudonymize")
    sent = upstreams.openai.requests()
    assert len(sent) == 1 and "jean.dupont@gmail.com" not in json.dumps(sent[0]["body"])
    answer = second.parse().choices[0].message.content
    assert second.headers["x-passerelle-cache"] == "hit"
    assert "jean.dupont@gmail.com" in answer  # what the caller got the first time
    assert answer == first.parse().choices[0].message.content
    hit = gateway.record(second.headers["x-request-id"])
    assert hit["details"]["dlp"]["action"] == "pseudonymize"  # the policy still ran


def test_embeddings_are_cached(gateway: Gateway, upstreams: Upstreams) -> None:
    text = unique("a paragraph of the design document")
    client = gateway.oai()
    first = client.embeddings.with_raw_response.create(model="embed", input=[text])
    second = client.embeddings.with_raw_response.create(model="embed", input=[text])
    assert second.headers["x-passerelle-cache"] == "hit"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert len(upstreams.openai.requests()) == 1


# -- several instances, Redis ---------------------------------------------------------------


def test_two_instances_share_the_cache_through_redis(
    tmp_path: Path, upstreams: Upstreams, redis_prefix: str
) -> None:
    state = f'state: {{backend: redis, redis_url: "{REDIS_URL}", key_prefix: "{redis_prefix}"}}'
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    prompt = unique("Compare the two designs")
    with (
        start(tmp_path / "one", upstreams, state) as one,
        start(tmp_path / "two", upstreams, state) as two,
    ):
        first = chat(one, prompt)
        second = chat(two, prompt)
        assert first.headers["x-passerelle-cache"] == "miss"
        assert second.headers["x-passerelle-cache"] == "hit"
        assert len(upstreams.openai.requests()) == 1
        assert two.record(second.headers["x-request-id"])["details"]["cache"] == "hit"
        assert chat(two, prompt, project="beta").headers["x-passerelle-cache"] == "miss"

    # What Redis holds: keyed hashes and sealed values, never the prompt or the answer.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        assert keys and all(k.decode().startswith(redis_prefix + "cache:") for k in keys)
        for key in keys:
            value = client.get(key)
            assert value is not None
            assert b"Compare the two designs" not in value and b"choices" not in value
            assert 0 < client.pttl(key) <= 300_000
    finally:
        client.close()


def test_redis_down_serves_the_request_and_audits_unavailable(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    state = f'state: {{backend: redis, redis_url: "{url}", redis_timeout_s: 0.3}}'
    with start(tmp_path, upstreams, state) as gw:
        prompt = unique("Still answered")
        for _ in range(2):
            reply = chat(gw, prompt)
            assert reply.http_response.status_code == 200
            assert reply.headers["x-passerelle-cache"] == "miss"
            record = gw.record(reply.headers["x-request-id"])
            assert record["details"]["cache"] == "unavailable"
            assert record["provider"] == "oai" and record["status"] == 200
        assert len(upstreams.openai.requests()) == 2
