"""Complete (non-streamed) answers across every pair of formats.

Each hand-written upstream answer (thinking, text, two parallel tool calls; usage with cached,
cache-write and reasoning tokens) is decoded, encoded for every client format, checked with that
format's SDK model, and read back by the client format's own decoder.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from passerelle.core.canonical import (
    ReasoningPart,
    Response,
    StopReason,
    TextPart,
    ToolCallPart,
    Usage,
)
from passerelle.formats import anthropic, gemini, openai_chat, openai_responses
from tests.formats import samples
from tests.formats.registry import FORMATS, NAMES

EXPECTED_USAGE = {
    "anthropic": Usage(1000, 150, 880, 20, 60),
    "openai_chat": Usage(1000, 150, 880, 0, 60),
    "openai_responses": Usage(1000, 150, 880, 20, 60),
    "gemini": Usage(1000, 150, 880, 0, 60),
}


def calls(response: Response) -> list[tuple[str, object]]:
    return [
        (p.name, orjson.loads(p.arguments)) for p in response.parts if isinstance(p, ToolCallPart)
    ]


def thoughts(response: Response) -> str:
    return "".join(p.text for p in response.parts if isinstance(p, ReasoningPart))


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_valid_answers(name: str) -> None:
    FORMATS[name].validate_response(samples.RESPONSES[name]())


@pytest.mark.parametrize("name", NAMES)
def test_answer_decodes(name: str) -> None:
    response = FORMATS[name].decode_response(samples.RESPONSES[name]()).value
    assert response.text() == samples.SAID
    assert calls(response) == [("get_weather", samples.PARIS), ("get_weather", samples.LYON)]
    assert response.stop_reason is StopReason.TOOL_USE
    assert response.usage == EXPECTED_USAGE[name]
    assert thoughts(response) == ("" if name == "openai_chat" else "Paris first.")
    assert response.id and response.model


@pytest.mark.parametrize("target_name", NAMES)
@pytest.mark.parametrize("source_name", NAMES)
def test_answer_translates(source_name: str, target_name: str) -> None:
    source, target = FORMATS[source_name], FORMATS[target_name]
    canonical = source.decode_response(samples.RESPONSES[source_name]()).value
    encoded = target.encode_response(canonical)
    target.validate_response(encoded.value)
    back = target.decode_response(orjson.loads(orjson.dumps(encoded.value))).value
    assert back.text() == canonical.text()
    assert calls(back) == calls(canonical)
    ids = [p.id for p in back.parts if isinstance(p, ToolCallPart)]
    assert ids == [p.id for p in canonical.parts if isinstance(p, ToolCallPart)]
    assert back.stop_reason is StopReason.TOOL_USE
    usage = canonical.usage
    if target_name == "gemini":
        usage = replace(usage, cache_write_tokens=0)
    assert back.usage == usage
    if target_name == "openai_chat":
        assert ("reasoning" in encoded.loss_names) is bool(thoughts(canonical))
    else:
        assert thoughts(back) == thoughts(canonical)
    assert back.id == canonical.id


STOPS = [
    (StopReason.END_TURN, "stop", "completed", "end_turn", "STOP"),
    (StopReason.MAX_TOKENS, "length", "max_output_tokens", "max_tokens", "MAX_TOKENS"),
    (StopReason.STOP_SEQUENCE, "stop", "completed", "stop_sequence", "STOP"),
    (StopReason.CONTENT_FILTER, "content_filter", "content_filter", "refusal", "SAFETY"),
    (StopReason.TOOL_USE, "tool_calls", "completed", "tool_use", "STOP"),
]


@pytest.mark.parametrize(("stop", "chat", "responses", "claude", "google"), STOPS)
def test_stop_reasons(
    stop: StopReason, chat: str, responses: str, claude: str, google: str
) -> None:
    parts: tuple[TextPart | ToolCallPart, ...] = (TextPart("x"),)
    if stop is StopReason.TOOL_USE:
        parts = (ToolCallPart("call_1", "f", "{}"),)
    response = Response("r1", "m", parts, stop, Usage(3, 4))
    body = openai_chat.encode_response(response).value
    assert body["choices"][0]["finish_reason"] == chat
    body = openai_responses.encode_response(response).value
    status = body["incomplete_details"]["reason"] if body["incomplete_details"] else body["status"]
    assert status == responses
    body = anthropic.encode_response(response).value
    assert body["stop_reason"] == claude
    body = gemini.encode_response(response).value
    assert body["candidates"][0]["finishReason"] == google
    for name in NAMES:
        fmt = FORMATS[name]
        back = fmt.decode_response(fmt.encode_response(response).value).value.stop_reason
        if name == "anthropic" and stop is StopReason.CONTENT_FILTER:
            assert back is StopReason.REFUSAL
        elif stop is StopReason.STOP_SEQUENCE and name != "anthropic":
            assert back is StopReason.END_TURN
        else:
            assert back is stop


def test_gemini_safety_and_blocked_prompt() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    assert gemini.decode_response(blocked).value.stop_reason is StopReason.CONTENT_FILTER
    body = samples.gemini_response()
    body["candidates"][0]["finishReason"] = "RECITATION"
    assert gemini.decode_response(body).value.stop_reason is StopReason.CONTENT_FILTER


def test_anthropic_stop_sequence_survives() -> None:
    body = samples.anthropic_response()
    body["stop_reason"] = "stop_sequence"
    body["stop_sequence"] = "END"
    response = anthropic.decode_response(body).value
    assert response.stop_sequence == "END"
    assert anthropic.encode_response(response).value["stop_sequence"] == "END"


def test_chat_refusal_and_compatible_reasoning() -> None:
    body = samples.openai_chat_response()
    message = body["choices"][0]["message"]
    message["reasoning_content"] = "thinking aloud"
    message["refusal"] = "I cannot help with that."
    del message["tool_calls"]
    body["choices"][0]["finish_reason"] = "stop"
    response = openai_chat.decode_response(body).value
    assert thoughts(response) == "thinking aloud"
    assert response.text() == samples.SAID + "I cannot help with that."
    assert response.stop_reason is StopReason.END_TURN


def test_responses_incomplete_and_failed() -> None:
    body = samples.openai_responses_response()
    body["status"] = "incomplete"
    body["incomplete_details"] = {"reason": "max_output_tokens"}
    assert openai_responses.decode_response(body).value.stop_reason is StopReason.MAX_TOKENS
    body["incomplete_details"] = {"reason": "content_filter"}
    assert openai_responses.decode_response(body).value.stop_reason is StopReason.CONTENT_FILTER


def test_unknown_output_is_reported_not_fatal() -> None:
    body = samples.anthropic_response()
    body["content"].append(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    )
    decoded = anthropic.decode_response(body)
    assert "anthropic.server_tool_use" in decoded.loss_names
    body = samples.openai_responses_response()
    body["output"].append({"type": "web_search_call", "id": "ws_1", "status": "completed"})
    assert "openai.web_search_call" in openai_responses.decode_response(body).loss_names
