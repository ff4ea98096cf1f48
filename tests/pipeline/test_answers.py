"""Putting pseudonyms back into answers: whole bodies, canonical events, passthrough events."""

from __future__ import annotations

from typing import Any

import orjson

from passerelle.core.stream import MessageStop, PartStop, TextDelta, ToolArgsDelta
from passerelle.dlp.actions import Vault
from passerelle.pipeline.answers import AnswerFilter
from passerelle.providers.base import Wire

EMAIL = "jean.dupont@gmail.com"


def vault() -> Vault:
    v = Vault()
    assert v.placeholder("EMAIL", EMAIL) == "[EMAIL_1]"
    assert v.placeholder("CLIENT", 'Acme "North"\\') == "[CLIENT_1]"
    return v


def events(answer: AnswerFilter, wire: Wire, *items: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        for _name, data in answer.passthrough(wire, None, orjson.dumps(item)):
            out.append(orjson.loads(data))
    for _name, data in answer.passthrough_end(wire):
        out.append(orjson.loads(data))
    return out


def test_a_complete_body_is_restored_with_json_text_escaped() -> None:
    answer = AnswerFilter(vault(), collect=True)
    body = {
        "choices": [
            {
                "message": {
                    "content": "Write to [EMAIL_1], not [EMAIL_2]",
                    "tool_calls": [{"function": {"arguments": '{"to": "[CLIENT_1]"}'}}],
                }
            }
        ]
    }
    restored = orjson.loads(answer.body(orjson.dumps(body)))
    message = restored["choices"][0]["message"]
    assert message["content"] == f"Write to {EMAIL}, not [EMAIL_2]"  # unknown ones left alone
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "to": 'Acme "North"\\'
    }
    assert answer.restored == 2


def test_a_body_without_placeholders_is_returned_byte_for_byte() -> None:
    raw = b'{"content":  "nothing to do"}'
    assert AnswerFilter(vault(), collect=False).body(raw) is raw


def test_canonical_deltas_are_restored_across_events_and_flushed_at_part_stop() -> None:
    answer = AnswerFilter(vault(), collect=True)
    out = []
    for event in (
        TextDelta(0, "Mail [EMA"),
        TextDelta(0, "IL_1] now [EM"),
        PartStop(0),
        ToolArgsDelta(1, '{"to": "[CLIE'),
        ToolArgsDelta(1, 'NT_1]"}'),
        PartStop(1),
        MessageStop(),
    ):
        out.extend(answer.canonical(event))
    text = "".join(e.text for e in out if isinstance(e, TextDelta))
    assert text == f"Mail {EMAIL} now [EM"  # an unfinished placeholder is sent as it is
    assert out.index(TextDelta(0, "[EM")) == out.index(PartStop(0)) - 1
    args = "".join(e.json for e in out if isinstance(e, ToolArgsDelta))
    assert orjson.loads(args) == {"to": 'Acme "North"\\'}


def test_openai_chat_passthrough_events() -> None:
    answer = AnswerFilter(vault(), collect=True)
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "to [EMA"}}]}
    rest = {"id": "c", "choices": [{"index": 0, "delta": {"content": "IL_1] and [EM"}}]}
    end = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    out = events(answer, Wire.OPENAI_CHAT, chunk, rest, end)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in out)
    assert text == f"to {EMAIL} and [EM"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert out[-1]["id"] == "c"


def test_anthropic_passthrough_events_get_the_held_text_before_the_block_stops() -> None:
    answer = AnswerFilter(vault(), collect=True)
    out = events(
        answer,
        Wire.ANTHROPIC,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "[EM"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "AIL_"},
        },
        {"type": "content_block_stop", "index": 0},
    )
    kinds = [e["type"] for e in out]
    assert kinds == [
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
    ]
    assert "".join(e["delta"]["text"] for e in out if "delta" in e) == "[EMAIL_"


def test_responses_passthrough_events_and_their_summaries() -> None:
    answer = AnswerFilter(vault(), collect=True)
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    out = events(
        answer,
        Wire.OPENAI_RESPONSES,
        {"type": "response.output_text.delta", **at, "delta": "[EMAIL", "sequence_number": 4},
        {"type": "response.output_text.delta", **at, "delta": "_1] ok [EM", "sequence_number": 5},
        {
            "type": "response.output_text.done",
            **at,
            "text": "[EMAIL_1] ok [EM",
            "sequence_number": 6,
        },
        {
            "type": "response.completed",
            "response": {"output": [{"content": [{"text": "[EMAIL_1] ok [EM"}]}]},
        },
    )
    deltas = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == f"{EMAIL} ok [EM"
    done = next(e for e in out if e["type"] == "response.output_text.done")
    assert done["text"] == f"{EMAIL} ok [EM"
    assert out[-1]["response"]["output"][0]["content"][0]["text"] == f"{EMAIL} ok [EM"


def test_gemini_passthrough_events_including_a_stream_that_just_stops() -> None:
    answer = AnswerFilter(vault(), collect=True)

    def text(piece: str) -> dict[str, Any]:
        return {"candidates": [{"content": {"parts": [{"text": piece}]}, "index": 0}]}

    out = events(answer, Wire.GEMINI, text("Hi [EMAI"), text("L_1], [EM"))
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in out) == (
        f"Hi {EMAIL}, [EM"
    )


def test_without_a_vault_passthrough_events_are_untouched() -> None:
    answer = AnswerFilter(None, collect=True)
    data = b'{"choices": [{"index": 0, "delta": {"content": "[EMAIL_1]"}}]}'
    assert answer.passthrough(Wire.OPENAI_CHAT, None, data) == [(None, data)]
