"""What every surface shares: reading a JSON body safely, replying, and the relay response."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from passerelle.core.context import RequestContext
from passerelle.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    WireFormat,
    error_body,
)
from passerelle.pipeline.cache import CACHE_HEADER, directive_from_headers
from passerelle.pipeline.gateway import BufferedReply, Call, Gateway

log = logging.getLogger("passerelle.http")

JSON_TYPES = ("application/json",)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(
    error: GatewayError, wire: WireFormat, request_id: str | None = None
) -> Response:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
        if wire is WireFormat.ANTHROPIC:
            headers["request-id"] = request_id
    return json_response(error_body(error, wire), error.status, headers)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or an error that says what to fix.

    The size limit is enforced while reading, so an oversized body is never held in memory."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"The body must be JSON sent with 'content-type: application/json', not '{media}'.",
            code="unsupported_content_type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"The body is {int(declared)} bytes; this gateway accepts at most {max_bytes} bytes.",
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"The body is larger than the {max_bytes} bytes this gateway accepts."
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("The client closed the connection before sending the body.") from None
    raw = b"".join(chunks)
    request.state.body_bytes = len(raw)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="empty_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The body is not valid JSON: {exc.args[0] if exc.args else 'parse error'}.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    return body


class RelayResponse(Response):
    """Sends chunks as they come and calls ``on_close(disconnected)`` exactly once at the end,
    whether the stream completed, failed, or the caller went away."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        status_code: int,
        headers: dict[str, str],
        on_close: Callable[[bool], None],
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        # The length of a relayed stream is not known in advance: chunked transfer encoding.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._chunks = chunks
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            disconnected = True  # the ASGI server reports a vanished client as an OSError
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            self._on_close(disconnected)


ParseCall = Callable[[dict[str, Any], Request], Call]
ModelOf = Callable[[dict[str, Any], Request], str]


def _as_received(call: Call, request: Request) -> Call:
    """The call with what its request says beyond the body: the body's size, and what the
    caller's ``cache-control`` and ``x-passerelle-cache`` headers allow the response cache (the
    same headers on every surface). One copy of the call, on every request."""
    directive = directive_from_headers(
        request.headers.get("cache-control"), request.headers.get(CACHE_HEADER)
    )
    return replace(call, cache=directive, size=request.state.body_bytes)


async def serve_call(
    request: Request, gateway: Gateway, parse: ParseCall, model_of: ModelOf
) -> Response:
    """Read the body, hand the call to the gateway, and turn its reply (or any error) into an
    HTTP response in the caller's format. Every path through here writes one audit record."""
    ctx: RequestContext = request.state.ctx
    try:
        body = await read_json_object(request, gateway.config.file.gateway.max_body_bytes)
        ctx.model_alias = model_of(body, request)
        call = _as_received(parse(body, request), request)
        ctx.stream = call.stream
        reply = await gateway.call(ctx, call)
    except GatewayError as exc:
        gateway.finish(ctx, exc)
        return error_response(exc, ctx.wire, ctx.request_id)
    except Exception:
        # A bug: the caller gets a request id to quote, the log gets the traceback.
        log.exception("internal error serving %s", ctx.request_id)
        internal = InternalError(f"Internal gateway error; quote request id {ctx.request_id}.")
        gateway.finish(ctx, internal)
        return error_response(internal, ctx.wire, ctx.request_id)
    headers = {**reply.headers, **gateway.reply_headers(ctx), "x-request-id": ctx.request_id}
    if ctx.wire is WireFormat.ANTHROPIC:
        headers["request-id"] = ctx.request_id
    if isinstance(reply, BufferedReply):
        gateway.finish(ctx)
        return Response(reply.body, status_code=reply.status, headers=headers)
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"

    def on_close(disconnected: bool) -> None:
        if disconnected or not ctx.notes.get("_finished"):
            ctx.client_disconnected = True
            ctx.status = 499
            ctx.error_code = ctx.error_code or "client_disconnected"
        gateway.finish(ctx)

    return RelayResponse(reply.chunks, status_code=reply.status, headers=headers, on_close=on_close)
