"""The response cache's contract, without HTTP: keys, sealing, directives, what is stored."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from passerelle.config import Config, parse_config
from passerelle.core.context import DataPolicyRecord, KeyScope, Principal, RequestContext
from passerelle.errors import ConfigError, StorageError, WireFormat
from passerelle.pipeline.cache import (
    CACHE_HEADER,
    CachedAnswer,
    CacheDirective,
    CacheTicket,
    ResponseCache,
    Sealer,
    answer_policy,
    directive_from_headers,
    request_digest,
)
from passerelle.providers.base import Operation, Wire
from passerelle.state.response_cache import MemoryCacheStore

CONFIG = """\
version: 1
cache: {{enabled: {enabled}, ttl_s: 60, max_entry_bytes: 2048}}
providers:
  up:
    kind: openai_compatible
    base_url: "http://127.0.0.1:9/v1"
    region: eu
    clearance: restricted
models:
  chat: {{routes: [{{provider: up, model: m}}]}}
  other: {{routes: [{{provider: up, model: m2}}]}}
clients:
  acme: {{name: Acme, data_class: internal}}
  globex: {{name: Globex, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
  beta: {{client: globex, models: ["*"]}}
  opted-out: {{client: acme, models: ["*"], cache: false}}
  opted-in: {{client: acme, models: ["*"], cache: true}}
"""


def config(enabled: bool = True) -> Config:
    return parse_config(CONFIG.format(enabled=str(enabled).lower()))


@dataclass(frozen=True)
class FakeCall:
    body: dict[str, Any]
    surface: Wire = Wire.OPENAI_CHAT
    operation: Operation = Operation.GENERATE
    stream: bool = False
    client_headers: dict[str, str] = field(default_factory=dict)
    cache: CacheDirective = CacheDirective.USE


def context(
    project: str | None = "alpha", model: str = "chat", rid: str = "req_1"
) -> RequestContext:
    ctx = RequestContext(request_id=rid, wire=WireFormat.OPENAI, endpoint="/v1/chat/completions")
    ctx.principal = Principal(
        key_id="k",
        key_prefix="pk",
        user_id="u",
        email="dev@acme.test",
        team=None,
        profile=None,
        project=project,
        client={"alpha": "acme", "beta": "globex"}.get(project or "", "acme"),
        scope=KeyScope.INFERENCE,
    )
    ctx.model_alias = model
    return ctx


def answered(ctx: RequestContext) -> RequestContext:
    """``ctx`` once the deployment of these tests ("up", model "m") has answered it."""
    ctx.provider, ctx.provider_model = "up", "m"
    return ctx


ROUTE = "x-passerelle-route"


@dataclass(frozen=True)
class Provider:
    name: str


@dataclass(frozen=True)
class Route:
    provider: Provider
    model: str = "m"


ROUTES: Any = (Route(Provider("up")), Route(Provider("fallback")))

BODY = {"model": "chat", "messages": [{"role": "user", "content": "Résume le ticket 42"}]}


def slot_of(ctx: RequestContext, call: FakeCall, config_hash: str = "h") -> str:
    found = request_digest(ctx, call, config_hash)
    assert found is not None
    return Sealer(b"k" * 32).slot(*found)


# -- keys -----------------------------------------------------------------------------------


def test_key_order_in_the_body_does_not_matter() -> None:
    reordered = {"messages": [{"content": "Résume le ticket 42", "role": "user"}], "model": "chat"}
    assert slot_of(context(), FakeCall(BODY)) == slot_of(context(), FakeCall(reordered))


@pytest.mark.parametrize(
    "change",
    [
        "project",
        "model",
        "surface",
        "operation",
        "stream",
        "body",
        "headers",
        "config",
    ],
)
def test_everything_that_changes_the_answer_changes_the_key(change: str) -> None:
    ctx, call, config_hash = context(), FakeCall(BODY), "h"
    base = slot_of(ctx, call, config_hash)
    if change == "project":
        ctx = context("beta")
    elif change == "model":
        ctx = context(model="other")
    elif change == "surface":
        call = replace(call, surface=Wire.ANTHROPIC)
    elif change == "operation":
        call = replace(call, operation=Operation.EMBED)
    elif change == "stream":
        call = replace(call, stream=True)
    elif change == "body":
        call = replace(call, body={**BODY, "temperature": 0.2})
    elif change == "headers":
        call = replace(call, client_headers={"anthropic-beta": "x"})
    else:
        config_hash = "h2"
    assert slot_of(ctx, call, config_hash) != base


def test_only_the_routes_and_data_policy_of_the_configuration_are_in_the_key() -> None:
    base = answer_policy(config())
    elsewhere = CONFIG.replace("version: 1\n", "version: 1\ngateway: {{port: 4100}}\n")
    assert answer_policy(parse_config(elsewhere.format(enabled="true"))) == base
    rerouted = CONFIG.replace("model: m}}", "model: m-v2}}")
    assert answer_policy(parse_config(rerouted.format(enabled="true"))) != base


def test_a_key_without_a_project_is_never_cached() -> None:
    assert request_digest(context(None), FakeCall(BODY), "h") is None


def test_the_store_key_names_the_project_but_not_the_request() -> None:
    slot = slot_of(context(), FakeCall(BODY))
    assert slot.startswith("cache:alpha:")
    assert "ticket" not in slot and len(slot.rsplit(":", 1)[1]) == 64


def test_the_lookup_key_depends_on_the_secret() -> None:
    found = request_digest(context(), FakeCall(BODY), "h")
    assert found is not None
    assert Sealer(b"a" * 32).slot(*found) != Sealer(b"b" * 32).slot(*found)


# -- sealing --------------------------------------------------------------------------------


def answer(text: str = "The ticket is about a broken login page.") -> CachedAnswer:
    body = b'{"choices":[{"message":{"content":"' + text.encode() + b'"}}]}'
    return CachedAnswer(200, {"content-type": "application/json"}, (body,), False, "req_0", 1.0)


def test_a_sealed_value_does_not_hold_the_answer_and_opens_only_with_its_request() -> None:
    sealer = Sealer(b"k" * 32)
    found = request_digest(context(), FakeCall(BODY), "h")
    other = request_digest(context(), FakeCall({**BODY, "seed": 1}), "h")
    assert found is not None and other is not None
    slot = sealer.slot(*found)
    sealed = sealer.seal(slot, found[1], answer())
    assert b"broken login" not in sealed and b"content-type" not in sealed
    assert sealer.open(slot, found[1], sealed) == answer()
    assert sealer.open(slot, other[1], sealed) is None  # another body: another key
    assert sealer.open(sealer.slot(*other), found[1], sealed) is None  # moved to another slot
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert sealer.open(slot, found[1], tampered) is None


def test_stream_chunks_survive_sealing_one_by_one() -> None:
    sealer = Sealer(b"k" * 32)
    found = request_digest(context(), FakeCall(BODY, stream=True), "h")
    assert found is not None
    chunks = (b"data: {}\n\n", b"", b"data: [DONE]\n\n")
    stream = CachedAnswer(200, {"content-type": "text/event-stream"}, chunks, True, "req_0", 2.0)
    slot = sealer.slot(*found)
    assert sealer.open(slot, found[1], sealer.seal(slot, found[1], stream)) == stream


# -- directives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "passerelle", "expected"),
    [
        (None, None, CacheDirective.USE),
        ("max-age=60", None, CacheDirective.USE),
        ("no-cache", None, CacheDirective.REFRESH),
        ("No-Cache, max-age=0", None, CacheDirective.REFRESH),
        ("no-store", None, CacheDirective.OFF),
        ("no-cache, no-store", None, CacheDirective.OFF),
        (None, "off", CacheDirective.OFF),
        (None, "OFF ", CacheDirective.OFF),
        ("no-cache", "on", CacheDirective.REFRESH),
    ],
)
def test_caller_directives(
    cache_control: str | None, passerelle: str | None, expected: CacheDirective
) -> None:
    assert directive_from_headers(cache_control, passerelle) is expected


# -- the cache with its store ---------------------------------------------------------------


async def store_then_lookup(
    cache: ResponseCache, call: FakeCall, *, project: str = "alpha", body: bytes = b'{"a":1}'
) -> tuple[CacheTicket, CacheTicket, RequestContext]:
    first_ctx = context(project, rid="req_first")
    first = await cache.lookup(first_ctx, call, ROUTES)
    answered(first_ctx)
    headers = {"content-type": "application/json", "x-passerelle-route": "up"}
    first.answering(200, headers)
    await first.store(body)
    ctx = context(project, rid="req_second")
    return first, await cache.lookup(ctx, call, ROUTES), ctx


def test_a_miss_stores_and_the_same_request_hits() -> None:
    cache = ResponseCache.build(config(), {}, b"audit-key")

    async def scenario() -> None:
        first, second, ctx = await store_then_lookup(cache, FakeCall(BODY))
        assert first.header == "miss" and first.hit is None
        assert second.hit is not None and second.header == "hit"
        assert second.hit.body == b'{"a":1}'
        assert second.hit.headers["x-passerelle-route"] == "up"
        assert second.hit.headers[CACHE_HEADER] == "hit"
        assert "x-request-id" not in second.hit.headers
        assert ctx.cache == "hit" and ctx.cache_source == "req_first" and ctx.status == 200
        assert ctx.provider is None and ctx.cost_micro_usd == 0

    asyncio.run(scenario())


def test_an_answer_from_a_route_no_longer_allowed_is_not_reused() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        await store_then_lookup(cache, FakeCall(BODY))
        killed: Any = (Route(Provider("fallback")),)  # a kill switch removed "up" since
        ticket = await cache.lookup(context(), FakeCall(BODY), killed)
        assert ticket.hit is None and ticket.header == "miss"
        assert (await cache.lookup(context(), FakeCall(BODY), ROUTES)).hit is not None

    asyncio.run(scenario())


def test_an_answer_from_a_rolled_back_canary_is_not_reused() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        await store_then_lookup(cache, FakeCall(BODY))  # answered by "up", model "m"
        # The same provider, another deployment: the stable route once the canary is gone.
        stable: Any = (Route(Provider("up"), model="m-stable"),)
        ticket = await cache.lookup(context(), FakeCall(BODY), stable)
        assert ticket.hit is None and ticket.header == "miss"

    asyncio.run(scenario())


def test_projects_never_share_entries_and_follow_their_own_setting() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        await store_then_lookup(cache, FakeCall(BODY), project="alpha")
        other = await cache.lookup(context("beta"), FakeCall(BODY), ROUTES)
        assert other.hit is None and other.header == "miss"
        opted_out = await cache.lookup(context("opted-out"), FakeCall(BODY), ROUTES)
        assert opted_out.header is None
        off = ResponseCache.build(config(enabled=False), {}, None)
        assert off.projects == {"opted-in"}
        assert (await off.lookup(context(), FakeCall(BODY), ROUTES)).header is None

    asyncio.run(scenario())


def test_a_project_may_opt_in_when_the_cache_is_off() -> None:
    cache = ResponseCache.build(config(enabled=False), {}, None)
    assert cache.projects == {"opted-in"}
    assert cache.store is not None


def test_streams_hit_only_streamed_entries_and_counts_are_not_cached() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        await store_then_lookup(cache, FakeCall(BODY))
        streamed = await cache.lookup(context(), FakeCall(BODY, stream=True), ROUTES)
        assert streamed.hit is None
        count = await cache.lookup(
            context(), FakeCall(BODY, operation=Operation.COUNT_TOKENS), ROUTES
        )
        assert count.header is None

    asyncio.run(scenario())


def test_no_cache_refreshes_and_no_store_neither_reads_nor_writes() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        call = FakeCall(BODY)
        await store_then_lookup(cache, call, body=b'{"old":1}')
        # no-store: no read, no write
        off_ctx = context()
        off = await cache.lookup(off_ctx, replace(call, cache=CacheDirective.OFF), ROUTES)
        assert off.hit is None and off.header == "bypass" and off_ctx.cache == "bypass"
        off.answering(200, {"content-type": "application/json", ROUTE: "up"})
        await off.store(b'{"not stored":1}')
        # no-cache: no read, but the fresh answer replaces the old one
        refresh_ctx = context()
        refresh = await cache.lookup(
            refresh_ctx, replace(call, cache=CacheDirective.REFRESH), ROUTES
        )
        answered(refresh_ctx)
        assert refresh.hit is None and refresh.header == "bypass"
        refresh.answering(200, {"content-type": "application/json", ROUTE: "up"})
        await refresh.store(b'{"new":1}')
        assert refresh_ctx.cache == "store"
        again = await cache.lookup(context(), call, ROUTES)
        assert again.hit is not None and again.hit.body == b'{"new":1}'

    asyncio.run(scenario())


def test_a_request_a_reviewer_let_through_is_not_cached() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        ctx = context()
        ctx.policy = DataPolicyRecord("restricted", "restricted", action="approved")
        ticket = await cache.lookup(ctx, FakeCall(BODY), ROUTES)
        assert ticket.header == "bypass" and ctx.cache == "bypass"

    asyncio.run(scenario())


def test_errors_large_answers_and_failed_streams_are_not_stored() -> None:
    async def scenario() -> None:
        cache = ResponseCache.build(config(), {}, None)
        store = cache.store
        assert isinstance(store, MemoryCacheStore)
        # an error answer
        ctx = context()
        ticket = await cache.lookup(ctx, FakeCall(BODY), ROUTES)
        ticket.answering(429, {"content-type": "application/json", ROUTE: "up"})
        await ticket.store(b'{"error":{}}')
        assert len(store) == 0 and ctx.cache == "miss"
        # larger than max_entry_bytes (2048)
        ticket = await cache.lookup(context(), FakeCall(BODY), ROUTES)
        ticket.answering(200, {"content-type": "application/json", ROUTE: "up"})
        await ticket.store(b"x" * 5000)
        assert len(store) == 0
        # a stream that reported an error in-band
        ctx = context()
        ticket = await cache.lookup(ctx, FakeCall(BODY, stream=True), ROUTES)
        ticket.answering(200, {"content-type": "text/event-stream", ROUTE: "up"})
        ticket.keep(b"event: message_start\ndata: {}\n\n")
        ticket.keep(b'event: error\ndata: {"type":"error"}\n\n')
        await ticket.stream_complete()
        assert len(store) == 0 and ctx.cache == "miss"
        # a stream that never completed is simply never handed to stream_complete; one that did:
        ctx = context()
        ticket = await cache.lookup(ctx, FakeCall(BODY, stream=True), ROUTES)
        answered(ctx)
        ticket.answering(200, {"content-type": "text/event-stream", ROUTE: "up"})
        ticket.keep(b"data: {}\n\n")
        await ticket.stream_complete([b"data: [DONE]\n\n"])
        assert len(store) == 1 and ctx.cache == "store"
        hit = await cache.lookup(context(), FakeCall(BODY, stream=True), ROUTES)
        assert hit.hit is not None
        assert hit.hit.chunks == (b"data: {}\n\n", b"data: [DONE]\n\n")
        finished: list[str] = []
        replayed = [c async for c in hit.hit.replay(lambda: finished.append("now"))]
        assert replayed == list(hit.hit.chunks) and finished == ["now"]

    asyncio.run(scenario())


class BrokenStore:
    def __init__(self) -> None:
        self.calls = 0

    async def get(self, key: str) -> bytes | None:
        self.calls += 1
        raise StorageError("Redis did not answer a cache read (ConnectionError)")

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self.calls += 1
        raise StorageError("Redis did not answer a cache write (ConnectionError)")

    async def close(self) -> None:
        return None


def test_a_failing_store_is_skipped_and_logged_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = BrokenStore()
        cache = ResponseCache(config(), store, b"k")
        for _ in range(5):
            ctx = context()
            ticket = await cache.lookup(ctx, FakeCall(BODY), ROUTES)
            assert ticket.hit is None and ticket.header == "miss"
            assert ctx.cache == "unavailable"
            ticket.answering(200, {})
            await ticket.store(b"{}")
        assert store.calls == 1  # resting after the first failure: no timeout per request

    with caplog.at_level(logging.WARNING, logger="passerelle.cache"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.name == "passerelle.cache"]
    assert len(warnings) == 1
    assert "BODY" not in warnings[0].getMessage() and "cache:" not in warnings[0].getMessage()


def test_a_redis_cache_needs_the_audit_key() -> None:
    text = CONFIG.format(enabled="true") + (
        'state: {backend: redis, redis_url: "redis://127.0.0.1:6379/0"}\n'
    )
    with pytest.raises(ConfigError, match=r"audit\.key"):
        parse_config(text)
    with_key = text + "audit: {key: env:AUDIT_KEY}\n"
    assert parse_config(with_key).file.cache.enabled


def test_cache_settings_are_strict() -> None:
    base = CONFIG.format(enabled="true")
    with pytest.raises(ConfigError, match="ttl"):
        parse_config(base.replace("ttl_s: 60", "ttl: 60"))
    with pytest.raises(ConfigError, match="memory_max_bytes"):
        parse_config(
            base.replace(
                "max_entry_bytes: 2048", "max_entry_bytes: 4194304, memory_max_bytes: 2097152"
            )
        )
    with pytest.raises(ConfigError):
        parse_config(base.replace("cache: false}", "cache: sometimes}"))
