"""Failing upstreams through a running gateway, with the real SDKs: retries, fallbacks, circuit
breakers, weighted routing, and streams that break before or after their first byte.

Every test checks what the caller saw, what the upstreams received (their request logs), and the
request's one audit record: which attempts were made, which route answered, and that only that
route's usage was charged.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from passerelle.audit.export import iter_records
from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.providers.pricing import TokenUsage, cost_micro_usd
from passerelle.testing.server import serve_in_thread

from .conftest import UPSTREAM_KEY, Fake, closed_port

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
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 5, max_retry_after_s: 2}}
    timeouts: {{connect: 1, read: 1}}
    circuit_breaker: {{failures: 3, cooldown_s: 1, max_cooldown_s: 4}}
  backup:
    kind: openai
    base_url: {backup}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: eu
    clearance: internal
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 5}}
  dead:
    kind: openai_compatible
    base_url: http://127.0.0.1:{dead_port}/v1
    region: on-prem
    clearance: restricted
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 2}}
    circuit_breaker: {{failures: 2, cooldown_s: 30}}
  stub:
    kind: openai_compatible
    base_url: {stub}/v1
    region: on-prem
    clearance: restricted
    retry: {{max_attempts: 1}}
    timeouts: {{connect: 1, read: 0.5}}
  claude-eu:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:TEST_UPSTREAM_KEY
    region: eu
    clearance: restricted
    retry: {{max_attempts: 1}}
  claude-us:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:TEST_UPSTREAM_KEY
    region: us
    clearance: restricted
    retry: {{max_attempts: 1}}
models:
  chat:
    routes:
      - {{provider: primary, model: gpt-4o-mini}}
      - {{provider: backup, model: gpt-4o}}
  weighted:
    routes:
      - {{provider: primary, model: gpt-4o-mini, weight: 3}}
      - {{provider: backup, model: gpt-4o, weight: 1}}
  unreachable:
    routes:
      - {{provider: dead, model: x}}
      - {{provider: backup, model: gpt-4o}}
  dead-only:
    routes:
      - {{provider: dead, model: x}}
  stubbed:
    routes:
      - {{provider: stub, model: m}}
      - {{provider: backup, model: gpt-4o}}
  claude:
    routes:
      - {{provider: claude-eu, model: claude-sonnet-4-6}}
      - {{provider: claude-us, model: claude-haiku-4-5}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
prices:
  openai_compatible/gpt-4o-mini: {{input: 150000, output: 600000}}
  openai/gpt-4o: {{input: 2500000, output: 10000000}}
  anthropic/claude-sonnet-4-6: {{input: 3000000, output: 15000000}}
  anthropic/claude-haiku-4-5: {{input: 1000000, output: 5000000}}
"""

PROMPT = [{"role": "user", "content": "hello there"}]


# -- an upstream that answers headers, then nothing ------------------------------------------


@dataclass
class Stub:
    """An OpenAI-compatible upstream that sends a stream's headers and then either stalls or
    ends the body at once: what no fake of a real provider does on purpose."""

    url: str = ""
    modes: list[str] = field(default_factory=list)
    received: int = 0

    def app(self) -> Starlette:
        async def completions(request: Request) -> Response:
            await request.body()
            self.received += 1
            mode = self.modes.pop(0) if self.modes else "empty"

            async def body() -> AsyncIterator[bytes]:
                if mode == "stall":
                    await asyncio.sleep(2)
                return
                yield b""  # an async generator that sends nothing

            return StreamingResponse(body(), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    upstream = Stub()
    with serve_in_thread(upstream.app()) as url:
        upstream.url = url
        yield upstream


@pytest.fixture(scope="module")
def claude() -> Iterator[Fake]:
    with serve_in_thread("anthropic") as url:
        yield Fake(url)


# -- the gateway -----------------------------------------------------------------------------


@dataclass
class Resilient:
    url: str
    app: Any
    key: str
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def oai(self) -> openai.OpenAI:
        if "openai" not in self.clients:
            self.clients["openai"] = openai.OpenAI(
                base_url=f"{self.url}/v1", api_key=self.key, max_retries=0
            )
        client: openai.OpenAI = self.clients["openai"]
        return client

    def claude(self) -> anthropic.Anthropic:
        if "anthropic" not in self.clients:
            self.clients["anthropic"] = anthropic.Anthropic(
                base_url=self.url, api_key=self.key, max_retries=0
            )
        client: anthropic.Anthropic = self.clients["anthropic"]
        return client

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def gem(self) -> genai.Client:
        return genai.Client(
            api_key=self.key, http_options=genai_types.HttpOptions(base_url=self.url)
        )

    def record(self, request_id: str) -> dict[str, Any]:
        """The request's audit record, which must be its only one."""
        assert self.app.state.audit_writer.flush(10.0)
        found = [r for r in iter_records(self.gateway.keys.db) if r["record_id"] == request_id]
        assert len(found) == 1, f"{len(found)} audit records for {request_id}"
        return found[0]

    def cost(self, provider_kind: str, model: str, usage: TokenUsage) -> int:
        price = self.gateway.prices.lookup(provider_kind, model)
        assert price is not None
        return cost_micro_usd(usage, price)


@pytest.fixture(scope="module")
def resilient(
    tmp_path_factory: pytest.TempPathFactory,
    primary: Fake,
    backup: Fake,
    claude: Fake,
    stub: Stub,
) -> Iterator[Resilient]:
    data = Path(tmp_path_factory.mktemp("resilience"))
    path = data / "passerelle.yaml"
    path.write_text(
        CONFIG.format(
            data=data,
            primary=primary.url,
            backup=backup.url,
            anthropic=claude.url,
            stub=stub.url,
            dead_port=closed_port(),
        )
    )
    app = create_app(load_config(path), environ={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    with serve_in_thread(app) as url:
        keys = app.state.gateway.keys
        user = keys.add_user("ops@acme.test", name="Ops", profile="ops")
        key, _ = keys.create_key(user, project="alpha")
        resilient = Resilient(url, app, key)
        try:
            yield resilient
        finally:
            resilient.close()


@pytest.fixture(autouse=True)
def _fresh(resilient: Resilient, claude: Fake, stub: Stub) -> None:
    """Each test starts with every breaker closed and clean fakes."""
    resilient.gateway.breakers.reset()
    claude.reset()
    stub.modes.clear()
    stub.received = 0


def attempts(record: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(a["provider"], a["error"] or a["status"]) for a in record["details"]["attempts"]]


def chat(resilient: Resilient, model: str = "chat", **kwargs: Any) -> Any:
    raw = resilient.oai().chat.completions.with_raw_response.create(
        model=model, messages=PROMPT, **kwargs
    )
    return raw.headers, raw.parse()


# -- retries and fallbacks -------------------------------------------------------------------


def test_5xx_is_retried_then_falls_back_and_only_the_answer_is_charged(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults({"status": 500}, {"status": 503})
    headers, completion = chat(resilient)
    assert headers["x-passerelle-route"] == "backup"
    assert completion.model == "fake-gpt-4o"
    assert len(primary.requests()) == 2 and len(backup.requests()) == 1
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "http_500"), ("primary", "http_503"), ("backup", 200)]
    assert record["provider"] == "backup" and record["status"] == 200
    usage = completion.usage
    assert (record["input_tokens"], record["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    expected = resilient.cost(
        "openai", "gpt-4o", TokenUsage(usage.prompt_tokens, usage.completion_tokens)
    )
    assert record["cost_micro_usd"] == expected > 0


def test_a_short_retry_after_is_waited_out_on_the_same_route(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults({"status": 429, "retry_after": 1})
    started = time.monotonic()
    headers, _ = chat(resilient)
    assert time.monotonic() - started >= 1.0
    assert headers["x-passerelle-route"] == "primary" and not backup.requests()
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "http_429"), ("primary", 200)]


def test_a_long_retry_after_falls_back_and_keeps_the_route_aside(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults({"status": 429, "retry_after": 30})
    started = time.monotonic()
    headers, _ = chat(resilient)
    assert time.monotonic() - started < 10  # no 30 s wait: the next route answers
    assert headers["x-passerelle-route"] == "backup"
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "http_429"), ("backup", 200)]
    # The upstream asked not to be called for 30 s: the next request does not call it at all.
    headers, _ = chat(resilient)
    assert headers["x-passerelle-route"] == "backup"
    assert len(primary.requests()) == 1
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "rate_limited"), ("backup", 200)]
    # Rate limiting is not ill health: the breaker stayed closed.
    assert resilient.gateway.breakers.states()["primary/gpt-4o-mini"] == "closed"


def test_timeouts_are_retried_then_fall_back(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults(*[{"kind": "timeout", "seconds": 2}] * 2)
    headers, completion = chat(resilient)
    assert headers["x-passerelle-route"] == "backup"
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "timeout"), ("primary", "timeout"), ("backup", 200)]
    assert record["output_tokens"] == completion.usage.completion_tokens
    assert record["cost_micro_usd"] == resilient.cost(
        "openai",
        "gpt-4o",
        TokenUsage(completion.usage.prompt_tokens, completion.usage.completion_tokens),
    )


def test_a_refused_connection_falls_back(resilient: Resilient, backup: Fake) -> None:
    headers, _ = chat(resilient, "unreachable")
    assert headers["x-passerelle-route"] == "backup"
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("dead", "connect_failed")] * 2 + [("backup", 200)]
    assert len(backup.requests()) == 1


# -- circuit breakers ------------------------------------------------------------------------


def test_a_breaker_opens_skips_the_route_and_recovers_through_a_probe(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults(*[{"status": 502}] * 3)
    headers, _ = chat(resilient)  # two failures: still closed
    assert attempts(resilient.record(headers["x-request-id"])) == [
        ("primary", "http_502"),
        ("primary", "http_502"),
        ("backup", 200),
    ]
    headers, _ = chat(resilient)  # the third failure in a row opens it: no retry
    assert attempts(resilient.record(headers["x-request-id"])) == [
        ("primary", "http_502"),
        ("primary", "circuit_open"),
        ("backup", 200),
    ]
    assert len(primary.requests()) == 3
    headers, _ = chat(resilient)  # open: skipped at once, the upstream is not touched
    assert headers["x-passerelle-route"] == "backup"
    assert len(primary.requests()) == 3
    record = resilient.record(headers["x-request-id"])
    assert attempts(record) == [("primary", "circuit_open"), ("backup", 200)]
    assert record["provider"] == "backup"
    time.sleep(1.1)  # the cooldown: half-open, one probe goes through and succeeds
    headers, _ = chat(resilient)
    assert headers["x-passerelle-route"] == "primary"
    assert len(primary.requests()) == 4
    assert attempts(resilient.record(headers["x-request-id"])) == [("primary", 200)]
    assert resilient.gateway.breakers.states()["primary/gpt-4o-mini"] == "closed"


def test_a_failed_probe_opens_the_breaker_again(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults(*[{"status": 500}] * 4)
    chat(resilient)
    chat(resilient)  # open
    time.sleep(1.1)
    headers, _ = chat(resilient)  # the probe fails: open again (for 2 s), not retried
    assert attempts(resilient.record(headers["x-request-id"])) == [
        ("primary", "http_500"),
        ("primary", "circuit_open"),
        ("backup", 200),
    ]
    time.sleep(1.1)  # the first cooldown would be over, the doubled one is not
    headers, _ = chat(resilient)
    assert attempts(resilient.record(headers["x-request-id"]))[0] == ("primary", "circuit_open")
    assert len(primary.requests()) == 4


def test_every_route_open_is_a_503_in_the_callers_format(resilient: Resilient) -> None:
    claude = resilient.claude()
    with pytest.raises(anthropic.APIStatusError) as first:
        claude.messages.create(model="dead-only", max_tokens=50, messages=PROMPT)
    assert first.value.status_code == 503  # refused twice: the breaker opens
    with pytest.raises(anthropic.APIStatusError) as info:
        claude.messages.create(model="dead-only", max_tokens=50, messages=PROMPT)
    error = info.value
    assert error.status_code == 503
    assert 29 <= int(error.response.headers["retry-after"]) <= 30
    body = error.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    assert "circuit breaker" in body["error"]["message"] and "dead" in body["error"]["message"]
    record = resilient.record(error.response.headers["request-id"])
    assert record["status"] == 503 and record["details"]["error_code"] == "circuit_open"
    assert attempts(record) == [("dead", "circuit_open")]
    assert record["cost_micro_usd"] == 0 and record["output_tokens"] == 0
    # The same in OpenAI's format.
    with pytest.raises(openai.APIStatusError) as oai:
        chat(resilient, "dead-only")
    assert oai.value.status_code == 503 and oai.value.code == "circuit_open"
    assert "retry-after" in oai.value.response.headers


# -- weighted routing ------------------------------------------------------------------------


def test_weighted_routing_shares_the_first_route_by_weight(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    """200 requests over weights 3:1. The primary's count is binomial (n=200, p=0.75, sd 6.1);
    4.5 standard deviations (±27) keep a correct gateway from failing by chance (the draw is
    seeded besides), while order-only routing (200/0) or a uniform draw (100/100) fail."""
    resilient.gateway.rng = random.Random(5)
    routes = Counter(chat(resilient, "weighted")[0]["x-passerelle-route"] for _ in range(200))
    assert abs(routes["primary"] - 150) <= 27, routes
    assert routes["primary"] + routes["backup"] == 200
    assert (len(primary.requests()), len(backup.requests())) == (
        routes["primary"],
        routes["backup"],
    )


def test_weighted_routing_never_adds_a_route_the_data_policy_removed(
    resilient: Resilient, backup: Fake
) -> None:
    """Personal data is confidential; the backup is cleared for internal data only."""
    resilient.gateway.rng = random.Random(9)
    messages = [{"role": "user", "content": "Write to jean.dupont@gmail.com about it."}]
    client = resilient.oai()
    for _ in range(20):
        raw = client.chat.completions.with_raw_response.create(model="weighted", messages=messages)
        assert raw.headers["x-passerelle-route"] == "primary"
    assert not backup.requests()


def test_weighted_routing_sends_the_share_of_an_open_route_to_the_others(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    resilient.gateway.rng = random.Random(11)
    primary.faults(*[{"status": 500}] * 3)
    states = resilient.gateway.breakers.states
    for _ in range(20):  # until the draw has sent it three requests, which all fail
        chat(resilient, "weighted")
        if states().get("primary/gpt-4o-mini") == "open":
            break
    assert states()["primary/gpt-4o-mini"] == "open"
    for _ in range(20):
        headers, _ = chat(resilient, "weighted")
        assert headers["x-passerelle-route"] == "backup"
        # Not drawn at all: no circuit_open attempt, the backup is the first route.
        assert attempts(resilient.record(headers["x-request-id"])) == [("backup", 200)]
    assert len(primary.requests()) == 3


# -- streams that break before their first byte ----------------------------------------------


def _stream_text(stream: Any) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def test_a_stream_cut_before_its_first_byte_falls_back(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults(*[{"kind": "stream_cut", "after_chunks": 0}] * 2)
    stream = resilient.oai().chat.completions.create(
        model="chat", messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    text, finish = _stream_text(stream)
    assert stream.response.headers["x-passerelle-route"] == "backup"
    assert finish == "stop" and text  # a normal, complete stream
    unfaulted = resilient.oai().chat.completions.create(model="chat", messages=PROMPT, stream=True)
    assert _stream_text(unfaulted)[0] == text  # the same answer as without the fault
    record = resilient.record(stream.response.headers["x-request-id"])
    tried = attempts(record)
    assert [p for p, _ in tried] == ["primary", "primary", "backup"]
    assert tried[0][1] in ("disconnected", "stream_empty") and tried[2][1] == 200
    assert record["status"] == 200 and record["details"]["error_code"] is None
    assert record["provider"] == "backup" and record["details"]["usage_reported"]
    expected = resilient.cost(
        "openai", "gpt-4o", TokenUsage(record["input_tokens"], record["output_tokens"])
    )
    assert record["cost_micro_usd"] == expected > 0


@pytest.mark.parametrize("mode", ["stall", "empty"])
def test_a_stream_that_stalls_or_is_empty_before_its_first_byte_falls_back(
    resilient: Resilient, stub: Stub, backup: Fake, mode: str
) -> None:
    stub.modes.append(mode)
    stream = resilient.oai().chat.completions.create(model="stubbed", messages=PROMPT, stream=True)
    text, finish = _stream_text(stream)
    assert finish == "stop" and text
    assert stub.received == 1 and len(backup.requests()) == 1
    record = resilient.record(stream.response.headers["x-request-id"])
    # A stall ends at the read timeout (0.5 s), not when the stub gives up (2 s, empty body).
    expected = "timeout" if mode == "stall" else "stream_empty"
    assert attempts(record) == [("stub", expected), ("backup", 200)]
    assert record["provider"] == "backup" and record["status"] == 200


def test_an_anthropic_stream_cut_before_its_first_byte_falls_back(
    resilient: Resilient, claude: Fake
) -> None:
    claude.faults({"kind": "stream_cut", "after_chunks": 0}, match_model="claude-sonnet-4-6")
    with resilient.claude().messages.stream(
        model="claude", max_tokens=100, messages=PROMPT
    ) as stream:
        message = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
        assert stream.response.headers["x-passerelle-route"] == "claude-us"
    assert message.stop_reason == "end_turn" and message.content[0].text
    models = [r["body"]["model"] for r in claude.requests()]
    assert models == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    record = resilient.record(request_id)
    assert [p for p, _ in attempts(record)] == ["claude-eu", "claude-us"]
    assert (record["input_tokens"], record["output_tokens"]) == (
        message.usage.input_tokens,
        message.usage.output_tokens,
    )
    expected = resilient.cost(
        "anthropic",
        "claude-haiku-4-5",
        TokenUsage(message.usage.input_tokens, message.usage.output_tokens),
    )
    assert record["cost_micro_usd"] == expected > 0


# -- streams that break after their first byte -----------------------------------------------


def _assert_cut_audited(resilient: Resilient, request_id: str, provider: str) -> dict[str, Any]:
    record = resilient.record(request_id)
    assert record["status"] == 502
    assert record["details"]["error_code"] == "upstream_stream_disconnected"
    assert attempts(record) == [(provider, 200)]  # no fallback once bytes went out
    assert record["provider"] == provider
    assert record["output_tokens"] > 0  # what was relayed is charged, once, to that route
    return record


def test_an_openai_stream_cut_midway_ends_with_an_error_event(
    resilient: Resilient, primary: Fake, backup: Fake
) -> None:
    primary.faults({"kind": "stream_cut", "after_chunks": 3})
    stream = resilient.oai().chat.completions.create(model="chat", messages=PROMPT, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received, "the first events reached the caller"
    assert "ended before it was complete" in str(info.value)
    assert not backup.requests()
    record = _assert_cut_audited(resilient, stream.response.headers["x-request-id"], "primary")
    # Estimated: the prompt from the request, the answer from what was relayed.
    assert not record["details"]["usage_reported"]
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    assert record["cost_micro_usd"] == resilient.cost(
        "openai_compatible",
        "gpt-4o-mini",
        TokenUsage(record["input_tokens"], record["output_tokens"]),
    )
    # A cut after the start counts against the deployment, as a failure.
    breaker = resilient.gateway.breakers.of(
        next(t for t in resilient.gateway.router.targets("chat") if t.provider.name == "primary")
    )
    assert breaker.consecutive_failures == 1


def test_a_responses_stream_cut_midway_ends_with_an_error_event(
    resilient: Resilient, primary: Fake
) -> None:
    primary.faults({"kind": "stream_cut", "after_chunks": 3})
    stream = resilient.oai().responses.create(model="chat", input="hello there", stream=True)
    events = [event.type for event in stream]
    assert events[0] == "response.created" and events[-1] == "error"
    assert "response.completed" not in events
    _assert_cut_audited(resilient, stream.response.headers["x-request-id"], "primary")


def test_an_anthropic_stream_cut_midway_ends_with_an_error_event(
    resilient: Resilient, claude: Fake
) -> None:
    claude.faults({"kind": "stream_cut", "after_chunks": 3}, match_model="claude-sonnet-4-6")
    stream = resilient.claude().messages.create(
        model="claude", max_tokens=100, messages=PROMPT, stream=True
    )
    types = []
    with pytest.raises(anthropic.APIError) as info:
        for event in stream:
            types.append(event.type)
    assert types[0] == "message_start" and "message_stop" not in types
    assert "ended before it was complete" in str(info.value)
    record = _assert_cut_audited(resilient, stream.response.headers["request-id"], "claude-eu")
    assert len(claude.requests()) == 1
    # Anthropic reports input tokens in message_start: they are charged with what was relayed.
    assert record["input_tokens"] > 0


def test_a_gemini_stream_cut_midway_ends_with_an_error_event(
    resilient: Resilient, primary: Fake
) -> None:
    primary.faults({"kind": "stream_cut", "after_chunks": 3})
    chunks = []
    client = resilient.gem()
    with pytest.raises(genai_errors.APIError) as info:
        for chunk in client.models.generate_content_stream(model="chat", contents="hello there"):
            chunks.append(chunk)
    client.close()
    assert chunks and info.value.code == 502
    assert "ended before it was complete" in str(info.value)
    response = httpx.get(f"{resilient.url}/healthz")  # the gateway is still fine
    assert response.status_code == 200
    assert resilient.app.state.audit_writer.flush(10.0)
    records = [
        r
        for r in iter_records(resilient.gateway.keys.db)
        if r["kind"] == "request" and r["details"]["wire"] == "gemini"
    ]
    _assert_cut_audited(resilient, records[-1]["record_id"], "primary")
