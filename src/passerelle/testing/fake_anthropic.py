"""A FAKE Anthropic upstream that speaks the Messages API's exact wire format.

Labelled fake everywhere a client could look: ``model`` is ``fake-<requested model>``, ids carry
``fake`` and every response has the header ``x-fake-upstream: anthropic``. What the model says is
deterministic and documented in ``_anthropic_model``.

Surfaces:

* ``POST /v1/messages`` (also ``?beta=true``, as coding agents send it): plain and streamed
  (``event:`` + ``data:`` server-sent events: message_start, content_block_start, ping,
  content_block_delta with text / input_json / thinking / signature deltas, content_block_stop,
  message_delta, message_stop), tool use, tool results, extended thinking, prompt caching usage;
* ``POST /v1/messages/count_tokens`` → ``{"input_tokens": N}``;
* ``GET /v1/models[/{id}]`` (unauthenticated unless a key is configured: the readiness probe);
* the ``/_fake/`` control API for faults and the request log (see ``_fake_common``).

Authentication is ``x-api-key`` (or ``authorization: Bearer``, as OAuth clients send it) and an
``anthropic-version`` header; errors are ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the API's status codes, and every response has a ``request-id`` header.

Run it alone with ``python -m passerelle.testing.fake_anthropic --port 9002``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive

from passerelle.testing import _anthropic_model as claude
from passerelle.testing._fake_common import (
    Abort,
    CutResponse,
    FakeControl,
    Fault,
    json_response,
    pause,
    play_fault,
    request_id,
    retry_after_value,
    stream_events,
)

__all__ = ["ERROR_TYPES", "FakeSettings", "anthropic_error_body", "create_app", "main"]

# The error ``type`` the API uses for each status.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_FAULT_MESSAGES: Mapping[int, str] = {
    400: "Invalid request (injected by the fake upstream).",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: {model}",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed the rate limit for your organization (fake) of 60 requests "
    "per minute. For details, refer to https://docs.claude.com/en/api/rate-limits. You can see "
    "the response headers for current usage.",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}
_MODEL_CREATED = "2025-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """How the fake behaves; faults are queued at run time through the control API instead."""

    api_key: str | None = None  # when set, callers must present exactly this key
    latency_ms: float = 0  # before every answer
    chunk_delay_ms: float = 0  # between two stream events
    reply_words: int | None = None  # pad replies to this many words (benchmarks)
    words_per_chunk: int = 3
    chunk_chars: int = 0  # when set, stream text this many characters at a time instead
    models: tuple[str, ...] = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7")
    request_log_size: int = 200


@dataclass(frozen=True, slots=True)
class _Call:
    body: dict[str, object]
    model: str
    cut_after: int | None
    receive: Receive


def anthropic_error_body(status: int, message: str, kind: str | None = None) -> dict[str, object]:
    """The API's error body for a status (``kind`` overrides the usual type)."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": kind or ERROR_TYPES.get(status, default), "message": message},
        "request_id": request_id("req_"),
    }


def _headers(rid: str | None = None) -> dict[str, str]:
    return {"x-fake-upstream": "anthropic", "request-id": rid or request_id("req_")}


def _error(status: int, message: str, kind: str | None = None) -> Abort:
    body = anthropic_error_body(status, message, kind)
    return Abort(json_response(body, status, _headers(str(body["request_id"]))))


def _fault_response(fault: Fault, model: str | None) -> Response:
    body = fault.body
    if body is None:
        default = f"Upstream error {fault.status} (injected by the fake upstream)."
        message = _FAULT_MESSAGES.get(fault.status, default).format(model=model or "unknown")
        body = anthropic_error_body(fault.status, message)
    headers = _headers()
    if fault.retry_after is not None:
        headers["retry-after"] = retry_after_value(fault.retry_after)
    if fault.status == 429:
        reset = datetime.now(UTC) + timedelta(seconds=fault.retry_after or 1)
        headers |= {
            "anthropic-ratelimit-requests-limit": "60",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    return json_response(body, fault.status, headers)


def create_app(settings: FakeSettings) -> Starlette:
    """The fake as an ASGI app; every instance has its own faults, request log and prompt cache."""
    fake = _FakeAnthropic(settings)
    routes = [
        Route("/v1/messages", fake.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", fake.count_tokens, methods=["POST"]),
        Route("/v1/models", fake.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", fake.get_model, methods=["GET"]),
        *fake.control.routes(),
    ]
    return Starlette(routes=routes, exception_handlers={404: fake.http_error, 405: fake.http_error})


class _FakeAnthropic:
    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self.control = FakeControl(settings.request_log_size)
        self.cache = claude.PromptCache()
        self._latency = settings.latency_ms / 1000
        self._chunk_delay = settings.chunk_delay_ms / 1000
        self._models = {
            name: {
                "type": "model",
                "id": name,
                "display_name": f"Fake {name}",
                "created_at": _MODEL_CREATED,
                "lifecycle": "active",
                "max_input_tokens": 200000,
                "max_tokens": 64000,
            }
            for name in settings.models
        }

    # -- admission: log, auth, version, faults ------------------------------------------------

    async def _admit(self, request: Request) -> _Call:
        raw = await request.body()
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.control.log.record(request, raw.decode("utf-8", "replace") if body is None else body)
        self._authenticate(request)
        version = request.headers.get("anthropic-version")
        if version is None:
            raise _error(400, "anthropic-version: header is required")
        if not claude.well_formed_version(version):
            raise _error(400, f"anthropic-version: invalid version {version!r}")
        requested = body.get("model") if isinstance(body, dict) else None
        model = requested if isinstance(requested, str) else None
        fault = self.control.faults.pop(model)
        await pause(self._latency)
        cut_after = await play_fault(
            fault, request.receive, lambda injected: _fault_response(injected, model)
        )
        if not isinstance(body, dict):
            raise _error(400, "The request body is not valid JSON: it must be a JSON object.")
        if model is None:
            raise _error(400, "model: Field required")
        return _Call(body, model, cut_after, request.receive)

    def _authenticate(self, request: Request) -> None:
        headers = request.headers
        key = headers.get("x-api-key", "").strip()
        authorization = headers.get("authorization", "")
        if not key and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
        if not key:
            raise _error(401, "x-api-key header is required")
        if self.settings.api_key is not None and key != self.settings.api_key:
            raise _error(401, "invalid x-api-key")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = "Not Found" if status == 404 else f"Method {request.method} not allowed"
        return _error(status, message).response

    # -- models --------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        if self.settings.api_key is not None:
            try:
                self._authenticate(request)
            except Abort as abort:
                return abort.response
        models = list(self._models.values())
        payload = {
            "data": models,
            "has_more": False,
            "first_id": models[0]["id"] if models else None,
            "last_id": models[-1]["id"] if models else None,
        }
        return json_response(payload, headers=_headers())

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self._models:
            return _error(404, f"model: {name}").response
        return json_response(self._models[name], headers=_headers())

    # -- messages ------------------------------------------------------------------------------

    async def messages(self, request: Request) -> Response:
        try:
            call = await self._admit(request)
            parsed = claude.parse_request(call.body)
        except claude.InvalidMessagesRequest as invalid:
            return _error(invalid.status, invalid.message, invalid.error_type).response
        except Abort as abort:
            return abort.response
        reply = claude.answer(parsed, self.cache, reply_words=self.settings.reply_words)
        model, message_id = f"fake-{call.model}", claude.new_message_id()
        headers = _headers()
        if call.body.get("stream") is True:
            events = claude.stream_events(
                reply,
                model,
                message_id,
                words_per_chunk=self.settings.words_per_chunk,
                chunk_chars=self.settings.chunk_chars,
            )
            body = stream_events(
                (claude.sse(name, data) for name, data in events),
                call.receive,
                delay=self._chunk_delay,
                cut_after=call.cut_after,
                done=b"",
            )
            headers["cache-control"] = "no-cache"
            return StreamingResponse(body, headers=headers, media_type="text/event-stream")
        payload = orjson.dumps(claude.message(reply, model, message_id))
        if call.cut_after is not None:
            return CutResponse(payload, 200, headers, "application/json")
        return Response(payload, 200, headers, "application/json")

    async def count_tokens(self, request: Request) -> Response:
        try:
            call = await self._admit(request)
            parsed = claude.parse_request(call.body, for_count=True)
        except claude.InvalidMessagesRequest as invalid:
            return _error(invalid.status, invalid.message, invalid.error_type).response
        except Abort as abort:
            return abort.response
        payload = orjson.dumps({"input_tokens": parsed.prompt_tokens})
        if call.cut_after is not None:
            return CutResponse(payload, 200, _headers(), "application/json")
        return Response(payload, 200, _headers(), "application/json")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m passerelle.testing.fake_anthropic``: serve the fake until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m passerelle.testing.fake_anthropic",
        description="Serve a FAKE Anthropic Messages upstream; its replies are labelled 'fake-'.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--latency-ms", type=float, default=0, help="before each answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="between stream events")
    parser.add_argument("--reply-words", type=int, default=None, help="pad replies to N words")
    parser.add_argument("--api-key", default=None, help="require exactly this key")
    args = parser.parse_args(argv)
    settings = FakeSettings(
        api_key=args.api_key,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        reply_words=args.reply_words,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
