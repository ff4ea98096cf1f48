"""The Converse codec against the fake Bedrock, over real HTTP with SigV4.

What ``encode_request`` writes must be accepted by a server that speaks Converse the way AWS
documents it, and what that server answers, plain or as an event stream, must decode: the
reasoning signature the fake mints has to come back intact on the next turn (the fake refuses a
changed one), cache points have to cache, and exceptions have to be recognised by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from passerelle.core.canonical import (
    CacheControl,
    ErrorType,
    ImagePart,
    Media,
    Message,
    ReasoningConfig,
    ReasoningPart,
    Request,
    Response,
    Role,
    Sampling,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolDefinition,
    ToolResultPart,
    Vendor,
)
from passerelle.core.stream import ResponseAssembler, StreamEvent
from passerelle.formats import bedrock_converse
from passerelle.formats.aws_eventstream import EventStreamDecoder, EventStreamMessage, decode_all
from passerelle.formats.bedrock_converse_stream import (
    ConverseStreamDecoder,
    ConverseStreamEncoder,
    event_from_frame,
    frame_from_event,
)
from passerelle.providers.aws_sigv4 import AwsCredentials, sign_request
from passerelle.testing.fake_bedrock import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, FakeSettings
from passerelle.testing.server import serve_in_thread
from tests.formats import samples
from tests.formats.test_streams import check_canonical_contract

REGION = "eu-west-3"
MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
CREDENTIALS = AwsCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
WEATHER = ToolDefinition("get_weather", "Current weather for a city", samples.WEATHER_SCHEMA)
QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    settings = FakeSettings(region=REGION)
    with (
        serve_in_thread("bedrock", settings=settings) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def _reset(http: httpx.Client) -> None:
    http.delete("/_fake/faults").raise_for_status()


def signed(
    http: httpx.Client, path: str, raw: bytes, secret: str = TEST_SECRET_ACCESS_KEY
) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    credentials = AwsCredentials(TEST_ACCESS_KEY_ID, secret)
    signature = sign_request(
        "POST",
        str(http.base_url.join(path)),
        headers,
        raw,
        credentials,
        region=REGION,
        service="bedrock",
        now=datetime.now(UTC),
    )
    return headers | signature.headers


def post(http: httpx.Client, request: Request, *, stream: bool = False) -> httpx.Response:
    """The request as the gateway will send it: encoded, then signed for the model's path."""
    encoded = bedrock_converse.encode_request(request)
    raw = json.dumps(encoded.value).encode()
    path = bedrock_converse.request_path(request.model, stream=stream)
    return http.post(path, content=raw, headers=signed(http, path, raw))


def answer(reply: httpx.Response) -> Response:
    assert reply.status_code == 200, reply.text
    decoded = bedrock_converse.decode_response(
        reply.json(), model=MODEL, response_id=reply.headers["x-amzn-RequestId"]
    )
    assert decoded.losses == ()
    return decoded.value


def stream_events(reply: httpx.Response) -> list[StreamEvent]:
    """Frames decoded as they arrive and handed to the decoder as the gateway will: one event
    dict ``{":event-type" header: JSON payload}`` per frame."""
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = EventStreamDecoder()
    decoder = ConverseStreamDecoder(model=MODEL, response_id=reply.headers["x-amzn-RequestId"])
    out: list[StreamEvent] = []
    for chunk in reply.iter_bytes(chunk_size=7):
        for message in frames.feed(chunk):
            event_type = message.headers[":event-type"]
            assert message.message_type == "event" and isinstance(event_type, str)
            event = {event_type: json.loads(message.payload)}
            assert event == event_from_frame(message)
            out.extend(decoder.feed(event))
    out.extend(decoder.finish())
    assert decoder.losses == ()
    return out


def assemble(events: list[StreamEvent]) -> Response:
    assembler = ResponseAssembler()
    for event in events:
        assembler.feed(event)
    return assembler.response()


def first_turn(**fields: Any) -> Request:
    return Request(
        MODEL,
        (Message(Role.USER, (TextPart(QUESTION),)),),
        system=(TextPart("You are a weather assistant."),),
        tools=(WEATHER,),
        sampling=Sampling(max_tokens=2048),
        reasoning=ReasoningConfig(budget_tokens=1024),
        **fields,
    )


def without_call_ids(response: Response) -> list[Any]:
    return [replace(p, id="") if isinstance(p, ToolCallPart) else p for p in response.parts]


def test_tool_round_trip_keeps_the_thinking_signature(http: httpx.Client) -> None:
    request = first_turn()
    first = answer(post(http, request))
    assert first.stop_reason is StopReason.TOOL_USE and first.model == MODEL and first.id
    thinking, said, call = first.parts
    assert isinstance(thinking, ReasoningPart) and thinking.signature
    assert thinking.origin is Vendor.ANTHROPIC and QUESTION[:20] in thinking.text
    assert said == TextPart("I will call get_weather.")
    assert isinstance(call, ToolCallPart) and call.name == "get_weather"
    assert json.loads(call.arguments).keys() == {"city"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    history = (
        *request.messages,
        Message(Role.ASSISTANT, first.parts),
        Message(Role.USER, (ToolResultPart(call.id, (TextPart("sunny, 21°C"),)),)),
    )
    second = answer(post(http, replace(request, messages=history)))
    assert second.stop_reason is StopReason.END_TURN
    assert second.text() == "This is a fake reply using the tool results: sunny, 21°C"

    tampered = replace(thinking, signature=thinking.signature[:-4] + "AAAA")
    forged = (history[0], Message(Role.ASSISTANT, (tampered, said, call)), history[2])
    refused = post(http, replace(request, messages=forged))
    error = bedrock_converse.decode_error(
        refused.status_code,
        refused.content,
        exception=refused.headers[bedrock_converse.ERROR_TYPE_HEADER],
    )
    assert (error.status, error.type, error.code) == (
        400,
        ErrorType.INVALID_REQUEST,
        "ValidationException",
    )
    assert "signature" in error.message


def test_stream_says_what_the_answer_says(http: httpx.Client) -> None:
    request = first_turn()
    plain = answer(post(http, request))
    path = bedrock_converse.request_path(MODEL, stream=True)
    raw = json.dumps(bedrock_converse.encode_request(request).value).encode()
    with http.stream("POST", path, content=raw, headers=signed(http, path, raw)) as reply:
        events = stream_events(reply)
    check_canonical_contract(events)
    streamed = assemble(events)
    assert without_call_ids(streamed) == without_call_ids(plain)
    assert (streamed.stop_reason, streamed.usage) == (plain.stop_reason, plain.usage)

    # The same events, re-encoded for a Converse client and framed, read back the same.
    encoder = ConverseStreamEncoder()
    dicts = [d for event in events for d in encoder.feed(event)] + encoder.finish()
    frames = decode_all(b"".join(frame_from_event(d) for d in dicts))
    decoder = ConverseStreamDecoder(model=MODEL, response_id=streamed.id)
    again = [e for m in frames for e in decoder.feed(_event(m))] + decoder.finish()
    assert assemble(again) == streamed


def _event(message: EventStreamMessage) -> dict[str, Any]:
    event = event_from_frame(message)
    assert event is not None
    return event


def test_images_and_cache_points_reach_bedrock(http: httpx.Client) -> None:
    preamble = TextPart("A long shared preamble. " * 40, cache=CacheControl())
    image = ImagePart(Media(media_type="image/png", data=samples.PNG))
    request = Request(
        MODEL,
        (Message(Role.USER, (image, TextPart("This?"))),),
        system=(preamble,),
        sampling=Sampling(max_tokens=256),
    )
    first = answer(post(http, request))
    assert first.text() == "This is a fake reply to: This? (with 1 image)"
    assert first.usage.cache_write_tokens > 0 and first.usage.cached_input_tokens == 0
    second = answer(post(http, request))
    assert second.usage.cached_input_tokens == first.usage.cache_write_tokens
    assert second.usage.input_tokens == first.usage.input_tokens  # cached tokens are inside


def test_exceptions_are_recognised_by_name(http: httpx.Client) -> None:
    http.post("/_fake/faults", json={"faults": [{"status": 429}]}).raise_for_status()
    throttled = post(http, first_turn())
    error = bedrock_converse.decode_error(
        throttled.status_code,
        throttled.content,
        exception=throttled.headers[bedrock_converse.ERROR_TYPE_HEADER],
    )
    assert (error.status, error.type, error.code) == (
        429,
        ErrorType.RATE_LIMIT,
        "ThrottlingException",
    )

    assistant_first = Request(MODEL, (Message(Role.ASSISTANT, (TextPart("Hello"),)),))
    refused = post(http, assistant_first)
    error = bedrock_converse.decode_error(
        refused.status_code, refused.json(), exception=refused.headers["x-amzn-ErrorType"]
    )
    assert error.type is ErrorType.INVALID_REQUEST and "user message" in error.message

    path = bedrock_converse.request_path(MODEL)
    raw = json.dumps(bedrock_converse.encode_request(first_turn()).value).encode()
    forged = http.post(path, content=raw, headers=signed(http, path, raw, secret="wrong"))
    error = bedrock_converse.decode_error(
        forged.status_code, forged.json(), exception=forged.headers["x-amzn-ErrorType"]
    )
    assert (error.status, error.type, error.code) == (
        403,
        ErrorType.AUTHENTICATION,
        "InvalidSignatureException",
    )


def test_a_cut_stream_still_ends(http: httpx.Client) -> None:
    http.post(
        "/_fake/faults", json={"faults": [{"kind": "stream_cut", "after_chunks": 3}]}
    ).raise_for_status()
    path = bedrock_converse.request_path(MODEL, stream=True)
    raw = json.dumps(bedrock_converse.encode_request(first_turn()).value).encode()
    frames = EventStreamDecoder()
    decoder = ConverseStreamDecoder(model=MODEL)
    events: list[StreamEvent] = []
    with (
        http.stream("POST", path, content=raw, headers=signed(http, path, raw)) as reply,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for chunk in reply.iter_raw():
            for message in frames.feed(chunk):
                events.extend(decoder.feed(_event(message)))
    events.extend(decoder.finish())
    check_canonical_contract(events)
    cut = assemble(events)
    assert cut.stop_reason is StopReason.END_TURN and cut.usage.input_tokens == 0
    assert isinstance(cut.parts[0], ReasoningPart)
