"""AWS event stream framing (``application/vnd.amazon.eventstream``), decoded incrementally.

Bedrock's streaming operations (``InvokeModelWithResponseStream``, ``ConverseStream``) answer with
a sequence of binary messages instead of server-sent events. Each message is::

    ┌──────────────── prelude (12 bytes) ────────────────┐
    │ total length │ headers length │ prelude CRC32      │   three big-endian uint32
    ├────────────────────────────────────────────────────┤
    │ headers (headers length bytes)                     │   name length (uint8), name (UTF-8),
    │                                                    │   value type (uint8), value
    ├────────────────────────────────────────────────────┤
    │ payload (total - headers - 16 bytes)               │
    ├────────────────────────────────────────────────────┤
    │ message CRC32 (of every byte before it)            │   big-endian uint32
    └────────────────────────────────────────────────────┘

Both checksums are the ordinary CRC-32 (``zlib.crc32``). A message whose checksums do not match
is corrupt: the decoder raises ``EventStreamError`` rather than guess where the next one starts.

Header values carry a type tag; this module maps them to Python values::

    0 true / 1 false   bool              6 byte array   bytes (uint16 length)
    2 byte             int (int8)        7 string       str (uint16 length, UTF-8)
    3 short            int (int16)       8 timestamp    datetime (int64 ms since the epoch, UTC)
    4 integer          int (int32)       9 uuid         uuid.UUID (16 bytes)
    5 long             int (int64)

The encoder writes ``int`` as a 32-bit integer when it fits and as a 64-bit one otherwise.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "EventStreamDecoder",
    "EventStreamError",
    "EventStreamMessage",
    "HeaderValue",
    "decode_all",
    "encode_message",
]

HeaderValue = bool | int | bytes | str | datetime | uuid.UUID

PRELUDE_LENGTH = 12  # total length, headers length, prelude CRC
MESSAGE_CRC_LENGTH = 4
MINIMUM_MESSAGE_LENGTH = PRELUDE_LENGTH + MESSAGE_CRC_LENGTH
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024  # the limits AWS documents for the format
MAX_HEADERS_LENGTH = 128 * 1024

_PRELUDE = struct.Struct(">III")
_UINT32 = struct.Struct(">I")
_INT_TYPES = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
}
_UINT16 = struct.Struct(">H")
_INT64 = struct.Struct(">q")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class EventStreamError(ValueError):
    """The bytes are not a valid event stream: bad lengths, a checksum mismatch, a bad header."""


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One decoded message: its headers (in wire order) and its raw payload."""

    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def message_type(self) -> str | None:
        """``event``, ``exception`` or ``error``, from the ``:message-type`` header."""
        value = self.headers.get(":message-type")
        return value if isinstance(value, str) else None

    @property
    def event_type(self) -> str | None:
        """The ``:event-type`` header (``chunk``, ``messageStart``…) of an ``event`` message."""
        value = self.headers.get(":event-type")
        return value if isinstance(value, str) else None

    @property
    def exception_type(self) -> str | None:
        """The ``:exception-type`` header of an ``exception`` message (``throttlingException``…)."""
        value = self.headers.get(":exception-type")
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Feed it bytes as they arrive; it returns each message as soon as it is complete.

    A message may arrive split across any number of chunks, and one chunk may hold several
    messages. After a checksum or framing error the decoder is unusable: the stream has lost its
    framing and everything after the bad message is suspect.
    """

    __slots__ = ("_buffer", "_failed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False

    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        """The messages completed by this chunk, in order (possibly none)."""
        if self._failed:
            raise EventStreamError("the stream is corrupt: an earlier message failed to decode")
        self._buffer += chunk
        messages: list[EventStreamMessage] = []
        try:
            while len(self._buffer) >= PRELUDE_LENGTH:
                total = _check_prelude(self._buffer)
                if len(self._buffer) < total:
                    break
                messages.append(_decode_message(bytes(self._buffer[:total])))
                del self._buffer[:total]
        except EventStreamError:
            self._failed = True
            raise
        return messages

    def pending(self) -> int:
        """Bytes of an incomplete message still waiting for the rest (a cut stream leaves some)."""
        return len(self._buffer)


def decode_all(data: bytes) -> list[EventStreamMessage]:
    """Every message of a complete stream; bytes left that do not form a message are an error."""
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    if decoder.pending():
        raise EventStreamError(f"the stream ends inside a message ({decoder.pending()} bytes left)")
    return messages


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One framed message, headers in the mapping's order."""
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    if len(encoded_headers) > MAX_HEADERS_LENGTH:
        raise EventStreamError(f"headers are {len(encoded_headers)} bytes, over the 128 KiB limit")
    total = MINIMUM_MESSAGE_LENGTH + len(encoded_headers) + len(payload)
    if total > MAX_MESSAGE_LENGTH:
        raise EventStreamError(f"the message would be {total} bytes, over the 16 MiB limit")
    prelude = _PRELUDE.pack(total, len(encoded_headers), 0)[:8]
    prelude += _UINT32.pack(zlib.crc32(prelude))
    body = prelude + encoded_headers + payload
    return body + _UINT32.pack(zlib.crc32(body))


# -- decoding ----------------------------------------------------------------------------------


def _check_prelude(buffer: bytearray) -> int:
    """The message's total length, once its prelude has been checked."""
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer)
    actual = zlib.crc32(memoryview(buffer)[:8])
    if actual != prelude_crc:
        raise EventStreamError(
            f"prelude checksum mismatch: the message says {prelude_crc:#010x}, "
            f"its bytes give {actual:#010x}"
        )
    if not MINIMUM_MESSAGE_LENGTH <= total <= MAX_MESSAGE_LENGTH:
        raise EventStreamError(f"invalid message length {total}")
    if headers_length > MAX_HEADERS_LENGTH or headers_length > total - MINIMUM_MESSAGE_LENGTH:
        raise EventStreamError(
            f"invalid headers length {headers_length} for a {total}-byte message"
        )
    return int(total)


def _decode_message(raw: bytes) -> EventStreamMessage:
    (expected,) = _UINT32.unpack_from(raw, len(raw) - MESSAGE_CRC_LENGTH)
    actual = zlib.crc32(memoryview(raw)[: len(raw) - MESSAGE_CRC_LENGTH])
    if actual != expected:
        raise EventStreamError(
            f"message checksum mismatch: the message says {expected:#010x}, "
            f"its bytes give {actual:#010x}"
        )
    (headers_length,) = _UINT32.unpack_from(raw, 4)
    headers_end = PRELUDE_LENGTH + headers_length
    headers = _decode_headers(raw[PRELUDE_LENGTH:headers_end])
    return EventStreamMessage(headers, raw[headers_end : len(raw) - MESSAGE_CRC_LENGTH])


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    offset = 0
    while offset < len(data):
        name_length = data[offset]
        offset += 1
        name_bytes = _take(data, offset, name_length, "header name")
        offset += name_length
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError as error:
            raise EventStreamError("a header name is not valid UTF-8") from error
        kind = _take(data, offset, 1, f"type of header {name!r}")[0]
        offset += 1
        value, offset = _decode_value(data, offset, kind, name)
        if name in headers:
            raise EventStreamError(f"header {name!r} appears twice")
        headers[name] = value
    return headers


def _decode_value(data: bytes, offset: int, kind: int, name: str) -> tuple[HeaderValue, int]:
    if kind in (0, 1):
        return kind == 0, offset
    if kind in _INT_TYPES:
        codec = _INT_TYPES[kind]
        _take(data, offset, codec.size, f"value of header {name!r}")
        return int(codec.unpack_from(data, offset)[0]), offset + codec.size
    if kind in (6, 7):
        _take(data, offset, 2, f"length of header {name!r}")
        (length,) = _UINT16.unpack_from(data, offset)
        raw = _take(data, offset + 2, length, f"value of header {name!r}")
        if kind == 6:
            return raw, offset + 2 + length
        try:
            return raw.decode("utf-8"), offset + 2 + length
        except UnicodeDecodeError as error:
            raise EventStreamError(f"header {name!r} is not valid UTF-8") from error
    if kind == 8:
        _take(data, offset, 8, f"value of header {name!r}")
        (millis,) = _INT64.unpack_from(data, offset)
        return datetime.fromtimestamp(millis / 1000, UTC), offset + 8
    if kind == 9:
        return uuid.UUID(bytes=_take(data, offset, 16, f"value of header {name!r}")), offset + 16
    raise EventStreamError(f"header {name!r} has unknown value type {kind}")


def _take(data: bytes, offset: int, length: int, what: str) -> bytes:
    if offset + length > len(data):
        raise EventStreamError(f"the headers end inside the {what}")
    return data[offset : offset + length]


# -- encoding ----------------------------------------------------------------------------------


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    if not 0 < len(raw_name) < 256:
        raise EventStreamError(f"header name {name!r} must be 1 to 255 bytes long")
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return head + b"\x04" + _INT_TYPES[4].pack(value)
        return head + b"\x05" + _INT64.pack(value)
    if isinstance(value, bytes | str):
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise EventStreamError(f"header {name!r} is over 65535 bytes")
        return (
            head + (b"\x06" if isinstance(value, bytes) else b"\x07") + _UINT16.pack(len(raw)) + raw
        )
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EventStreamError(f"header {name!r}: a timestamp needs a time zone")
        millis = (value - _EPOCH) // _MILLISECOND
        return head + b"\x08" + _INT64.pack(millis)
    return head + b"\x09" + value.bytes
