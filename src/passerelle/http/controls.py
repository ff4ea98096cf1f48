"""Kill switches and feedback over HTTP.

- ``POST /v1/feedback``: the person who made a request rates its answer (inference key; errors
  in the OpenAI format, like every ``/v1`` path that is not another vendor's);
- ``/admin/kill-switches``: list, set and lift switches; ``/admin/feedback``: list ratings and
  their counts per model or route. Admin keys only (see :mod:`passerelle.http.admin`), and every
  set and lift is an admin audit record.

Text a person typed and that is stored or shown to others is scanned first: a feedback comment
is stored with every DLP finding redacted, and a kill switch reason (shown to every caller it
refuses) holding a secret, personal data or a client's terms is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.audit.records import AuditRecord
from passerelle.core.context import KeyScope, RequestContext
from passerelle.dlp.actions import redact
from passerelle.dlp.findings import Category, ScanError
from passerelle.dlp.scanner import Scanner
from passerelle.errors import (
    DlpUnavailable,
    GatewayError,
    InternalError,
    InvalidRequest,
    NotFound,
    PasserelleError,
    PermissionDenied,
)
from passerelle.http.base import error_response, json_response, read_json_object
from passerelle.pipeline.gateway import Gateway
from passerelle.pipeline.kill_switches import check_reason_text, check_target
from passerelle.pipeline.scanning import ScannerHandle, dlp_settings
from passerelle.runtime import admin_record
from passerelle.storage.feedback import (
    MAX_COMMENT_CHARS,
    RATINGS,
    Feedback,
    FeedbackStats,
    FeedbackStore,
    InvalidFeedback,
    NotYourRequest,
    RequestNotRecorded,
    StatsBy,
    check_comment,
    check_rating,
    feedback_stats,
)
from passerelle.storage.killswitch import InvalidSwitch, KillSwitch, Scope

log = logging.getLogger("passerelle.http")

Handler = Callable[[Request, RequestContext], Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
AdminWrapper = Callable[[Handler, int], Endpoint]
"""``admin(handler, status)`` from :mod:`passerelle.http.admin`: admin key, errors, audit."""
Flush = Callable[[], Awaitable[bool]]

_REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
_FEEDBACK_FIELDS = frozenset({"request_id", "rating", "reason", "comment"})
_MAX_FEEDBACK_BODY = 8 * MAX_COMMENT_CHARS + 4096  # a comment of escaped characters fits
_FLUSH_WAIT_S = 2.0


def switch_json(switch: KillSwitch) -> dict[str, Any]:
    """A kill switch as the API and ``passerelle kill list --format json`` show it."""
    return {
        "id": switch.id,
        "scope": switch.scope.value,
        "target": switch.target,
        "user_id": switch.user_id,
        "reason": switch.reason,
        "active": switch.active,
        "set_by": switch.set_by,
        "set_at_us": switch.set_at,
        "lifted_by": switch.lifted_by,
        "lifted_at_us": switch.lifted_at,
    }


def feedback_json(item: Feedback) -> dict[str, Any]:
    """A rating as the API and ``passerelle feedback list --format json`` show it."""
    return {
        "id": item.id,
        "request_id": item.request_id,
        "user": item.actor,
        "rating": item.rating_name,
        "reason": item.reason,
        "comment": item.comment,
        "created_at_us": item.created_us,
        "request_at_us": item.request_ts_us,
        "project": item.project,
        "model": item.model,
        "provider": item.provider,
        "route_model": item.route_model,
    }


def stats_json(row: FeedbackStats) -> dict[str, Any]:
    out: dict[str, Any] = {"model": row.model}
    if row.provider is not None or row.route_model is not None:
        out["provider"] = row.provider
        out["route_model"] = row.route_model
    out.update(
        up=row.up, down=row.down, total=row.total, negative_ratio=round(row.negative_ratio, 4)
    )
    return out


def day_start_us(day: str | None, param: str = "since") -> int | None:
    """``2026-11-30`` -> microseconds at 00:00 UTC that day; InvalidRequest if not a day."""
    if day is None:
        return None
    try:
        start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)
    except ValueError:
        raise InvalidRequest(f"'{param}' must be a day, YYYY-MM-DD.", param=param) from None
    return int(start.timestamp()) * 1_000_000


def redact_findings(scanner: Scanner, text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every secret, personal data and client term replaced by
    ``[REDACTED:<type>]``, and what was replaced (types and counts)."""
    findings = [f for f in scanner.scan(text).findings if f.category is not Category.INJECTION]
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
    return (redact(text, findings) if findings else text), counts


class TextScanner:
    """The gateway's DLP scanner, or, when the configuration turns DLP off for requests, one
    built on first use: text that is stored or shown to other people is always scanned."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._own: ScannerHandle | None = None

    async def get(self) -> Scanner:
        handle = self._gateway.dlp
        if handle is None:
            if self._own is None:
                self._own = ScannerHandle(dlp_settings(self._gateway.config))
            handle = self._own
        await handle.wait()
        try:
            return handle.scanner()
        except ScanError:
            raise DlpUnavailable(
                "The text could not be scanned for secrets and personal data, so it was not "
                "stored. Retry in a moment.",
                headers={"retry-after": "1"},
            ) from None


# -- feedback -------------------------------------------------------------------------------------


def feedback_routes(gateway: Gateway, flush: Flush | None = None) -> list[Route]:
    """``POST /v1/feedback``. ``flush`` waits for this process's audit writer: a rating sent
    right after its answer finds the request even if its record was not committed yet."""
    store = FeedbackStore(gateway.keys.db)
    scanner = TextScanner(gateway)

    async def rate(ctx: RequestContext, request: Request) -> dict[str, Any]:
        principal = ctx.principal
        assert principal is not None
        if principal.scope is not KeyScope.INFERENCE:
            raise PermissionDenied(
                "Feedback is given with the inference key the request was made with, not an "
                "admin key.",
                code="inference_key_required",
            )
        body = await read_json_object(request, _MAX_FEEDBACK_BODY)
        unknown = sorted(set(body) - _FEEDBACK_FIELDS)
        if unknown:
            raise InvalidRequest(
                f"Unknown field '{unknown[0]}'; a rating has: "
                + ", ".join(sorted(_FEEDBACK_FIELDS))
                + ".",
                param=unknown[0],
            )
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id.strip():
            raise InvalidRequest(
                "'request_id' is required: the x-request-id header of the answer you rate.",
                param="request_id",
            )
        request_id = request_id.strip()
        try:
            rating, reason = check_rating(body.get("rating"), body.get("reason"))
            comment = check_comment(body.get("comment"))
        except InvalidFeedback as exc:
            raise InvalidRequest(str(exc), param=exc.param) from None
        if not _REQUEST_ID.match(request_id):
            raise _not_found(request_id, well_formed=False)
        found: dict[str, int] = {}
        if comment is not None:
            comment, found = redact_findings(await scanner.get(), comment)

        def store_rating() -> tuple[Feedback, bool]:
            return store.rate(
                request_id,
                actor=principal.email,
                key_id=principal.key_id,
                rating=rating,
                reason=reason,
                comment=comment,
            )

        try:
            try:
                stored, replaced = await asyncio.to_thread(store_rating)
            except RequestNotRecorded:
                # Perhaps still in this process's audit writer: wait for it, once.
                if flush is None or not await _flushed(flush):
                    raise
                stored, replaced = await asyncio.to_thread(store_rating)
        except RequestNotRecorded:
            raise _not_found(request_id, well_formed=True) from None
        except NotYourRequest:
            raise PermissionDenied(
                f"Request '{request_id}' was made by another user: only the person who made a "
                "request may rate its answer.",
                code="not_your_request",
                param="request_id",
            ) from None
        return {
            **feedback_json(stored),
            "replaced": replaced,
            "redacted": dict(sorted(found.items())),
        }

    async def post_feedback(request: Request) -> Response:
        ctx: RequestContext = request.state.ctx
        try:
            payload = await rate(ctx, request)
        except GatewayError as exc:
            gateway.finish(ctx, exc)
            return error_response(exc, ctx.wire, ctx.request_id)
        except PasserelleError as exc:  # the database
            log.error("feedback for %s not stored: %s", ctx.request_id, exc)
            error = InternalError(
                f"The rating could not be stored; retry. Quote request id {ctx.request_id}."
            )
            gateway.finish(ctx, error)
            return error_response(error, ctx.wire, ctx.request_id)
        ctx.status = 200
        gateway.finish(ctx)
        return json_response(payload, 200, {"x-request-id": ctx.request_id})

    return [Route("/v1/feedback", post_feedback, methods=["POST"])]


async def _flushed(flush: Flush) -> bool:
    try:
        return await asyncio.wait_for(flush(), _FLUSH_WAIT_S)
    except TimeoutError:
        return False


def _not_found(request_id: str, *, well_formed: bool) -> NotFound:
    if not well_formed:
        return NotFound(
            f"'{request_id[:80]}' is not a request id: use the x-request-id header of the "
            "answer you rate (req_ and 24 hexadecimal digits).",
            code="request_not_found",
            param="request_id",
        )
    return NotFound(
        f"Request '{request_id}' is not in the audit trail yet. Requests are recorded within "
        "moments of their answer: if this one just finished, retry in a second. Otherwise "
        "check the id (the x-request-id header of the answer; only model calls can be rated).",
        code="request_not_found",
        param="request_id",
        headers={"retry-after": "1"},
    )


# -- admin ----------------------------------------------------------------------------------------


def admin_routes(
    gateway: Gateway, admin: AdminWrapper, audit: Callable[[AuditRecord], None]
) -> list[Route]:
    """``/admin/kill-switches`` and ``/admin/feedback``, wrapped by the admin API's ``admin``."""
    board = gateway.kill_switches
    switches = board.store
    ratings = FeedbackStore(gateway.keys.db)
    scanner = TextScanner(gateway)

    def actor(ctx: RequestContext) -> str:
        assert ctx.principal is not None
        return ctx.principal.email

    def switch_id(request: Request) -> int:
        raw = request.path_params["switch_id"]
        if not raw.isdigit():
            raise NotFound(f"There is no kill switch '{raw}'; ids are numbers.")
        return int(raw)

    async def list_switches(request: Request, ctx: RequestContext) -> Any:
        everything = request.query_params.get("all") in ("1", "true")
        rows = await asyncio.to_thread(switches.list, include_lifted=everything)
        return {"data": [switch_json(s) for s in rows]}

    async def set_switch(request: Request, ctx: RequestContext) -> Any:
        body = await read_json_object(request, 16 * 1024)
        try:
            scope = Scope(str(body.get("scope")))
        except ValueError:
            raise InvalidRequest(
                "'scope' must be one of: " + ", ".join(s.value for s in Scope) + ".",
                param="scope",
            ) from None
        target = body.get("target")
        if not isinstance(target, str) or not target.strip():
            raise InvalidRequest(
                "'target' is required: the provider, model or project name, or the user's "
                "e-mail or id.",
                param="target",
            )
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidRequest("'reason' must be a string.", param="reason")
        user_id = None
        try:
            text = check_reason_text(reason, await scanner.get())
            if scope is Scope.USER:
                user = await asyncio.to_thread(gateway.keys.get_user, target)
                target, user_id = user.email, user.id
            else:
                target = check_target(gateway.config, scope, target)
        except InvalidSwitch as exc:
            raise InvalidRequest(_sentence(str(exc)), param=exc.param) from None
        by = actor(ctx)
        switch = await asyncio.to_thread(
            lambda: switches.set(scope, target, reason=text, by=by, user_id=user_id)
        )
        audit(switch_record("kill.set", switch, by))
        return switch_json(switch)

    async def lift_switch(request: Request, ctx: RequestContext) -> Any:
        number = switch_id(request)
        by = actor(ctx)
        switch = await asyncio.to_thread(lambda: switches.lift(number, by=by))
        audit(switch_record("kill.lift", switch, by))
        return switch_json(switch)

    async def list_feedback(request: Request, ctx: RequestContext) -> Any:
        params = request.query_params
        rating = params.get("rating")
        if rating is not None and rating not in RATINGS:
            raise InvalidRequest("'rating' must be up or down.", param="rating")
        limit = params.get("limit", "200")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise InvalidRequest("'limit' must be a number from 1 to 10000.", param="limit")
        since = day_start_us(params.get("since"))
        rows = await asyncio.to_thread(
            lambda: ratings.list(
                project=params.get("project"),
                model=params.get("model"),
                since_us=since,
                rating=RATINGS[rating] if rating is not None else None,
                limit=int(limit),
            )
        )
        return {"data": [feedback_json(item) for item in rows]}

    async def summarize_feedback(request: Request, ctx: RequestContext) -> Any:
        params = request.query_params
        try:
            by = StatsBy(params.get("by", "model"))
        except ValueError:
            raise InvalidRequest("'by' must be model or route.", param="by") from None
        since = day_start_us(params.get("since"))
        rows = await asyncio.to_thread(
            lambda: feedback_stats(
                gateway.keys.db,
                by=by,
                model=params.get("model"),
                project=params.get("project"),
                since_us=since,
            )
        )
        return {"data": [stats_json(row) for row in rows]}

    return [
        Route("/admin/kill-switches", admin(list_switches, 200), methods=["GET"]),
        Route("/admin/kill-switches", admin(set_switch, 201), methods=["POST"]),
        Route("/admin/kill-switches/{switch_id}", admin(lift_switch, 200), methods=["DELETE"]),
        Route("/admin/kill-switches/{switch_id}/lift", admin(lift_switch, 200), methods=["POST"]),
        Route("/admin/feedback", admin(list_feedback, 200), methods=["GET"]),
        Route("/admin/feedback/summary", admin(summarize_feedback, 200), methods=["GET"]),
    ]


def _sentence(message: str) -> str:
    """A command-line style message (``there is no model 'x'``) as an API sentence."""
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def switch_record(action: str, switch: KillSwitch, by: str | None) -> AuditRecord:
    """The admin audit record of a set or a lift; ``by`` None: the command line's user."""
    return admin_record(
        action,
        actor=by,
        target=f"{switch.scope.value}:{switch.target}",
        switch_id=switch.id,
        scope=switch.scope.value,
        reason=switch.reason,
        project=switch.target if switch.scope is Scope.PROJECT else None,
    )
