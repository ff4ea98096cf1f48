"""The Gemini surface: ``models/{model}:generateContent``, ``:streamGenerateContent`` and
``:countTokens`` under ``/v1beta`` (and ``/v1``), with the key in ``x-goog-api-key``.

The model alias is the path's model; streams are answered as server-sent events (the
``alt=sse`` form every Google SDK and the Gemini CLI ask for).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.errors import GatewayError, NotFound
from passerelle.http.base import error_response, json_response, serve_call
from passerelle.pipeline.gateway import Call, Gateway
from passerelle.providers.base import Operation, Wire

_METHODS = {
    "generateContent": (Operation.GENERATE, False),
    "streamGenerateContent": (Operation.GENERATE, True),
    "countTokens": (Operation.COUNT_TOKENS, False),
}


def _target(request: Request) -> tuple[str, str]:
    target: str = request.path_params["target"]
    model, _, method = target.rpartition(":")
    if not model or method not in _METHODS:
        raise NotFound(
            f"Unknown method '{method}'. Use models/MODEL:generateContent, "
            ":streamGenerateContent or :countTokens.",
            code="unknown_method",
        )
    return model.removeprefix("models/"), method


def model_from_path(body: dict[str, Any], request: Request) -> str:
    return _target(request)[0]


def _call(body: dict[str, Any], request: Request) -> Call:
    operation, stream = _METHODS[_target(request)[1]]
    return Call(
        surface=Wire.GEMINI,
        operation=operation,
        body=body,
        stream=stream,
        client_headers={},
    )


def routes(gateway: Gateway) -> list[Route]:
    async def model_method(request: Request) -> Response:
        try:
            _target(request)
        except GatewayError as error:
            gateway.finish(request.state.ctx, error)
            return error_response(error, request.state.ctx.wire, request.state.ctx.request_id)
        return await serve_call(request, gateway, _call, model_from_path)

    async def list_models(request: Request) -> Response:
        ctx = request.state.ctx
        assert ctx.principal is not None
        models = [
            {
                "name": f"models/{alias}",
                "displayName": alias,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for alias in gateway.models_for(ctx.principal)
        ]
        ctx.status = 200
        gateway.finish(ctx)
        return json_response({"models": models}, headers={"x-request-id": ctx.request_id})

    return [
        Route("/v1beta/models", list_models, methods=["GET"]),
        Route("/v1beta/models/{target:path}", model_method, methods=["POST"]),
        Route("/v1/models/{target:path}", model_method, methods=["POST"]),
    ]
