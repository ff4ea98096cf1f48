"""Finding the text of any wire format's body, scanning it in one pass, replacing in place."""

from __future__ import annotations

import random
from typing import Any

from passerelle.dlp import Scanner
from passerelle.dlp.body import copy_with, scan_body, scan_texts, text_slots

from ._samples import TOKENS

PNG = "iVBORw0KGgo" + "A" * 400


def texts(body: Any) -> list[str]:
    return [slot.text for slot in text_slots(body)]


def test_every_place_a_format_carries_text_is_found() -> None:
    anthropic = {
        "model": "claude",
        "system": [{"type": "text", "text": "system prompt", "cache_control": {"type": "x"}}],
        "tools": [
            {
                "name": "deploy",
                "description": "tool description",
                "input_schema": {
                    "type": "object",
                    "properties": {"env": {"type": "string", "description": "schema text"}},
                    "required": ["env"],
                },
            }
        ],
        "messages": [
            {"role": "user", "content": "user text"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "thinking text", "signature": "c2ln"},
                    {"type": "tool_use", "id": "toolu_1", "name": "deploy", "input": {"a": "arg"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "result"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                    },
                ],
            },
        ],
    }
    assert texts(anthropic) == [
        "system prompt",
        "tool description",
        "schema text",
        "user text",
        "thinking text",
        "arg",
        "result",
        "doc",
    ]


def test_openai_responses_and_gemini_bodies() -> None:
    chat = {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"q": "args"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "tool out"},
        ],
        "tool_choice": "auto",
    }
    assert texts(chat) == ["be brief", "look", '{"q": "args"}', "tool out"]
    assert [s.json_text for s in text_slots(chat)] == [False, False, True, False]
    responses = {
        "model": "gpt",
        "instructions": "instructions",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
            {"type": "function_call_output", "call_id": "c", "output": "out"},
            {"type": "reasoning", "encrypted_content": "opaque", "summary": []},
        ],
        "text": {"format": {"type": "json_schema", "schema": {"description": "in schema"}}},
        "previous_response_id": "resp_1",
    }
    assert texts(responses) == ["instructions", "hello", "out", "in schema"]
    gemini = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "question"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"functionResponse": {"name": "f", "response": {"result": "12 C"}}},
                ],
            },
            {"role": "model", "parts": [{"text": "t", "thoughtSignature": "sig"}]},
        ],
    }
    assert texts(gemini) == ["sys", "question", "12 C", "t"]


def test_a_deeply_nested_body_does_not_exhaust_the_stack() -> None:
    body: Any = {"content": "deep"}
    for _ in range(5000):
        body = {"nested": [body]}
    assert texts(body) == ["deep"]


def test_one_scan_maps_findings_back_to_each_text(scanner: Scanner) -> None:
    rng = random.Random(3)
    key = TOKENS["aws_access_key"](rng)
    parts = ["nothing here", f"key {key}", "mail a.b@gmail.com and " + key]
    per_text, result = scan_texts(scanner, parts)
    assert [[(f.rule, f.extract(parts[i])) for f in found] for i, found in enumerate(per_text)] == [
        [],
        [("aws_access_key", key)],
        [("email", "a.b@gmail.com"), ("aws_access_key", key)],
    ]
    assert result.data_classes == {"restricted", "confidential"}


def test_a_term_cut_across_two_texts_is_not_a_finding(scanner: Scanner) -> None:
    per_text, result = scan_texts(scanner, ["a call with Acme", "Industries about the bid"])
    assert per_text == [[], []]
    assert not result.data_classes


def test_replacing_texts_leaves_the_callers_body_and_other_fields_alone(scanner: Scanner) -> None:
    body = {
        "model": "gpt",
        "unknown_field": {"kept": [1, 2]},
        "messages": [
            {"role": "user", "content": "Acme Industries"},
            {"role": "user", "content": "x"},
        ],
    }
    scan = scan_body(scanner, body)
    assert scan.counts() == {"client_term": 1}
    copy = copy_with(body, {0: "[CLIENT_1]"})
    assert copy["messages"][0]["content"] == "[CLIENT_1]"
    assert copy["unknown_field"] == {"kept": [1, 2]} and copy["model"] == "gpt"
    assert body["messages"][0]["content"] == "Acme Industries"
