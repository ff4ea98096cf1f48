"""A FAKE Amazon Bedrock runtime that verifies SigV4 and speaks Bedrock's exact wire formats.

Labelled fake everywhere a client could look: ``model`` is ``fake-<model id>``, ids carry
``fake`` and every response has the header ``x-fake-upstream: bedrock``. It serves Claude models
(answers from ``_anthropic_model``) on:

* ``POST /model/{modelId}/invoke``: the Anthropic body with ``anthropic_version``
  (``bedrock-2023-05-31``, or a dated version as newer SDKs send) and no ``model`` field; the
  answer is the Messages response, with Bedrock's ``x-amzn-bedrock-*-token-count`` headers;
* ``POST /model/{modelId}/invoke-with-response-stream``: AWS event stream framing
  (``application/vnd.amazon.eventstream``), one ``chunk`` event per Anthropic stream event,
  payload ``{"bytes": base64(event JSON), "p": padding}``; ``message_stop`` carries
  ``amazon-bedrock-invocationMetrics``;
* ``POST /model/{modelId}/converse`` and ``/converse-stream``: the Converse API (see
  ``_bedrock_converse``), its stream as event-stream events named ``messageStart``…``metadata``.

Every request must be signed with SigV4 for the configured access key (service ``bedrock``,
region taken from a ``bedrock-runtime.{region}.amazonaws.com`` host, else the configured one).
The fake verifies the signature with ``passerelle.providers.aws_sigv4`` (whose own tests check it
against AWS's published vectors) and refuses as AWS does: ``MissingAuthenticationTokenException``,
``IncompleteSignatureException``, ``UnrecognizedClientException`` (unknown key or session token),
``InvalidSignatureException`` (wrong signature, scope, or a clock more than five minutes off). A
Bedrock API key (``authorization: Bearer``) is accepted instead when one is configured.

Errors carry ``x-amzn-ErrorType`` and a ``{"message": ...}`` body with Bedrock's status codes:
ValidationException 400, AccessDeniedException 403, ResourceNotFoundException 404,
ModelTimeoutException 408, ModelErrorException 424, ThrottlingException 429,
InternalServerException 500, ServiceUnavailableException 503. Faults come from the ``/_fake/``
control API and match on the model id.

Run it alone with ``python -m passerelle.testing.fake_bedrock --port 9004``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive

from passerelle.formats.aws_eventstream import encode_message
from passerelle.providers import aws_sigv4
from passerelle.testing import _anthropic_model as claude
from passerelle.testing import _bedrock_converse as converse
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

__all__ = [
    "EXCEPTIONS",
    "TEST_ACCESS_KEY_ID",
    "TEST_SECRET_ACCESS_KEY",
    "FakeSettings",
    "bedrock_error",
    "create_app",
    "main",
]

SERVICE = "bedrock"
# The default key pair: a test credential, published nowhere and valid nowhere else.
TEST_ACCESS_KEY_ID = "AKIDFAKEBEDROCKTEST"
TEST_SECRET_ACCESS_KEY = "fake/bedrock/secret/for/tests/only"  # noqa: S105 (a test-only key)
EVENTSTREAM = "application/vnd.amazon.eventstream"
# Bedrock's exception for each status a fault can inject, and its usual message.
EXCEPTIONS: Mapping[int, tuple[str, str]] = {
    400: (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    ),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    408: (
        "ModelTimeoutException",
        "Model has timed out in processing the request. Try your request again.",
    ),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: (
        "InternalServerException",
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_BEDROCK_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_AUTH_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_BEDROCK_VERSION = "bedrock-2023-05-31"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*"
)
_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?::\d+)?")
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class FakeSettings:
    """How the fake behaves; faults are queued at run time through the control API instead."""

    access_key_id: str = TEST_ACCESS_KEY_ID
    secret_access_key: str = TEST_SECRET_ACCESS_KEY
    session_token: str | None = None  # when set, requests must carry exactly this token
    api_key: str | None = None  # a Bedrock API key accepted as ``authorization: Bearer``
    region: str = "us-east-1"
    max_clock_skew_s: float = 300
    latency_ms: float = 0
    chunk_delay_ms: float = 0
    reply_words: int | None = None
    words_per_chunk: int = 3
    request_log_size: int = 200


@dataclass(frozen=True, slots=True)
class _Call:
    body: dict[str, object]
    model: str
    cut_after: int | None
    receive: Receive
    started: float


def _request_id() -> str:
    return str(uuid.uuid4())


def bedrock_error(
    status: int, code: str, message: str, *, namespace: str = _BEDROCK_NAMESPACE
) -> Response:
    """Bedrock's error: ``x-amzn-ErrorType`` names the exception, the body carries the message."""
    headers = {
        "x-amzn-ErrorType": f"{code}:{namespace}",
        "x-amzn-RequestId": _request_id(),
        "x-fake-upstream": "bedrock",
    }
    return json_response({"message": message}, status, headers)


def _error(status: int, code: str, message: str) -> Abort:
    return Abort(bedrock_error(status, code, message))


def _auth_error(status: int, code: str, message: str) -> Abort:
    return Abort(bedrock_error(status, code, message, namespace=_AUTH_NAMESPACE))


def _validation(message: str) -> Abort:
    return _error(400, "ValidationException", message)


def _fault_response(fault: Fault) -> Response:
    if fault.body is not None:
        code = EXCEPTIONS.get(fault.status, ("InternalServerException", ""))[0]
        headers = {"x-amzn-ErrorType": f"{code}:{_BEDROCK_NAMESPACE}", "x-fake-upstream": "bedrock"}
        response = json_response(fault.body, fault.status, headers)
    else:
        default = ("InternalServerException", f"Upstream error {fault.status} (fake).")
        code, message = EXCEPTIONS.get(fault.status, default)
        response = bedrock_error(fault.status, code, message)
    if fault.retry_after is not None:
        response.headers["retry-after"] = retry_after_value(fault.retry_after)
    return response


def create_app(settings: FakeSettings) -> Starlette:
    """The fake as an ASGI app; every instance has its own faults, request log and prompt cache."""
    fake = _FakeBedrock(settings)
    post = ["POST"]
    routes = [
        Route("/model/{model_id:path}/invoke", fake.invoke, methods=post),
        Route(
            "/model/{model_id:path}/invoke-with-response-stream", fake.invoke_stream, methods=post
        ),
        Route("/model/{model_id:path}/converse", fake.converse, methods=post),
        Route("/model/{model_id:path}/converse-stream", fake.converse_stream, methods=post),
        *fake.control.routes(),
    ]
    return Starlette(routes=routes, exception_handlers={404: fake.http_error, 405: fake.http_error})


class _FakeBedrock:
    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self.control = FakeControl(settings.request_log_size)
        self.cache = claude.PromptCache()
        self._latency = settings.latency_ms / 1000
        self._chunk_delay = settings.chunk_delay_ms / 1000

    # -- admission: log, SigV4, faults ------------------------------------------------------

    async def _admit(self, request: Request) -> _Call:
        started = time.monotonic()
        raw = await request.body()
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.control.log.record(request, raw.decode("utf-8", "replace") if body is None else body)
        self._authenticate(request, raw)
        model = request.path_params["model_id"]
        fault = self.control.faults.pop(model)
        await pause(self._latency)
        cut_after = await play_fault(fault, request.receive, _fault_response)
        if not isinstance(body, dict):
            raise _validation("Malformed input request: the request body must be a JSON object.")
        return _Call(body, model, cut_after, request.receive, started)

    def _authenticate(self, request: Request, body: bytes) -> None:
        headers = request.headers
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            if self.settings.api_key is None or not hmac.compare_digest(
                authorization[7:].strip(), self.settings.api_key
            ):
                raise _auth_error(403, "UnrecognizedClientException", _BAD_TOKEN)
            return
        if not authorization:
            raise _auth_error(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        match = _AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise _auth_error(
                403,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                "parameters, with the AWS4-HMAC-SHA256 algorithm.",
            )
        parts = match["credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise _auth_error(
                403,
                "IncompleteSignatureException",
                "Credential must have exactly 5 slash-delimited elements, "
                "e.g. keyid/date/region/service/term.",
            )
        key_id, scope_date, region, service, _ = parts
        if key_id != self.settings.access_key_id:
            raise _auth_error(403, "UnrecognizedClientException", _BAD_TOKEN)
        token = headers.get("x-amz-security-token")
        expected_token = self.settings.session_token
        if (token is None) != (expected_token is None) or (
            token is not None
            and expected_token is not None
            and not hmac.compare_digest(token, expected_token)
        ):
            raise _auth_error(403, "UnrecognizedClientException", _BAD_TOKEN)
        timestamp = headers.get("x-amz-date")
        if timestamp is None:
            raise _auth_error(
                403,
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.",
            )
        self._check_time(timestamp, scope_date)
        expected_region = self._region(headers.get("host", ""))
        if region != expected_region:
            raise _auth_error(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{region}'. ",
            )
        if service != SERVICE:
            raise _auth_error(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{SERVICE}'. ",
            )
        signed = match["signed"].split(";")
        if "host" not in signed:
            raise _auth_error(403, "InvalidSignatureException", "'Host' must be a signed header.")
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        canonical = aws_sigv4.canonical_request(
            request.method,
            raw_path.decode("utf-8", "replace"),
            request.scope["query_string"].decode("latin-1"),
            headers.items(),
            signed,
            hashlib.sha256(body).hexdigest(),
        )
        scope = aws_sigv4.credential_scope(scope_date, region, service)
        to_sign = aws_sigv4.string_to_sign(timestamp, scope, canonical)
        key = aws_sigv4.signing_key(self.settings.secret_access_key, scope_date, region, service)
        expected = aws_sigv4.signature(key, to_sign)
        if not hmac.compare_digest(expected, match["signature"]):
            shown = canonical if token is None else canonical.replace(token, "***")
            raise _auth_error(
                403,
                "InvalidSignatureException",
                f"{_BAD_SIGNATURE}\n\nThe Canonical String for this request should have been\n"
                f"'{shown}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n",
            )

    def _check_time(self, timestamp: str, scope_date: str) -> None:
        try:
            signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _auth_error(
                403,
                "IncompleteSignatureException",
                f"Date must be in ISO-8601 'basic format'. Got '{timestamp}'.",
            ) from None
        if scope_date != timestamp[:8]:
            raise _auth_error(
                403,
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from 'X-Amz-Date'.",
            )
        now = datetime.now(UTC)
        skew = timedelta(seconds=self.settings.max_clock_skew_s)
        minutes = f"{self.settings.max_clock_skew_s / 60:g} min."
        if signed_at < now - skew:
            raise _auth_error(
                403,
                "InvalidSignatureException",
                f"Signature expired: {timestamp} is now earlier than "
                f"{aws_sigv4.amz_date(now - skew)} ({aws_sigv4.amz_date(now)} - {minutes})",
            )
        if signed_at > now + skew:
            raise _auth_error(
                403,
                "InvalidSignatureException",
                f"Signature not yet current: {timestamp} is still later than "
                f"{aws_sigv4.amz_date(now + skew)} ({aws_sigv4.amz_date(now)} + {minutes})",
            )

    def _region(self, host: str) -> str:
        match = _HOST_REGION.fullmatch(host.lower())
        return match.group(1) if match else self.settings.region

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return bedrock_error(405, "UnknownOperationException", "Unknown operation")
        return bedrock_error(
            404, "UnknownOperationException", f"Unknown operation {request.url.path}"
        )

    # -- InvokeModel -------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        return await self._invoke(request, stream=False)

    async def invoke_stream(self, request: Request) -> Response:
        return await self._invoke(request, stream=True)

    async def _invoke(self, request: Request, *, stream: bool) -> Response:
        try:
            call = await self._admit(request)
            parsed = self._messages_request(call.body)
        except Abort as abort:
            return abort.response
        reply = claude.answer(
            parsed, self.cache, reply_words=self.settings.reply_words, service_tier=False
        )
        model, message_id = f"fake-{call.model}", claude.new_message_id("msg_bdrk_")
        latency = _elapsed_ms(call)
        if not stream:
            headers = self._headers() | _token_headers(reply, latency)
            payload = orjson.dumps(claude.message(reply, model, message_id))
            if call.cut_after is not None:
                return CutResponse(payload, 200, headers, "application/json")
            return Response(payload, 200, headers, "application/json")
        reply.extra = {"amazon-bedrock-invocationMetrics": _metrics(reply, latency)}
        events = claude.stream_events(
            reply, model, message_id, words_per_chunk=self.settings.words_per_chunk
        )
        kept = (data for name, data in events if name != "ping")
        chunks = (_chunk(sequence, data) for sequence, data in enumerate(kept))
        headers = self._headers() | {"x-amzn-bedrock-content-type": "application/json"}
        return self._eventstream(call, chunks, headers)

    def _messages_request(self, body: Mapping[str, object]) -> claude.MessagesRequest:
        for key in ("anthropic_version", "messages", "max_tokens"):
            if key not in body:
                raise _validation(
                    f"Malformed input request: #: required key [{key}] not found, please "
                    "reformat your input and try again."
                )
        if "model" in body:
            raise _validation(
                "Malformed input request: #: extraneous key [model] is not permitted, please "
                "reformat your input and try again."
            )
        if not claude.well_formed_version(body["anthropic_version"], _BEDROCK_VERSION):
            raise _validation(
                "Malformed input request: #/anthropic_version: "
                f"{body['anthropic_version']!r} is not a valid enum value, please reformat your "
                "input and try again."
            )
        try:
            return claude.parse_request(body)
        except claude.InvalidMessagesRequest as invalid:
            raise _validation(invalid.message) from None

    # -- Converse ----------------------------------------------------------------------------

    async def converse(self, request: Request) -> Response:
        return await self._converse(request, stream=False)

    async def converse_stream(self, request: Request) -> Response:
        return await self._converse(request, stream=True)

    async def _converse(self, request: Request, *, stream: bool) -> Response:
        try:
            call = await self._admit(request)
            body = converse.to_messages_request(call.body)
            parsed = claude.parse_request(body)
        except claude.InvalidMessagesRequest as invalid:
            return bedrock_error(400, "ValidationException", invalid.message)
        except Abort as abort:
            return abort.response
        reply = claude.answer(
            parsed, self.cache, reply_words=self.settings.reply_words, service_tier=False
        )
        latency = _elapsed_ms(call)
        if not stream:
            payload = orjson.dumps(converse.response(reply, latency))
            if call.cut_after is not None:
                return CutResponse(payload, 200, self._headers(), "application/json")
            return Response(payload, 200, self._headers(), "application/json")
        events = converse.stream_events(
            reply, latency, words_per_chunk=self.settings.words_per_chunk
        )
        messages = (_event(n, name, payload) for n, (name, payload) in enumerate(events))
        return self._eventstream(call, messages, self._headers())

    # -- helpers -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"x-amzn-RequestId": _request_id(), "x-fake-upstream": "bedrock"}

    def _eventstream(
        self, call: _Call, messages: Iterator[bytes], headers: Mapping[str, str]
    ) -> Response:
        body = stream_events(
            messages, call.receive, delay=self._chunk_delay, cut_after=call.cut_after, done=b""
        )
        return StreamingResponse(body, headers=dict(headers), media_type=EVENTSTREAM)


def _elapsed_ms(call: _Call) -> int:
    return int((time.monotonic() - call.started) * 1000)


def _padding(sequence: int) -> str:
    """Bedrock pads each event with a ``p`` field of varying length (so that lengths do not give
    the content away); here the length follows the event's position, for reproducible streams."""
    return _PADDING[: 1 + (sequence * 7) % len(_PADDING)]


def _chunk(sequence: int, data: Mapping[str, object]) -> bytes:
    """One InvokeModelWithResponseStream event: an Anthropic stream event, base64 in ``bytes``."""
    encoded = base64.b64encode(orjson.dumps(data)).decode()
    payload = {"bytes": encoded, "p": _padding(sequence)}
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps(payload))


def _event(sequence: int, name: str, payload: Mapping[str, object]) -> bytes:
    """One ConverseStream event: its JSON payload, padded, under its ``:event-type``."""
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps({**payload, "p": _padding(sequence)}))


def _metrics(reply: claude.Answer, latency_ms: int) -> dict[str, object]:
    return {
        "inputTokenCount": reply.input_tokens,
        "outputTokenCount": reply.output_tokens,
        "invocationLatency": latency_ms,
        "firstByteLatency": latency_ms,
        "cacheReadInputTokenCount": reply.usage["cache_read_input_tokens"],
        "cacheWriteInputTokenCount": reply.usage["cache_creation_input_tokens"],
    }


def _token_headers(reply: claude.Answer, latency_ms: int) -> dict[str, str]:
    return {
        "x-amzn-bedrock-invocation-latency": str(latency_ms),
        "x-amzn-bedrock-input-token-count": str(reply.input_tokens),
        "x-amzn-bedrock-output-token-count": str(reply.output_tokens),
        "x-amzn-bedrock-cache-read-input-token-count": str(reply.usage["cache_read_input_tokens"]),
        "x-amzn-bedrock-cache-write-input-token-count": str(
            reply.usage["cache_creation_input_tokens"]
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m passerelle.testing.fake_bedrock``: serve the fake until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m passerelle.testing.fake_bedrock",
        description="Serve a FAKE Bedrock runtime (SigV4-checked); replies are labelled 'fake-'.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9004)
    parser.add_argument("--latency-ms", type=float, default=0, help="before each answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="between stream events")
    parser.add_argument("--reply-words", type=int, default=None, help="pad replies to N words")
    parser.add_argument("--region", default="us-east-1", help="the region requests are signed for")
    parser.add_argument("--access-key-id", default=TEST_ACCESS_KEY_ID)
    parser.add_argument(
        "--secret-env",
        default=None,
        help="read the secret access key from this environment variable (default: the test key)",
    )
    args = parser.parse_args(argv)
    settings = FakeSettings(
        access_key_id=args.access_key_id,
        region=args.region,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        reply_words=args.reply_words,
    )
    if args.secret_env:
        settings = replace(settings, secret_access_key=os.environ.get(args.secret_env, ""))
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
