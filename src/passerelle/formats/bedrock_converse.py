"""Amazon Bedrock Converse API ⇄ canonical.

Converse is Bedrock's one message format for every model it hosts. Requests are translated in
``bedrock_converse_requests`` (re-exported here), answers and errors below, streams in
``bedrock_converse_stream``. Where Converse differs from the other formats, and what this codec
does about it:

- the model id and streaming are in the URL (``/model/{modelId}/converse`` or
  ``/converse-stream``, see :func:`request_path`), not the body: ``decode_request`` takes them;
  an answer carries no id nor model either, so ``decode_response`` takes those from the caller
  (the URL's model and the ``x-amzn-RequestId`` header);
- content blocks are unions spelt by their one key (``{"text": …}``, ``{"toolUse": …}``), and
  bytes are base64 strings (``image.source.bytes``); a ``cachePoint`` block marks the end of a
  cached prefix, so it becomes the :class:`~passerelle.core.canonical.CacheControl` of the part
  before it, and goes back after that part;
- what Converse's common ``inferenceConfig`` lacks goes in ``additionalModelRequestFields``, whose
  keys belong to the model behind it: for Claude (:attr:`ModelFamily.ANTHROPIC`, the default)
  reasoning is Anthropic's ``thinking`` and ``top_k`` is ``top_k``; for other families both are
  dropped as losses. The family is the caller's (the model profile's) decision, not guessed from
  the model id;
- Bedrock relays Claude's reasoning state unchanged (``reasoningText.signature``,
  ``redactedContent``): it is Anthropic's, so parts carry ``origin=anthropic``, and an Anthropic
  client of a Claude served by Bedrock gets the bytes Claude produced;
- ``inputTokens`` counts only the uncached input, beside ``cacheReadInputTokens`` and
  ``cacheWriteInputTokens``; there is no count of reasoning tokens;
- errors are ``{"message": …}`` bodies; the exception's name (``ThrottlingException``) is in the
  ``x-amzn-ErrorType`` header (:data:`ERROR_TYPE_HEADER`), or names the event of a stream's
  exception frame. :func:`error_from_exception` reads it, :func:`exception_name` writes it.

Losses this codec records, beyond the shared ones (``seed``, ``presence_penalty``,
``frequency_penalty``, ``top_k``, ``temperature``, ``top_p``, ``reasoning``, ``user``,
``parallel_tool_calls``, ``system_position``, ``tool_arguments``, ``file_id``, ``document``,
``document.url``, ``response_format.json_object``, ``openai.image_detail`` and the origin-named
``anthropic.thinking`` / ``gemini.thought`` / ``openai.reasoning``):

- ``image``: an image type Converse does not take (only png, jpeg, gif and webp);
- ``image.url``: an image by URL (Converse takes bytes or an ``s3://`` location);
- ``tool_choice``: ``none`` while the history holds tool calls (Converse has no ``none``, and
  needs the tools defined to read that history);
- ``bedrock.<field>`` for a Converse feature with no canonical meaning (``guardrailConfig``,
  ``guardContent``, ``video``, ``systemTool``, ``additionalModelRequestFields.<key>``…).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from passerelle.core.canonical import (
    ErrorInfo,
    ErrorType,
    Part,
    ReasoningPart,
    Response,
    StopReason,
    TextPart,
    ToolCallPart,
    Usage,
    error_type_for_status,
    status_for_error_type,
)
from passerelle.core.opaque import outgoing_token
from passerelle.core.translation import LossLog, Translated
from passerelle.formats._common import (
    JSON,
    as_obj,
    count,
    json_text,
    parse_json_object,
    text_of,
)
from passerelle.formats.bedrock_converse_requests import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from passerelle.formats.bedrock_converse_requests import VENDOR as VENDOR
from passerelle.formats.bedrock_converse_requests import ModelFamily as ModelFamily
from passerelle.formats.bedrock_converse_requests import decode_request as decode_request
from passerelle.formats.bedrock_converse_requests import encode_request as encode_request
from passerelle.formats.bedrock_converse_requests import request_path as request_path
from passerelle.formats.bedrock_converse_requests import tool_use_id as tool_use_id

ERROR_TYPE_HEADER = "x-amzn-ErrorType"
"""The response header naming a Bedrock exception (``ThrottlingException:<namespace>``)."""

STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "tool_use": StopReason.TOOL_USE,
    "max_tokens": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "guardrail_intervened": StopReason.CONTENT_FILTER,
    "content_filtered": StopReason.CONTENT_FILTER,
    "malformed_model_output": StopReason.ERROR,
    "malformed_tool_use": StopReason.ERROR,
    "model_context_window_exceeded": StopReason.CONTEXT_WINDOW,
}
WIRE_STOP_REASONS = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
    StopReason.CONTENT_FILTER: "content_filtered",
    StopReason.REFUSAL: "content_filtered",
    StopReason.PAUSE_TURN: "end_turn",
    StopReason.CONTEXT_WINDOW: "model_context_window_exceeded",
    StopReason.ERROR: "end_turn",
}


# -- responses ----------------------------------------------------------------------------------


def decode_usage(value: Any) -> Usage:
    """Converse counts cache reads and writes beside ``inputTokens``; canonical inside."""
    usage = as_obj(value)
    cache_read = count(usage.get("cacheReadInputTokens"))
    cache_write = count(usage.get("cacheWriteInputTokens"))
    return Usage(
        input_tokens=count(usage.get("inputTokens")) + cache_read + cache_write,
        output_tokens=count(usage.get("outputTokens")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def encode_usage(usage: Usage) -> JSON:
    """Converse usage; the reasoning count stays inside ``outputTokens`` (Converse has none)."""
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    return {
        "inputTokens": max(uncached, 0),
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.total_tokens,
        "cacheReadInputTokens": usage.cached_input_tokens,
        "cacheWriteInputTokens": usage.cache_write_tokens,
    }


def decode_response(
    body: Mapping[str, Any], *, model: str = "", response_id: str = ""
) -> Translated[Response]:
    """A Converse answer as a canonical response. Converse names neither the model nor the
    answer: pass the model id of the URL and the ``x-amzn-RequestId`` header."""
    losses = LossLog()
    message = as_obj(as_obj(body.get("output")).get("message"))
    parts: list[Part] = []
    content = message.get("content")
    for i, block in enumerate(content if isinstance(content, list) else []):
        part = decode_output_block(as_obj(block), f"output.message.content[{i}]", losses)
        if part is not None:
            parts.append(part)
    extra = as_obj(body.get("additionalModelResponseFields"))
    sequence = extra.get("stop_sequence")
    response = Response(
        id=response_id,
        model=model,
        parts=tuple(parts),
        stop_reason=STOP_REASONS.get(text_of(body.get("stopReason")), StopReason.END_TURN),
        usage=decode_usage(body.get("usage")),
        stop_sequence=sequence if isinstance(sequence, str) else None,
    )
    return Translated(response, losses.losses())


def decode_output_block(block: Mapping[str, Any], where: str, losses: LossLog) -> Part | None:
    """One content block of an upstream answer (read leniently: bad blocks are losses)."""
    if "text" in block:
        return TextPart(text_of(block["text"]))
    if "toolUse" in block:
        use = as_obj(block["toolUse"])
        arguments = use.get("input")
        return ToolCallPart(
            id=text_of(use.get("toolUseId")),
            name=text_of(use.get("name")),
            arguments=json_text(arguments if arguments is not None else {}),
        )
    if "reasoningContent" in block:
        reasoning = as_obj(block["reasoningContent"])
        if "redactedContent" in reasoning:
            return ReasoningPart(encrypted=text_of(reasoning["redactedContent"]), origin=VENDOR)
        text = as_obj(reasoning.get("reasoningText"))
        signature = text.get("signature")
        return ReasoningPart(
            text=text_of(text.get("text")),
            signature=signature if isinstance(signature, str) and signature else None,
            origin=VENDOR,
        )
    kind = next(iter(block), "block")
    losses.add(f"bedrock.{kind}", where)
    return None


def encode_response(response: Response, *, latency_ms: int = 0) -> Translated[JSON]:
    """A canonical response as a Converse answer for a client."""
    losses = LossLog()
    content: list[JSON] = []
    for i, part in enumerate(response.parts):
        block = _encode_output_part(part, f"content[{i}]", losses)
        if block is not None:
            content.append(block)
    body: JSON = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": WIRE_STOP_REASONS[response.stop_reason],
        "usage": encode_usage(response.usage),
        "metrics": {"latencyMs": latency_ms},
    }
    return Translated(body, losses.losses())


def _encode_output_part(part: Part, where: str, losses: LossLog) -> JSON | None:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ToolCallPart):
        arguments = parse_json_object(part.arguments)
        if arguments is None:
            losses.add("tool_arguments", where)
            arguments = {}
        return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": arguments}}
    if isinstance(part, ReasoningPart):
        return {"reasoningContent": output_reasoning(part)}
    losses.add(part.kind.value, where)
    return None


def output_reasoning(part: ReasoningPart) -> JSON:
    """A ``reasoningContent`` for a client: Claude's own state as it was, anyone else's sealed
    into the signature so that it comes back intact."""
    if part.origin is VENDOR and part.signature is None and part.encrypted is not None:
        return {"redactedContent": part.encrypted}
    text: JSON = {"text": part.text}
    token = outgoing_token(part, VENDOR)
    if token is not None:
        text["signature"] = token
    return {"reasoningText": text}


# -- errors -------------------------------------------------------------------------------------

# Bedrock's exceptions: the HTTP status each comes with, and what it means canonically.
EXCEPTIONS: dict[str, tuple[int, ErrorType]] = {
    "ValidationException": (400, ErrorType.INVALID_REQUEST),
    "ServiceQuotaExceededException": (400, ErrorType.RATE_LIMIT),
    "AccessDeniedException": (403, ErrorType.PERMISSION),
    "UnrecognizedClientException": (403, ErrorType.AUTHENTICATION),
    "InvalidSignatureException": (403, ErrorType.AUTHENTICATION),
    "IncompleteSignatureException": (403, ErrorType.AUTHENTICATION),
    "MissingAuthenticationTokenException": (403, ErrorType.AUTHENTICATION),
    "ExpiredTokenException": (403, ErrorType.AUTHENTICATION),
    "ResourceNotFoundException": (404, ErrorType.NOT_FOUND),
    "UnknownOperationException": (404, ErrorType.NOT_FOUND),
    "ModelTimeoutException": (408, ErrorType.TIMEOUT),
    "ModelErrorException": (424, ErrorType.SERVER),
    "ModelStreamErrorException": (424, ErrorType.SERVER),
    "ModelNotReadyException": (429, ErrorType.OVERLOADED),
    "ThrottlingException": (429, ErrorType.RATE_LIMIT),
    "InternalServerException": (500, ErrorType.SERVER),
    "ServiceUnavailableException": (503, ErrorType.OVERLOADED),
}
_EXCEPTION_NAMES = {
    ErrorType.INVALID_REQUEST: "ValidationException",
    ErrorType.REQUEST_TOO_LARGE: "ValidationException",
    ErrorType.AUTHENTICATION: "UnrecognizedClientException",
    ErrorType.PERMISSION: "AccessDeniedException",
    ErrorType.NOT_FOUND: "ResourceNotFoundException",
    ErrorType.RATE_LIMIT: "ThrottlingException",
    ErrorType.OVERLOADED: "ServiceUnavailableException",
    ErrorType.TIMEOUT: "ModelTimeoutException",
    ErrorType.SERVER: "InternalServerException",
}
_DEFAULT_MESSAGE = "The upstream reported an error."


def normalize_exception_name(name: str) -> str:
    """``ThrottlingException`` from ``ThrottlingException:http://…`` (the header),
    ``com.amazon…#ThrottlingException`` (an ``__type`` field) or ``throttlingException`` (the
    event type of a stream's exception frame)."""
    name = name.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name[:1].upper() + name[1:]


def error_from_exception(name: str, message: str = "", status: int | None = None) -> ErrorInfo:
    """A canonical error from a Bedrock exception name, in any of its spellings (see
    :func:`normalize_exception_name`). ``status`` is the HTTP status when there was one."""
    code = normalize_exception_name(name)
    known = EXCEPTIONS.get(code)
    if known is not None:
        error_type = known[1]
        status = status or known[0]
    else:
        error_type = error_type_for_status(status) if status else ErrorType.SERVER
    return ErrorInfo(
        status or status_for_error_type(error_type),
        error_type,
        message or _DEFAULT_MESSAGE,
        code=code or None,
    )


def decode_error(status: int | None, body: Any, *, exception: str | None = None) -> ErrorInfo:
    """A Bedrock error as a canonical error. ``exception`` is the ``x-amzn-ErrorType`` header;
    without it the body's ``__type`` names the exception, else the status decides."""
    if isinstance(body, bytes | str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            body = None
    fields = as_obj(body)
    message = text_of(fields.get("message")) or text_of(fields.get("Message"))
    name = exception or text_of(fields.get("__type"))
    if name:
        return error_from_exception(name, message, status)
    error_type = error_type_for_status(status or 500)
    return ErrorInfo(
        status or status_for_error_type(error_type), error_type, message or _DEFAULT_MESSAGE
    )


def exception_name(error: ErrorInfo) -> str:
    """The Bedrock exception for a canonical error, for the :data:`ERROR_TYPE_HEADER` header.
    (A stream ends with one of the five exceptions ConverseStream allows instead: see
    ``bedrock_converse_stream.exception_event``.)"""
    if error.code is not None and normalize_exception_name(error.code) in EXCEPTIONS:
        return normalize_exception_name(error.code)
    return _EXCEPTION_NAMES[error.type]


def encode_error(error: ErrorInfo) -> JSON:
    """The Bedrock error body for a client; send it with ``error.status`` and the header
    ``x-amzn-ErrorType: <exception_name(error)>``."""
    return {"message": error.message}
