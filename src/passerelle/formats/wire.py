"""What the stream codecs hand to the HTTP layer, and how upstream events are read.

A stream encoder returns :class:`WireEvent` values; ``encode()`` gives the exact bytes to write to
the client. Upstream SSE events (split by :class:`passerelle.formats.sse.SSEDecoder`) are read
with :func:`sse_json` before going to a stream decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from passerelle.formats.sse import event_data

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One server-sent event for a client: a JSON object (or a raw sentinel such as OpenAI's
    ``[DONE]``) and, for Anthropic, the event name."""

    data: JSON | str
    event: str | None = None

    def encode(self) -> bytes:
        payload = self.data.encode() if isinstance(self.data, str) else orjson.dumps(self.data)
        if self.event is None:
            return b"data: " + payload + b"\n\n"
        return b"event: " + self.event.encode() + b"\ndata: " + payload + b"\n\n"


def sse_json(event: bytes) -> JSON | None:
    """The JSON object an upstream SSE event carries; None for comments, ``[DONE]`` and events
    that are not a JSON object (callers treat ``[DONE]`` as the end of the stream)."""
    data = event_data(event)
    if data is None or data.strip() == b"[DONE]":
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
