"""The exact response cache: the very same request, from the same project, answered again
without a provider call.

Where it sits. The gateway looks the cache up after every pre-call step has passed (kill
switches, model access, data policy: a cached answer never bypasses policy) and just before the
provider call; a miss stores the answer once it completed (a buffered answer before it is
returned, a stream when its relay ended normally).

What makes two requests the same. The project and its client (entries are never shared across
projects, and a key without a project never uses the cache), the caller's wire format, the
operation, the model alias, the stream flag, the caller headers that change the answer
(``anthropic-beta``, ``anthropic-version``), a hash of the configuration's routes and data
policy (an answer is only reused under the routes and policy that produced it), and the
caller's JSON body serialised with sorted keys. The body is the one the caller sent, before DLP
rewrote it: the caller receives the restored answer, so that is the answer to cache. For a
pseudonymized request this means the cache holds what the same caller, sending the same text,
would get again, personal data included; it never holds the pseudonymized body nor the vault,
and the entry is sealed with that very text (below), so it tells its reader nothing they did
not already have.

What the store sees. Every entry sits under ``HMAC-SHA256(lookup key, SHA-256(request))``, the
lookup key derived from the audit key (or, for the memory backend without one, a random key of
this process): whoever reads the store cannot confirm a guessed prompt. Every value is sealed
with AES-256-GCM under a key derived by HKDF from the request's digest (salted with another key
derived from the audit key): reading an answer takes the very request that produced it.

What is cached. Complete 2xx answers of ``generate`` (chat, messages, responses, Gemini) and of
embeddings (deterministic, and the same documents are embedded again and again by indexing
jobs); never token counts (free or estimated), errors, streams that failed, were cut or reported
an error event, answers larger than ``cache.max_entry_bytes``, nor a held request a reviewer
let through once. A streamed request only hits a streamed entry, replayed chunk for chunk.

Callers opt out per request: ``cache-control: no-cache`` (do not read, store the fresh answer),
``cache-control: no-store`` or ``x-passerelle-cache: off`` (neither read nor write). Every answer
the cache applies to says what happened in ``x-passerelle-cache: hit|miss|bypass``.

A hit is audited with no provider, no tokens and a cost of 0: nobody was paid for it, and spend
reports must not count an answer twice. What it first cost is on the record named by the hit's
``cache_source``.

The cache is an optimisation: a store that fails or times out is skipped for a few seconds, the
request is served by the provider, and its audit record says ``cache: unavailable``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from passerelle.config import Config
from passerelle.config.schema import StateBackend
from passerelle.core.context import RequestContext
from passerelle.errors import ConfigError, StorageError
from passerelle.providers.base import Operation, Wire
from passerelle.state.response_cache import CacheStore, MemoryCacheStore

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from passerelle.pipeline.routing import RouteTarget

log = logging.getLogger("passerelle.cache")

CACHE_HEADER = "x-passerelle-cache"
# The reply headers a replayed answer carries again. Not the request id (each request has its
# own), nor anything that describes this request's circumstances rather than the answer.
REPLAYED_HEADERS = (
    "content-type",
    "x-passerelle-route",
    "x-passerelle-dropped",
    "x-passerelle-policy",
)
CACHED_OPERATIONS = frozenset({Operation.GENERATE, Operation.EMBED})
# After a store failure, how long the cache is skipped before it is tried again: one timeout
# per burst, not one per request.
RETRY_AFTER_S = 5.0
_FORMAT = 2
_NONCE = 12


class CacheDirective(StrEnum):
    """What the caller allows the cache to do with this request."""

    USE = "use"
    """Read, and store on a miss (the default)."""
    REFRESH = "refresh"
    """``cache-control: no-cache``: do not reuse an answer, but store the fresh one."""
    OFF = "off"
    """``cache-control: no-store`` or ``x-passerelle-cache: off``: neither read nor write."""


def directive_from_headers(
    cache_control: str | None, passerelle_cache: str | None
) -> CacheDirective:
    """The caller's directive, from its ``cache-control`` and ``x-passerelle-cache`` headers."""
    if passerelle_cache is not None and passerelle_cache.strip().lower() in ("off", "no-store"):
        return CacheDirective.OFF
    if not cache_control:
        return CacheDirective.USE
    tokens = {part.strip().lower() for part in cache_control.split(",")}
    if "no-store" in tokens:
        return CacheDirective.OFF
    if "no-cache" in tokens or "max-age=0" in tokens:
        return CacheDirective.REFRESH
    return CacheDirective.USE


class CacheOutcome(StrEnum):
    """What the cache did for one request, as its audit record says (``details.cache``)."""

    HIT = "hit"
    """Answered from the cache: no provider call, no tokens, no cost."""
    STORE = "store"
    """Answered by a provider, and the answer was stored."""
    MISS = "miss"
    """Answered by a provider; the answer was not stored (an error, too large, cut)."""
    BYPASS = "bypass"
    """The caller opted out (no-store, x-passerelle-cache: off) or a reviewer let it through."""
    UNAVAILABLE = "unavailable"
    """The store failed or timed out: skipped, answered by a provider."""


class CacheableCall(Protocol):
    """What the cache reads of a call (``passerelle.pipeline.gateway.Call``)."""

    @property
    def surface(self) -> Wire: ...
    @property
    def operation(self) -> Operation: ...
    @property
    def body(self) -> Mapping[str, Any]: ...
    @property
    def stream(self) -> bool: ...
    @property
    def client_headers(self) -> Mapping[str, str]: ...
    @property
    def cache(self) -> CacheDirective: ...


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer as the caller first received it: buffered (one chunk) or a stream's chunks."""

    status: int
    headers: dict[str, str]
    chunks: tuple[bytes, ...]
    stream: bool
    request_id: str
    stored_at: float
    deployment: tuple[str, str] | None = None
    """The provider and provider model that made the answer."""

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def replay(self, before_last: Callable[[], None]) -> AsyncIterator[bytes]:
        """The stream again, chunk for chunk; ``before_last`` runs before the last chunk goes,
        as a relayed stream writes its audit record before its last event."""
        last = len(self.chunks) - 1
        for index, chunk in enumerate(self.chunks):
            if index == last:
                before_last()
            yield chunk


# -- sealing -------------------------------------------------------------------------------


def answer_policy(config: Config) -> str:
    """A hash of the configuration sections that decide what a request's answer is: where it
    may go and as what (providers, models and routes, data classes, clients, projects, DLP,
    policy). Another instance with the same policy but its own storage, port or limits shares
    the same entries; a changed route or DLP action never serves an answer made under the old."""
    sections = {"providers", "models", "data_classes", "clients", "projects", "dlp", "policy"}
    dumped = config.file.model_dump(mode="json", include=sections)
    return hashlib.sha256(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_digest(
    ctx: RequestContext, call: CacheableCall, policy_hash: str
) -> tuple[str, bytes] | None:
    """The project and the SHA-256 of everything that makes two requests the same answer; None
    when the request has no project or cannot be serialised canonically."""
    principal = ctx.principal
    if principal is None or not principal.project or ctx.model_alias is None:
        return None
    try:
        canonical = orjson.dumps(
            {
                "format": _FORMAT,
                "policy": policy_hash,
                "client": principal.client,
                "project": principal.project,
                "surface": call.surface.value,
                "operation": call.operation.value,
                "model": ctx.model_alias,
                "stream": call.stream,
                "headers": dict(call.client_headers),
                "body": call.body,
            },
            option=orjson.OPT_SORT_KEYS,
        )
    except orjson.JSONEncodeError:
        return None
    return principal.project, hashlib.sha256(canonical).digest()


class Sealer:
    """Entry keys and entry encryption, from one secret (derived from the audit key)."""

    def __init__(self, secret: bytes) -> None:
        self._lookup = hmac.new(secret, b"passerelle response cache: lookup", "sha256").digest()
        self._salt = hmac.new(secret, b"passerelle response cache: value", "sha256").digest()

    def slot(self, project: str, digest: bytes) -> str:
        """The store key: the project in clear (to find a project's entries, e.g. to erase
        them), the request only as a keyed hash."""
        tag = hmac.new(self._lookup, digest, "sha256").hexdigest()
        return f"cache:{project}:{tag}"

    def _aead(self, digest: bytes) -> AESGCM:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._salt,
            info=b"passerelle response cache value v1",
        ).derive(digest)
        return AESGCM(key)

    def seal(self, slot: str, digest: bytes, answer: CachedAnswer) -> bytes:
        meta = orjson.dumps(
            {
                "v": _FORMAT,
                "status": answer.status,
                "headers": answer.headers,
                "stream": answer.stream,
                "request_id": answer.request_id,
                "stored_at": answer.stored_at,
                "deployment": answer.deployment,
                "chunks": [len(chunk) for chunk in answer.chunks],
            }
        )
        plain = len(meta).to_bytes(4, "big") + meta + b"".join(answer.chunks)
        nonce = os.urandom(_NONCE)
        return nonce + self._aead(digest).encrypt(nonce, plain, slot.encode())

    def open(self, slot: str, digest: bytes, sealed: bytes) -> CachedAnswer | None:
        """The answer, or None when the value does not open with this request's key (another
        request's value, a tampered or foreign entry)."""
        if len(sealed) <= _NONCE:
            return None
        try:
            plain = self._aead(digest).decrypt(sealed[:_NONCE], sealed[_NONCE:], slot.encode())
        except InvalidTag:
            return None
        size = int.from_bytes(plain[:4], "big")
        meta = orjson.loads(plain[4 : 4 + size])
        if not isinstance(meta, dict) or meta.get("v") != _FORMAT:
            return None
        chunks: list[bytes] = []
        offset = 4 + size
        for length in meta["chunks"]:
            chunks.append(plain[offset : offset + length])
            offset += length
        return CachedAnswer(
            status=meta["status"],
            headers=meta["headers"],
            chunks=tuple(chunks),
            stream=meta["stream"],
            request_id=meta["request_id"],
            stored_at=meta["stored_at"],
            deployment=tuple(meta["deployment"]) if meta.get("deployment") else None,
        )


# -- the cache -----------------------------------------------------------------------------


class ResponseCache:
    """The cache of one gateway: which projects use it, its store, its keys."""

    def __init__(self, config: Config, store: CacheStore | None, secret: bytes) -> None:
        settings = config.file.cache
        self.policy_hash = answer_policy(config)
        self.store = store
        self.ttl_s = float(settings.ttl_s)
        self.max_entry_bytes = settings.max_entry_bytes
        self.projects = frozenset(
            name
            for name, project in config.file.projects.items()
            if (settings.enabled if project.cache is None else project.cache)
        )
        self._sealer = Sealer(secret)
        self._retry_at = 0.0
        self._failing = False

    @classmethod
    def build(
        cls,
        config: Config,
        secrets: Mapping[str, str],
        audit_key: bytes | None,
        redis: aioredis.Redis | None = None,
    ) -> ResponseCache:
        """The cache ``config`` asks for: off, in this process, or in Redis (``state``)."""
        settings = config.file.cache
        enabled = settings.enabled or any(p.cache for p in config.file.projects.values())
        if not enabled:
            return cls(config, None, b"")
        if config.file.state.backend is StateBackend.REDIS:
            if audit_key is None:  # also refused when the configuration is loaded
                raise ConfigError(
                    "a response cache in Redis needs audit.key: its entries are keyed with it",
                    source=config.source,
                )
            from passerelle.state.redis_cache import redis_cache_store

            shared = redis_cache_store(config.file.state, secrets, redis)
            return cls(config, shared, audit_key)
        store = MemoryCacheStore(settings.memory_max_bytes)
        # Without an audit key, a key of this process: its entries die with it anyway.
        return cls(config, store, audit_key if audit_key is not None else os.urandom(32))

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def lookup(
        self, ctx: RequestContext, call: CacheableCall, routes: Iterable[RouteTarget]
    ) -> CacheTicket:
        """What the cache holds for this request, and how to store its answer on a miss.

        ``routes`` are the routes the steps left to this request: an answer made by a
        deployment (provider and model) no longer among them (a kill switch removed it, a
        canary was rolled back) is not reused."""
        project = ctx.principal.project if ctx.principal is not None else None
        if (
            self.store is None
            or project not in self.projects
            or call.operation not in CACHED_OPERATIONS
        ):
            return CacheTicket.inert()
        if call.cache is CacheDirective.OFF or (
            ctx.policy is not None and ctx.policy.action == "approved"
        ):
            return CacheTicket.inert(ctx, CacheOutcome.BYPASS, header="bypass")
        found = request_digest(ctx, call, self.policy_hash)
        if found is None:
            return CacheTicket.inert()
        slot = self._sealer.slot(*found)
        if call.cache is CacheDirective.REFRESH:
            ctx.cache = CacheOutcome.BYPASS  # STORE once the fresh answer is stored
            return CacheTicket(self, ctx, slot, found[1], stream=call.stream, header="bypass")
        try:
            sealed = await self._get(slot)
        except StorageError:
            return CacheTicket.inert(ctx, CacheOutcome.UNAVAILABLE, header="miss")
        answer = self._sealer.open(slot, found[1], sealed) if sealed is not None else None
        if (
            answer is None
            or answer.stream is not call.stream
            or answer.deployment not in {(r.provider.name, r.model) for r in routes}
        ):
            ctx.cache = CacheOutcome.MISS  # STORE once the answer is stored
            return CacheTicket(self, ctx, slot, found[1], stream=call.stream, header="miss")
        ctx.cache = CacheOutcome.HIT
        ctx.cache_source = answer.request_id
        ctx.status = answer.status
        ctx.first_byte_ms = ctx.elapsed_ms()
        age = max(0, int(time.time() - answer.stored_at))
        headers = {**answer.headers, CACHE_HEADER: "hit", "age": str(age)}
        ticket = CacheTicket.inert(ctx, CacheOutcome.HIT, header="hit")
        ticket.hit = replace(answer, headers=headers)
        return ticket

    async def save(self, slot: str, digest: bytes, answer: CachedAnswer) -> bool:
        """Seal and store one answer; False when the store failed (the request is not)."""
        assert self.store is not None
        if self._resting():
            return False
        value = self._sealer.seal(slot, digest, answer)
        try:
            await self.store.put(slot, value, self.ttl_s)
        except StorageError as exc:
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def _get(self, slot: str) -> bytes | None:
        assert self.store is not None
        if self._resting():
            raise StorageError("the response cache's store failed a moment ago")
        try:
            value = await self.store.get(slot)
        except StorageError as exc:
            self._failed(exc)
            raise
        self._recovered()
        return value

    def _resting(self) -> bool:
        """Whether the store failed less than ``RETRY_AFTER_S`` ago: not worth a timeout."""
        return self._failing and time.monotonic() < self._retry_at

    def _failed(self, exc: StorageError) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if self._failing:
            return  # the same burst: said once already
        self._failing = True
        log.warning(
            "response cache unavailable, requests go to providers (retried in %.0f s): %s",
            RETRY_AFTER_S,
            exc,
        )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("response cache available again")


class CacheTicket:
    """One request's dealings with the cache: what the lookup found (``hit``), what to tell the
    caller (``header``), and, on a miss, storing the answer once it is complete."""

    __slots__ = (
        "_cache",
        "_chunks",
        "_ctx",
        "_digest",
        "_headers",
        "_size",
        "_slot",
        "_spoiled",
        "_status",
        "_stream",
        "header",
        "hit",
    )

    def __init__(
        self,
        cache: ResponseCache | None,
        ctx: RequestContext | None,
        slot: str | None,
        digest: bytes,
        *,
        stream: bool,
        header: str | None,
    ) -> None:
        self._cache = cache
        self._ctx = ctx
        self._slot = slot
        self._digest = digest
        self._stream = stream
        self._status = 0
        self._headers: Mapping[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._spoiled = False
        self.header = header
        """``x-passerelle-cache`` for the caller: hit, miss, bypass; None: the cache does not
        apply to this request."""
        self.hit: CachedAnswer | None = None

    @classmethod
    def inert(
        cls,
        ctx: RequestContext | None = None,
        outcome: CacheOutcome | None = None,
        *,
        header: str | None = None,
    ) -> CacheTicket:
        """A ticket that stores nothing: the cache does not apply, was bypassed, failed, or hit."""
        if ctx is not None:
            ctx.cache = outcome
        return cls(None, None, None, b"", stream=False, header=header)

    @property
    def writes(self) -> bool:
        """Whether the answer, once complete, is to be stored."""
        return self._cache is not None and not self._spoiled

    def answering(self, status: int, headers: dict[str, str]) -> None:
        """The reply being built: adds ``x-passerelle-cache`` to its headers, and keeps them by
        reference (what is stored is what they hold once the answer is complete)."""
        if self.header is not None:
            headers[CACHE_HEADER] = self.header
        self._status = status
        self._headers = headers
        if not 200 <= status < 300:
            self._spoiled = True

    async def store(self, body: bytes) -> None:
        """Store a complete buffered answer (one that went through ``answering``)."""
        if self.writes and not self._stream and self._headers:
            self._chunks = [body]
            self._size = len(body)
            await self._save()

    def keep(self, chunk: bytes) -> None:
        """One chunk of a relayed stream, as the caller receives it."""
        if not self.writes:
            return
        assert self._cache is not None
        self._size += len(chunk)
        if (
            self._size > self._cache.max_entry_bytes
            or chunk.startswith(b"event: error")  # an error the stream reported in-band
            or b'"response.failed"' in chunk
        ):
            self._spoiled = True  # never cached
            self._chunks = []
            return
        self._chunks.append(chunk)

    async def stream_complete(self, tail: list[bytes] | None = None) -> None:
        """The stream reached its proper end: store it. ``tail``: chunks still to be sent."""
        if not self.writes or not self._stream:
            return
        for chunk in tail or ():
            self.keep(chunk)
        await self._save()

    async def _save(self) -> None:
        cache, ctx, slot = self._cache, self._ctx, self._slot
        assert cache is not None and ctx is not None and slot is not None
        chunks, self._chunks, self._cache = self._chunks, [], None  # stored at most once
        if self._spoiled or not chunks or self._size > cache.max_entry_bytes:
            return
        answer = CachedAnswer(
            status=self._status,
            headers={k: v for k, v in self._headers.items() if k in REPLAYED_HEADERS},
            chunks=tuple(chunks),
            stream=self._stream,
            request_id=ctx.request_id,
            stored_at=time.time(),
            deployment=(ctx.provider, ctx.provider_model)
            if ctx.provider and ctx.provider_model
            else None,
        )
        if await cache.save(slot, self._digest, answer):
            ctx.cache = CacheOutcome.STORE
        else:
            ctx.cache = CacheOutcome.UNAVAILABLE
