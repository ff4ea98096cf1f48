"""A stream that breaks after it started ends with an error event in the caller's own format,
for every surface, whether the stream was passed through or translated."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from passerelle.pipeline.relay import StreamRelay
from passerelle.providers.base import Framing, Wire

SURFACES = (Wire.OPENAI_CHAT, Wire.OPENAI_RESPONSES, Wire.ANTHROPIC, Wire.GEMINI)
CODE = "upstream_stream_disconnected"

# The first events of a stream in each upstream format, cut before its end.
STARTS: dict[Wire, bytes] = {
    Wire.OPENAI_CHAT: (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
        b"\n\n"
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n'
    ),
    Wire.OPENAI_RESPONSES: (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
        b'"response":{"id":"r1","object":"response","created_at":1,"model":"m",'
        b'"status":"in_progress","output":[]}}\n\n'
    ),
    Wire.ANTHROPIC: (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
        b'"type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,'
        b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    ),
    Wire.GEMINI: (
        b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"}]},'
        b'"index":0}],"modelVersion":"m","responseId":"g1"}\n\n'
    ),
}


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        name = None
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].strip()
        out.append((name, None if data == b"[DONE]" else orjson.loads(data)))
    return out


def assert_error_event(surface: Wire, name: str | None, data: Any) -> None:
    """The error event each official SDK raises on."""
    if surface is Wire.OPENAI_CHAT:
        assert name is None and data["error"]["code"] == CODE
        assert "ended before it was complete" in data["error"]["message"]
    elif surface is Wire.OPENAI_RESPONSES:
        assert name == "error" and data["type"] == "error" and data["code"] == CODE
        assert isinstance(data["sequence_number"], int)
    elif surface is Wire.ANTHROPIC:
        assert name == "error" and data["type"] == "error"
        assert data["error"]["type"] == "api_error" and data["error"]["message"]
    else:
        assert name is None
        assert data["error"]["code"] == 502 and data["error"]["status"] in (
            "INTERNAL",
            "UNAVAILABLE",
        )


@pytest.mark.parametrize("upstream", SURFACES, ids=lambda w: f"from-{w.value}")
@pytest.mark.parametrize("surface", SURFACES, ids=lambda w: f"to-{w.value}")
def test_a_broken_stream_ends_with_an_error_event(surface: Wire, upstream: Wire) -> None:
    relay = StreamRelay(upstream, surface, Framing.SSE, "chat", caller_wants_usage=False)
    sent = b"".join(relay.feed(STARTS[upstream]))
    assert not relay.complete
    tail = relay.close(CODE)
    out = events(sent + b"".join(tail))
    assert out, "the caller got nothing"
    # The error is the last word: nothing after it says the answer completed normally.
    name, data = out[-1]
    assert_error_event(surface, name, data)
    assert not any(n in ("message_stop", "response.completed") for n, _ in out)
    assert all(d is not None for _, d in out), "no [DONE] after an error"
    if upstream is not surface:
        assert sum(1 for n, d in out if n == "error" or (isinstance(d, dict) and "error" in d)) == 1
