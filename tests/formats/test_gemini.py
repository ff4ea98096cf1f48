from __future__ import annotations

from typing import Any

import pytest

from passerelle.core.canonical import (
    ImagePart,
    Media,
    Message,
    ReasoningConfig,
    ReasoningPart,
    Request,
    Role,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolResultPart,
    Vendor,
)
from passerelle.errors import InvalidRequest
from passerelle.formats import gemini


def decode(body: dict[str, Any]) -> Request:
    return gemini.decode_request(body, model="models/gemini-2.5-flash", stream=True).value


def test_model_and_stream_come_from_the_url() -> None:
    request = decode({"contents": [{"parts": [{"text": "hi"}]}]})
    assert request.model == "gemini-2.5-flash" and request.stream
    assert request.messages == (Message(Role.USER, (TextPart("hi"),)),)


def test_snake_case_fields_are_accepted() -> None:
    request = decode(
        {
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inline_data": {"mime_type": "image/png", "data": "AA=="}}],
                }
            ],
            "generation_config": {
                "max_output_tokens": 7,
                "thinking_config": {"thinking_level": "LOW"},
            },
            "tool_config": {
                "function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}
            },
        }
    )
    assert request.system == (TextPart("sys"),)
    assert request.messages[0].parts == (ImagePart(Media(media_type="image/png", data="AA==")),)
    assert request.sampling.max_tokens == 7
    assert request.reasoning == ReasoningConfig(effort="low")
    assert request.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "f")


def test_function_responses_match_calls_by_name_and_order() -> None:
    request = decode(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "a", "args": {}}},
                        {"functionCall": {"name": "b", "args": {"x": 1}}},
                        {"functionCall": {"name": "a", "args": {"y": 2}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "b", "response": {"error": "boom"}}},
                        {"functionResponse": {"name": "a", "response": {"output": "one"}}},
                        {"functionResponse": {"name": "a", "response": {"temp": 20}}},
                    ],
                },
            ]
        }
    )
    calls = [p for p in request.messages[1].parts if isinstance(p, ToolCallPart)]
    results = [p for p in request.messages[2].parts if isinstance(p, ToolResultPart)]
    assert [r.tool_call_id for r in results] == [calls[1].id, calls[0].id, calls[2].id]
    assert results[0].is_error and results[0].content == (TextPart("boom"),)
    assert results[2].content == (TextPart('{"temp":20}'),)


def test_unanswerable_function_response_is_invalid() -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode(
            {
                "contents": [
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
                ]
            }
        )
    assert raised.value.param == "contents[0].parts[0].functionResponse.name"


def history(*assistant_parts: Any, user_after: bool = False) -> Request:
    messages = [
        Message(Role.USER, (TextPart("q"),)),
        Message(Role.ASSISTANT, tuple(assistant_parts)),
        Message(Role.USER, (ToolResultPart("toolu_1", (TextPart("r"),)),)),
    ]
    if user_after:
        messages += [
            Message(Role.ASSISTANT, (TextPart("done"),)),
            Message(Role.USER, (TextPart("next"),)),
        ]
    return Request(model="gemini", messages=tuple(messages))


def test_upstream_calls_have_no_ids_and_results_have_names() -> None:
    out = gemini.encode_request(history(ToolCallPart("toolu_1", "read", '{"p": 1}'))).value
    call = out["contents"][1]["parts"][0]
    assert call["functionCall"] == {"name": "read", "args": {"p": 1}}
    assert out["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "read",
        "response": {"output": "r"},
    }


def test_current_turn_gets_placeholder_signature_only_when_missing() -> None:
    out = gemini.encode_request(history(ToolCallPart("toolu_1", "read", "{}"))).value
    assert out["contents"][1]["parts"][0]["thoughtSignature"] == gemini.SIGNATURE_PLACEHOLDER
    kept = gemini.encode_request(
        history(
            ReasoningPart(signature="REAL", origin=Vendor.GEMINI),
            ToolCallPart("toolu_1", "read", "{}"),
        )
    ).value
    assert kept["contents"][1]["parts"] == [
        {"functionCall": {"name": "read", "args": {}}, "thoughtSignature": "REAL"}
    ]
    old_turn = gemini.encode_request(
        history(ToolCallPart("toolu_1", "read", "{}"), user_after=True)
    ).value
    assert "thoughtSignature" not in old_turn["contents"][1]["parts"][0]
    off = gemini.encode_request(
        history(ToolCallPart("toolu_1", "read", "{}")), signature_placeholder=None
    ).value
    assert "thoughtSignature" not in off["contents"][1]["parts"][0]


def test_foreign_reasoning_is_dropped_upstream() -> None:
    encoded = gemini.encode_request(
        history(
            ReasoningPart("t", "sig", origin=Vendor.ANTHROPIC),
            ToolCallPart("toolu_1", "read", "{}"),
        )
    )
    assert encoded.loss_names == ("anthropic.thinking",)
    assert (
        encoded.value["contents"][1]["parts"][0]["thoughtSignature"] == gemini.SIGNATURE_PLACEHOLDER
    )


def test_reasoning_config() -> None:
    def config(reasoning: ReasoningConfig) -> dict[str, Any]:
        request = Request(
            model="g", messages=(Message(Role.USER, (TextPart("q"),)),), reasoning=reasoning
        )
        return gemini.encode_request(request).value["generationConfig"]["thinkingConfig"]

    assert config(ReasoningConfig(budget_tokens=512)) == {
        "thinkingBudget": 512,
        "includeThoughts": True,
    }
    assert config(ReasoningConfig(effort="low", summary=False)) == {
        "thinkingLevel": "LOW",
        "includeThoughts": False,
    }
    assert config(ReasoningConfig(effort="none")) == {"thinkingBudget": 0}
    assert (
        decode(
            {"contents": [], "generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}}
        ).reasoning
        == ReasoningConfig()
    )


def test_openapi_schemas_read_as_json_schema() -> None:
    request = decode(
        {
            "contents": [{"parts": [{"text": "q"}]}],
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "f",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {"a": {"type": "STRING"}},
                            },
                        }
                    ]
                },
                {"googleSearch": {}},
            ],
        }
    )
    assert request.tools[0].parameters == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }
    assert (
        "gemini.tools.googleSearch"
        in gemini.decode_request(
            {"contents": [], "tools": [{"googleSearch": {}}]}, model="g"
        ).loss_names
    )


def test_signature_on_text_moves_to_next_part() -> None:
    request = decode(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [{"text": "answer", "thoughtSignature": "SIG"}]},
            ]
        }
    )
    assert request.messages[1].parts == (
        ReasoningPart(signature="SIG", origin=Vendor.GEMINI),
        TextPart("answer"),
    )
    out = gemini.encode_request(request).value
    assert out["contents"][1]["parts"] == [{"text": "answer", "thoughtSignature": "SIG"}]
