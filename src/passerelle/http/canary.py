"""Canary roll-outs over the admin API (admin keys only, see :mod:`passerelle.http.admin`):

- ``GET /admin/canaries``: every alias with a canary (configured, or rolled out before), its
  current roll-out and, when it is at a stage, its window as this gateway last judged it;
- ``GET /admin/canaries/{alias}``: the same for one alias, with its earlier roll-outs;
- ``POST /admin/canaries/{alias}/{action}``, action ``start``, ``pause``, ``resume``,
  ``promote`` or ``rollback``, body optional: ``{"reason": "...", "full": true}`` (``full``:
  promote to the end at once). Every action is an admin audit record with the gate figures of
  the moment; the reason is kept in the audit trail, so one holding a secret, personal data or
  a client's terms is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route

from passerelle.audit.records import AuditRecord
from passerelle.core.context import RequestContext
from passerelle.errors import InvalidRequest, NotFound
from passerelle.http.controls import AdminWrapper, TextScanner
from passerelle.pipeline.canary import applies
from passerelle.pipeline.canary_evaluator import (
    InvalidReason,
    ManualAction,
    act,
    check_reason,
    not_started_json,
    rollout_json,
    status_entries,
)
from passerelle.pipeline.gateway import Gateway

_MAX_BODY = 16 * 1024
_FIELDS = frozenset({"reason", "full"})

Handler = Callable[[Request, RequestContext], Awaitable[Any]]


def admin_routes(
    gateway: Gateway, admin: AdminWrapper, audit: Callable[[AuditRecord], None]
) -> list[Route]:
    board = gateway.canary_board
    store = board.store
    scanner = TextScanner(gateway)
    config = gateway.config

    def entries(alias: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, rollout, canary in status_entries(config, store, alias):
            if rollout is None:
                assert canary is not None  # an alias without a roll-out is a configured one
                out.append(not_started_json(name, canary))
                continue
            configured = canary is not None and applies(canary, rollout)
            verdict = gateway.canary.verdicts.get(name) if configured else None
            if verdict is not None and verdict.window.since_us != rollout.stage_started_at:
                verdict = None  # judged before the last transition
            out.append(rollout_json(rollout, applies=configured, verdict=verdict))
        return out

    async def list_canaries(request: Request, ctx: RequestContext) -> Any:
        return {"data": await asyncio.to_thread(entries, None)}

    async def show_canary(request: Request, ctx: RequestContext) -> Any:
        alias = request.path_params["alias"]
        found = await asyncio.to_thread(entries, alias)
        if not found:
            raise NotFound(f"Model '{alias}' has no canary and no roll-out.")
        history = await asyncio.to_thread(store.list, alias)
        return {**found[0], "history": [rollout_json(r) for r in reversed(history)]}

    async def do_action(request: Request, ctx: RequestContext) -> Any:
        alias = request.path_params["alias"]
        try:
            action = ManualAction(request.path_params["action"])
        except ValueError:
            raise NotFound(
                f"There is no canary action '{request.path_params['action']}'; use one of: "
                + ", ".join(a.value for a in ManualAction)
                + "."
            ) from None
        body = await _optional_body(request)
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise InvalidRequest(
                f"Unknown field '{unknown[0]}'; an action takes: reason, full.", param=unknown[0]
            )
        full = body.get("full", False)
        if not isinstance(full, bool) or (full and action is not ManualAction.PROMOTE):
            raise InvalidRequest("'full' is true or false, for promote only.", param="full")
        given = body.get("reason")
        try:
            reason = check_reason(given, await scanner.get() if given else None)
        except InvalidReason as exc:
            raise InvalidRequest(_sentence(str(exc)), param="reason") from None
        assert ctx.principal is not None
        by = ctx.principal.email
        rollout, record = await asyncio.to_thread(
            lambda: act(config, store, alias, action, by=by, reason=reason, full=full)
        )
        audit(record)
        return rollout_json(rollout, applies=True)

    return [
        Route("/admin/canaries", admin(list_canaries, 200), methods=["GET"]),
        Route("/admin/canaries/{alias}", admin(show_canary, 200), methods=["GET"]),
        Route("/admin/canaries/{alias}/{action}", admin(do_action, 200), methods=["POST"]),
    ]


async def _optional_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or {} when there is none (``POST .../pause`` alone)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY:
        raise InvalidRequest(f"The body is larger than the {_MAX_BODY} bytes this path accepts.")
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise InvalidRequest("The client closed the connection before sending the body.") from None
    if not raw.strip():
        return {}
    if len(raw) > _MAX_BODY:
        raise InvalidRequest(f"The body is larger than the {_MAX_BODY} bytes this path accepts.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
