"""What every fake upstream shares, whatever provider it imitates.

A fake is only worth having if tests can predict and steer it, so everything here is
deterministic: replies derive from the prompt, vectors from a hash, and failures happen only when
a test queues them through the control API (``/_fake/...``, never part of a provider's surface):

    POST   /_fake/faults     {"faults": [fault, ...], "match_model": optional}   append, FIFO
    GET    /_fake/faults     the faults still waiting
    DELETE /_fake/faults     drop them all
    GET    /_fake/requests   the last inference requests received (?limit=N), secrets redacted
    DELETE /_fake/requests   forget them

A fault is one of::

    {"status": 503}                                 an error status with the provider's error body
    {"status": 429, "retry_after": 1}               ... plus a ``retry-after`` header
    {"status": 500, "body": {...}}                  ... with this exact JSON body instead
    {"kind": "timeout", "seconds": 5}               answer normally, but only after that long
    {"kind": "disconnect"}                          close the connection without any response
    {"kind": "stream_cut", "after_chunks": 2}       send two stream events, then close the
                                                    connection (a non-streamed answer is cut
                                                    halfway through its body instead)

Each fault may carry its own ``match_model``; a request consumes the oldest fault whose
``match_model`` is absent or equal to the requested model.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import unquote_plus

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

FaultKind = Literal["status", "timeout", "disconnect", "stream_cut"]

REDACTED = "***"
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "cookie",
    }
)
# Query parameters that carry a credential (Gemini accepts ``?key=``; presigned AWS URLs).
SECRET_QUERY_PARAMS = frozenset(
    {"key", "access_token", "x-amz-security-token", "x-amz-signature", "x-amz-credential"}
)
SSE_DONE = b"data: [DONE]\n\n"
FILLER_WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua",
)  # fmt: skip

_FAULT_FIELDS: Mapping[str, frozenset[str]] = {
    "status": frozenset({"kind", "status", "body", "retry_after", "match_model"}),
    "timeout": frozenset({"kind", "seconds", "match_model"}),
    "disconnect": frozenset({"kind", "match_model"}),
    "stream_cut": frozenset({"kind", "after_chunks", "match_model"}),
}


# -- faults ----------------------------------------------------------------------------------


class FaultSpecError(ValueError):
    """A fault description the control API refuses (the test that sent it has a typo)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure, consumed by exactly one request."""

    kind: FaultKind
    status: int = 0
    body: object = None  # for "status": the exact JSON body; None means the provider's default
    retry_after: float | None = None
    seconds: float = 0.0
    after_chunks: int = 0
    match_model: str | None = None

    @classmethod
    def parse(cls, raw: object, match_model: str | None = None) -> Fault:
        """Strictly: an unknown key or a wrong type is an error, not a silently ignored fault."""
        if not isinstance(raw, dict):
            raise FaultSpecError("each fault must be a JSON object")
        kind = raw.get("kind", "status")
        if kind not in _FAULT_FIELDS:
            raise FaultSpecError(
                f"unknown fault kind {kind!r}; expected one of {list(_FAULT_FIELDS)}"
            )
        unknown = set(raw) - _FAULT_FIELDS[kind]
        if unknown:
            raise FaultSpecError(f"unknown keys for a {kind!r} fault: {sorted(unknown)}")
        model = raw.get("match_model", match_model)
        if model is not None and not isinstance(model, str):
            raise FaultSpecError("match_model must be a string")
        if kind == "status":
            status = raw.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
                raise FaultSpecError("a status fault needs an integer 'status' from 400 to 599")
            retry_after = _seconds(raw, "retry_after", None)
            return cls(
                "status",
                status=status,
                body=raw.get("body"),
                retry_after=retry_after,
                match_model=model,
            )
        if kind == "timeout":
            return cls("timeout", seconds=_seconds(raw, "seconds", 30.0) or 0.0, match_model=model)
        if kind == "stream_cut":
            after = raw.get("after_chunks", 1)
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                raise FaultSpecError("after_chunks must be a non-negative integer")
            return cls("stream_cut", after_chunks=after, match_model=model)
        return cls("disconnect", match_model=model)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _seconds(raw: Mapping[str, object], key: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise FaultSpecError(f"{key} must be a non-negative number of seconds")
    return float(value)


class FaultQueue:
    """FIFO of faults; popping is O(1) when empty, which is what benchmarks see."""

    __slots__ = ("_faults",)

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()

    def __len__(self) -> int:
        return len(self._faults)

    def extend(self, faults: Iterable[Fault]) -> None:
        self._faults.extend(faults)

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def pending(self) -> list[Fault]:
        return list(self._faults)

    def pop(self, model: str | None) -> Fault | None:
        """The oldest fault meant for this model (or for any model), removed from the queue."""
        if not self._faults:
            return None
        for index, fault in enumerate(self._faults):
            if fault.match_model is None or fault.match_model == model:
                del self._faults[index]
                return fault
        return None


# -- request log -----------------------------------------------------------------------------


class RequestLog:
    """The last requests received, so a test can assert exactly what the gateway sent upstream.

    Credentials are redacted on the way in: the log never holds a secret, even briefly.
    """

    __slots__ = ("_entries",)

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, object]] = deque(maxlen=size)

    def record(self, request: Request, body: object) -> None:
        headers = {
            name: REDACTED if name in SECRET_HEADERS else value
            for name, value in request.headers.items()
        }
        self._entries.append(
            {
                "method": request.method,
                "path": request.scope["path"],
                "query": redact_query(request.scope["query_string"].decode("latin-1")),
                "headers": headers,
                "body": body,
                "received_at": time.time(),
            }
        )

    def last(self, limit: int | None = None) -> list[dict[str, object]]:
        entries = list(self._entries)
        return entries if limit is None else entries[max(0, len(entries) - limit) :]

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count


def redact_query(query: str) -> str:
    """The query string with the values of credential parameters replaced by ``***``."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        if equals and unquote_plus(name).lower() in SECRET_QUERY_PARAMS:
            item = f"{name}={REDACTED}"
        parts.append(item)
    return "&".join(parts)


class FakeControl:
    """The ``/_fake/`` control API over one fault queue and one request log."""

    def __init__(self, log_size: int) -> None:
        self.faults = FaultQueue()
        self.log = RequestLog(log_size)

    def routes(self) -> list[Route]:
        return [
            Route("/_fake/faults", self.add_faults, methods=["POST"]),
            Route("/_fake/faults", self.list_faults, methods=["GET"]),
            Route("/_fake/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_fake/requests", self.list_requests, methods=["GET"]),
            Route("/_fake/requests", self.clear_requests, methods=["DELETE"]),
        ]

    async def add_faults(self, request: Request) -> Response:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _control_error("the body must be JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("faults"), list):
            return _control_error('expected {"faults": [...], "match_model": optional}')
        if set(payload) - {"faults", "match_model"}:
            return _control_error(
                f"unknown keys: {sorted(set(payload) - {'faults', 'match_model'})}"
            )
        match_model = payload.get("match_model")
        try:
            faults = [Fault.parse(item, match_model) for item in payload["faults"]]
        except FaultSpecError as error:
            return _control_error(str(error))
        self.faults.extend(faults)
        return json_response({"queued": len(faults), "pending": len(self.faults)})

    async def list_faults(self, request: Request) -> Response:
        return json_response({"faults": [fault.to_json() for fault in self.faults.pending()]})

    async def clear_faults(self, request: Request) -> Response:
        return json_response({"cleared": self.faults.clear()})

    async def list_requests(self, request: Request) -> Response:
        limit = request.query_params.get("limit")
        if limit is not None and not limit.isdigit():
            return _control_error("limit must be a non-negative integer")
        return json_response({"requests": self.log.last(None if limit is None else int(limit))})

    async def clear_requests(self, request: Request) -> Response:
        return json_response({"cleared": self.log.clear()})


def _control_error(message: str) -> Response:
    return json_response({"error": message}, status=400)


# -- HTTP helpers ----------------------------------------------------------------------------


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status, headers, "application/json")


def sse_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ConnectionDropUnsupported(RuntimeError):
    """The ASGI server gives no way to close a connection without answering (only uvicorn does)."""


async def drop_connection(receive: Receive, grace: float = 5.0) -> None:
    """Close the client's connection, whatever has been sent on it so far, as a crashing upstream.

    ASGI has no message for this: an app that raises before answering gets a 500 from the server.
    uvicorn's ``receive`` is a method of the request cycle that owns the transport, so the
    transport is closed directly (pending bytes are flushed first, so a cut stream delivers what
    it sent). Returning before uvicorn has noticed would let it write the end of the response on
    the closing transport, hence the wait for the ``http.disconnect`` that follows.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):
        raise ConnectionDropUnsupported("dropping a connection needs the uvicorn server")
    close()
    try:
        async with asyncio.timeout(grace):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return


class CutResponse(Response):
    """Sends the headers (with the full content-length) and half the body, then hangs up."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        await drop_connection(receive)


def retry_after_value(seconds: float) -> str:
    """A ``retry-after`` header value: whole seconds as an integer, else as a decimal."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def request_id(prefix: str) -> str:
    """A random request id with the provider's prefix, marked fake."""
    return f"{prefix}fake{os.urandom(12).hex()}"


async def pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class Abort(Exception):
    """Ends a request early with a ready response: an error, or an injected fault."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def play_fault(
    fault: Fault | None, receive: Receive, error_response: Callable[[Fault], Response]
) -> int | None:
    """Act out a fault before the answer is made.

    A status fault raises ``Abort`` with the provider's error (``error_response``), a disconnect
    hangs up and raises ``Abort`` with a response nobody will receive, a timeout waits and lets
    the request go on. Returns the ``after_chunks`` of a stream cut, which the answer must honour.
    """
    if fault is None:
        return None
    if fault.kind == "status":
        raise Abort(error_response(fault))
    if fault.kind == "disconnect":
        await drop_connection(receive)
        raise Abort(Response(status_code=500))
    if fault.kind == "timeout":
        await pause(fault.seconds)
        return None
    return fault.after_chunks


async def stream_events(
    events: Iterable[bytes], receive: Receive, *, delay: float, cut_after: int | None, done: bytes
) -> AsyncIterator[bytes]:
    """Events as they are made, ``delay`` seconds apart, then ``done``; or, with ``cut_after``,
    only that many events and then a hang-up, as when an upstream dies mid-stream."""
    for sent, event in enumerate(events):
        if cut_after is not None and sent >= cut_after:
            break
        if sent and delay:
            await pause(delay)
        yield event
    if cut_after is not None:
        await drop_connection(receive)
        return
    if done:
        yield done


# -- deterministic content -------------------------------------------------------------------


def text_of(content: object) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts (the
    ``{"type": "text", "text": ...}`` of OpenAI and Anthropic, the ``{"text": ...}`` of Gemini)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_tokens(chars: int) -> int:
    """A stable stand-in for a tokenizer: about four characters per token, rounded up."""
    return -(-chars // 4)


def pad_with_filler(text: str, words: int | None) -> str:
    """``text`` lengthened to ``words`` words with filler, for benchmarks that need long replies."""
    if not words:
        return text
    missing = words - len(text.split())
    if missing <= 0:
        return text
    cycles = -(-missing // len(FILLER_WORDS))
    return text + " " + " ".join((FILLER_WORDS * cycles)[:missing])


def truncate_to_tokens(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """The text cut to fit ``max_tokens`` (by the same estimate), and whether it was cut."""
    if max_tokens is None or len(text) <= max_tokens * 4:
        return text, False
    return text[: max_tokens * 4], True


def split_words(text: str, words_per_piece: int) -> list[str]:
    """Pieces of a few words each, whose concatenation is exactly ``text``."""
    words = text.split(" ")
    step = max(1, words_per_piece)
    pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    return [piece + " " for piece in pieces[:-1]] + pieces[-1:]


def split_fixed(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def split_text(text: str, words_per_piece: int, chars_per_piece: int = 0) -> list[str]:
    """Pieces of a streamed text: ``chars_per_piece`` characters each when set (so that a word,
    or a placeholder such as ``[EMAIL_1]``, is cut across events), else a few words each."""
    if chars_per_piece > 0:
        return split_fixed(text, chars_per_piece)
    return split_words(text, words_per_piece)


_STRING_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00",
    "email": "fake@example.com",
    "uri": "https://example.com/fake",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def placeholder(schema: object, root: object = None, depth: int = 0) -> object:
    """A value that satisfies a JSON schema's shape: required properties, right types, first enum.

    Used for tool-call arguments and structured outputs. It covers what function and response
    schemas use in practice (objects, arrays, scalars, enums, const, anyOf, local $ref), not
    every keyword of JSON Schema.
    """
    root = schema if root is None else root
    if depth > 32 or not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$ref"), str):
        return placeholder(_resolve_ref(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return placeholder(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = (
            [name for name in required if isinstance(name, str)]
            if isinstance(required, list)
            else []
        )
        return {name: placeholder(properties.get(name, {}), root, depth + 1) for name in names}
    if kind == "array":
        count = schema.get("minItems", 0)
        item = placeholder(schema.get("items", {}), root, depth + 1)
        return [item] * (count if isinstance(count, int) else 0)
    if kind == "integer":
        minimum = schema.get("minimum", 0)
        return int(minimum) if isinstance(minimum, int | float) else 0
    if kind == "number":
        minimum = schema.get("minimum", 0)
        return float(minimum) if isinstance(minimum, int | float) else 0.0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    value = _STRING_FORMATS.get(str(schema.get("format")), "fake")
    min_length = schema.get("minLength", 0)
    return value.ljust(min_length, "x") if isinstance(min_length, int) else value


def _resolve_ref(root: object, ref: str) -> object:
    """A local JSON pointer (``#/$defs/Name``); anything else resolves to an empty schema."""
    if not ref.startswith("#"):
        return {}
    node = root
    for token in ref[1:].split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node


def embedding_vector(data: bytes, dimensions: int) -> tuple[list[float], bytes]:
    """A unit vector derived from a hash of ``data``: as floats and as little-endian float32.

    The floats are exactly the float32 values, so the ``float`` and ``base64`` encodings of one
    input decode to the same numbers.
    """
    digest = bytearray()
    block = 0
    while len(digest) < dimensions * 2:
        salt = block.to_bytes(16, "little")
        digest += hashlib.blake2b(data, digest_size=64, salt=salt).digest()
        block += 1
    values = [n / 32767.5 - 1.0 for n in struct.unpack_from(f"<{dimensions}H", digest)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed)), packed
