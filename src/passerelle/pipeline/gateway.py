"""The gateway service: authenticate, run the steps, call a route, relay, settle, audit.

Surfaces (``passerelle.http``) turn HTTP into calls on :class:`Gateway` and its replies back
into HTTP. Everything here is independent of the web framework.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from passerelle.audit.records import AuditRecord
from passerelle.config import Config
from passerelle.config.schema import ModelKind, StateBackend
from passerelle.core.canonical import Request, Usage
from passerelle.core.context import KeyScope, Principal, RequestContext, RequestIds
from passerelle.core.translation import DROPPED_HEADER, Loss, Translated, dropped_header_value
from passerelle.dlp.actions import Vault
from passerelle.dlp.findings import ScanError
from passerelle.errors import (
    AuthenticationFailed,
    GatewayError,
    HeldForReview,
    InternalError,
    LimitsUnavailable,
    PasserelleError,
    PermissionDenied,
    PolicyViolation,
    StorageError,
    UpstreamError,
    UpstreamUnavailable,
)
from passerelle.pipeline.accounting import estimate_tokens, settle, usage_from_openai
from passerelle.pipeline.answers import AnswerFilter
from passerelle.pipeline.breakers import CircuitBreakers
from passerelle.pipeline.budgets import BudgetAlert, BudgetHold, Budgets, Downgrade
from passerelle.pipeline.cache import CachedAnswer, CacheDirective, CacheTicket, ResponseCache
from passerelle.pipeline.canary import CanarySplit, canaries
from passerelle.pipeline.canary import audit_details as canary_details
from passerelle.pipeline.canary_evaluator import CanaryEvaluator
from passerelle.pipeline.data_policy import DataPolicy
from passerelle.pipeline.decisions import Hold
from passerelle.pipeline.kill_switches import KillSwitches
from passerelle.pipeline.limits import LimitTicket, RateLimiter
from passerelle.pipeline.limits import headers as limit_headers
from passerelle.pipeline.relay import RelayError, StreamRelay
from passerelle.pipeline.resilience import RouteSkipped, call_with_fallback
from passerelle.pipeline.routing import Router, RouteTarget
from passerelle.pipeline.scanning import ScannerHandle, dlp_settings
from passerelle.pipeline.steps import ModelAccess, PipelineRequest, Step, run_steps
from passerelle.pipeline.translate import codec
from passerelle.providers.base import Framing, Operation, Provider, Unsupported, Wire
from passerelle.providers.pricing import Price, PriceTable, TokenUsage
from passerelle.providers.registry import VertexTokens, build_providers
from passerelle.providers.transport import Timeouts, Transport, TransportError, UpstreamResponse
from passerelle.runtime import admin_record
from passerelle.state.counters import Counters, StateUnavailableError
from passerelle.state.factory import build_counters
from passerelle.state.settler import Settler
from passerelle.storage.canary import CanaryBoard, CanaryStore
from passerelle.storage.keycache import KeyCache
from passerelle.storage.keys import KeyStatus, KeyStore
from passerelle.storage.killswitch import KillSwitchBoard, KillSwitchStore
from passerelle.storage.reviews import HeldRequest, ReviewStatus, ReviewStore
from passerelle.storage.spend import format_usd

log = logging.getLogger("passerelle.gateway")

MAX_UPSTREAM_BODY = 64 * 1024 * 1024
OFFLOAD_SCAN_BYTES = 256 * 1024
"""Bodies from this size on are scanned (and run through the other steps) off the event loop."""
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


@dataclass(frozen=True, slots=True)
class Call:
    """One call as a surface hands it to the gateway."""

    surface: Wire
    operation: Operation
    body: dict[str, Any]
    stream: bool
    # Only the caller headers a same-format provider may need (``FORWARDED_HEADERS``).
    client_headers: Mapping[str, str]
    # What the caller's cache-control / x-passerelle-cache headers allow the response cache.
    cache: CacheDirective = CacheDirective.USE
    # The body's size as received, in bytes (0 when not known).
    size: int = 0


class _Plan:
    """What is sent for one call: the caller's body when a route speaks the caller's format,
    a translation through the canonical request otherwise (decoded once, on first need)."""

    __slots__ = ("_canonical", "alias", "answer", "cache", "call", "framing", "losses", "wire")

    def __init__(
        self,
        call: Call,
        alias: str,
        answer: AnswerFilter | None = None,
        cache: CacheTicket | None = None,
    ) -> None:
        self.call = call
        self.alias = alias
        self.answer = answer
        self.cache = cache or CacheTicket.inert()
        self._canonical: Translated[Request] | None = None
        self.wire = call.surface
        self.framing = Framing.SSE
        self.losses: list[Loss] = []

    @property
    def caller_wants_usage(self) -> bool:
        options = self.call.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    def body_for(self, wire: Wire, model: str) -> tuple[dict[str, Any], list[Loss]]:
        call = self.call
        if wire is call.surface:
            return dict(call.body), []
        if self._canonical is None:
            self._canonical = codec(call.surface).decode_request(call.body, self.alias, call.stream)
        request = replace(self._canonical.value, model=model, stream=call.stream)
        encoded = codec(wire).encode_request(request)
        body = dict(encoded.value)
        if call.stream and wire not in (Wire.GEMINI, Wire.BEDROCK_CONVERSE):  # stream in the URL
            body["stream"] = True
        return body, [*self._canonical.losses, *encoded.losses]

    def sent(self, wire: Wire, framing: Framing, losses: list[Loss]) -> None:
        self.wire = wire
        self.framing = framing
        self.losses = list(losses)


def _count_reply(plan: _Plan, answer: Any, raw: bytes) -> bytes:
    """A token count in the caller's format (Anthropic ``input_tokens``, Gemini
    ``totalTokens``), from the upstream's."""
    if plan.wire is plan.call.surface:
        return raw
    count = 0
    if isinstance(answer, dict):
        for key in ("input_tokens", "totalTokens"):
            value = answer.get(key)
            if isinstance(value, int):
                count = value
    if plan.call.surface is Wire.GEMINI:
        return orjson.dumps({"totalTokens": count})
    return orjson.dumps({"input_tokens": count})


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
        vertex_tokens: VertexTokens | None = None,
        review_key: bytes | None = None,
        counters: Counters | None = None,
        kill_switches: KillSwitchBoard | None = None,
        canary_board: CanaryBoard | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.key_lookup: KeyStore | KeyCache = key_cache or keys
        self.rng = random.Random()
        # Per deployment, for this process only: each gateway instance learns on its own.
        self.breakers = CircuitBreakers()
        self.ids = RequestIds()
        self.transport = transport
        self.prices = prices
        self._audit = audit
        self.providers: dict[str, Provider] = build_providers(
            config, secrets, vertex_tokens=vertex_tokens
        )
        self.router = Router(config, self.providers)
        # Compiling the scanner takes a while: it starts now, in the background (scanning.py).
        self.dlp: ScannerHandle | None = (
            ScannerHandle(dlp_settings(config)) if config.file.dlp.enabled else None
        )
        self.data_policy = DataPolicy(config, self.dlp, self.router)
        # Without a board polling the database (tests, tools), only this process's changes apply.
        self.kill_switches = kill_switches or KillSwitchBoard(KillSwitchStore(keys.db))
        # Canary roll-outs: the split offers a request the new version's routes, so it runs
        # first and the other steps choose among them (pipeline/canary.py); the evaluator
        # moves the roll-outs in the background, once started (canary_evaluator.py).
        self.canary_board = canary_board or CanaryBoard(CanaryStore(keys.db))
        self.canary = CanaryEvaluator(config, self.canary_board, audit)
        split = (CanarySplit(self.canary_board, config, self.router),) if canaries(config) else ()
        self.steps: tuple[Step, ...] = (
            *split,
            KillSwitches(self.kill_switches, config, self.router),
            ModelAccess(config),
            self.data_policy,
        )
        self.reviews = ReviewStore(keys.db, hours=config.file.policy.review_hours)
        self._review_key = review_key
        # Budgets, rate limits and the cache keep their state in this process or in Redis
        # (config ``state``), through one connection pool.
        state = config.file.state
        redis = None
        if state.backend is StateBackend.REDIS:  # the client library is imported only then
            from passerelle.state.redis import redis_client

            redis = redis_client(state, secrets)
        self.counters: Counters = counters or build_counters(state, secrets, redis)
        self.limiter = RateLimiter(config.file.rate_limits)
        self.settler = Settler(self.counters)
        self.budgets = Budgets(
            config, self.counters, keys.db, prices, self._budget_alert, settler=self.settler
        )
        webhook = config.file.limits.alert_webhook
        self._alert_webhook = secrets.get(webhook.env_name) if webhook is not None else None
        self._background: set[asyncio.Task[None]] = set()
        # The exact response cache (pipeline/cache.py): in this process or in Redis (``state``).
        self.cache = ResponseCache.build(config, secrets, review_key, redis)

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

    # -- calls -------------------------------------------------------------------------------

    async def call(self, ctx: RequestContext, call: Call) -> Reply:
        """Serve one call in the caller's wire format, whatever format each route speaks."""
        kind = ModelKind.EMBEDDING if call.operation is Operation.EMBED else ModelKind.CHAT
        if self.dlp is not None and not self.dlp.ready:
            await self.dlp.wait()
        request = PipelineRequest(ctx, call.body, kind)
        early = await self._run_steps(request, call)
        if early is not None:
            return early
        if self.limiter or self.budgets:
            request = await self._admit(request, call)
        assert ctx.model_alias is not None
        targets = request.targets or self.router.targets(ctx.model_alias)
        # Every step has passed: an identical earlier answer from a route still allowed may be
        # reused (keyed on the body as the caller sent it, before DLP rewrote it).
        cache = await self.cache.lookup(ctx, call, targets)
        if cache.hit is not None:
            return self._replay(ctx, cache.hit)
        if request.body is not call.body:
            call = replace(call, body=request.body)
        plan = _Plan(call, ctx.model_alias, self._answer_filter(call, request.vault), cache)

        async def send(target: RouteTarget) -> UpstreamResponse:
            provider = target.provider
            try:
                wire = provider.wire_for(call.operation, target.model, call.surface)
            except Unsupported as exc:
                raise RouteSkipped(str(exc), code="route_unsupported") from None
            body, losses = plan.body_for(wire, target.model)
            try:
                request = await provider.prepare(
                    call.operation,
                    wire,
                    target.model,
                    body,
                    stream=call.stream,
                    client_headers=call.client_headers,
                )
            except PasserelleError as exc:  # cloud credentials that cannot be obtained
                raise RouteSkipped(str(exc), code="route_credentials") from None
            plan.sent(wire, request.framing, losses)
            config = provider.config
            response = await self.transport.send(
                request.method,
                request.url,
                headers=request.headers,
                body=request.body,
                timeouts=Timeouts(config.timeouts.connect, config.timeouts.read),
            )
            if call.stream and response.status < 300:
                # Until its first byte, a stream can still fail over to another route: one that
                # breaks, stalls or ends before it raises a TransportError, like a refused call.
                await response.first_chunk()
                ctx.first_byte_ms = ctx.elapsed_ms()
            return response

        try:
            outcome = await call_with_fallback(
                ctx, targets, send, breakers=self.breakers, rng=self.rng
            )
        except UpstreamUnavailable:
            if call.operation is Operation.COUNT_TOKENS and all(
                a.error == "route_unsupported" for a in ctx.attempts
            ):
                return self._estimate_count(ctx, plan)
            raise
        target, response = outcome.target, outcome.response
        ctx.provider = target.provider.name
        ctx.provider_model = target.model
        headers = {
            "content-type": response.headers.get("content-type", "application/json"),
            "x-passerelle-route": target.provider.name,
        }
        if plan.losses:
            headers[DROPPED_HEADER] = dropped_header_value(plan.losses)
        policy = ctx.policy
        if policy is not None and policy.action != "allow":
            headers["x-passerelle-policy"] = f"{policy.action}; class={policy.data_class}"
        cache.answering(response.status, headers)
        if call.stream and response.status < 300:
            ctx.status = response.status
            headers["content-type"] = "text/event-stream"
            return StreamReply(response.status, self._relay(ctx, target, response, plan), headers)
        try:
            raw = await response.read(MAX_UPSTREAM_BODY)
        except TransportError as exc:
            raise UpstreamError(
                f"Provider '{target.provider.name}' failed while sending its answer.",
                code="upstream_disconnected",
            ) from exc
        ctx.status = response.status
        ctx.first_byte_ms = ctx.elapsed_ms()
        if response.status >= 300:
            ctx.error_code = f"upstream_{response.status}"
            raw = target.provider.error_body(plan.wire, response.status, response.headers, raw)
            headers["content-type"] = "application/json"
            if plan.wire is not call.surface:
                raw = self._translate_error(plan, response.status, raw)
                headers["content-type"] = "application/json"
            return BufferedReply(response.status, raw, headers)
        raw = self._settle_buffered(ctx, target, raw, plan)
        if plan.answer is not None:
            raw = plan.answer.body(raw)
            self._answer_findings(ctx, plan.answer)
        if plan.wire is not call.surface:
            headers["content-type"] = "application/json"
            if plan.losses:
                headers[DROPPED_HEADER] = dropped_header_value(plan.losses)
        await cache.store(raw)
        return BufferedReply(response.status, raw, headers)

    async def _run_steps(self, request: PipelineRequest, call: Call) -> BufferedReply | None:
        """Run the pre-call steps; a Hold is resolved against the review queue, a Block raised.
        A reply is returned only for a token count that may not leave (estimated here)."""
        ctx = request.ctx
        if call.size >= OFFLOAD_SCAN_BYTES and self.dlp is not None:
            # Scanning a large body takes milliseconds of CPU; in a worker thread the event
            # loop keeps serving other requests meanwhile (Hyperscan releases the interpreter
            # lock while it scans, and each thread has its own scratch space).
            stopped = await asyncio.to_thread(run_steps, self.steps, request)
        else:
            stopped = run_steps(self.steps, request)
        if stopped is None:
            return None
        if ctx.policy is not None and call.operation is Operation.COUNT_TOKENS:
            # Counting tokens sends the prompt too: when it may not go, count it here.
            assert ctx.model_alias is not None
            return self._estimate_count(ctx, _Plan(call, ctx.model_alias))
        if not isinstance(stopped, Hold):
            raise stopped.error
        request.targets = await self._hold(ctx, call, stopped)
        return None

    # -- rate limits and budgets -------------------------------------------------------------

    async def _admit(
        self, request: PipelineRequest, call: Call, *, allow_downgrade: bool = True
    ) -> PipelineRequest:
        """Count the request in its rate limits and reserve its worst-case cost on its budgets,
        in one atomic step; a budget past its soft threshold may send it to a cheaper model,
        whose steps then run again (the data policy of the new model's routes applies). Both
        fail closed."""
        ctx = request.ctx
        principal, alias = ctx.principal, ctx.model_alias
        assert principal is not None and alias is not None
        tokens = estimate_tokens(len(orjson.dumps(call.body))) if self.limiter else 0
        plan = self.limiter.plan(principal, alias, tokens) if self.limiter else ()
        windows = [applied.window for applied in plan]
        outcome: BudgetHold | Downgrade | None = None
        if self.budgets and call.operation is not Operation.COUNT_TOKENS:
            targets = request.targets or self.router.targets(alias)
            amount = self.budgets.worst_case(targets, call.operation, call.surface, call.body)
            admitted, outcome = await self.budgets.reserve(
                principal, alias, amount, windows=windows, allow_downgrade=allow_downgrade
            )
        elif windows:
            try:
                admitted = await self.counters.admit(windows)
            except StateUnavailableError as exc:
                log.error("rate limits cannot be checked: %s", exc)
                raise LimitsUnavailable(
                    "Rate limits cannot be checked right now: the gateway's shared state does "
                    "not answer, so this request was not sent (limits fail closed). Retry in a "
                    "moment; if it lasts, an administrator must check Redis."
                ) from None
        else:
            return request
        if isinstance(outcome, Downgrade):  # nothing stays counted for the first model
            ctx.downgraded_from = alias
            ctx.notes["downgrade_budget"] = outcome.budget
            ctx.model_alias = outcome.alias
            ctx.policy = None
            request = PipelineRequest(ctx, call.body, request.kind)
            await self._run_steps(request, call)
            return await self._admit(request, call, allow_downgrade=False)
        if plan:
            ctx.limit_ticket = RateLimiter.ticket(plan, admitted, tokens)
        ctx.budget_hold = outcome
        return request

    def reply_headers(self, ctx: RequestContext) -> dict[str, str]:
        """Headers every answer carries: rate limits in the caller's convention, and the
        downgrade a budget made."""
        out: dict[str, str] = {}
        if isinstance(ctx.limit_ticket, LimitTicket):
            out.update(limit_headers(ctx.limit_ticket, ctx.wire))
        if ctx.downgraded_from is not None:
            budget = ctx.notes.get("downgrade_budget", "")
            out["x-passerelle-downgraded"] = (
                f"{ctx.downgraded_from} -> {ctx.model_alias}; budget={budget}"
            )
        return out

    def _settle_limits(self, ctx: RequestContext) -> None:
        """Replace the reservation and the token estimate by what the request really cost
        (sent with other requests' settlements within a few milliseconds: ``state/settler``)."""
        hold, ticket = ctx.budget_hold, ctx.limit_ticket
        budgets: dict[str, int] = {}
        if isinstance(hold, BudgetHold):
            budgets = dict.fromkeys(hold.keys, ctx.cost_micro_usd - hold.amount)
        windows: dict[str, int] = {}
        if isinstance(ticket, LimitTicket):
            delta = ctx.input_tokens + ctx.output_tokens - ticket.estimated_tokens
            windows = {window.key: window.cost for window in ticket.token_windows(delta)}
        self.settler.add(budgets, windows)

    def _budget_alert(self, alert: BudgetAlert) -> None:
        """A soft threshold crossed or a hard cap reached: log, audit trail, webhook."""
        log.warning(
            "budget %s %s: %s spent %s USD (threshold %s USD, period %s)",
            alert.budget,
            "soft threshold crossed" if alert.level == "soft" else "hard cap reached",
            alert.name,
            format_usd(alert.spent_micro_usd),
            format_usd(alert.threshold_micro_usd),
            alert.period,
        )
        self._audit(
            admin_record(
                f"budget.{alert.level}",
                actor="gateway",
                target=alert.budget,
                **{k: v for k, v in alert.payload().items() if k != "event"},
            )
        )
        if self._alert_webhook is not None:
            self.spawn(self._post_alert(self._alert_webhook, alert))

    async def _post_alert(self, url: str, alert: BudgetAlert) -> None:
        """POST the alert as JSON; one retry. The URL is a credential: never logged."""
        body = orjson.dumps(alert.payload())
        for attempt in (1, 2):
            try:
                response = await self.transport.send(
                    "POST",
                    url,
                    headers={"content-type": "application/json"},
                    body=body,
                    timeouts=Timeouts(5.0, 10.0),
                )
                status = response.status
                response.close()
                if status < 300:
                    return
                log.warning("budget alert webhook answered HTTP %d (attempt %d)", status, attempt)
            except TransportError as exc:
                log.warning("budget alert webhook failed: %s (attempt %d)", exc.kind, attempt)
            if attempt == 1:
                await asyncio.sleep(1.0)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run bookkeeping in the background, kept until done (``drain`` waits for it)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Finish background bookkeeping (alerts, settlements), e.g. before shutting down."""
        if self._background:
            await asyncio.wait(set(self._background))
        await self.settler.close()

    def _replay(self, ctx: RequestContext, answer: CachedAnswer) -> Reply:
        """An answer from the response cache, as the caller first received it: no provider was
        called, so the request's record has no route, no tokens and no cost."""
        if not answer.stream:
            return BufferedReply(answer.status, answer.body, answer.headers)
        return StreamReply(answer.status, answer.replay(lambda: self.finish(ctx)), answer.headers)

    # -- human review --------------------------------------------------------------------------

    def request_hash(self, call: Call, alias: str) -> str:
        """What identifies one exact request for the review queue: its body, model, surface and
        operation, keyed with the audit key when there is one (so that the hash of a request
        whose secret is guessable cannot be used to confirm a guess)."""
        canonical = orjson.dumps(
            {
                "surface": call.surface.value,
                "operation": call.operation.value,
                "stream": call.stream,
                "model": alias,
                "body": call.body,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        if self._review_key is not None:
            key = hmac.new(self._review_key, b"passerelle review queue", hashlib.sha256).digest()
            return hmac.new(key, canonical, hashlib.sha256).hexdigest()
        return hashlib.sha256(canonical).hexdigest()

    async def _hold(self, ctx: RequestContext, call: Call, hold: Hold) -> tuple[RouteTarget, ...]:
        """A request the policy holds: let it through if a reviewer approved this exact request
        from this key (once), else queue it (or find it queued) and refuse with its review id."""
        principal, policy, alias = ctx.principal, ctx.policy, ctx.model_alias
        assert principal is not None and policy is not None and alias is not None
        digest = self.request_hash(call, alias)
        try:
            review = await asyncio.to_thread(self.reviews.latest, principal.key_id, digest)
            if review is not None and review.status is ReviewStatus.APPROVED:
                used = await asyncio.to_thread(
                    self.reviews.consume, review.id, principal.key_id, digest, ctx.request_id
                )
                if used:
                    policy.action = "approved"
                    policy.review_id = review.id
                    return hold.targets
                review = None  # another instance used it a moment ago: held again
            if review is None:
                ticket = hold.ticket
                held = HeldRequest(
                    request_id=ctx.request_id,
                    actor=principal.email,
                    key_id=principal.key_id,
                    project=principal.project,
                    model=alias,
                    endpoint=ctx.endpoint,
                    data_class=ticket.data_class,
                    rule=hold.rule,
                    findings=ticket.findings,
                    reason=ticket.reason,
                    preview=ticket.preview,
                    request_hash=digest,
                )
                review = await asyncio.to_thread(self.reviews.hold, held)
        except StorageError as exc:
            log.error("the review queue cannot be reached: %s", exc)
            raise InternalError(
                "This request must be held for review, but the review queue cannot be reached; "
                "it was not sent. Retry in a moment.",
                code="review_queue_unavailable",
            ) from None
        policy.review_id = review.id
        if review.status is ReviewStatus.REJECTED:
            policy.action = "block"
            note = f" Reviewer's note: {review.note}" if review.note else ""
            raise PolicyViolation(
                f"A reviewer rejected this request (review {review.id}, rule {hold.rule}): "
                f"{hold.ticket.reason}. Remove these values to send it.{note}",
                code="review_rejected",
            )
        raise HeldForReview(
            f"This request is held for human review (review {review.id}, rule {hold.rule}: "
            f"hold): {hold.ticket.reason}. A reviewer decides with 'passerelle review approve "
            f"{review.id}' (or reject); once it is approved, send this same request again and "
            "it goes through, once. To send it now, remove these values.",
            review_id=review.id,
        )

    # -- answers -------------------------------------------------------------------------------

    def _answer_filter(self, call: Call, vault: Vault | None) -> AnswerFilter | None:
        """What the answer goes through: pseudonyms to restore, text to scan for the audit."""
        if call.operation is not Operation.GENERATE:
            return None
        collect = self.dlp is not None and self.config.file.dlp.scan_responses
        if not collect and (vault is None or not len(vault)):
            return None
        return AnswerFilter(vault, collect=collect)

    def _answer_findings(self, ctx: RequestContext, answer: AnswerFilter) -> None:
        """Record what the answer held (types and counts) and how many pseudonyms came back."""
        policy = ctx.policy
        if policy is None:
            return
        policy.restored = answer.restored
        if self.dlp is None or not self.dlp.ready:
            return
        try:
            policy.response_findings = answer.findings(self.dlp.scanner())
        except ScanError:
            policy.response_findings = {"scan_failed": 1}

    def _translate_error(self, plan: _Plan, status: int, raw: bytes) -> bytes:
        info = codec(plan.wire).decode_error(status, _loads(raw))
        return orjson.dumps(codec(plan.call.surface).encode_error(info))

    def _estimate_count(self, ctx: RequestContext, plan: _Plan) -> BufferedReply:
        """No route counts tokens for this model: estimate, and say so in a header."""
        tokens = estimate_tokens(len(orjson.dumps(plan.call.body)))
        ctx.status = 200
        ctx.input_tokens = 0
        body = (
            {"totalTokens": tokens}
            if plan.call.surface is Wire.GEMINI
            else {"input_tokens": tokens}
        )
        return BufferedReply(
            200,
            orjson.dumps(body),
            {"content-type": "application/json", "x-passerelle-estimated": "true"},
        )

    def _settle_buffered(
        self, ctx: RequestContext, target: RouteTarget, raw: bytes, plan: _Plan
    ) -> bytes:
        """Charge the answer from the provider's own usage report, and return it in the
        caller's format."""
        answer = _loads(raw)
        call = plan.call
        if call.operation is Operation.COUNT_TOKENS:
            return _count_reply(plan, answer, raw)
        if call.operation is Operation.EMBED:
            usage = answer.get("usage") if isinstance(answer, dict) else None
            if isinstance(usage, dict):
                settle(ctx, target, usage_from_openai(usage), self.prices, reported=True)
            else:
                estimate = TokenUsage(estimate_tokens(len(orjson.dumps(call.body))), 0)
                settle(ctx, target, estimate, self.prices, reported=False)
            return raw
        if not isinstance(answer, dict):
            ctx.status = 502
            ctx.error_code = "upstream_invalid_json"
            raise UpstreamError(
                f"Provider '{target.provider.name}' answered with a body that is not JSON.",
                code="upstream_invalid_json",
            )
        decoded = codec(plan.wire).decode_response(answer)
        response = decoded.value
        settle(
            ctx,
            target,
            response.usage,
            self.prices,
            reported=response.usage.total_tokens > 0,
            response_model=response.model or None,
        )
        if plan.wire is call.surface:
            return raw
        plan.losses.extend(decoded.losses)
        encoded = codec(call.surface).encode_response(replace(response, model=plan.alias))
        plan.losses.extend(encoded.losses)
        return orjson.dumps(encoded.value)

    async def _relay(
        self, ctx: RequestContext, target: RouteTarget, response: UpstreamResponse, plan: _Plan
    ) -> AsyncIterator[bytes]:
        """Relay a stream event by event: untouched when both sides speak the same format,
        translated event by event otherwise; never buffered.

        The stream's last event is held back until the audit record is spooled, so a caller
        who saw the end of the stream can be sure the request is in the audit trail."""
        relay = StreamRelay(
            plan.wire,
            plan.call.surface,
            plan.framing,
            plan.alias,
            caller_wants_usage=plan.caller_wants_usage,
            answer=plan.answer,
        )
        tail: list[bytes] = []
        try:
            async for chunk in response.iter_chunks():
                if ctx.first_byte_ms is None:
                    ctx.first_byte_ms = ctx.elapsed_ms()
                for out in relay.feed(chunk):
                    plan.cache.keep(out)
                    if relay.complete and out is relay.last_chunk:
                        self._settle_stream(ctx, target, relay, plan)
                        await plan.cache.stream_complete()
                        self.finish(ctx)
                    yield out
            if not ctx.notes.get("_finished"):
                tail = relay.end()
        except TransportError as exc:
            ctx.status = 502
            ctx.error_code = f"upstream_stream_{exc.kind}"
            self.breakers.of(target).failure()  # broke after it started: ill all the same
        except RelayError as exc:
            ctx.status = 502
            ctx.error_code = exc.code
        finally:
            # Runs on normal end, upstream failure and caller disconnect alike.
            self._settle_stream(ctx, target, relay, plan)
        if ctx.notes.get("_finished"):
            return
        if not relay.complete and ctx.error_code is None:
            ctx.status = 502
            ctx.error_code = "upstream_stream_incomplete"
        tail.extend(relay.close(ctx.error_code))
        if relay.complete and ctx.error_code is None:
            await plan.cache.stream_complete(tail)
        self.finish(ctx)
        for out in tail:
            yield out

    def _settle_stream(
        self, ctx: RequestContext, target: RouteTarget, relay: StreamRelay, plan: _Plan
    ) -> None:
        if ctx.notes.get("_settled"):
            return
        ctx.notes["_settled"] = True
        if relay.answer is not None:
            self._answer_findings(ctx, relay.answer)
        usage: TokenUsage | Usage | None = relay.usage
        reported = usage is not None and relay.complete
        if usage is None:
            # No usage report (the stream was cut before it, or the provider sends none): the
            # prompt was still processed, so it is charged too, estimated like the answer.
            prompt = estimate_tokens(len(orjson.dumps(plan.call.body)))
            usage = TokenUsage(
                input_tokens=prompt, output_tokens=estimate_tokens(relay.relayed_chars)
            )
        settle(ctx, target, usage, self.prices, reported=reported, response_model=relay.model)

    # -- bookkeeping -----------------------------------------------------------------------

    def finish(self, ctx: RequestContext, error: GatewayError | None = None) -> None:
        """Write the request's audit record, exactly once, whatever happened."""
        if ctx.notes.get("_finished"):
            return
        ctx.notes["_finished"] = True
        if error is not None:
            ctx.status = error.status
            ctx.error_code = error.code
        if ctx.budget_hold is not None or ctx.limit_ticket is not None:
            self._settle_limits(ctx)
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
        if "kill_switches" in ctx.notes:
            details["kill_switches"] = ctx.notes["kill_switches"]
        details.update(canary_details(ctx))
        if isinstance(ctx.budget_hold, BudgetHold):
            details["budgets"] = ctx.budget_hold.labels()
            details["reserved_micro_usd"] = ctx.budget_hold.amount
        if ctx.downgraded_from is not None:
            details["downgraded_from"] = ctx.downgraded_from
            details["downgrade_budget"] = ctx.notes.get("downgrade_budget")
        if ctx.policy is not None:
            details["data_class"] = ctx.policy.data_class
            details["dlp"] = ctx.policy.details()
        if ctx.cache is not None:
            details["cache"] = ctx.cache
            if ctx.cache_source is not None:
                details["cache_source"] = ctx.cache_source
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
