from __future__ import annotations

from typing import Any

import pytest

from passerelle.core.canonical import (
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
    ToolDefinition,
    ToolResultPart,
    Vendor,
)
from passerelle.errors import InvalidRequest
from passerelle.formats import openai_responses


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5", "input": "hi"} | extra


def test_string_input_and_instructions() -> None:
    request = openai_responses.decode_request(body(instructions="be brief")).value
    assert request.system == (TextPart("be brief"),)
    assert request.messages == (Message(Role.USER, (TextPart("hi"),)),)


@pytest.mark.parametrize(
    ("bad", "param"),
    [
        ({"input": None}, "input"),
        ({"input": [{"role": "moderator", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"tool_choice": "maybe"}, "tool_choice"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ],
)
def test_invalid_requests_name_the_field(bad: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        openai_responses.decode_request(body(**bad))
    assert raised.value.param == param


def test_stateful_and_hosted_features_are_losses() -> None:
    decoded = openai_responses.decode_request(
        body(
            previous_response_id="resp_1",
            tools=[{"type": "web_search"}],
            input=[{"type": "item_reference", "id": "msg_1"}, {"role": "user", "content": "q"}],
            store=False,
            text={"verbosity": "low"},
        )
    )
    assert set(decoded.loss_names) == {
        "openai.previous_response_id",
        "openai.tools.web_search",
        "openai.item_reference",
        "openai.text.verbosity",
    }


def test_items_are_regrouped_by_speaker() -> None:
    request = openai_responses.decode_request(
        body(
            input=[
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "ENC"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "r1"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "r2"}],
                },
            ]
        )
    ).value
    assert request.system == (TextPart("rules"),)
    assert [m.role for m in request.messages] == [Role.USER, Role.ASSISTANT, Role.USER]
    assert request.messages[1].parts == (
        ReasoningPart(encrypted="ENC", origin=Vendor.OPENAI, id="rs_1"),
        ToolCallPart("c1", "f", "{}"),
        ToolCallPart("c2", "f", "{}"),
    )
    assert request.messages[2].parts == (
        ToolResultPart("c1", (TextPart("r1"),)),
        ToolResultPart("c2", (TextPart("r2"),)),
    )
    out = openai_responses.encode_request(request).value
    assert [item.get("type") for item in out["input"]] == [
        "message",
        "reasoning",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]


def test_encode_is_stateless_and_not_strict_by_default() -> None:
    request = Request(
        model="gpt-5",
        messages=(
            Message(Role.USER, (TextPart("q"),)),
            Message(Role.ASSISTANT, (TextPart("a"), TextPart("b"))),
        ),
        tools=(ToolDefinition("f"),),
        reasoning=ReasoningConfig(effort="medium"),
        sampling=Sampling(stop=("END",), seed=3, max_tokens=50),
        response_format=ResponseFormat(
            ResponseFormatKind.JSON_SCHEMA, schema={"type": "object"}, name="out", strict=True
        ),
    )
    encoded = openai_responses.encode_request(request)
    out = encoded.value
    assert out["tools"][0]["strict"] is False
    assert out["store"] is False and out["include"] == ["reasoning.encrypted_content"]
    assert out["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert out["max_output_tokens"] == 50
    assert out["input"][1] == {"type": "message", "role": "assistant", "content": "ab"}
    assert out["text"] == {
        "format": {
            "type": "json_schema",
            "name": "out",
            "schema": {"type": "object"},
            "strict": True,
        }
    }
    assert set(encoded.loss_names) == {"stop", "seed"}
    plain = openai_responses.encode_request(
        Request(model="gpt-4.1", messages=request.messages)
    ).value
    assert "store" not in plain and "include" not in plain and "reasoning" not in plain


def test_foreign_reasoning_is_not_replayed_to_openai() -> None:
    request = Request(
        model="gpt-5",
        messages=(
            Message(Role.USER, (TextPart("q"),)),
            Message(
                Role.ASSISTANT, (ReasoningPart("t", "sig", origin=Vendor.ANTHROPIC), TextPart("a"))
            ),
            Message(Role.USER, (TextPart("more"),)),
        ),
    )
    encoded = openai_responses.encode_request(request)
    assert all(item.get("type") != "reasoning" for item in encoded.value["input"])
    assert encoded.loss_names == ("anthropic.thinking",)
