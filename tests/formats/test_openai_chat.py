from __future__ import annotations

from typing import Any

import pytest

from passerelle.core.canonical import (
    CacheControl,
    DocumentPart,
    ImagePart,
    Media,
    Message,
    ReasoningConfig,
    ReasoningPart,
    Request,
    Role,
    Sampling,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolResultPart,
    Vendor,
)
from passerelle.core.stream import MessageDelta, PartStart, PartStop, TextDelta, ToolArgsDelta
from passerelle.errors import InvalidRequest
from passerelle.formats import openai_chat
from passerelle.formats.openai_chat_stream import ChatStreamDecoder


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]} | extra


@pytest.mark.parametrize(
    ("bad", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"max_tokens": 1.5}, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
        ),
    ],
)
def test_invalid_requests_name_the_field(bad: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        openai_chat.decode_request(body(**bad))
    assert raised.value.param == param


def test_unsupported_fields_are_losses_and_defaults_are_not() -> None:
    decoded = openai_chat.decode_request(
        body(n=2, logprobs=True, logit_bias={"1": 2}, service_tier="flex", store=None)
    )
    assert set(decoded.loss_names) == {
        "openai.n",
        "openai.logprobs",
        "openai.logit_bias",
        "openai.service_tier",
    }
    assert openai_chat.decode_request(body(n=1, logprobs=False)).losses == ()


def test_system_messages_leading_and_later() -> None:
    request = openai_chat.decode_request(
        body(
            messages=[
                {"role": "system", "content": "a"},
                {"role": "developer", "content": [{"type": "text", "text": "b"}]},
                {"role": "user", "content": "q"},
                {"role": "system", "content": "late"},
            ]
        )
    ).value
    assert request.system == (TextPart("a"), TextPart("b"))
    assert request.messages[-1] == Message(Role.SYSTEM, (TextPart("late"),))
    out = openai_chat.encode_request(request).value
    assert out["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert out["messages"][-1] == {"role": "system", "content": "late"}


def test_legacy_functions() -> None:
    request = openai_chat.decode_request(
        body(
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "f", "arguments": "{}"},
                },
                {"role": "function", "name": "f", "content": "result"},
            ],
            functions=[{"name": "f", "parameters": {"type": "object"}}],
            function_call={"name": "f"},
        )
    ).value
    call = request.messages[1].parts[0]
    result = request.messages[2].parts[0]
    assert isinstance(call, ToolCallPart) and isinstance(result, ToolResultPart)
    assert result.tool_call_id == call.id
    assert request.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "f")
    assert [t.name for t in request.tools] == ["f"]


def test_encode_what_chat_cannot_say() -> None:
    messages = (
        Message(Role.USER, (TextPart("q", cache=CacheControl()),)),
        Message(
            Role.ASSISTANT,
            (ReasoningPart("t", "sig", origin=Vendor.ANTHROPIC), ToolCallPart("c1", "f", "{}")),
        ),
        Message(
            Role.USER,
            (
                ToolResultPart(
                    "c1",
                    (TextPart("r"), ImagePart(Media(media_type="image/png", data="AA=="))),
                    is_error=True,
                ),
                TextPart("next"),
            ),
        ),
    )
    encoded = openai_chat.encode_request(
        Request(model="gpt", messages=messages, sampling=Sampling(top_k=3))
    )
    assert set(encoded.loss_names) == {
        "anthropic.cache_control",
        "reasoning",
        "tool_result.image",
        "tool_result.is_error",
        "top_k",
    }
    out = encoded.value["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert out[2] == {"role": "tool", "tool_call_id": "c1", "content": "r"}
    assert out[3] == {"role": "user", "content": "next"}


def test_encode_options() -> None:
    request = Request(
        model="gpt",
        messages=(Message(Role.USER, (TextPart("hi"),)),),
        sampling=Sampling(max_tokens=10),
        stream=True,
        reasoning=ReasoningConfig(budget_tokens=20000),
    )
    out = openai_chat.encode_request(request).value
    assert out["max_completion_tokens"] == 10
    assert out["stream_options"] == {"include_usage": True}
    assert out["reasoning_effort"] == "high"
    compat = openai_chat.encode_request(request, max_tokens_field="max_tokens").value
    assert compat["max_tokens"] == 10 and "max_completion_tokens" not in compat
    off = openai_chat.encode_request(
        Request(model="gpt", messages=request.messages, reasoning=ReasoningConfig(effort="none"))
    ).value
    assert "reasoning_effort" not in off
    assert openai_chat.wants_stream_usage({"stream_options": {"include_usage": True}})
    assert not openai_chat.wants_stream_usage({})


def test_documents() -> None:
    request = openai_chat.decode_request(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "filename": "a.pdf",
                                "file_data": "data:application/pdf;base64,JVBE",
                            },
                        },
                        {"type": "file", "file": {"file_id": "file-123"}},
                        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
                    ],
                }
            ]
        )
    )
    parts = request.value.messages[0].parts
    assert parts == (
        DocumentPart(Media(media_type="application/pdf", data="JVBE"), title="a.pdf"),
        DocumentPart(Media(file_id="file-123")),
    )
    assert request.loss_names == ("openai.input_audio",)
    out = openai_chat.encode_request(request.value).value
    assert out["messages"][0]["content"][0]["file"] == {
        "file_data": "data:application/pdf;base64,JVBE",
        "filename": "a.pdf",
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_stream_decoder_closes_complete_calls_early() -> None:
    decoder = ChatStreamDecoder()
    decoder.feed(chunk({"role": "assistant"}))
    decoder.feed(
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}
        )
    )
    out = decoder.feed(
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}]})
    )
    assert out[0] == PartStop(0)
    assert isinstance(out[1], PartStart)
    out = decoder.feed(chunk({"content": "after"}))
    # the second call's arguments are not complete JSON yet, so it stays open
    assert out == [PartStart(2, TextPart("")), TextDelta(2, "after")]
    out = decoder.feed(chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}))
    assert out == [PartStop(2), ToolArgsDelta(1, "{}")]
    out = decoder.feed(chunk({}, "tool_calls"))
    assert out[0] == PartStop(1)
    assert isinstance(out[-1], MessageDelta)


def test_stream_decoder_survives_missing_index_and_other_choices() -> None:
    decoder = ChatStreamDecoder()
    decoder.feed(chunk({"role": "assistant"}))
    out = decoder.feed(
        chunk({"tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{}"}}]})
    )
    assert isinstance(out[0], PartStart)
    other = chunk({"content": "other choice"})
    other["choices"][0]["index"] = 1
    assert decoder.feed(other) == []
    assert "openai.n" in [loss.name for loss in decoder.losses]
    events = decoder.finish()
    assert events[-1].kind.value == "message_stop"
