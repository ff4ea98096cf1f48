"""The OpenAI Responses surface (``POST /v1/responses``): what Codex CLI speaks.

Served in passthrough by providers that have the Responses API (OpenAI, Azure OpenAI) and
translated to Chat Completions, Anthropic Messages or Gemini for the others. Nothing is stored
by the gateway: a request that relies on ``previous_response_id`` only works in passthrough.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from passerelle.errors import InvalidRequest
from passerelle.http.auth import FastRoutes
from passerelle.http.base import serve_call
from passerelle.http.openai_api import model_from_body
from passerelle.pipeline.gateway import Call, Gateway
from passerelle.providers.base import Operation, Wire


def _create(body: dict[str, Any], request: Request) -> Call:
    if "input" not in body and "previous_response_id" not in body:
        raise InvalidRequest(
            "The 'input' field is required: a string or a list of input items.",
            code="missing_input",
            param="input",
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    return Call(
        surface=Wire.OPENAI_RESPONSES,
        operation=Operation.GENERATE,
        body=body,
        stream=bool(stream),
        client_headers={},
    )


def fast_routes(gateway: Gateway) -> FastRoutes:
    async def create(request: Request) -> Response:
        return await serve_call(request, gateway, _create, model_from_body)

    return {"/v1/responses": ("POST", create)}
