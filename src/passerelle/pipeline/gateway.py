"""The gateway service: authenticate, run the steps, call a route, relay, settle, audit.

Surfaces (``passerelle.http``) turn HTTP into calls on :class:`Gateway` and its replies back
into HTTP. Everything here is independent of the web framework.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from passerelle.audit.records import AuditRecord
from passerelle.config import Config
from passerelle.config.schema import ModelKind
from passerelle.core.context import KeyScope, Principal, RequestContext, RequestIds
from passerelle.errors import (
    AuthenticationFailed,
    GatewayError,
    PermissionDenied,
    UpstreamError,
)
from passerelle.formats.sse import SSEDecoder, event_data
from passerelle.pipeline.accounting import estimate_tokens, settle, usage_from_openai
from passerelle.pipeline.resilience import call_with_fallback
from passerelle.pipeline.routing import Router, RouteTarget
from passerelle.pipeline.steps import ModelAccess, PipelineRequest, Step, run_steps
from passerelle.providers.openai import Endpoint, OpenAIProvider, build_provider
from passerelle.providers.pricing import Price, PriceTable, TokenUsage
from passerelle.providers.transport import Timeouts, Transport, TransportError, UpstreamResponse
from passerelle.storage.keycache import KeyCache
from passerelle.storage.keys import KeyStatus, KeyStore

log = logging.getLogger("passerelle.gateway")

MAX_UPSTREAM_BODY = 64 * 1024 * 1024
_AUTH_MESSAGES = {
    KeyStatus.UNKNOWN: "Invalid API key. Use a key created with 'passerelle keys create'.",
    KeyStatus.EXPIRED: "This API key has expired. Ask an administrator for a new key.",
    KeyStatus.REVOKED: "This API key has been revoked. Ask an administrator for a new key.",
    KeyStatus.USER_DISABLED: "The user of this API key is disabled.",
}


@dataclass(slots=True)
class BufferedReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamReply:
    """A stream to relay. ``finish`` must be called once the relay ends, however it ends."""

    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Reply = BufferedReply | StreamReply
AuditSink = Callable[[AuditRecord], None]


class Gateway:
    """One configuration's worth of routing, policy and bookkeeping."""

    def __init__(
        self,
        config: Config,
        keys: KeyStore,
        transport: Transport,
        prices: PriceTable,
        audit: AuditSink,
        *,
        secrets: dict[str, str],
        key_cache: KeyCache | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.key_lookup: KeyStore | KeyCache = key_cache or keys
        self.rng = random.Random()
        self.ids = RequestIds()
        self.transport = transport
        self.prices = prices
        self._audit = audit
        self.providers: dict[str, OpenAIProvider] = {
            name: build_provider(
                name, provider, secrets.get(provider.api_key.env_name) if provider.api_key else None
            )
            for name, provider in config.providers.items()
        }
        self.router = Router(config, self.providers)
        self.steps: tuple[Step, ...] = (ModelAccess(config),)

    # -- identity --------------------------------------------------------------------------

    def authenticate(self, token: str | None, ctx: RequestContext) -> Principal:
        """Resolve the caller's key into a principal, or raise AuthenticationFailed."""
        if not token:
            raise AuthenticationFailed(
                "Missing API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        lookup = self.key_lookup.resolve(token)
        if lookup.status is not KeyStatus.VALID or lookup.key is None or lookup.user is None:
            if lookup.key is not None:
                ctx.notes["key_prefix"] = lookup.key.prefix
            raise AuthenticationFailed(
                _AUTH_MESSAGES[lookup.status],
                code=f"{lookup.status.value}_api_key"
                if lookup.status is not KeyStatus.UNKNOWN
                else "invalid_api_key",
            )
        project = lookup.key.project
        spec = self.config.project(project) if project else None
        principal = Principal(
            key_id=lookup.key.id,
            key_prefix=lookup.key.prefix,
            user_id=lookup.user.id,
            email=lookup.user.email,
            team=lookup.user.team,
            profile=lookup.user.profile,
            project=project,
            client=spec.client if spec else None,
            scope=lookup.key.scope,
        )
        ctx.principal = principal
        return principal

    def require_admin(self, ctx: RequestContext) -> Principal:
        principal = ctx.principal
        if principal is None or principal.scope is not KeyScope.ADMIN:
            raise PermissionDenied(
                "This endpoint needs an admin key ('passerelle keys create --admin').",
                code="admin_required",
            )
        return principal

    def models_for(self, principal: Principal) -> list[str]:
        return self.config.models_for_project(principal.project)

    # -- the OpenAI-family call ------------------------------------------------------------

    async def openai_call(
        self, ctx: RequestContext, body: dict[str, Any], endpoint: Endpoint
    ) -> Reply:
        """Serve a chat completion or embeddings request in OpenAI's format, passthrough."""
        kind = ModelKind.CHAT if endpoint is Endpoint.CHAT else ModelKind.EMBEDDING
        blocked = run_steps(self.steps, PipelineRequest(ctx, body, kind))
        if blocked is not None:
            raise blocked.error
        assert ctx.model_alias is not None
        targets = self.router.targets(ctx.model_alias)
        caller_wants_usage = bool(
            isinstance(body.get("stream_options"), dict)
            and body["stream_options"].get("include_usage")
        )

        async def send(target: RouteTarget) -> UpstreamResponse:
            upstream_body = dict(body)
            upstream_body["model"] = target.model
            if (
                ctx.stream
                and not caller_wants_usage
                and target.provider.profile.accepts_stream_options
            ):
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                upstream_body["stream_options"] = options
            config = target.provider.config
            return await self.transport.send(
                "POST",
                target.provider.url(endpoint, target.model),
                headers=target.provider.headers(),
                body=orjson.dumps(upstream_body),
                timeouts=Timeouts(config.timeouts.connect, config.timeouts.read),
            )

        outcome = await call_with_fallback(ctx, targets, send, rng=self.rng)
        target, response = outcome.target, outcome.response
        ctx.provider = target.provider.name
        ctx.provider_model = target.model
        headers = {
            "content-type": response.headers.get("content-type", "application/json"),
            "x-passerelle-route": target.provider.name,
        }
        if ctx.stream and response.status < 300:
            ctx.status = response.status
            return StreamReply(
                response.status,
                self._relay_stream(ctx, target, response, strip_usage=not caller_wants_usage),
                headers,
            )
        try:
            raw = await response.read(MAX_UPSTREAM_BODY)
        except TransportError as exc:
            raise UpstreamError(
                f"Provider '{target.provider.name}' failed while sending its answer.",
                code="upstream_disconnected",
            ) from exc
        ctx.status = response.status
        ctx.first_byte_ms = ctx.elapsed_ms()
        if response.status < 300:
            self._settle_buffered(ctx, target, raw, body)
        else:
            ctx.error_code = f"upstream_{response.status}"
        return BufferedReply(response.status, raw, headers)

    def _settle_buffered(
        self, ctx: RequestContext, target: RouteTarget, raw: bytes, request: dict[str, Any]
    ) -> None:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        usage = answer.get("usage") if isinstance(answer, dict) else None
        model = answer.get("model") if isinstance(answer, dict) else None
        if isinstance(usage, dict):
            settle(
                ctx,
                target,
                usage_from_openai(usage),
                self.prices,
                reported=True,
                response_model=model if isinstance(model, str) else None,
            )
        else:
            estimate = TokenUsage(
                input_tokens=estimate_tokens(len(orjson.dumps(request))),
                output_tokens=estimate_tokens(len(raw)),
            )
            settle(ctx, target, estimate, self.prices, reported=False)

    async def _relay_stream(
        self,
        ctx: RequestContext,
        target: RouteTarget,
        response: UpstreamResponse,
        *,
        strip_usage: bool,
    ) -> AsyncIterator[bytes]:
        """Relay SSE events one by one as they arrive, reading usage on the way.

        The terminating ``[DONE]`` is held back until the audit record is spooled, so a caller
        who saw the end of the stream can be sure the request is in the audit trail."""
        decoder = SSEDecoder()
        usage: TokenUsage | None = None
        response_model: str | None = None
        relayed_chars = 0
        done = False
        try:
            async for chunk in response.iter_chunks():
                if ctx.first_byte_ms is None:
                    ctx.first_byte_ms = ctx.elapsed_ms()
                for event in decoder.feed(chunk):
                    data = event_data(event)
                    if data == b"[DONE]":
                        done = True
                        continue
                    if data is not None and b'"usage":{' in data.replace(b" ", b""):
                        parsed = _loads(data)
                        if isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict):
                            usage = usage_from_openai(parsed["usage"])
                            model = parsed.get("model")
                            response_model = model if isinstance(model, str) else None
                            if strip_usage and parsed.get("choices") == []:
                                continue
                    relayed_chars += len(event)
                    yield event + b"\n\n"
        except TransportError as exc:
            ctx.status = 502
            ctx.error_code = f"upstream_stream_{exc.kind}"
        else:
            if not done:
                ctx.status = 502
                ctx.error_code = "upstream_stream_incomplete"
        finally:
            # Runs on normal end, upstream failure and caller disconnect alike.
            if usage is None:
                usage = TokenUsage(input_tokens=0, output_tokens=estimate_tokens(relayed_chars))
            settle(
                ctx,
                target,
                usage,
                self.prices,
                reported=ctx.status == 200 and done,
                response_model=response_model,
            )
        if ctx.error_code is not None:
            error = {
                "error": {
                    "message": "The provider's stream ended before it was complete.",
                    "type": "upstream_error",
                    "param": None,
                    "code": ctx.error_code,
                }
            }
            self.finish(ctx)
            yield b"data: " + orjson.dumps(error) + b"\n\n"
            return
        self.finish(ctx)
        yield b"data: [DONE]\n\n"

    # -- bookkeeping -----------------------------------------------------------------------

    def finish(self, ctx: RequestContext, error: GatewayError | None = None) -> None:
        """Write the request's audit record, exactly once, whatever happened."""
        if ctx.notes.get("_finished"):
            return
        ctx.notes["_finished"] = True
        if error is not None:
            ctx.status = error.status
            ctx.error_code = error.code
        self._audit(self.audit_record(ctx))

    def audit_record(self, ctx: RequestContext) -> AuditRecord:
        principal = ctx.principal
        details: dict[str, Any] = {
            "endpoint": ctx.endpoint,
            "wire": ctx.wire.value,
            "stream": ctx.stream,
            "route_model": ctx.provider_model,
            "attempts": [
                {
                    "provider": a.provider,
                    "model": a.model,
                    "status": a.status,
                    "error": a.error,
                    "ms": a.duration_ms,
                }
                for a in ctx.attempts
            ],
            "latency_ms": round(ctx.elapsed_ms(), 3),
            "first_byte_ms": None if ctx.first_byte_ms is None else round(ctx.first_byte_ms, 3),
            "cached_tokens": ctx.cached_tokens,
            "reasoning_tokens": ctx.reasoning_tokens,
            "usage_reported": ctx.usage_reported,
            "price_known": ctx.price_known,
            "error_code": ctx.error_code,
            "config_hash": self.config.hash,
            "price_table": self.prices.version,
            "key_prefix": principal.key_prefix if principal else ctx.notes.get("key_prefix"),
            "profile": principal.profile if principal else None,
        }
        if ctx.client_disconnected:
            details["client_disconnected"] = True
        if "blocked_by" in ctx.notes:
            details["blocked_by"] = ctx.notes["blocked_by"]
        return AuditRecord(
            record_id=ctx.request_id,
            kind="request",
            ts_us=ctx.started_us,
            actor=principal.email if principal else None,
            team=principal.team if principal else None,
            project=principal.project if principal else None,
            client=principal.client if principal else None,
            model=ctx.model_alias,
            provider=ctx.provider,
            status=ctx.status,
            input_tokens=ctx.input_tokens,
            output_tokens=ctx.output_tokens,
            cost_micro_usd=ctx.cost_micro_usd,
            details=details,
        )


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def price_overrides(config: Config) -> dict[str, Price]:
    return {
        key: Price(
            input=value.input,
            output=value.output,
            cached_input=value.cached_input,
            cache_write=value.cache_write,
            reasoning=value.reasoning,
        )
        for key, value in config.file.prices.items()
    }
