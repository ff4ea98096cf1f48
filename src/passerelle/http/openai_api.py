"""The OpenAI-compatible surface: chat completions, embeddings, models."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.core.context import RequestContext
from passerelle.errors import InvalidRequest, NotFound
from passerelle.http.auth import FastRoutes
from passerelle.http.base import error_response, json_response, serve_call
from passerelle.pipeline.gateway import Call, Gateway
from passerelle.providers.base import Operation, Wire

log = logging.getLogger("passerelle.http")


def _context(request: Request) -> RequestContext:
    ctx: RequestContext = request.state.ctx
    return ctx


def model_from_body(body: dict[str, Any], request: Request) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            "The 'model' field is required: a model alias such as one listed by GET /v1/models.",
            code="missing_model",
            param="model",
        )
    return model.strip()


def _check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "The 'messages' field is required: a non-empty list of {role, content} objects.",
            code="invalid_messages",
            param="messages",
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")


def _check_embeddings(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise InvalidRequest(
            "The 'input' field is required: a string or a list of strings to embed.",
            code="invalid_input",
            param="input",
        )


def _chat_call(body: dict[str, Any], request: Request) -> Call:
    _check_chat(body)
    return Call(
        surface=Wire.OPENAI_CHAT,
        operation=Operation.GENERATE,
        body=body,
        stream=bool(body.get("stream")),
        client_headers={},
    )


def _embeddings_call(body: dict[str, Any], request: Request) -> Call:
    _check_embeddings(body)
    return Call(
        surface=Wire.OPENAI_EMBEDDINGS,
        operation=Operation.EMBED,
        body=body,
        stream=False,
        client_headers={},
    )


def routes(gateway: Gateway) -> list[Route]:
    async def list_models(request: Request) -> Response:
        ctx = _context(request)
        assert ctx.principal is not None
        data = [_model_object(gateway, alias) for alias in gateway.models_for(ctx.principal)]
        ctx.status = 200
        gateway.finish(ctx)
        return json_response(
            {"object": "list", "data": data}, headers={"x-request-id": ctx.request_id}
        )

    async def get_model(request: Request) -> Response:
        ctx = _context(request)
        assert ctx.principal is not None
        alias = request.path_params["model"]
        if alias not in gateway.models_for(ctx.principal):
            error = NotFound(
                f"The model '{alias}' does not exist or is not available to your key.",
                code="model_not_found",
                param="model",
            )
            gateway.finish(ctx, error)
            return error_response(error, ctx.wire, ctx.request_id)
        ctx.status = 200
        gateway.finish(ctx)
        return json_response(
            _model_object(gateway, alias), headers={"x-request-id": ctx.request_id}
        )

    # The auth gate calls the inference handlers directly; their router entries are still
    # there for the 405 answer to other methods.
    inference = [
        Route(path, handler, methods=[method])
        for path, (method, handler) in fast_routes(gateway).items()
    ]
    return [
        *inference,
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    ]


def fast_routes(gateway: Gateway) -> FastRoutes:
    """The inference endpoints, for the auth gate to call without going through the router."""

    async def chat_completions(request: Request) -> Response:
        return await serve_call(request, gateway, _chat_call, model_from_body)

    async def embeddings(request: Request) -> Response:
        return await serve_call(request, gateway, _embeddings_call, model_from_body)

    return {
        "/v1/chat/completions": ("POST", chat_completions),
        "/v1/embeddings": ("POST", embeddings),
    }


def _model_object(gateway: Gateway, alias: str) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": 0, "owned_by": "passerelle"}
