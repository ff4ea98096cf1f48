"""The one canonical shape of a chat request and its answer, between every pair of wire formats.

Each wire format (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, Gemini) is
translated to and from these values and never directly into another format: with four formats,
that is four codecs instead of twelve translators, and a fix in one codec helps every pair.

The model is the union of what the formats mean, not of how they spell it:

- a conversation is a system prompt plus :class:`Message` values whose ``parts`` each carry a
  ``kind`` (text, image, document, tool_call, tool_result, reasoning);
- tool results live in *user* messages, as Anthropic and Gemini put them; the OpenAI codecs split
  them into their own ``tool`` messages or ``function_call_output`` items;
- token counts follow the gateway's accounting convention (see :class:`Usage`);
- opaque reasoning state (signatures, encrypted reasoning) remembers which vendor minted it, so
  that it is only ever sent back to that vendor.

Values are frozen: a pipeline step that rewrites text (DLP) builds a new value with
:func:`dataclasses.replace`, and the value it was given stays what the caller sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from passerelle.errors import GatewayError, WireFormat

Vendor = WireFormat
"""Who minted a piece of opaque state. OpenAI's two APIs share their reasoning items."""


class PartKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    DOCUMENT = "document"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    REASONING = "reasoning"


class Role(StrEnum):
    """``system`` only appears in ``messages`` for instructions given mid-conversation."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """An Anthropic prompt-cache breakpoint; the other formats cache implicitly and drop it."""

    ttl: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """An image's or document's bytes: inline (base64), by URL, or by a vendor file id.

    Exactly one of ``data``, ``url`` and ``file_id`` is set. ``data`` is always base64, even for a
    plain-text document, so that every codec handles one encoding.
    """

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None

    def __post_init__(self) -> None:
        given = sum(value is not None for value in (self.data, self.url, self.file_id))
        if given != 1:
            raise ValueError("Media needs exactly one of data, url and file_id")


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    cache: CacheControl | None = None
    kind: ClassVar[PartKind] = PartKind.TEXT


@dataclass(frozen=True, slots=True)
class ImagePart:
    media: Media
    detail: str | None = None
    """OpenAI's resolution hint (``low``, ``high``, ``auto``); the others have no such knob."""
    cache: CacheControl | None = None
    kind: ClassVar[PartKind] = PartKind.IMAGE


@dataclass(frozen=True, slots=True)
class DocumentPart:
    """A file given to the model whole: a PDF, or plain text."""

    media: Media
    title: str | None = None
    cache: CacheControl | None = None
    kind: ClassVar[PartKind] = PartKind.DOCUMENT


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """The model asking for a tool. ``arguments`` is JSON text, exactly as the model wrote it:
    parsing and re-serialising would change what audit and DLP see and what the client gets."""

    id: str
    name: str
    arguments: str = "{}"
    cache: CacheControl | None = None
    kind: ClassVar[PartKind] = PartKind.TOOL_CALL


ResultContent = TextPart | ImagePart | DocumentPart


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """What a tool returned. ``name`` is the called tool's name when the wire format said it
    (Gemini needs it; the codecs look it up from the matching call otherwise)."""

    tool_call_id: str
    content: tuple[ResultContent, ...] = ()
    is_error: bool = False
    name: str | None = None
    cache: CacheControl | None = None
    kind: ClassVar[PartKind] = PartKind.TOOL_RESULT


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """The model's visible reasoning, and the opaque state needed to continue it.

    ``signature`` (Anthropic ``signature``, Gemini ``thoughtSignature``) and ``encrypted``
    (Anthropic ``redacted_thinking`` data, OpenAI ``encrypted_content``) are only meaningful to
    the vendor named in ``origin``. A Gemini signature that belongs to the *next* part (a function
    call, or text) is carried by a reasoning part with empty ``text`` placed just before it.
    ``id`` is the OpenAI Responses reasoning item id.
    """

    text: str = ""
    signature: str | None = None
    encrypted: str | None = None
    origin: Vendor | None = None
    id: str | None = None
    kind: ClassVar[PartKind] = PartKind.REASONING

    @property
    def opaque(self) -> bool:
        """Whether the part carries state only its origin can read."""
        return self.signature is not None or self.encrypted is not None


Part = TextPart | ImagePart | DocumentPart | ToolCallPart | ToolResultPart | ReasoningPart


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]


class ToolChoiceMode(StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode
    name: str | None = None
    """The tool to call, with :attr:`ToolChoiceMode.TOOL` only."""


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    """A JSON Schema for the arguments object."""
    strict: bool | None = None
    cache: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


class ResponseFormatKind(StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: ResponseFormatKind
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class ReasoningConfig:
    """How much the model should think. Vendors take either an effort level or a token budget;
    codecs convert between the two with :func:`budget_for_effort` and :func:`effort_for_budget`.

    ``effort="none"`` (or a budget of 0) turns reasoning off. Both unset means "on, the model
    decides" (Anthropic adaptive thinking, Gemini dynamic budget). ``summary`` asks for the
    reasoning text to be returned (Responses ``summary``, Gemini ``includeThoughts``).
    """

    effort: str | None = None
    budget_tokens: int | None = None
    summary: bool | None = None

    @property
    def disabled(self) -> bool:
        return self.effort == "none" or self.budget_tokens == 0


# Token budgets per effort level, for vendors that only take a budget (Anthropic manual
# thinking, Gemini 2.5). The thresholds below invert it.
_EFFORT_BUDGETS = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}


def budget_for_effort(effort: str) -> int:
    """A thinking budget for an effort level; ``none`` is 0 and unknown levels are medium."""
    if effort == "none":
        return 0
    return _EFFORT_BUDGETS.get(effort, _EFFORT_BUDGETS["medium"])


def effort_for_budget(budget: int) -> str:
    """The effort level closest to a token budget, limited to the levels every OpenAI reasoning
    model accepts (``low``, ``medium``, ``high``)."""
    if budget <= 0:
        return "none"
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


@dataclass(frozen=True, slots=True)
class Request:
    """One chat request, whatever format it arrived in."""

    model: str
    messages: tuple[Message, ...]
    system: tuple[TextPart, ...] = ()
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    sampling: Sampling = Sampling()
    response_format: ResponseFormat | None = None
    reasoning: ReasoningConfig | None = None
    stream: bool = False
    user: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class StopReason(StrEnum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    PAUSE_TURN = "pause_turn"
    CONTEXT_WINDOW = "context_window_exceeded"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in the gateway's accounting convention (as ``providers.pricing.TokenUsage``).

    ``cached_input_tokens`` (read from a prompt cache) and ``cache_write_tokens`` are *inside*
    ``input_tokens``; ``reasoning_tokens`` is *inside* ``output_tokens``. OpenAI reports this way;
    the Anthropic and Gemini codecs add and subtract to convert.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Response:
    """A complete (non-streamed) answer."""

    id: str
    model: str
    parts: tuple[Part, ...]
    stop_reason: StopReason
    usage: Usage = Usage()
    stop_sequence: str | None = None
    created: int | None = None
    """Unix seconds, when the vendor said; encoders that need one use the current time."""

    def text(self) -> str:
        """The answer's text parts joined, for logs and tests."""
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))


class ErrorType(StrEnum):
    """What went wrong, in terms every format has a word for."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error reported by an upstream, or to be reported to a client."""

    status: int
    type: ErrorType
    message: str
    code: str | None = None
    param: str | None = None


_STATUS_TYPES = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.AUTHENTICATION,
    403: ErrorType.PERMISSION,
    404: ErrorType.NOT_FOUND,
    408: ErrorType.TIMEOUT,
    413: ErrorType.REQUEST_TOO_LARGE,
    422: ErrorType.INVALID_REQUEST,
    429: ErrorType.RATE_LIMIT,
    503: ErrorType.OVERLOADED,
    504: ErrorType.TIMEOUT,
    529: ErrorType.OVERLOADED,
}

_TYPE_STATUSES = {
    ErrorType.INVALID_REQUEST: 400,
    ErrorType.AUTHENTICATION: 401,
    ErrorType.PERMISSION: 403,
    ErrorType.NOT_FOUND: 404,
    ErrorType.REQUEST_TOO_LARGE: 413,
    ErrorType.RATE_LIMIT: 429,
    ErrorType.OVERLOADED: 503,
    ErrorType.TIMEOUT: 504,
    ErrorType.SERVER: 500,
}


def error_type_for_status(status: int) -> ErrorType:
    """The error type an HTTP status implies when the body does not say better."""
    if status in _STATUS_TYPES:
        return _STATUS_TYPES[status]
    return ErrorType.INVALID_REQUEST if 400 <= status < 500 else ErrorType.SERVER


def status_for_error_type(error_type: ErrorType) -> int:
    """The HTTP status for an error type when the source gave none (a stream error event)."""
    return _TYPE_STATUSES[error_type]


def error_info(error: GatewayError) -> ErrorInfo:
    """The gateway's own error (a DLP block, a budget refusal…) as a canonical error, so that a
    codec can render it anywhere, including as an error event in the middle of a stream."""
    return ErrorInfo(
        error.status, error_type_for_status(error.status), error.message, error.code, error.param
    )
