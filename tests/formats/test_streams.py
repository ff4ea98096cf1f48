"""Every golden upstream stream, translated to every client format.

For each pair the test checks (a) the client stream's event order and indexes against the rules
of its format, (b) that the text, reasoning and tool arguments the client can rebuild equal the
upstream's, (c) that the final usage arrives, and (d) that the official SDK parses every event and
accumulates the stream into a final message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

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
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartStart,
    PartStop,
    ReasoningDelta,
    ResponseAssembler,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
)
from passerelle.formats.openai_chat_stream import ChatStreamEncoder
from passerelle.formats.wire import WireEvent
from tests.formats.registry import (
    FORMATS,
    GOLDEN,
    NAMES,
    decode_stream,
    encode_stream,
    golden_events,
    golden_format,
    history_request,
    wire_objects,
)

GOLDEN_FILES = sorted(path.name for path in GOLDEN.glob("*.sse"))
REASONING_TARGETS = {"openai_responses", "anthropic", "gemini"}


def assemble(events: list[StreamEvent]) -> Response:
    assembler = ResponseAssembler()
    for event in events:
        assembler.feed(event)
    return assembler.response()


def check_canonical_contract(events: list[StreamEvent]) -> None:
    """The order every stream decoder promises (see ``passerelle.core.stream``)."""
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-1], MessageStop)
    started: set[int] = set()
    stopped: set[int] = set()
    ended = False
    for event in events[1:-1]:
        if isinstance(event, PartStart):
            assert not ended
            assert event.index == len(started), "parts are numbered in start order"
            started.add(event.index)
        elif isinstance(event, TextDelta | ToolArgsDelta | ReasoningDelta | SignatureDelta):
            assert event.index in started and event.index not in stopped
        elif isinstance(event, PartStop):
            assert event.index in started and event.index not in stopped
            stopped.add(event.index)
        elif isinstance(event, MessageDelta):
            ended = True
    assert started == stopped


def tool_calls(response: Response) -> list[tuple[str, str, Any]]:
    return [
        (p.id, p.name, orjson.loads(p.arguments))
        for p in response.parts
        if isinstance(p, ToolCallPart)
    ]


def expressible_usage(usage: Usage, target: str) -> Usage:
    """Gemini has no count of tokens written to a cache; they stay in the input total."""
    return replace(usage, cache_write_tokens=0) if target == "gemini" else usage


def reasoning_text(response: Response) -> str:
    return "".join(p.text for p in response.parts if isinstance(p, ReasoningPart))


# -- per-format order rules -----------------------------------------------------------------------


def check_chat_order(events: list[WireEvent]) -> None:
    chunks = [e.data for e in events[:-1]]
    assert events[-1].data == "[DONE]"
    assert all(isinstance(c, dict) for c in chunks)
    first = chunks[0]
    assert isinstance(first, dict)
    assert first["choices"][0]["delta"]["role"] == "assistant"
    seen: list[int] = []
    finished = usage_seen = False
    for chunk in chunks[1:]:
        assert isinstance(chunk, dict)
        if not chunk["choices"]:
            assert finished and "usage" in chunk
            usage_seen = True
            continue
        assert not usage_seen
        choice = chunk["choices"][0]
        if choice["finish_reason"] is not None:
            assert not finished
            finished = True
            continue
        assert not finished, "no content after finish_reason"
        for call in choice["delta"].get("tool_calls", []):
            if call["index"] not in seen:
                assert call["index"] == len(seen), "tool call indexes count up from 0"
                seen.append(call["index"])
                assert call["id"] and call["type"] == "function" and call["function"]["name"]
            else:
                assert "id" not in call and "name" not in call["function"]
    assert finished and usage_seen


def check_anthropic_order(events: list[WireEvent]) -> None:
    types = [e.data["type"] for e in events if isinstance(e.data, dict)]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for event in events[1:-2]:
        assert isinstance(event.data, dict)
        kind = event.data["type"]
        if kind == "content_block_start":
            assert open_index is None, "one block at a time"
            assert event.data["index"] == next_index
            open_index = next_index
            next_index += 1
        elif kind == "content_block_delta":
            assert event.data["index"] == open_index
        elif kind == "content_block_stop":
            assert event.data["index"] == open_index
            open_index = None
        else:
            pytest.fail(f"unexpected {kind}")
    assert open_index is None
    final = events[-2].data
    assert isinstance(final, dict)
    assert final["delta"]["stop_reason"] is not None


def check_responses_order(events: list[WireEvent]) -> None:
    data = [e.data for e in events]
    assert all(isinstance(d, dict) for d in data)
    assert [d["sequence_number"] for d in data] == list(range(len(data)))  # type: ignore[index]
    assert data[0]["type"] == "response.created"  # type: ignore[index]
    assert data[1]["type"] == "response.in_progress"  # type: ignore[index]
    last = data[-1]
    assert isinstance(last, dict)
    assert last["type"] in ("response.completed", "response.incomplete")
    open_item: int | None = None
    done_items = []
    for d in data[2:-1]:
        assert isinstance(d, dict)
        if d["type"] == "response.output_item.added":
            assert open_item is None and d["output_index"] == len(done_items)
            open_item = d["output_index"]
        elif d["type"] == "response.output_item.done":
            assert d["output_index"] == open_item
            done_items.append(d["item"])
            open_item = None
        else:
            assert d["output_index"] == open_item
    assert last["response"]["output"] == done_items
    assert last["response"]["usage"] is not None


def check_gemini_order(events: list[WireEvent]) -> None:
    data = [e.data for e in events]
    for chunk in data[:-1]:
        assert isinstance(chunk, dict)
        assert "finishReason" not in chunk["candidates"][0]
    last = data[-1]
    assert isinstance(last, dict)
    assert last["candidates"][0]["finishReason"]
    assert last["usageMetadata"]["totalTokenCount"] > 0


ORDER_CHECKS = {
    "openai_chat": check_chat_order,
    "anthropic": check_anthropic_order,
    "openai_responses": check_responses_order,
    "gemini": check_gemini_order,
}


# -- the matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_golden_decodes_to_canonical_contract(golden: str) -> None:
    source = FORMATS[golden_format(golden)]
    events = decode_stream(source, list(golden_events(golden)))
    check_canonical_contract(events)
    response = assemble(events)
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("target_name", NAMES)
@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_golden_stream_translates(golden: str, target_name: str) -> None:
    source = FORMATS[golden_format(golden)]
    target = FORMATS[target_name]
    canonical = decode_stream(source, list(golden_events(golden)))
    expected = assemble(canonical)

    wire = encode_stream(target, canonical)
    ORDER_CHECKS[target_name](wire)  # (a)
    target.validate_stream(wire)  # (d)

    # (b) and (c): what a client of the target format rebuilds from the bytes it receives
    back = decode_stream(target, wire_objects(wire))
    check_canonical_contract(back)
    rebuilt = assemble(back)
    assert rebuilt.text() == expected.text()
    assert tool_calls(rebuilt) == tool_calls(expected)
    assert rebuilt.usage == expressible_usage(expected.usage, target_name)
    if target_name in REASONING_TARGETS:
        assert reasoning_text(rebuilt) == reasoning_text(expected)
    expected_stop = expected.stop_reason
    if target_name == "openai_chat" and expected_stop is StopReason.STOP_SEQUENCE:
        expected_stop = StopReason.END_TURN
    assert rebuilt.stop_reason == expected_stop


@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_same_format_round_trip_keeps_reasoning_state(golden: str) -> None:
    """Decoding and re-encoding in the upstream's own format keeps signatures and encrypted
    reasoning byte for byte (what a client needs to continue the conversation)."""
    name = golden_format(golden)
    fmt = FORMATS[name]
    canonical = decode_stream(fmt, list(golden_events(golden)))
    expected = assemble(canonical)
    back = assemble(decode_stream(fmt, wire_objects(encode_stream(fmt, canonical))))
    before = [(p.signature, p.encrypted) for p in expected.parts if isinstance(p, ReasoningPart)]
    after = [(p.signature, p.encrypted) for p in back.parts if isinstance(p, ReasoningPart)]
    if name == "openai_chat":
        assert after == []
    else:
        assert after == before


@pytest.mark.parametrize("target_name", ["openai_responses", "anthropic", "gemini"])
@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_foreign_reasoning_state_survives_a_client(golden: str, target_name: str) -> None:
    """A signature minted by one vendor, shown to a client of another format, comes back
    intact with its origin when that client sends the answer back in its next request."""
    source_name = golden_format(golden)
    source = FORMATS[source_name]
    target = FORMATS[target_name]
    expected = assemble(decode_stream(source, list(golden_events(golden))))
    shown = target.encode_response(expected).value
    states = [
        (p.origin, p.signature, p.encrypted)
        for p in expected.parts
        if isinstance(p, ReasoningPart) and p.opaque
    ]
    history = target.decode_request(history_request(target_name, shown)).value
    back = [
        (p.origin, p.signature, p.encrypted)
        for message in history.messages
        for p in message.parts
        if isinstance(p, ReasoningPart) and p.opaque
    ]
    if source_name == "openai_chat":
        assert states == back == []
    else:
        assert back == states


@pytest.mark.parametrize("target_name", NAMES)
def test_deltas_are_forwarded_as_they_arrive(target_name: str) -> None:
    """One canonical event in, its wire event out at once: no buffering of text or tool
    arguments (Gemini alone must hold a call until it is whole)."""
    encoder = FORMATS[target_name].stream_encoder()
    encoder.feed(MessageStart("resp_1", "m"))
    encoder.feed(PartStart(0, ToolCallPart("call_1", "f", "")))
    out = encoder.feed(ToolArgsDelta(0, '{"a": '))
    if target_name == "gemini":
        assert out == []
    else:
        assert any(b'{\\"a\\": ' in event.encode() for event in out)
    encoder.feed(ToolArgsDelta(0, "1}"))
    encoder.feed(PartStop(0))
    encoder.feed(PartStart(1, TextPart("")))
    out = encoder.feed(TextDelta(1, "hello"))
    assert any(b"hello" in event.encode() for event in out)


def test_interleaved_tool_calls_keep_anthropic_blocks_whole() -> None:
    """OpenAI-compatible servers may interleave parallel calls; an Anthropic client still gets
    one complete block per call, numbered in order."""
    source = FORMATS["openai_chat"]
    canonical = decode_stream(source, list(golden_events("openai_chat_interleaved.sse")))
    wire = encode_stream(FORMATS["anthropic"], canonical)
    blocks: dict[int, str] = {}
    for event in wire:
        data = event.data
        assert isinstance(data, dict)
        if data["type"] == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            blocks[data["index"]] = blocks.get(data["index"], "") + data["delta"]["partial_json"]
    assert [orjson.loads(v) for v in blocks.values()] == [
        {"path": "src/main.py"},
        {"path": "README.md"},
    ]


def test_chat_usage_chunk_follows_client_choice() -> None:
    canonical = decode_stream(FORMATS["anthropic"], list(golden_events("anthropic_text.sse")))
    encoder = ChatStreamEncoder(include_usage=False)
    out = [w for e in canonical for w in encoder.feed(e)]
    assert out[-1].data == "[DONE]"
    assert not any(isinstance(w.data, dict) and "usage" in w.data for w in out)
