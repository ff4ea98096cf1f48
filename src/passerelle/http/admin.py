"""The admin REST API: people, keys, spend and budgets, the audit trail, the review queue, kill
switches and feedback (the last two in :mod:`passerelle.http.controls`), canary roll-outs
(:mod:`passerelle.http.canary`). Admin keys only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.audit.records import AuditRecord
from passerelle.audit.verify import verify_chain
from passerelle.core.context import KeyScope, RequestContext
from passerelle.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied, WireFormat
from passerelle.http import canary, controls
from passerelle.http.base import error_response, json_response, read_json_object
from passerelle.pipeline.budgets import BudgetStatus, budget_report, scope_members
from passerelle.pipeline.gateway import Gateway
from passerelle.runtime import admin_record
from passerelle.storage.db import now_us
from passerelle.storage.keys import ConflictError, KeyInfo, NotFoundError, User
from passerelle.storage.reviews import Review, ReviewClosed, ReviewStatus
from passerelle.storage.spend import (
    Dimension,
    SpendFilter,
    budget_alerts,
    format_usd,
    query_spend,
)

Handler = Callable[[Request, RequestContext], Awaitable[Any]]


def _key_json(key: KeyInfo) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "user": key.email,
        "project": key.project,
        "scope": key.scope.value,
        "description": key.description,
        "created_at_us": key.created_at,
        "expires_at_us": key.expires_at,
        "revoked_at_us": key.revoked_at,
    }


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "team": user.team,
        "profile": user.profile,
        "created_at_us": user.created_at,
        "disabled": user.disabled_at is not None,
    }


def review_json(review: Review, *, preview: bool = False) -> dict[str, Any]:
    """A review as the API and ``passerelle review`` show it: names, types and counts."""
    out: dict[str, Any] = {
        "id": review.id,
        "status": review.status.value,
        "created_at_us": review.created_at,
        "expires_at_us": review.expires_at,
        "request_id": review.request_id,
        "user": review.actor,
        "project": review.project,
        "model": review.model,
        "endpoint": review.endpoint,
        "data_class": review.data_class,
        "rule": review.rule,
        "findings": review.findings,
        "reason": review.reason,
        "decided_by": review.decided_by,
        "decided_at_us": review.decided_at,
        "note": review.note,
        "used_at_us": review.used_at,
        "used_by_request": review.used_by_request,
    }
    if preview:
        out["preview"] = review.preview
    return out


async def _optional_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or {} when there is none (``POST .../approve`` alone)."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise InvalidRequest("The client closed the connection before sending the body.") from None
    if not raw.strip():
        return {}
    if len(raw) > 64 * 1024:
        raise InvalidRequest("The body is too large for this endpoint.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    return body


def _str(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required.", param=name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name)
    return value.strip()


def routes(
    gateway: Gateway, audit: Callable[[AuditRecord], None], audit_key: bytes | None
) -> list[Route]:
    keys = gateway.keys
    config = gateway.config

    def refuse(ctx: RequestContext, error: GatewayError) -> Response:
        gateway.finish(ctx, error)
        return error_response(error, WireFormat.OPENAI, ctx.request_id)

    def admin(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ctx: RequestContext = request.state.ctx
            ctx.endpoint = request.url.path
            try:
                principal = gateway.require_admin(ctx)
                ctx.notes["admin_actor"] = principal.email
                payload = await handler(request, ctx)
            except NotFoundError as exc:
                return refuse(ctx, NotFound(str(exc)))
            except ConflictError as exc:
                return refuse(ctx, InvalidRequest(str(exc), code="conflict"))
            except ReviewClosed as exc:
                return refuse(ctx, InvalidRequest(str(exc), code="review_closed"))
            except GatewayError as exc:
                return refuse(ctx, exc)
            ctx.status = status
            gateway.finish(ctx)
            return json_response(payload, status, {"x-request-id": ctx.request_id})

        return endpoint

    def actor(ctx: RequestContext) -> str:
        assert ctx.principal is not None
        return ctx.principal.email

    async def list_users(request: Request, ctx: RequestContext) -> Any:
        return {"data": [_user_json(u) for u in keys.list_users()]}

    async def add_user(request: Request, ctx: RequestContext) -> Any:
        body = await read_json_object(request, 64 * 1024)
        email = _str(body, "email", required=True)
        assert email is not None
        team = _str(body, "team")
        if team is not None and team not in config.file.teams:
            raise InvalidRequest(
                f"Unknown team '{team}'; teams: {', '.join(sorted(config.file.teams))}.",
                param="team",
            )
        user = keys.add_user(
            email, name=_str(body, "name") or "", team=team, profile=_str(body, "profile")
        )
        audit(admin_record("user.add", actor=actor(ctx), target=user.email, team=team))
        return _user_json(user)

    async def list_keys(request: Request, ctx: RequestContext) -> Any:
        include = request.query_params.get("include_revoked") in ("1", "true")
        return {"data": [_key_json(k) for k in keys.list_keys(include_revoked=include)]}

    async def create_key(request: Request, ctx: RequestContext) -> Any:
        body = await read_json_object(request, 64 * 1024)
        user = keys.get_user(_str(body, "user", required=True) or "")
        scope = KeyScope.ADMIN if body.get("admin") is True else KeyScope.INFERENCE
        project = _str(body, "project")
        if scope is KeyScope.INFERENCE and (project is None or project not in config.file.projects):
            raise InvalidRequest(
                "'project' must name a configured project: "
                + ", ".join(sorted(config.file.projects)),
                param="project",
            )
        expires_in = body.get("expires_in_days")
        expires_at = None
        if expires_in is not None:
            if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 1:
                raise InvalidRequest(
                    "'expires_in_days' must be a positive integer.", param="expires_in_days"
                )
            expires_at = now_us() + expires_in * 86_400_000_000
        plaintext, info = keys.create_key(
            user,
            project=project,
            scope=scope,
            description=_str(body, "description") or "",
            expires_at=expires_at,
        )
        audit(
            admin_record(
                "key.create",
                actor=actor(ctx),
                target=info.prefix,
                user=user.email,
                project=project,
                scope=scope.value,
            )
        )
        return {**_key_json(info), "key": plaintext}

    async def revoke_key(request: Request, ctx: RequestContext) -> Any:
        info = keys.revoke_key(request.path_params["key_id"])
        audit(admin_record("key.revoke", actor=actor(ctx), target=info.prefix, user=info.email))
        return _key_json(info)

    async def budgets(request: Request, ctx: RequestContext) -> Any:
        db = gateway.keys.db

        def report() -> list[BudgetStatus]:
            members = scope_members(gateway.config, gateway.keys)
            return budget_report(gateway.config, db, members)

        rows = await asyncio.to_thread(report)
        return {"data": [row.as_json() for row in rows]}

    async def budget_alert_list(request: Request, ctx: RequestContext) -> Any:
        since = request.query_params.get("since")
        alerts = await asyncio.to_thread(budget_alerts, gateway.keys.db, since_day=since)
        return {"data": alerts}

    async def spend(request: Request, ctx: RequestContext) -> Any:
        params = request.query_params
        group_by: list[Dimension] = []
        for name in filter(None, (params.get("group_by") or "").split(",")):
            try:
                group_by.append(Dimension(name.strip()))
            except ValueError:
                raise InvalidRequest(
                    f"Cannot group by '{name}'; use any of: "
                    + ", ".join(d.value for d in Dimension),
                    param="group_by",
                ) from None
        where = SpendFilter(
            since_day=params.get("since"),
            until_day=params.get("until"),
            user=params.get("user"),
            team=params.get("team"),
            project=params.get("project"),
            client=params.get("client"),
            model=params.get("model"),
        )
        rows = query_spend(gateway.keys.db, group_by, where)
        return {
            "data": [
                {
                    **row.group,
                    "requests": row.requests,
                    "input_tokens": row.input_tokens,
                    "output_tokens": row.output_tokens,
                    "cost_micro_usd": row.cost_micro_usd,
                    "cost_usd": format_usd(row.cost_micro_usd),
                }
                for row in rows
            ]
        }

    async def audit_verify(request: Request, ctx: RequestContext) -> Any:
        report = await asyncio.to_thread(verify_chain, gateway.keys.db, audit_key)
        return {
            "ok": report.ok,
            "checked": report.checked,
            "problems": [
                {"seq": p.seq, "record_id": p.record_id, "kind": p.kind, "message": p.message}
                for p in report.problems
            ],
        }

    reviews = gateway.reviews

    async def list_reviews(request: Request, ctx: RequestContext) -> Any:
        name = request.query_params.get("status", "pending")
        try:
            status = None if name == "all" else ReviewStatus(name)
        except ValueError:
            raise InvalidRequest(
                "'status' must be all or one of: " + ", ".join(s.value for s in ReviewStatus),
                param="status",
            ) from None
        return {"data": [review_json(r) for r in reviews.list(status)]}

    async def show_review(request: Request, ctx: RequestContext) -> Any:
        return review_json(reviews.get(request.path_params["review_id"]), preview=True)

    def decide(approve: bool) -> Handler:
        async def handler(request: Request, ctx: RequestContext) -> Any:
            body = await _optional_json(request)
            review = reviews.get(request.path_params["review_id"])
            reviewer = actor(ctx)
            if approve and review.actor.casefold() == reviewer.casefold():
                raise PermissionDenied(
                    "A reviewer cannot approve their own request: ask another administrator.",
                    code="self_review",
                )
            note = _str(body, "note")
            decided = reviews.decide(review.id, approve=approve, reviewer=reviewer, note=note)
            audit(
                admin_record(
                    "review.approve" if approve else "review.reject",
                    actor=reviewer,
                    target=decided.id,
                    project=decided.project,
                    requester=decided.actor,
                    request_id=decided.request_id,
                    data_class=decided.data_class,
                    rule=decided.rule,
                    findings=decided.findings,
                )
            )
            return review_json(decided)

        return handler

    return [
        Route("/admin/reviews", admin(list_reviews), methods=["GET"]),
        Route("/admin/reviews/{review_id}", admin(show_review), methods=["GET"]),
        Route("/admin/reviews/{review_id}/approve", admin(decide(True)), methods=["POST"]),
        Route("/admin/reviews/{review_id}/reject", admin(decide(False)), methods=["POST"]),
        Route("/admin/users", admin(list_users), methods=["GET"]),
        Route("/admin/users", admin(add_user, 201), methods=["POST"]),
        Route("/admin/keys", admin(list_keys), methods=["GET"]),
        Route("/admin/keys", admin(create_key, 201), methods=["POST"]),
        Route("/admin/keys/{key_id}", admin(revoke_key), methods=["DELETE"]),
        Route("/admin/spend", admin(spend), methods=["GET"]),
        Route("/admin/budgets", admin(budgets), methods=["GET"]),
        Route("/admin/budgets/alerts", admin(budget_alert_list), methods=["GET"]),
        Route("/admin/audit/verify", admin(audit_verify), methods=["POST"]),
        *controls.admin_routes(gateway, admin, audit),
        *canary.admin_routes(gateway, admin, audit),
    ]
