from __future__ import annotations

from typing import Any

import pytest

from passerelle.core.canonical import (
    CacheControl,
    DocumentPart,
    Media,
    Message,
    ReasoningConfig,
    ReasoningPart,
    Request,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    Sampling,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolResultPart,
    Vendor,
)
from passerelle.errors import InvalidRequest
from passerelle.formats import anthropic
from passerelle.formats._common import text_to_b64


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    } | extra


def user(*parts: Any) -> Message:
    return Message(Role.USER, parts)


@pytest.mark.parametrize(
    ("bad", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"temperature": "hot"}, "temperature"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ],
)
def test_invalid_requests_name_the_field(bad: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        anthropic.decode_request(body(**bad))
    assert raised.value.param == param
    assert param in raised.value.message


def test_unknown_and_server_features_are_losses() -> None:
    decoded = anthropic.decode_request(
        body(
            service_tier="auto",
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            metadata={"user_id": "u1", "team": "x"},
        )
    )
    assert set(decoded.loss_names) == {
        "anthropic.service_tier",
        "anthropic.tools.web_search_20250305",
        "anthropic.metadata.team",
    }
    assert decoded.value.user == "u1" and decoded.value.tools == ()


def test_top_level_cache_control_marks_the_last_block() -> None:
    request = anthropic.decode_request(body(cache_control={"type": "ephemeral", "ttl": "1h"})).value
    assert request.messages[-1].parts[-1] == TextPart("hi", cache=CacheControl("1h"))
    encoded = anthropic.encode_request(request).value
    assert encoded["messages"][-1]["content"][-1]["cache_control"] == {
        "type": "ephemeral",
        "ttl": "1h",
    }


def test_thinking_configurations() -> None:
    def reasoning(**extra: Any) -> ReasoningConfig | None:
        return anthropic.decode_request(body(**extra)).value.reasoning

    assert reasoning(thinking={"type": "enabled", "budget_tokens": 2048}) == ReasoningConfig(
        budget_tokens=2048
    )
    assert reasoning(thinking={"type": "disabled"}) == ReasoningConfig(effort="none")
    assert reasoning(thinking={"type": "adaptive"}, output_config={"effort": "high"}) == (
        ReasoningConfig(effort="high")
    )
    assert reasoning(thinking={"type": "adaptive", "display": "omitted"}) == ReasoningConfig(
        summary=False
    )


def request(**extra: Any) -> Request:
    return Request(model="claude", messages=(user(TextPart("hi")),), **extra)


def test_encode_defaults_and_budget_fit() -> None:
    out = anthropic.encode_request(request()).value
    assert out["max_tokens"] == anthropic.DEFAULT_MAX_TOKENS
    out = anthropic.encode_request(
        request(reasoning=ReasoningConfig(effort="high"), sampling=Sampling(max_tokens=4000))
    ).value
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 3999}
    small = anthropic.encode_request(
        request(reasoning=ReasoningConfig(effort="low"), sampling=Sampling(max_tokens=500))
    )
    assert "thinking" not in small.value and "reasoning" in small.loss_names
    adaptive = anthropic.encode_request(request(reasoning=ReasoningConfig())).value
    assert adaptive["thinking"] == {"type": "adaptive"}


def test_sampling_the_api_refuses_while_thinking_is_dropped() -> None:
    encoded = anthropic.encode_request(
        request(
            reasoning=ReasoningConfig(budget_tokens=2048),
            sampling=Sampling(temperature=0.2, top_k=5, top_p=0.5, seed=1),
        )
    )
    assert set(encoded.loss_names) == {"temperature", "top_k", "top_p", "seed"}
    plain = anthropic.encode_request(request(sampling=Sampling(temperature=1.7)))
    assert plain.value["temperature"] == 1.0 and "temperature" in plain.loss_names


def test_foreign_tool_turn_cannot_think() -> None:
    messages = (
        user(TextPart("list files")),
        Message(Role.ASSISTANT, (ToolCallPart("call_1", "ls", "{}"),)),
        user(ToolResultPart("call_1", (TextPart("a.py"),))),
    )
    encoded = anthropic.encode_request(
        Request(model="claude", messages=messages, reasoning=ReasoningConfig(effort="high"))
    )
    assert "thinking" not in encoded.value and "reasoning" in encoded.loss_names
    signed = (
        messages[0],
        Message(
            Role.ASSISTANT,
            (
                ReasoningPart("t", "sig", origin=Vendor.ANTHROPIC),
                ToolCallPart("call_1", "ls", "{}"),
            ),
        ),
        messages[2],
    )
    encoded = anthropic.encode_request(
        Request(model="claude", messages=signed, reasoning=ReasoningConfig(effort="high"))
    )
    assert encoded.value["thinking"]["type"] == "enabled"


def test_messages_are_merged_and_tool_results_lead() -> None:
    messages = (
        user(TextPart("q")),
        Message(Role.ASSISTANT, (ToolCallPart("c1", "f", '{"a": 1}'),)),
        user(TextPart("also this")),
        user(ToolResultPart("c1", (TextPart("r"),), is_error=True)),
        Message(Role.SYSTEM, (TextPart("be brief"),)),
    )
    encoded = anthropic.encode_request(
        Request(model="claude", messages=messages, system=(TextPart("sys"),))
    )
    out = encoded.value
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]
    assert out["messages"][2]["content"][0]["is_error"] is True
    assert [b["text"] for b in out["system"]] == ["sys", "be brief"]
    assert "system_position" in encoded.loss_names


def test_tool_choice_and_parallel() -> None:
    out = anthropic.encode_request(
        request(
            tools=(),
            tool_choice=ToolChoice(ToolChoiceMode.NONE),
        )
    ).value
    assert out["tool_choice"] == {"type": "none"}
    decoded = anthropic.decode_request(
        body(
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        )
    ).value
    assert decoded.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "f")
    assert decoded.parallel_tool_calls is False
    out = anthropic.encode_request(decoded).value
    assert out["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}


def test_documents_and_formats() -> None:
    text_doc = DocumentPart(Media(media_type="text/plain", data=text_to_b64("notes")), title="n")
    docx = DocumentPart(Media(media_type="application/msword", data="AAAA"))
    encoded = anthropic.encode_request(
        Request(
            model="claude",
            messages=(user(text_doc, docx),),
            response_format=ResponseFormat(ResponseFormatKind.JSON_OBJECT),
        )
    )
    content = encoded.value["messages"][0]["content"]
    assert content == [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
            "title": "n",
        }
    ]
    assert {"document", "response_format.json_object"} <= set(encoded.loss_names)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = anthropic.encode_request(
        request(response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, schema=schema))
    ).value
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    back = anthropic.decode_request(out | {"max_tokens": 10}).value
    assert back.response_format == ResponseFormat(ResponseFormatKind.JSON_SCHEMA, schema=schema)


def test_redacted_thinking_round_trips() -> None:
    decoded = anthropic.decode_request(
        body(
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "redacted_thinking", "data": "ENC"},
                        {"type": "text", "text": "ok"},
                    ],
                },
                {"role": "user", "content": "more"},
            ]
        )
    ).value
    part = decoded.messages[1].parts[0]
    assert part == ReasoningPart(encrypted="ENC", origin=Vendor.ANTHROPIC)
    out = anthropic.encode_request(decoded).value
    assert out["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "ENC"}
