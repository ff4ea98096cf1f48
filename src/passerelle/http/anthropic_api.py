"""The Anthropic Messages surface: what Claude Code and the Anthropic SDKs call.

Claude Code sends ``POST /v1/messages?beta=true`` with ``anthropic-beta`` and
``anthropic-version`` headers and the key in ``x-api-key``, counts tokens with
``POST /v1/messages/count_tokens``, and probes ``HEAD /`` when it starts. The beta and version
headers travel to an Anthropic-format upstream untouched; errors come back in Anthropic's error
shape with a ``request-id`` header.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from passerelle.errors import InvalidRequest
from passerelle.http.auth import FastRoutes
from passerelle.http.base import serve_call
from passerelle.pipeline.gateway import Call, Gateway
from passerelle.providers.base import FORWARDED_HEADERS, Operation, Wire


def model_from_body(body: dict[str, Any], request: Request) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            "model: Field required. Use a model alias of this gateway, such as one listed by "
            "GET /v1/models.",
            code="missing_model",
            param="model",
        )
    return model.strip()


def _forwarded(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}


def _messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest(
            "messages: Field required: a list of {role, content} objects.",
            code="invalid_messages",
            param="messages",
        )


def _create(body: dict[str, Any], request: Request) -> Call:
    _messages(body)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean.", param="stream")
    return Call(
        surface=Wire.ANTHROPIC,
        operation=Operation.GENERATE,
        body=body,
        stream=bool(stream),
        client_headers=_forwarded(request),
    )


def _count(body: dict[str, Any], request: Request) -> Call:
    _messages(body)
    return Call(
        surface=Wire.ANTHROPIC,
        operation=Operation.COUNT_TOKENS,
        body=body,
        stream=False,
        client_headers=_forwarded(request),
    )


def fast_routes(gateway: Gateway) -> FastRoutes:
    async def create(request: Request) -> Response:
        return await serve_call(request, gateway, _create, model_from_body)

    async def count_tokens(request: Request) -> Response:
        return await serve_call(request, gateway, _count, model_from_body)

    return {
        "/v1/messages": ("POST", create),
        "/v1/messages/count_tokens": ("POST", count_tokens),
    }
