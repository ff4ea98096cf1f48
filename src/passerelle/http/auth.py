"""Deny unless listed: every path needs a valid key except the few declared public here.

The gate runs before routing, so a route added without thinking about auth is still protected.
It also opens the request's context (id, wire format) and audits refusals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from passerelle.core.context import RequestContext
from passerelle.errors import GatewayError, WireFormat
from passerelle.http.base import error_response
from passerelle.pipeline.gateway import Gateway

PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz"})

Handler = Callable[[Request], Awaitable[Response]]
# path -> (method, handler): inference endpoints served without the framework's router
FastRoutes = Mapping[str, tuple[str, Handler]]


def wire_for_path(path: str) -> WireFormat:
    """The API dialect a path belongs to, so that even a refusal speaks the caller's language."""
    if path.startswith("/v1/messages") or path == "/v1/complete":
        return WireFormat.ANTHROPIC
    if (
        path.startswith("/v1beta/")
        or ":generateContent" in path
        or ":streamGenerateContent" in path
    ):
        return WireFormat.GEMINI
    return WireFormat.OPENAI


def token_from(headers: Headers) -> str | None:
    """The key wherever a client's SDK puts it: OpenAI bearer, Anthropic, Azure, Gemini."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in ("x-api-key", "api-key", "x-goog-api-key"):
        other = headers.get(name)
        if other:
            return other.strip()
    return None


class AuthGate:
    """ASGI middleware: open the context, authenticate, refuse in the caller's dialect.

    Once a request is authenticated, the inference endpoints in ``fast_routes`` are called
    directly: the router and exception middleware behind the gate cost more per request than
    the rest of the gateway's own work, and those handlers turn every error into a wire-format
    reply themselves. Everything else goes on to the application's router."""

    def __init__(
        self, app: ASGIApp, gateway: Gateway, fast_routes: FastRoutes | None = None
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.fast_routes: FastRoutes = fast_routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        ctx = RequestContext(
            request_id=self.gateway.ids.new(), wire=wire_for_path(path), endpoint=path
        )
        scope.setdefault("state", {})["ctx"] = ctx
        headers = Headers(scope=scope)
        try:
            self.gateway.authenticate(token_from(headers), ctx)
        except GatewayError as error:
            self.gateway.finish(ctx, error)
            response = error_response(error, ctx.wire, ctx.request_id)
            response.headers["www-authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        route = self.fast_routes.get(path)
        if route is not None and route[0] == scope["method"]:
            handled = await route[1](Request(scope, receive))
            await handled(scope, receive, send)
            return
        await self.app(scope, receive, send)
