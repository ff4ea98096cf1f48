"""Server-sent events, decoded incrementally so that a stream is relayed event by event.

Only what a relay needs: split the byte stream into complete events as they arrive, and read an
event's ``data``. An event is re-emitted exactly as the upstream wrote it.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed it bytes as they arrive; it returns each event as soon as it is complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events (without their blank-line terminator) found so far."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        return [event for event in events if event.strip(b"\n")]

    def tail(self) -> bytes:
        """Bytes of an incomplete last event (a stream cut mid-event leaves some)."""
        return self._buffer


def event_data(event: bytes) -> bytes | None:
    """The event's ``data`` field (several data lines joined by newlines), or None."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]
    parts: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None
