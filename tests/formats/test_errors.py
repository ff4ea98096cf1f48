"""Upstream errors in each format, translated into each client's own error shape."""

from __future__ import annotations

from typing import Any

import openai.types.shared
import pytest
from anthropic.types import ErrorResponse

from passerelle.core.canonical import ErrorInfo, ErrorType, TextPart
from passerelle.core.stream import MessageStart, PartStart, StreamError, TextDelta
from tests.formats.registry import FORMATS, NAMES, decode_stream, encode_stream

UPSTREAM_ERRORS: dict[str, list[tuple[int, dict[str, Any], ErrorType]]] = {
    "openai_chat": [
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached for gpt-4.1 in organization org-x.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            ErrorType.RATE_LIMIT,
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
            ErrorType.INVALID_REQUEST,
        ),
    ],
    "anthropic": [
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ErrorType.OVERLOADED,
        ),
        (
            401,
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            },
            ErrorType.AUTHENTICATION,
        ),
    ],
    "gemini": [
        (
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Resource has been exhausted (e.g. check quota).",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
            ErrorType.RATE_LIMIT,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Function call is missing a thought_signature.",
                    "status": "INVALID_ARGUMENT",
                }
            },
            ErrorType.INVALID_REQUEST,
        ),
    ],
}
UPSTREAM_ERRORS["openai_responses"] = UPSTREAM_ERRORS["openai_chat"]
CASES = [(name, *case) for name, cases in UPSTREAM_ERRORS.items() for case in cases]


def check_client_body(name: str, body: dict[str, Any], error: ErrorInfo) -> None:
    if name in ("openai_chat", "openai_responses"):
        parsed = openai.types.shared.ErrorObject.model_validate(body["error"])
        assert parsed.message == error.message
    elif name == "anthropic":
        parsed_anthropic = ErrorResponse.model_validate(body)
        assert parsed_anthropic.error.message == error.message
    else:
        assert body["error"]["code"] == error.status
        assert body["error"]["message"] == error.message
        assert body["error"]["status"].isupper()


@pytest.mark.parametrize("target", NAMES)
@pytest.mark.parametrize(("source", "status", "body", "error_type"), CASES)
def test_upstream_error_reaches_client_in_its_shape(
    source: str, status: int, body: dict[str, Any], error_type: ErrorType, target: str
) -> None:
    error = FORMATS[source].decode_error(status, body)
    assert error.type is error_type
    assert error.status == status
    assert error.message == body["error"]["message"]
    client_body = FORMATS[target].encode_error(error)
    check_client_body(target, client_body, error)
    assert FORMATS[target].decode_error(error.status, client_body).type is error_type


@pytest.mark.parametrize("name", NAMES)
def test_unreadable_error_body_still_gives_an_error(name: str) -> None:
    error = FORMATS[name].decode_error(502, b"<html>Bad gateway</html>")
    assert error.status == 502 and error.type is ErrorType.SERVER
    assert error.message


def test_anthropic_stream_error_event_translates() -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    canonical = decode_stream(FORMATS["anthropic"], events)
    errors = [e for e in canonical if isinstance(e, StreamError)]
    assert len(errors) == 1 and errors[0].error.type is ErrorType.OVERLOADED
    chat = encode_stream(FORMATS["openai_chat"], canonical)
    last = chat[-1].data
    assert isinstance(last, dict) and last["error"]["message"] == "Overloaded"
    assert all(event.data != "[DONE]" for event in chat)
    responses = encode_stream(FORMATS["openai_responses"], canonical)
    assert isinstance(responses[-1].data, dict) and responses[-1].data["type"] == "error"
    FORMATS["openai_responses"].validate_stream(responses)
    gemini_out = encode_stream(FORMATS["gemini"], canonical)
    assert (
        isinstance(gemini_out[-1].data, dict)
        and gemini_out[-1].data["error"]["status"] == "UNAVAILABLE"
    )


@pytest.mark.parametrize("target", NAMES)
def test_stream_error_after_text(target: str) -> None:
    error = ErrorInfo(503, ErrorType.OVERLOADED, "Upstream overloaded")
    events = [
        MessageStart("m1", "model"),
        PartStart(0, TextPart("")),
        TextDelta(0, "partial"),
        StreamError(error),
    ]
    encoder = FORMATS[target].stream_encoder()
    out = [w for e in events for w in encoder.feed(e)]
    assert encoder.finish() == []
    data = out[-1].data
    assert isinstance(data, dict)
    if target == "anthropic":
        assert out[-1].event == "error"
        ErrorResponse.model_validate(data)
    elif target == "openai_responses":
        assert data["type"] == "error" and data["message"] == "Upstream overloaded"
    else:
        assert data["error"]["message"] == "Upstream overloaded"
