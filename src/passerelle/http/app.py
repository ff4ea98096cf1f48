"""``create_app(config)`` builds the whole server; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle import __version__
from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import AuditWriter
from passerelle.config import Config
from passerelle.core.context import RequestContext
from passerelle.errors import (
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PasserelleError,
)
from passerelle.http import (
    admin,
    anthropic_api,
    controls,
    gemini_api,
    openai_api,
    responses_api,
)
from passerelle.http.auth import AuthGate, wire_for_path
from passerelle.http.base import error_response, json_response
from passerelle.pipeline.gateway import Gateway, price_overrides
from passerelle.providers.pricing import PriceTable
from passerelle.providers.transport import Transport
from passerelle.runtime import audit_key, open_database, resolve_secrets
from passerelle.state.counters import StateUnavailableError
from passerelle.storage.canary import CanaryBoard, CanaryStore
from passerelle.storage.db import Database
from passerelle.storage.epochs import watch_epochs
from passerelle.storage.keycache import KeyCache
from passerelle.storage.keys import KeyStore
from passerelle.storage.killswitch import KillSwitchBoard, KillSwitchStore

log = logging.getLogger("passerelle.http")


def create_app(config: Config, *, environ: Mapping[str, str] | None = None) -> Starlette:
    """The gateway as an ASGI application, with everything it needs built from ``config``.

    Secrets are read from ``environ`` (default: the process environment) now, so that a missing
    one stops start-up with a message naming it instead of failing the first request."""
    secrets = resolve_secrets(config, environ)
    key = audit_key(config, secrets)
    db = open_database(config)
    writer = AuditWriter(db, config.spool_dir, key=key, linger_ms=config.file.audit.group_commit_ms)
    transport = Transport()
    prices = PriceTable.load_default().with_overrides(price_overrides(config))
    store = KeyStore(db)
    # One thread follows the change counters for the key cache, the kill switches and the
    # canary roll-outs alike.
    epochs = watch_epochs(db)
    key_cache = KeyCache(store, epochs)
    kill_switches = KillSwitchBoard(KillSwitchStore(db), epochs)
    canary_board = CanaryBoard(CanaryStore(db), epochs)
    gateway = Gateway(
        config,
        store,
        transport,
        prices,
        writer.submit,
        secrets=secrets,
        key_cache=key_cache,
        review_key=key,
        kill_switches=kill_switches,
        canary_board=canary_board,
    )

    def submit(record: AuditRecord) -> None:
        writer.submit(record)

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        problems: list[str] = []
        try:
            await asyncio.to_thread(_ping, db)
        except PasserelleError as exc:
            problems.append(f"database: {exc}")
        if not writer.is_alive():
            problems.append("audit writer is not running")
        if gateway.dlp is not None and (problem := gateway.dlp.problem()) is not None:
            problems.append(problem)
        try:
            await gateway.counters.ping()
        except StateUnavailableError as exc:
            problems.append(f"shared state for budgets and rate limits: {exc}")
        if problems:
            return json_response({"status": "unavailable", "problems": problems}, 503)
        return json_response({"status": "ready", "config_hash": config.hash})

    async def not_found(request: Request, exc: Exception) -> Response:
        ctx: RequestContext | None = request.state.ctx if hasattr(request.state, "ctx") else None
        wire = wire_for_path(request.url.path)
        error: GatewayError
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
        elif isinstance(exc, HTTPException) and exc.status_code == 404:
            error = NotFound(f"There is no endpoint {request.method} {request.url.path}.")
        else:
            log.error("unexpected HTTP exception on %s", request.url.path)
            error = InternalError("Internal gateway error.")
        if ctx is not None:
            gateway.finish(ctx, error)
        return error_response(error, wire, ctx.request_id if ctx else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await transport.start()
        writer.start()
        try:  # opens the first connection now rather than under the first burst of requests
            await gateway.counters.ping()
        except StateUnavailableError as exc:
            log.warning("budgets and rate limits will refuse requests until it answers: %s", exc)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise walk it again and again and stall requests for ms.
        gc.collect()
        gc.freeze()
        # Background threads (audit writer, pollers, the scanner's build) share the interpreter
        # lock with the event loop. Each time a request's code releases it (a C call, a socket
        # write), getting it back can wait one switch interval: 5 ms by default, a tail latency
        # measured on every request in flight. 1 ms bounds that wait at a negligible cost.
        sys.setswitchinterval(0.001)
        gateway.canary.start()  # judges canary roll-outs every few seconds
        chores = asyncio.create_task(_housekeeping(gateway))
        log.info(
            "passerelle %s ready: %d providers, %d models, config %s",
            __version__,
            len(config.providers),
            len(config.models),
            config.hash[:12],
        )
        try:
            yield
        finally:
            chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chores
            await gateway.canary.stop()
            # Settlements and alerts still running finish before their connections close.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gateway.drain(), 10.0)
            await gateway.counters.close()
            await gateway.cache.close()
            await transport.close()
            await asyncio.to_thread(writer.close, 10.0)
            key_cache.close()  # and the epochs thread it was given
            db.dispose()

    async def root(request: Request) -> Response:
        # Claude Code probes HEAD / on start-up; answering says only that this is a gateway.
        return json_response({"service": "passerelle"})

    fast = {
        **openai_api.fast_routes(gateway),
        **anthropic_api.fast_routes(gateway),
        **responses_api.fast_routes(gateway),
    }
    app = Starlette(
        routes=[
            Route("/", root, methods=["GET", "HEAD"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *openai_api.routes(gateway),
            # The auth gate calls the fast routes itself; listing them here too gives other
            # methods on those paths the right 405.
            *(
                Route(path, handler, methods=[method])
                for path, (method, handler) in fast.items()
                if not path.startswith(("/v1/chat/", "/v1/embeddings"))
            ),
            *gemini_api.routes(gateway),
            *admin.routes(gateway, submit, key),
            *controls.feedback_routes(gateway, writer.aflush),
        ],
        exception_handlers={HTTPException: not_found},
        lifespan=lifespan,
    )
    app.add_middleware(AuthGate, gateway=gateway, fast_routes=fast)
    app.state.gateway = gateway
    app.state.audit_writer = writer
    return app


HOUSEKEEPING_S = 300.0


async def _housekeeping(gateway: Gateway) -> None:
    """Chores every few minutes: drop the previews of review requests that expired (their
    text, findings replaced, was kept only for a decision that can no longer be made)."""
    while True:
        try:
            purged = await asyncio.to_thread(gateway.reviews.purge_expired)
        except PasserelleError as exc:
            log.warning("housekeeping: expired review previews not purged: %s", exc)
        else:
            if purged:
                log.info("housekeeping: dropped the previews of %d expired reviews", purged)
        await asyncio.sleep(HOUSEKEEPING_S)


def _ping(db: Database) -> None:
    with db.read() as conn:
        conn.execute(text("SELECT 1"))
