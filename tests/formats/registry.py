"""One uniform handle on each wire format's codec, and the official SDKs' parsers to check it.

The SDK models are the strictest offline judges of "would a real client accept this": every body
and every stream event the codecs produce for a client goes through them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import anthropic.types
import openai.types.chat
import openai.types.responses
from anthropic.lib.streaming._messages import accumulate_event
from google.genai import types as genai_types
from openai import omit
from openai.lib.streaming.chat import ChatCompletionStreamState
from pydantic import TypeAdapter

from passerelle.core.canonical import ErrorInfo, Request, Response
from passerelle.core.stream import StreamEvent
from passerelle.core.translation import Loss, Translated
from passerelle.formats import anthropic as anthropic_codec
from passerelle.formats import (
    anthropic_stream,
    gemini,
    gemini_stream,
    openai_chat,
    openai_chat_stream,
    openai_responses,
    openai_responses_stream,
)
from passerelle.formats.sse import SSEDecoder
from passerelle.formats.wire import WireEvent, sse_json

GOLDEN = Path(__file__).parent / "golden"
GEMINI_MODEL = "gemini-2.5-pro"


class StreamDecoder(Protocol):
    @property
    def losses(self) -> tuple[Loss, ...]: ...
    def feed(self, event: Any) -> list[StreamEvent]: ...
    def finish(self) -> list[StreamEvent]: ...


class StreamEncoder(Protocol):
    @property
    def losses(self) -> tuple[Loss, ...]: ...
    def feed(self, event: StreamEvent) -> list[WireEvent]: ...
    def finish(self) -> list[WireEvent]: ...


@dataclass(frozen=True)
class Format:
    name: str
    decode_request: Callable[[dict[str, Any]], Translated[Request]]
    encode_request: Callable[[Request], Translated[dict[str, Any]]]
    decode_response: Callable[[dict[str, Any]], Translated[Response]]
    encode_response: Callable[[Response], Translated[dict[str, Any]]]
    decode_error: Callable[[int | None, Any], ErrorInfo]
    encode_error: Callable[[ErrorInfo], dict[str, Any]]
    stream_decoder: Callable[[], StreamDecoder]
    stream_encoder: Callable[[], StreamEncoder]
    validate_request: Callable[[dict[str, Any]], None]
    validate_response: Callable[[dict[str, Any]], None]
    validate_stream: Callable[[list[WireEvent]], None]
    """Validates every event and replays the stream through the SDK's own accumulator."""


# -- SDK validators --------------------------------------------------------------------------------


@cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    from anthropic.types import message_create_params
    from openai.types.chat import completion_create_params
    from openai.types.responses import response_create_params

    adapters: dict[str, Any] = {
        "chat_request": completion_create_params.CompletionCreateParamsNonStreaming,
        "responses_request": response_create_params.ResponseCreateParamsNonStreaming,
        "anthropic_request": message_create_params.MessageCreateParamsNonStreaming,
        "responses_event": openai.types.responses.ResponseStreamEvent,
        "anthropic_event": anthropic.types.RawMessageStreamEvent,
    }
    return TypeAdapter(adapters[kind])


def _without_stream(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


def _validate_chat_request(body: dict[str, Any]) -> None:
    _adapter("chat_request").validate_python(_without_stream(body))


def _validate_responses_request(body: dict[str, Any]) -> None:
    _adapter("responses_request").validate_python(_without_stream(body))


def _validate_anthropic_request(body: dict[str, Any]) -> None:
    _adapter("anthropic_request").validate_python(_without_stream(body))


def _validate_gemini_request(body: dict[str, Any]) -> None:
    allowed = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    assert set(body) <= allowed, set(body) - allowed
    for content in body["contents"]:
        genai_types.Content.model_validate(content)
    if "systemInstruction" in body:
        genai_types.Content.model_validate(body["systemInstruction"])
    for tool in body.get("tools", []):
        genai_types.Tool.model_validate(tool)
    if "toolConfig" in body:
        genai_types.ToolConfig.model_validate(body["toolConfig"])
    if "generationConfig" in body:
        genai_types.GenerationConfig.model_validate(body["generationConfig"])


def _validate_chat_stream(events: list[WireEvent]) -> None:
    assert events[-1].data == "[DONE]", "a chat stream ends with data: [DONE]"
    state = ChatCompletionStreamState()
    for event in events[:-1]:
        assert isinstance(event.data, dict)
        assert event.event is None
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(event.data))
    state.get_final_completion()


def _validate_responses_stream(events: list[WireEvent]) -> None:
    from openai.lib.streaming.responses._responses import ResponseStreamState

    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=[], text_format=omit)
    for event in events:
        assert isinstance(event.data, dict)
        assert event.event == event.data["type"]
        parsed = _adapter("responses_event").validate_python(event.data)
        state.handle_event(parsed)


def _validate_anthropic_stream(events: list[WireEvent]) -> None:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        assert isinstance(event.data, dict)
        assert event.event == event.data["type"]
        parsed = _adapter("anthropic_event").validate_python(event.data)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    anthropic.types.Message.model_validate(snapshot.model_dump())


def _validate_gemini_stream(events: list[WireEvent]) -> None:
    for event in events:
        assert isinstance(event.data, dict)
        assert event.event is None
        genai_types.GenerateContentResponse.model_validate(event.data)


def _validate_gemini_response(body: dict[str, Any]) -> None:
    genai_types.GenerateContentResponse.model_validate(body)


FORMATS: dict[str, Format] = {
    "openai_chat": Format(
        "openai_chat",
        openai_chat.decode_request,
        openai_chat.encode_request,
        openai_chat.decode_response,
        openai_chat.encode_response,
        openai_chat.decode_error,
        openai_chat.encode_error,
        openai_chat_stream.ChatStreamDecoder,
        openai_chat_stream.ChatStreamEncoder,
        _validate_chat_request,
        openai.types.chat.ChatCompletion.model_validate,
        _validate_chat_stream,
    ),
    "openai_responses": Format(
        "openai_responses",
        openai_responses.decode_request,
        openai_responses.encode_request,
        openai_responses.decode_response,
        openai_responses.encode_response,
        openai_responses.decode_error,
        openai_responses.encode_error,
        openai_responses_stream.ResponsesStreamDecoder,
        openai_responses_stream.ResponsesStreamEncoder,
        _validate_responses_request,
        openai.types.responses.Response.model_validate,
        _validate_responses_stream,
    ),
    "anthropic": Format(
        "anthropic",
        anthropic_codec.decode_request,
        anthropic_codec.encode_request,
        anthropic_codec.decode_response,
        anthropic_codec.encode_response,
        anthropic_codec.decode_error,
        anthropic_codec.encode_error,
        anthropic_stream.AnthropicStreamDecoder,
        anthropic_stream.AnthropicStreamEncoder,
        _validate_anthropic_request,
        anthropic.types.Message.model_validate,
        _validate_anthropic_stream,
    ),
    "gemini": Format(
        "gemini",
        lambda body: gemini.decode_request(body, model=GEMINI_MODEL),
        gemini.encode_request,
        gemini.decode_response,
        gemini.encode_response,
        gemini.decode_error,
        gemini.encode_error,
        gemini_stream.GeminiStreamDecoder,
        gemini_stream.GeminiStreamEncoder,
        _validate_gemini_request,
        _validate_gemini_response,
        _validate_gemini_stream,
    ),
}
NAMES = list(FORMATS)


def golden_events(name: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a golden SSE file, in order, as an upstream would send them."""
    decoder = SSEDecoder()
    raw = (GOLDEN / name).read_bytes()
    for event in decoder.feed(raw):
        data = sse_json(event)
        if data is not None:
            yield data


def golden_format(name: str) -> str:
    """The wire format a golden file is written in, from its name."""
    for format_name in sorted(FORMATS, key=len, reverse=True):
        if name.startswith(format_name):
            return format_name
    raise ValueError(name)


def decode_stream(fmt: Format, events: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = fmt.stream_decoder()
    out: list[StreamEvent] = []
    for event in events:
        out.extend(decoder.feed(event))
    out.extend(decoder.finish())
    return out


def encode_stream(fmt: Format, events: list[StreamEvent]) -> list[WireEvent]:
    encoder = fmt.stream_encoder()
    out: list[WireEvent] = []
    for event in events:
        out.extend(encoder.feed(event))
    out.extend(encoder.finish())
    return out


def wire_objects(events: list[WireEvent]) -> list[dict[str, Any]]:
    """What a client would parse out of the encoded stream (re-read from its bytes)."""
    decoder = SSEDecoder()
    raw = b"".join(event.encode() for event in events)
    return [data for event in decoder.feed(raw) if (data := sse_json(event)) is not None]


def history_request(name: str, shown: dict[str, Any]) -> dict[str, Any]:
    """The next request a client of format ``name`` sends after receiving ``shown``: the
    answer replayed as history, each tool call answered, in that format's own shape."""
    if name == "anthropic":
        results = [
            {"type": "tool_result", "tool_use_id": block["id"], "content": "ok"}
            for block in shown["content"]
            if block["type"] == "tool_use"
        ]
        return {
            "model": "m",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": shown["content"]},
                {"role": "user", "content": results or "go on"},
            ],
        }
    if name == "openai_responses":
        outputs = [
            {"type": "function_call_output", "call_id": item["call_id"], "output": "ok"}
            for item in shown["output"]
            if item["type"] == "function_call"
        ]
        return {
            "model": "m",
            "input": [{"role": "user", "content": "hi"}, *shown["output"], *outputs],
        }
    if name == "gemini":
        content = shown["candidates"][0]["content"]
        responses = [
            {"functionResponse": {"name": p["functionCall"]["name"], "response": {"output": "ok"}}}
            for p in content["parts"]
            if "functionCall" in p
        ]
        return {
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                content,
                {"role": "user", "parts": responses or [{"text": "go on"}]},
            ]
        }
    message = shown["choices"][0]["message"]
    tools = [
        {"role": "tool", "tool_call_id": call["id"], "content": "ok"}
        for call in message.get("tool_calls") or []
    ]
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}, message, *tools]}
