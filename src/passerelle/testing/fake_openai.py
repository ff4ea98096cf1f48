"""A FAKE OpenAI upstream that speaks OpenAI's exact wire format, for tests, benchmarks and the
offline demo.

It is labelled fake everywhere a client could look: ``model`` is ``fake-<requested model>``,
``system_fingerprint`` is ``fp_passerelle_fake`` and every response carries the header
``x-fake-upstream: openai``. Replies are deterministic (derived from the last user message), so a
test can assert what went through the gateway.

Surfaces: ``POST /v1/chat/completions`` (plain, streamed, tools, structured outputs),
``POST /v1/responses`` (the Responses API as Codex CLI speaks it: items, function calls, reasoning
with summaries and encrypted content, ``event:`` streams; see ``_openai_responses``),
``POST /v1/embeddings``, ``GET /v1/models[/{id}]``, the same under Azure's ``/openai/v1/...``,
``/openai/deployments/{deployment}/...?api-version=...`` and ``/openai/responses?api-version=...``
paths (which also accept an ``api-key`` header), and the ``/_fake/`` control API for faults and
the request log (see ``_fake_common``).

Benchmarks measure the gateway against this server, so the hot path stays cheap: no validation
library, orjson only, and nothing per request that can be computed once in ``create_app``.

Run it alone with ``python -m passerelle.testing.fake_openai --port 9001``.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passerelle.testing import _openai_responses as responses_api
from passerelle.testing._fake_common import (
    SSE_DONE,
    Abort,
    CutResponse,
    FakeControl,
    Fault,
    embedding_vector,
    estimate_tokens,
    json_response,
    pad_with_filler,
    pause,
    placeholder,
    play_fault,
    split_fixed,
    split_text,
    sse_event,
    stream_events,
    text_of,
    truncate_to_tokens,
)

__all__ = ["FakeSettings", "create_app", "main"]

FINGERPRINT = "fp_passerelle_fake"
OWNER = "passerelle-fake"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MODEL_CREATED = 1_700_000_000
_ARGUMENT_FRAGMENT = 12  # characters of tool-call arguments per streamed chunk
# OpenAI's own error (message, type, code) for each status a fault can inject.
_FAULT_ERRORS: Mapping[int, tuple[str, str, str | None]] = {
    400: ("Invalid request (injected by the fake upstream).", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model `{model}` does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
          "Limit 60, Used 60, Requested 1. Please try again in 1s.",
          "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """How the fake behaves; faults are queued at run time through the control API instead."""

    api_key: str | None = None  # when set, callers must present exactly this key
    latency_ms: float = 0  # before every chat, responses or embeddings answer
    chunk_delay_ms: float = 0  # between two stream events
    reply_words: int | None = None  # pad replies to this many words (benchmarks)
    words_per_chunk: int = 3
    chunk_chars: int = 0  # when set, stream text this many characters at a time instead
    embedding_dimensions: int = 8  # unless the request asks for ``dimensions``
    models: tuple[str, ...] = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
    request_log_size: int = 200
    stored_responses: int = 100  # Responses API answers kept for ``previous_response_id``
    # "mistral" speaks Mistral's variant of Chat Completions: flat error bodies
    # ({"object": "error", "message", "type", "param", "code"}), a 422 for ``stream_options``
    # (its schema forbids extra inputs), usage on the last chunk of every stream, 9-character
    # tool call ids, and no Responses API.
    dialect: str = "openai"


@dataclass(frozen=True, slots=True)
class _Call:
    """An admitted request: authenticated, past its faults, with a JSON object body."""

    body: dict[str, object]
    model: str
    cut_after: int | None  # a stream_cut fault: events to send before hanging up
    receive: Receive


@dataclass(frozen=True, slots=True)
class _ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class _Answer:
    content: str | None
    tool_calls: tuple[_ToolCall, ...]
    finish_reason: str
    tokens: int


def create_app(settings: FakeSettings) -> Starlette | ASGIApp:
    """The fake as an ASGI app; every instance has its own fault queue and request log."""
    if settings.dialect not in ("openai", "mistral"):
        raise ValueError(f"unknown dialect {settings.dialect!r}: openai or mistral")
    app = _create_app(settings)
    return _MistralErrors(app) if settings.dialect == "mistral" else app


def _create_app(settings: FakeSettings) -> Starlette:
    fake = _FakeOpenAI(settings)
    chat, embed, post = fake.chat_completions, fake.embeddings, ["POST"]
    routes = [
        Route("/v1/chat/completions", chat, methods=post),
        Route("/openai/v1/chat/completions", chat, methods=post),
        Route("/openai/deployments/{deployment}/chat/completions", chat, methods=post),
        Route("/v1/responses", fake.responses, methods=post),
        Route("/openai/v1/responses", fake.responses, methods=post),
        Route("/openai/responses", fake.responses, methods=post),
        Route("/v1/embeddings", embed, methods=post),
        Route("/openai/v1/embeddings", embed, methods=post),
        Route("/openai/deployments/{deployment}/embeddings", embed, methods=post),
        Route("/v1/models", fake.list_models, methods=["GET"]),
        Route("/openai/v1/models", fake.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", fake.get_model, methods=["GET"]),
        *fake.control.routes(),
    ]
    return Starlette(routes=routes, exception_handlers={404: fake.http_error, 405: fake.http_error})


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Abort:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Abort(json_response(body, status, {"x-fake-upstream": "openai"}))


def _bad(message: str, param: str | None = None, code: str | None = None) -> Abort:
    return _error(400, message, param=param, code=code)


def _headers() -> dict[str, str]:
    return {"x-fake-upstream": "openai", "x-request-id": f"req_fake{os.urandom(12).hex()}"}


def _usage(prompt: int, completion: int) -> dict[str, object]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _int_param(body: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"Invalid type for '{name}': expected an integer.", name, "invalid_type")
    if not low <= value <= high:
        message = f"Invalid '{name}': expected a value from {low} to {high}, got {value}."
        raise _bad(message, name, "integer_out_of_range")
    return value


def _fault_response(fault: Fault, model: str | None) -> Response:
    body = fault.body
    if body is None:
        kind = "server_error" if fault.status >= 500 else "invalid_request_error"
        default = (f"Upstream error {fault.status} (injected by the fake upstream).", kind, None)
        message, kind, code = _FAULT_ERRORS.get(fault.status, default)
        message = message.format(model=model or "this model")
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json_response(body, fault.status, _fault_headers(fault))


def _fault_headers(fault: Fault) -> dict[str, str]:
    headers = {"x-fake-upstream": "openai"}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["retry-after"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
    if fault.status == 429:
        reset = f"{fault.retry_after or 1:g}s"
        headers |= {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "0s",
        }
    return headers


class _FakeOpenAI:
    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self.control = FakeControl(settings.request_log_size)
        self._latency = settings.latency_ms / 1000
        self._chunk_delay = settings.chunk_delay_ms / 1000
        self._models = {
            name: {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": OWNER}
            for name in settings.models
        }
        self._model_list = orjson.dumps({"object": "list", "data": list(self._models.values())})
        self._stored = responses_api.ResponseStore(settings.stored_responses)

    # -- admission: log, auth, faults ---------------------------------------------------------

    async def _admit(self, request: Request) -> _Call:
        raw = await request.body()
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.control.log.record(request, raw.decode("utf-8", "replace") if body is None else body)
        self._authenticate(request)
        deployment = request.path_params.get("deployment")
        # Azure's dated paths (all but /openai/v1/...) need the api-version query parameter.
        dated = not request.scope["path"].startswith(("/v1/", "/openai/v1/"))
        if dated and "api-version" not in request.query_params:
            raise _error(404, "Resource not found: the api-version query parameter is missing.")
        requested = deployment or (body.get("model") if isinstance(body, dict) else None)
        model = requested if isinstance(requested, str) else None
        fault = self.control.faults.pop(model)
        await pause(self._latency)
        cut_after = await play_fault(
            fault, request.receive, lambda injected: _fault_response(injected, model)
        )
        if not isinstance(body, dict):
            raise _bad(
                "We could not parse the JSON body of your request: it must be a JSON object."
            )
        if model is None:
            raise _bad("you must provide a model parameter", "model")
        return _Call(body, model, cut_after, request.receive)

    def _authenticate(self, request: Request) -> None:
        headers = request.headers
        authorization = headers.get("authorization", "")
        key = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        if not key and request.scope["path"].startswith("/openai/"):
            key = headers.get("api-key", "")
        if not key:
            raise _error(
                401,
                "You didn't provide an API key. You need to provide your API key "
                "in an Authorization header using Bearer auth (i.e. Authorization: "
                "Bearer YOUR_KEY).",
            )
        if self.settings.api_key is not None and key != self.settings.api_key:
            raise _error(401, "Incorrect API key provided.", code="invalid_api_key")

    def _respond(self, call: _Call, payload: object) -> Response:
        if call.cut_after is not None:
            return CutResponse(orjson.dumps(payload), 200, _headers(), "application/json")
        return json_response(payload, headers=_headers())

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"Invalid URL ({request.method} {request.url.path})"
        if status == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        return _error(status, message).response

    # -- models --------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        # Unauthenticated unless a key is configured: it doubles as the readiness probe.
        if self.settings.api_key is not None:
            try:
                self._authenticate(request)
            except Abort as abort:
                return abort.response
        return Response(self._model_list, 200, _headers(), "application/json")

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self._models:
            message = f"The model '{name}' does not exist"
            return _error(404, message, code="model_not_found").response
        return json_response(self._models[name], headers=_headers())

    # -- chat completions ----------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        try:
            call = await self._admit(request)
            return self._chat(call)
        except Abort as abort:
            return abort.response

    def _chat(self, call: _Call) -> Response:
        body = call.body
        messages = body.get("messages")
        if messages is None:
            raise _bad(
                "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
            )
        if not isinstance(messages, list):
            raise _bad(
                "Invalid type for 'messages': expected an array.", "messages", "invalid_type"
            )
        if not messages:
            raise _bad(
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                "messages",
                "empty_array",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                problem = f"Invalid 'messages[{index}]': expected an object with a known role."
                raise _bad(problem, f"messages[{index}]", "invalid_value")
        n = _int_param(body, "n", 1, 128) or 1
        max_tokens = _int_param(body, "max_completion_tokens", 1, 1 << 30)
        if max_tokens is None:
            max_tokens = _int_param(body, "max_tokens", 1, 1 << 30)

        answer = self._answer(body, messages, max_tokens)
        answers = [answer] + [_with_new_ids(answer) for _ in range(n - 1)]
        prompt_chars = sum(_message_chars(message) for message in messages)
        usage = _usage(estimate_tokens(prompt_chars), answer.tokens * n)
        base = {
            "id": f"chatcmpl-fake{os.urandom(10).hex()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"fake-{call.model}",
        }
        mistral = self.settings.dialect == "mistral"
        if mistral and "stream_options" in body:
            raise _error(
                422,
                "Extra inputs are not permitted: body.stream_options",
                param="stream_options",
            )
        if body.get("stream") is True:
            options = body.get("stream_options")
            with_usage = mistral or (
                isinstance(options, dict) and options.get("include_usage") is True
            )
            chunks = self._chunks(base, answers, usage if with_usage else None)
            events = stream_events(
                (sse_event(chunk) for chunk in chunks),
                call.receive,
                delay=self._chunk_delay,
                cut_after=call.cut_after,
                done=SSE_DONE,
            )
            return StreamingResponse(events, headers=_headers(), media_type="text/event-stream")
        return self._respond(
            call,
            {
                **base,
                "choices": [
                    {
                        "index": i,
                        "message": _message(a),
                        "logprobs": None,
                        "finish_reason": a.finish_reason,
                    }
                    for i, a in enumerate(answers)
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
            },
        )

    def _answer(
        self, body: Mapping[str, object], messages: list[dict[str, object]], max_tokens: int | None
    ) -> _Answer:
        """What the fake model says: a tool call when tools are offered, else text."""
        tools = _function_tools(body.get("tools"))
        choice = body.get("tool_choice", "auto")
        after_tool = messages[-1].get("role") == "tool"
        prompt = next(
            (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
            text_of(messages[-1].get("content")),
        )
        if tools and not after_tool and choice != "none":
            chosen = tools[:1]
            if isinstance(choice, dict):
                function = choice.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                chosen = [tool for tool in tools if tool["name"] == name][:1]
                if not chosen:
                    problem = f"Invalid value for 'tool_choice': no function named {name!r}."
                    raise _bad(problem, "tool_choice")
            elif (
                body.get("parallel_tool_calls") is not False
                and len(tools) >= 2
                and "parallel" in prompt.lower()
            ):
                chosen = tools[:2]
            calls = tuple(
                _ToolCall(
                    _call_id(mistral=self.settings.dialect == "mistral"),
                    str(tool["name"]),
                    orjson.dumps(placeholder(tool.get("parameters") or {})).decode(),
                )
                for tool in chosen
            )
            tokens = estimate_tokens(sum(len(c.name) + len(c.arguments) for c in calls))
            return _Answer(None, calls, "tool_calls", tokens)

        if after_tool:
            results = []
            for message in reversed(messages):
                if message.get("role") != "tool":
                    break
                results.append(text_of(message.get("content")))
            text = "This is a fake reply using the tool results: " + " | ".join(results[::-1])
        else:
            text = "This is a fake reply to: " + prompt[:60]
        text = pad_with_filler(text, self.settings.reply_words)
        response_format = body.get("response_format")
        if isinstance(response_format, dict):
            if response_format.get("type") == "json_object":
                text = orjson.dumps({"reply": text}).decode()
            elif response_format.get("type") == "json_schema":
                spec = response_format.get("json_schema")
                schema = spec.get("schema") if isinstance(spec, dict) else None
                text = orjson.dumps(placeholder(schema or {"type": "object"})).decode()
        text, truncated = truncate_to_tokens(text, max_tokens)
        return _Answer(text, (), "length" if truncated else "stop", estimate_tokens(len(text)))

    def _chunks(
        self, base: dict[str, object], answers: Sequence[_Answer], usage: dict[str, object] | None
    ) -> Iterator[dict[str, object]]:
        """The stream's chunks, made lazily: each is built when it is about to be sent."""
        head = {
            **base,
            "object": "chat.completion.chunk",
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        # With usage on, OpenAI sends "usage": null on every chunk but the last.
        tail: dict[str, object] = {} if usage is None else {"usage": None}

        def chunk(
            index: int, delta: dict[str, object], finish: str | None = None
        ) -> dict[str, object]:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice], **tail}

        for index, answer in enumerate(answers):
            if answer.content is not None:
                yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
                for piece in split_text(
                    answer.content, self.settings.words_per_chunk, self.settings.chunk_chars
                ):
                    yield chunk(index, {"content": piece})
            for position, call in enumerate(answer.tool_calls):
                opening: dict[str, object] = {
                    "index": position,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                if position == 0:
                    yield chunk(
                        index,
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [opening],
                            "refusal": None,
                        },
                    )
                else:
                    yield chunk(index, {"tool_calls": [opening]})
                for fragment in split_fixed(call.arguments, _ARGUMENT_FRAGMENT):
                    tool_delta = {"index": position, "function": {"arguments": fragment}}
                    yield chunk(index, {"tool_calls": [tool_delta]})
            if self.settings.dialect == "mistral" and index == len(answers) - 1:
                # Mistral puts the usage on the chunk that ends the answer.
                yield {**chunk(index, {}, answer.finish_reason), "usage": usage}
                return
            yield chunk(index, {}, answer.finish_reason)
        if usage is not None:
            yield {**head, "choices": [], "usage": usage}

    # -- responses -----------------------------------------------------------------------------

    async def responses(self, request: Request) -> Response:
        if self.settings.dialect == "mistral":
            return json_response({"detail": "Not Found"}, 404, {"x-fake-upstream": "openai"})
        try:
            call = await self._admit(request)
            return self._responses(call)
        except Abort as abort:
            return abort.response

    def _responses(self, call: _Call) -> Response:
        try:
            parsed = responses_api.parse_request(call.body, self._stored)
        except responses_api.InvalidRequest as invalid:
            raise _error(
                invalid.status, invalid.message, param=invalid.param, code=invalid.code
            ) from None
        reply = responses_api.answer(parsed, self.settings.reply_words)
        response_id = responses_api.new_id("resp_")
        model, now = f"fake-{call.model}", int(time.time())
        if parsed.store:
            self._stored.save(response_id, parsed.conversation, reply.output)
        if call.body.get("stream") is True:
            events = responses_api.stream_events(
                parsed,
                reply,
                response_id,
                model,
                now,
                words_per_chunk=self.settings.words_per_chunk,
                chunk_chars=self.settings.chunk_chars,
            )
            body = stream_events(
                (responses_api.sse(name, data) for name, data in events),
                call.receive,
                delay=self._chunk_delay,
                cut_after=call.cut_after,
                done=b"",  # a Responses stream ends with response.completed, not [DONE]
            )
            return StreamingResponse(body, headers=_headers(), media_type="text/event-stream")
        return self._respond(
            call, responses_api.response_object(parsed, response_id, model, now, reply, now)
        )

    # -- embeddings ----------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        try:
            call = await self._admit(request)
            return self._embeddings(call)
        except Abort as abort:
            return abort.response

    def _embeddings(self, call: _Call) -> Response:
        body = call.body
        items, tokens = _embedding_inputs(body.get("input"))
        dimensions = _int_param(body, "dimensions", 1, 8192) or self.settings.embedding_dimensions
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            message = "Invalid value for 'encoding_format': expected 'float' or 'base64'."
            raise _bad(message, "encoding_format", "invalid_value")
        data = []
        for index, item in enumerate(items):
            floats, packed = embedding_vector(item, dimensions)
            vector: object = base64.b64encode(packed).decode() if encoding == "base64" else floats
            data.append({"object": "embedding", "index": index, "embedding": vector})
        payload = {
            "object": "list",
            "data": data,
            "model": f"fake-{call.model}",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return self._respond(call, payload)


def _function_tools(tools: object) -> list[dict[str, object]]:
    """The ``function`` objects of the function tools offered (other tool types are ignored)."""
    if not isinstance(tools, list):
        return []
    return [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    ]


def _message(answer: _Answer) -> dict[str, object]:
    message: dict[str, object] = {
        "role": "assistant",
        "content": answer.content,
        "refusal": None,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    return message


def _message_chars(message: Mapping[str, object]) -> int:
    chars = len(text_of(message.get("content")))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                chars += sum(len(str(function.get(key, ""))) for key in ("name", "arguments"))
    return chars


def _call_id(*, mistral: bool = False) -> str:
    if mistral:  # Mistral's ids are nine letters and digits
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return "".join(alphabet[b % len(alphabet)] for b in os.urandom(9))
    return f"call_{os.urandom(12).hex()}"


class _MistralErrors:
    """Rewrites the fake's OpenAI error bodies into Mistral's flat shape, for every error the
    fake answers (validation, faults, unknown paths); other responses pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake/"):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message
                return
            if "start" not in held:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                body = orjson.dumps({"object": "error", **parsed["error"]})
            start = dict(held["start"])
            start["headers"] = [
                (k, str(len(body)).encode() if k == b"content-length" else v)
                for k, v in start["headers"]
            ]
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def _with_new_ids(answer: _Answer) -> _Answer:
    if not answer.tool_calls:
        return answer
    return replace(answer, tool_calls=tuple(replace(c, id=_call_id()) for c in answer.tool_calls))


def _embedding_inputs(value: object) -> tuple[list[bytes], int]:
    """Each input as the bytes its vector derives from, and the prompt token count.

    OpenAI accepts a string, a list of strings, a list of token ids or a list of such lists.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid_input()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = [value]
    items: list[bytes] = []
    tokens = 0
    for item in value:
        if isinstance(item, str) and item:
            items.append(item.encode())
            tokens += estimate_tokens(len(item))
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            items.append(orjson.dumps(item))
            tokens += len(item)
        else:
            raise _invalid_input()
    return items, tokens


def _invalid_input() -> Abort:
    message = "Invalid 'input': expected a non-empty string, array of strings or token arrays."
    return _bad(message, "input", "invalid_value")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m passerelle.testing.fake_openai``: serve the fake until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m passerelle.testing.fake_openai",
        description="Serve a FAKE OpenAI-compatible upstream; its replies are labelled 'fake-'.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--dialect", choices=("openai", "mistral"), default="openai", help="whose API to speak"
    )
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
        dialect=args.dialect,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="auto",
        http="auto",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
