"""A FAKE Google upstream: the Gemini API, and Vertex AI's Gemini and Claude endpoints.

Labelled fake everywhere a client could look: ``modelVersion`` (and Claude's ``model``) is
``fake-<requested model>``, ids carry ``fake`` and every response has the header
``x-fake-upstream: gemini``. What the models say is documented in ``_gemini_model`` and
``_anthropic_model``.

Gemini API (``x-goog-api-key`` header or ``?key=``), under ``/v1beta`` and ``/v1``:

* ``POST /v1beta/models/{model}:generateContent``
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (``data:`` events, each a whole
  GenerateContentResponse; without ``alt=sse``, a JSON array streamed element by element)
* ``POST /v1beta/models/{model}:countTokens``
* ``GET /v1beta/models[/{model}]`` (unauthenticated unless a key is configured: the readiness probe)

Vertex AI (``authorization: Bearer <access token>``), under ``/v1`` and ``/v1beta1``:

* ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``,
  ``:streamGenerateContent``, ``:countTokens`` (as above, plus ``createTime`` and ``trafficType``;
  every content needs a ``role``);
* ``POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`` and
  ``:streamRawPredict``: Claude's Messages format with ``anthropic_version`` in the body
  (``vertex-2023-10-16``, or a dated version as newer SDKs send) and no ``model`` field;
  ``.../models/count-tokens:rawPredict`` counts tokens.

Errors are Google's ``{"error": {"code", "message", "status"}}``, except Claude's own request
errors and non-quota faults on the Claude paths, which keep Anthropic's shape as Vertex relays
them. The ``/_fake/`` control API (see ``_fake_common``) works the same for every path; faults
match on the model named in the path.

Run it alone with ``python -m passerelle.testing.fake_gemini --port 9003``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive

from passerelle.testing import _anthropic_model as claude
from passerelle.testing import _gemini_model as gemini
from passerelle.testing._fake_common import (
    Abort,
    CutResponse,
    FakeControl,
    Fault,
    json_response,
    pause,
    play_fault,
    retry_after_value,
    stream_events,
)
from passerelle.testing.fake_anthropic import anthropic_error_body

__all__ = ["STATUS_NAMES", "FakeSettings", "create_app", "google_error_body", "main"]

STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FAULT_MESSAGES: Mapping[int, str] = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "models/{model} is not found for API version {version}, or is not supported for "
    "generateContent. Call ListModels to see the list of available models and their supported "
    "methods.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
_UNAUTHENTICATED = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_GEMINI_METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens"})
_CLAUDE_METHODS = frozenset({"rawPredict", "streamRawPredict"})
_VERTEX_CLAUDE_VERSION = "vertex-2023-10-16"
_HEADERS = {"x-fake-upstream": "gemini"}


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """How the fake behaves; faults are queued at run time through the control API instead."""

    api_key: str | None = None  # Gemini API: when set, callers must present exactly this key
    vertex_access_token: str | None = None  # Vertex AI: when set, the bearer token must match
    latency_ms: float = 0
    chunk_delay_ms: float = 0
    reply_words: int | None = None
    words_per_chunk: int = 3
    chunk_chars: int = 0  # when set, stream text this many characters at a time instead
    cached_content_tokens: int = 1024  # what a request naming ``cachedContent`` reads from it
    models: tuple[str, ...] = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")
    request_log_size: int = 200


@dataclass(frozen=True, slots=True)
class _Call:
    body: dict[str, object]
    model: str
    cut_after: int | None
    receive: Receive
    stream: bool


def google_error_body(
    status: int, message: str, details: Sequence[Mapping[str, object]] = ()
) -> dict[str, object]:
    """Google's error body for a status."""
    default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    error: dict[str, object] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, default),
    }
    if details:
        error["details"] = list(details)
    return {"error": error}


def _error(status: int, message: str, details: Sequence[Mapping[str, object]] = ()) -> Abort:
    return Abort(json_response(google_error_body(status, message, details), status, _HEADERS))


def _claude_error(status: int, message: str, kind: str | None = None) -> Abort:
    return Abort(json_response(anthropic_error_body(status, message, kind), status, _HEADERS))


def _fault_headers(fault: Fault) -> dict[str, str]:
    headers = dict(_HEADERS)
    if fault.retry_after is not None:
        headers["retry-after"] = retry_after_value(fault.retry_after)
    return headers


def _google_fault(fault: Fault, model: str | None, version: str) -> Response:
    body = fault.body
    if body is None:
        default = f"Upstream error {fault.status} (injected by the fake upstream)."
        template = _FAULT_MESSAGES.get(fault.status, default)
        message = template.format(model=model or "unknown", version=version)
        details: list[dict[str, object]] = []
        if fault.retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after_value(fault.retry_after)}s",
                }
            )
        body = google_error_body(fault.status, message, details)
    return json_response(body, fault.status, _fault_headers(fault))


def _claude_fault(fault: Fault, model: str | None, version: str) -> Response:
    """Claude on Vertex: quota and credential failures come from Google's front door, the rest
    from Claude itself."""
    if fault.body is not None or fault.status in (401, 403, 429):
        return _google_fault(fault, model, version)
    message = "Overloaded" if fault.status == 529 else f"Upstream error {fault.status} (fake)."
    body = anthropic_error_body(fault.status, message)
    return json_response(body, fault.status, _fault_headers(fault))


def create_app(settings: FakeSettings) -> Starlette:
    """The fake as an ASGI app; every instance has its own faults, request log and prompt cache."""
    fake = _FakeGoogle(settings)
    routes: list[Route] = []
    for version in ("v1beta", "v1"):
        routes += [
            Route(f"/{version}/models", fake.list_models, methods=["GET"]),
            Route(f"/{version}/models/{{target:path}}", fake.gemini_api, methods=["POST"]),
            Route(f"/{version}/models/{{target:path}}", fake.get_model, methods=["GET"]),
        ]
    vertex = "/projects/{project}/locations/{location}/publishers/{publisher}/models/{target:path}"
    for version in ("v1", "v1beta1"):
        routes.append(Route(f"/{version}{vertex}", fake.vertex, methods=["POST"]))
    routes += fake.control.routes()
    return Starlette(routes=routes, exception_handlers={404: fake.http_error, 405: fake.http_error})


class _FakeGoogle:
    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self.control = FakeControl(settings.request_log_size)
        self.cache = claude.PromptCache()
        self._latency = settings.latency_ms / 1000
        self._chunk_delay = settings.chunk_delay_ms / 1000
        self._models = {name: _model_info(name) for name in settings.models}

    # -- admission -----------------------------------------------------------------------------

    async def _admit(
        self,
        request: Request,
        model: str,
        authenticate: Callable[[Request], None],
        fault_response: Callable[[Fault, str | None, str], Response],
        *,
        stream: bool,
    ) -> _Call:
        raw = await request.body()
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.control.log.record(request, raw.decode("utf-8", "replace") if body is None else body)
        authenticate(request)
        fault = self.control.faults.pop(model)
        await pause(self._latency)
        version = request.scope["path"].split("/")[1]
        cut_after = await play_fault(
            fault, request.receive, lambda injected: fault_response(injected, model, version)
        )
        if not isinstance(body, dict):
            raise _error(400, "Invalid JSON payload received. The request body must be an object.")
        return _Call(body, model, cut_after, request.receive, stream)

    def _gemini_key(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
        if not key.strip():
            raise _error(403, _NO_KEY)
        if self.settings.api_key is not None and key.strip() != self.settings.api_key:
            raise _error(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    def _vertex_token(self, request: Request) -> None:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        if not token:
            raise _error(401, _UNAUTHENTICATED)
        expected = self.settings.vertex_access_token
        if expected is not None and token != expected:
            raise _error(401, _FAULT_MESSAGES[401])

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"The requested URL {request.url.path} was not found on this server."
        if status == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        return _error(status, message).response

    # -- models --------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        if self.settings.api_key is not None:
            try:
                self._gemini_key(request)
            except Abort as abort:
                return abort.response
        return json_response({"models": list(self._models.values())}, headers=_HEADERS)

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["target"]
        if name not in self._models:
            return _error(404, f"models/{name} is not found for API version v1beta.").response
        return json_response(self._models[name], headers=_HEADERS)

    # -- Gemini API ----------------------------------------------------------------------------

    async def gemini_api(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].rpartition(":")
        if not model or method not in _GEMINI_METHODS:
            return await self.http_error(request, HTTPException(404))
        try:
            call = await self._admit(
                request,
                model,
                self._gemini_key,
                _google_fault,
                stream=method == "streamGenerateContent",
            )
            if method == "countTokens":
                return self._count_tokens(call, vertex=False)
            return self._generate(call, request, vertex=False)
        except gemini.InvalidGeminiRequest as invalid:
            return _error(invalid.status, invalid.message).response
        except Abort as abort:
            return abort.response

    # -- Vertex AI -----------------------------------------------------------------------------

    async def vertex(self, request: Request) -> Response:
        publisher = request.path_params["publisher"]
        model, _, method = request.path_params["target"].rpartition(":")
        known = _GEMINI_METHODS if publisher == "google" else _CLAUDE_METHODS
        if not model or publisher not in ("google", "anthropic") or method not in known:
            return await self.http_error(request, HTTPException(404))
        try:
            if publisher == "google":
                call = await self._admit(
                    request,
                    model,
                    self._vertex_token,
                    _google_fault,
                    stream=method == "streamGenerateContent",
                )
                if method == "countTokens":
                    return self._count_tokens(call, vertex=True)
                return self._generate(call, request, vertex=True)
            call = await self._admit(
                request,
                model,
                self._vertex_token,
                _claude_fault,
                stream=method == "streamRawPredict",
            )
            return self._claude(call)
        except gemini.InvalidGeminiRequest as invalid:
            return _error(invalid.status, invalid.message).response
        except claude.InvalidMessagesRequest as invalid:
            return _claude_error(invalid.status, invalid.message, invalid.error_type).response
        except Abort as abort:
            return abort.response

    # -- answers -------------------------------------------------------------------------------

    def _generate(self, call: _Call, request: Request, *, vertex: bool) -> Response:
        parsed = gemini.parse_request(
            call.body, vertex=vertex, cached_content_tokens=self.settings.cached_content_tokens
        )
        reply = gemini.answer(parsed, reply_words=self.settings.reply_words)
        version, response_id = f"fake-{call.model}", gemini.new_response_id()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if not call.stream:
            payload = gemini.response(
                reply, version, response_id, vertex=vertex, create_time=created
            )
            return self._json(call, payload)
        chunks = gemini.stream_chunks(
            reply,
            parsed,
            version,
            response_id,
            vertex=vertex,
            create_time=created,
            words_per_chunk=self.settings.words_per_chunk,
            chunk_chars=self.settings.chunk_chars,
        )
        if request.query_params.get("alt") == "sse":
            events: Iterator[bytes] = (b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)
            body = self._stream(call, events, b"")
            return StreamingResponse(body, headers=_HEADERS, media_type="text/event-stream")
        body = self._stream(call, _json_array(chunks), b"]")
        return StreamingResponse(body, headers=_HEADERS, media_type="application/json")

    def _count_tokens(self, call: _Call, *, vertex: bool) -> Response:
        inner = call.body.get("generateContentRequest")
        source = inner if isinstance(inner, dict) else call.body
        parsed = gemini.parse_request(
            source, vertex=vertex, cached_content_tokens=self.settings.cached_content_tokens
        )
        return self._json(call, gemini.count_tokens_response(parsed, vertex=vertex))

    def _claude(self, call: _Call) -> Response:
        body = call.body
        if "anthropic_version" not in body:
            raise claude.InvalidMessagesRequest("anthropic_version: Field required")
        version = body["anthropic_version"]
        if not claude.well_formed_version(version, _VERTEX_CLAUDE_VERSION):
            raise claude.InvalidMessagesRequest(
                f"anthropic_version: Input should be '{_VERTEX_CLAUDE_VERSION}'"
            )
        if call.model == "count-tokens":
            parsed = claude.parse_request(body, for_count=True)
            return self._json(call, {"input_tokens": parsed.prompt_tokens})
        if "model" in body:
            raise claude.InvalidMessagesRequest("model: Extra inputs are not permitted")
        parsed = claude.parse_request(body)
        reply = claude.answer(
            parsed, self.cache, reply_words=self.settings.reply_words, service_tier=False
        )
        model, message_id = f"fake-{call.model}", claude.new_message_id("msg_vrtx_")
        if not call.stream:
            return self._json(call, claude.message(reply, model, message_id))
        events = claude.stream_events(
            reply, model, message_id, words_per_chunk=self.settings.words_per_chunk
        )
        sse = self._stream(call, (claude.sse(name, data) for name, data in events), b"")
        return StreamingResponse(sse, headers=_HEADERS, media_type="text/event-stream")

    def _json(self, call: _Call, payload: object) -> Response:
        raw = orjson.dumps(payload)
        if call.cut_after is not None:
            return CutResponse(raw, 200, _HEADERS, "application/json; charset=UTF-8")
        return Response(raw, 200, _HEADERS, "application/json; charset=UTF-8")

    def _stream(self, call: _Call, events: Iterator[bytes], done: bytes) -> AsyncIterator[bytes]:
        return stream_events(
            events, call.receive, delay=self._chunk_delay, cut_after=call.cut_after, done=done
        )


def _json_array(chunks: Iterator[dict[str, object]]) -> Iterator[bytes]:
    """Without ``alt=sse`` the stream is one JSON array, written an element at a time."""
    separator = b"["
    for chunk in chunks:
        yield separator + orjson.dumps(chunk) + b"\n"
        separator = b",\r\n"
    if separator == b"[":
        yield b"["


def _model_info(name: str) -> dict[str, object]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": f"Fake {name}",
        "description": "A fake model served by the Passerelle test upstream.",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "thinking": True,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m passerelle.testing.fake_gemini``: serve the fake until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m passerelle.testing.fake_gemini",
        description="Serve a FAKE Gemini / Vertex AI upstream; its replies are labelled 'fake-'.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9003)
    parser.add_argument("--latency-ms", type=float, default=0, help="before each answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="between stream events")
    parser.add_argument("--reply-words", type=int, default=None, help="pad replies to N words")
    parser.add_argument("--api-key", default=None, help="require exactly this Gemini API key")
    parser.add_argument("--vertex-token", default=None, help="require this Vertex bearer token")
    args = parser.parse_args(argv)
    settings = FakeSettings(
        api_key=args.api_key,
        vertex_access_token=args.vertex_token,
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
