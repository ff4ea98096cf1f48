"""The AWS event stream codec against AWS's published encoded messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from passerelle.formats.aws_eventstream import (
    EventStreamDecoder,
    EventStreamError,
    EventStreamMessage,
    decode_all,
    encode_message,
)

# Encoded messages from the AWS event stream test suite: exact bytes, both checksums included.
EMPTY = b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2\x48\xeb\x7d\x98\xc8\xff"
INTEGER_HEADER = (
    b"\x00\x00\x00\x1d\x00\x00\x00\x0d\x83\xe3\xf0\xe7"
    b"\x07integer\x04\xff\xff\xff\xff"
    b"\x8b\x8e\x12\xeb"
)
PAYLOAD_NO_HEADERS = (
    b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfd\x52\x8c\x5a{'foo':'bar'}\xc3\x65\x39\x36"
)
PAYLOAD_ONE_STRING_HEADER = (
    b"\x00\x00\x00\x3d\x00\x00\x00\x20\x07\xfd\x83\x96"
    b"\x0ccontent-type\x07\x00\x10application/json"
    b"{'foo':'bar'}"
    b"\x8d\x9c\x08\xb1"
)
ALL_HEADER_TYPES = (
    b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
    b"\x010\x00"
    b"\x011\x01"
    b"\x012\x02\x02"
    b"\x013\x03\x00\x03"
    b"\x014\x04\x00\x00\x00\x04"
    b"\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05"
    b"\x016\x06\x00\x05bytes"
    b"\x017\x07\x00\x04utf8"
    b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08"
    b"\x019\x090123456789abcdef"
    b"\x63\x35\x36\x71"
)
STRING_HEADER = (
    b"\x00\x00\x00\x20\x00\x00\x00\x10\xb9\x54\xe0\x09\x06string\x07\x00\x06string\x4c\x8d\x9e\x14"
)
TIMESTAMP = datetime(1970, 1, 1, 0, 0, 0, 8000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("encoded", "headers", "payload"),
    [
        (EMPTY, {}, b""),
        (INTEGER_HEADER, {"integer": -1}, b""),
        (PAYLOAD_NO_HEADERS, {}, b"{'foo':'bar'}"),
        (PAYLOAD_ONE_STRING_HEADER, {"content-type": "application/json"}, b"{'foo':'bar'}"),
        (STRING_HEADER, {"string": "string"}, b""),
    ],
    ids=["empty", "integer-header", "payload-no-headers", "payload-one-header", "string-header"],
)
def test_published_vectors_round_trip(
    encoded: bytes, headers: dict[str, object], payload: bytes
) -> None:
    (message,) = decode_all(encoded)
    assert message == EventStreamMessage(headers, payload)  # type: ignore[arg-type]
    assert encode_message(message.headers, message.payload) == encoded


def test_every_header_type_decodes() -> None:
    (message,) = decode_all(ALL_HEADER_TYPES)
    assert message.headers == {
        "0": True,
        "1": False,
        "2": 2,
        "3": 3,
        "4": 4,
        "5": 5,
        "6": b"bytes",
        "7": "utf8",
        "8": TIMESTAMP,
        "9": uuid.UUID(bytes=b"0123456789abcdef"),
    }
    assert list(message.headers) == [str(n) for n in range(10)]  # wire order is kept
    # bool, bytes, str, timestamp and uuid encode back to the same bytes; ints become int32.
    again = decode_all(encode_message(message.headers))[0]
    assert again.headers == message.headers


def test_large_integers_become_longs() -> None:
    encoded = encode_message({"big": 2**40, "small": -(2**31)})
    assert decode_all(encoded)[0].headers == {"big": 2**40, "small": -(2**31)}
    assert b"\x03big\x05" in encoded and b"\x05small\x04" in encoded


def test_incremental_feeding_byte_by_byte() -> None:
    stream = PAYLOAD_ONE_STRING_HEADER + EMPTY + ALL_HEADER_TYPES
    decoder = EventStreamDecoder()
    messages: list[EventStreamMessage] = []
    for index in range(len(stream)):
        messages.extend(decoder.feed(stream[index : index + 1]))
    assert [m.payload for m in messages] == [b"{'foo':'bar'}", b"", b""]
    assert decoder.pending() == 0
    # Several messages in one chunk, and a partial one left over.
    decoder = EventStreamDecoder()
    assert len(decoder.feed(stream + EMPTY[:5])) == 3
    assert decoder.pending() == 5
    with pytest.raises(EventStreamError, match="ends inside a message"):
        decode_all(stream + EMPTY[:5])


def test_message_type_accessors() -> None:
    event = encode_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        b"{}",
    )
    exception = encode_message(
        {":exception-type": "throttlingException", ":message-type": "exception"}, b"{}"
    )
    first, second = decode_all(event + exception)
    assert (first.message_type, first.event_type, first.exception_type) == ("event", "chunk", None)
    assert (second.message_type, second.exception_type) == ("exception", "throttlingException")


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        # The published negative cases: a flipped bit in the length, the payload, the headers.
        (
            b"\x01\x00\x00\x1d\x00\x00\x00\x00\xfd\x52\x8c\x5a{'foo':'bar'}\xc3\x65\x39\x36",
            "prelude checksum",
        ),
        (
            b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfd\x52\x8c\x5a{'foo':'bar'\x8d\xc3\x65\x39\x36",
            "message checksum",
        ),
        (PAYLOAD_ONE_STRING_HEADER.replace(b"content-type", b"content+type"), "message checksum"),
        (
            b"\x00\x00\x00\x3d\xff\x00\x01\x02\x07\xfd\x83\x96" + PAYLOAD_ONE_STRING_HEADER[12:],
            "prelude checksum",
        ),
        (
            b"\x00\x00\x00\x24\x00\x00\x00\x14\x4b\xb9\x82\xd0"
            b"\x04test\x04asdf\x04test\x04asdf\xf3\xf4\x75\x63",
            "appears twice",
        ),
    ],
    ids=["length", "payload", "headers", "headers-length", "duplicate-header"],
)
def test_corruption_is_a_clear_error(corrupt: bytes, problem: str) -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match=problem):
        decoder.feed(corrupt)
    with pytest.raises(EventStreamError, match="corrupt"):
        decoder.feed(EMPTY)  # no resynchronisation after a bad message


def test_encoder_limits() -> None:
    with pytest.raises(EventStreamError, match="1 to 255"):
        encode_message({"": "x"})
    with pytest.raises(EventStreamError, match="time zone"):
        encode_message({"t": datetime(2020, 1, 1)})
    with pytest.raises(EventStreamError, match="16 MiB"):
        encode_message({}, b"x" * (16 * 1024 * 1024))
    timestamp = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert decode_all(encode_message({"t": timestamp}))[0].headers["t"] == timestamp
