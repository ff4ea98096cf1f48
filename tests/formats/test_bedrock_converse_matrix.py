"""Bedrock Converse in the cross-format matrix: requests, answers, streams, errors, properties.

The shared matrix tests tabulate their expectations for the formats in ``NAMES``; this module
runs the same checks for Converse against each of them, in both directions, with Converse's own
expectations: it carries Anthropic's sampling knobs (``top_k`` through
``additionalModelRequestFields``) and prompt-cache breakpoints (``cachePoint``), relays Claude's
reasoning state, and has no answer id nor reasoning token count. Its golden streams also run
through the shared stream tests (see ``registry``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import assume, given

from passerelle.core.canonical import (
    DocumentPart,
    ErrorInfo,
    ErrorType,
    ImagePart,
    Media,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    Role,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolChoiceMode,
    ToolResultPart,
    Usage,
    Vendor,
)
from passerelle.core.opaque import unseal
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartStart,
    PartStop,
    ReasoningDelta,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
)
from passerelle.formats import bedrock_converse, bedrock_converse_stream
from tests.formats import samples
from tests.formats.registry import (
    ALL_NAMES,
    CONVERSE,
    CONVERSE_REQUEST_ID,
    CONVERSE_STREAM_EXCEPTIONS,
    FORMATS,
    NAMES,
    decode_stream,
    encode_stream,
    golden_events,
    golden_format,
    history_request,
    wire_objects,
)
from tests.formats.test_errors import UPSTREAM_ERRORS, check_client_body
from tests.formats.test_properties import PROFILE, requests, responses
from tests.formats.test_requests import (
    SAMPLING,
    VENDORS,
    conversation,
    expected_conversation,
    system_text,
    tools,
)
from tests.formats.test_responses import EXPECTED_USAGE, calls, thoughts
from tests.formats.test_streams import (
    GOLDEN_FILES,
    assemble,
    check_canonical_contract,
    reasoning_text,
    tool_calls,
)

CONVERSE_SAMPLING = {"max_tokens", "temperature", "top_p", "top_k", "stop"}
CONVERSE_USAGE = Usage(1000, 150, 880, 20, 0)
# Formats whose clients keep prompt-cache breakpoints; the others report them as dropped.
CACHING = {"anthropic", CONVERSE}
# Formats that refuse sampling changes while Claude thinks: dropped, and said so.
THINKING_SAMPLING = {"anthropic", CONVERSE}


def sampling_of(name: str) -> set[str]:
    return CONVERSE_SAMPLING if name == CONVERSE else SAMPLING[name]


def vendor_of(name: str) -> str:
    return "anthropic" if name == CONVERSE else VENDORS[name]


REQUEST_PAIRS = [(source, CONVERSE) for source in ALL_NAMES] + [
    (CONVERSE, target) for target in NAMES
]


# -- requests -------------------------------------------------------------------------------------


def test_sample_is_valid_converse() -> None:
    FORMATS[CONVERSE].validate_request(samples.bedrock_converse_request())


def test_sample_decodes_to_the_story() -> None:
    decoded = bedrock_converse.decode_request(
        samples.bedrock_converse_request(), model="m", stream=True
    )
    assert decoded.losses == ()
    request = decoded.value
    assert system_text(request) == samples.SYSTEM
    assert conversation(request) == expected_conversation()
    assert tools(request) == [(n, d, s) for n, d, s in samples.TOOLS]
    assert request.stream is True and request.model == "m"
    assert request.reasoning is not None and request.reasoning.budget_tokens == 2048
    assert request.sampling.temperature == 0.5
    assert request.sampling.max_tokens == 4096
    assert request.sampling.stop == ("END",)
    assert request.metadata == {"user": "user-42"}
    assert request.system[0].cache is not None


@pytest.mark.parametrize(("source_name", "target_name"), REQUEST_PAIRS)
def test_request_translates(source_name: str, target_name: str) -> None:
    source, target = FORMATS[source_name], FORMATS[target_name]
    canonical = source.decode_request(samples.REQUESTS[source_name]()).value
    encoded = target.encode_request(canonical)
    target.validate_request(encoded.value)
    back = target.decode_request(orjson.loads(orjson.dumps(encoded.value))).value

    assert conversation(back) == conversation(canonical) == expected_conversation()
    assert system_text(back) == system_text(canonical)
    assert tools(back) == tools(canonical)
    assert back.tool_choice == canonical.tool_choice
    losses = set(encoded.loss_names)
    for field in sampling_of(source_name) & sampling_of(target_name):
        if target_name in THINKING_SAMPLING and field in ("temperature", "top_k"):
            assert getattr(back.sampling, field) is None
            assert (field in losses) is (getattr(canonical.sampling, field) is not None)
            continue
        assert getattr(back.sampling, field) == getattr(canonical.sampling, field), field
    assert back.reasoning is not None and not back.reasoning.disabled

    thinking = [
        p for m in canonical.messages for p in m.parts if isinstance(p, ReasoningPart) and p.text
    ]
    replayed = [
        p for m in back.messages for p in m.parts if isinstance(p, ReasoningPart) and p.opaque
    ]
    if vendor_of(source_name) == vendor_of(target_name):
        assert [(p.origin, p.signature, p.encrypted) for p in replayed] == [
            (p.origin, p.signature, p.encrypted)
            for m in canonical.messages
            for p in m.parts
            if isinstance(p, ReasoningPart) and p.opaque
        ]
    elif thinking:
        assert not replayed
        assert losses & {"reasoning", "anthropic.thinking", "openai.reasoning", "gemini.thought"}
    if source_name in CACHING:
        if target_name in CACHING:
            assert back.system[0].cache is not None
        else:
            assert "anthropic.cache_control" in losses
    dropped_stop = "stop" in sampling_of(source_name) and "stop" not in sampling_of(target_name)
    assert ("stop" in losses) is (dropped_stop and bool(canonical.sampling.stop))


@pytest.mark.parametrize(("source_name", "target_name"), REQUEST_PAIRS)
def test_request_survives_a_second_hop(source_name: str, target_name: str) -> None:
    source, target = FORMATS[source_name], FORMATS[target_name]
    first = source.decode_request(samples.REQUESTS[source_name]()).value
    there = target.decode_request(target.encode_request(first).value).value
    back_body = source.encode_request(there).value
    source.validate_request(back_body)
    back = source.decode_request(back_body).value
    assert conversation(back) == conversation(first)
    assert [m.role for m in back.messages if m.role is Role.SYSTEM] == []


def test_pdf_document_reaches_converse() -> None:
    pdf = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago="
    document = DocumentPart(Media(media_type="application/pdf", data=pdf), title="report.pdf")
    request = Request("m", (Message(Role.USER, (TextPart("Summarise this."), document)),))
    converse = FORMATS[CONVERSE]
    encoded = converse.encode_request(request)
    converse.validate_request(encoded.value)
    assert encoded.losses == ()
    block = encoded.value["messages"][0]["content"][1]["document"]
    assert block == {"format": "pdf", "name": "report", "source": {"bytes": pdf}}
    back = converse.decode_request(encoded.value).value.messages[0].parts[1]
    assert isinstance(back, DocumentPart)
    assert back.media == Media(media_type="application/pdf", data=pdf)


# -- answers --------------------------------------------------------------------------------------


def test_sample_is_a_valid_answer() -> None:
    FORMATS[CONVERSE].validate_response(samples.bedrock_converse_response())


def test_answer_decodes() -> None:
    response = FORMATS[CONVERSE].decode_response(samples.bedrock_converse_response()).value
    assert response.text() == samples.SAID
    assert calls(response) == [("get_weather", samples.PARIS), ("get_weather", samples.LYON)]
    assert response.stop_reason is StopReason.TOOL_USE
    assert response.usage == CONVERSE_USAGE
    assert thoughts(response) == "Paris first."
    assert response.id == CONVERSE_REQUEST_ID and response.model


RESPONSE_PAIRS = [(source, CONVERSE) for source in ALL_NAMES] + [
    (CONVERSE, target) for target in NAMES
]


@pytest.mark.parametrize(("source_name", "target_name"), RESPONSE_PAIRS)
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
    if target_name == CONVERSE:
        usage = replace(usage, reasoning_tokens=0)
    assert back.usage == usage
    expected_usage = CONVERSE_USAGE if source_name == CONVERSE else EXPECTED_USAGE[source_name]
    assert canonical.usage == expected_usage
    if target_name == "openai_chat":
        assert ("reasoning" in encoded.loss_names) is bool(thoughts(canonical))
    else:
        assert thoughts(back) == thoughts(canonical)
    # Converse answers carry no id: the gateway passes the request id it got instead.
    assert back.id == (CONVERSE_REQUEST_ID if target_name == CONVERSE else canonical.id)


STOPS = [
    (StopReason.END_TURN, "end_turn", StopReason.END_TURN),
    (StopReason.MAX_TOKENS, "max_tokens", StopReason.MAX_TOKENS),
    (StopReason.STOP_SEQUENCE, "stop_sequence", StopReason.STOP_SEQUENCE),
    (StopReason.TOOL_USE, "tool_use", StopReason.TOOL_USE),
    (StopReason.CONTENT_FILTER, "content_filtered", StopReason.CONTENT_FILTER),
    (StopReason.REFUSAL, "content_filtered", StopReason.CONTENT_FILTER),
    (StopReason.CONTEXT_WINDOW, "model_context_window_exceeded", StopReason.CONTEXT_WINDOW),
    (StopReason.PAUSE_TURN, "end_turn", StopReason.END_TURN),
]


@pytest.mark.parametrize(("stop", "wire", "back"), STOPS)
def test_stop_reasons(stop: StopReason, wire: str, back: StopReason) -> None:
    parts: tuple[Part, ...] = (TextPart("x"),)
    if stop is StopReason.TOOL_USE:
        parts = (ToolCallPart("call_1", "f", "{}"),)
    body = bedrock_converse.encode_response(Response("r", "m", parts, stop, Usage(3, 4))).value
    assert body["stopReason"] == wire
    assert bedrock_converse.decode_response(body).value.stop_reason is back


@pytest.mark.parametrize(
    ("wire", "stop"),
    [
        ("guardrail_intervened", StopReason.CONTENT_FILTER),
        ("malformed_model_output", StopReason.ERROR),
        ("malformed_tool_use", StopReason.ERROR),
    ],
)
def test_stop_reasons_only_converse_has(wire: str, stop: StopReason) -> None:
    body = samples.bedrock_converse_response() | {"stopReason": wire}
    assert bedrock_converse.decode_response(body).value.stop_reason is stop


# -- streams --------------------------------------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_golden_stream_reaches_a_converse_client(golden: str) -> None:
    source, target = FORMATS[golden_format(golden)], FORMATS[CONVERSE]
    canonical = decode_stream(source, list(golden_events(golden)))
    expected = assemble(canonical)
    wire = encode_stream(target, canonical)
    target.validate_stream(wire)
    back = decode_stream(target, wire_objects(wire))
    check_canonical_contract(back)
    rebuilt = assemble(back)
    assert rebuilt.text() == expected.text()
    assert tool_calls(rebuilt) == tool_calls(expected)
    assert rebuilt.usage == replace(expected.usage, reasoning_tokens=0)
    assert reasoning_text(rebuilt) == reasoning_text(expected)
    assert rebuilt.stop_reason == expected.stop_reason


@pytest.mark.parametrize("golden", GOLDEN_FILES)
def test_foreign_reasoning_state_survives_a_converse_client(golden: str) -> None:
    source_name = golden_format(golden)
    expected = assemble(decode_stream(FORMATS[source_name], list(golden_events(golden))))
    converse = FORMATS[CONVERSE]
    shown = converse.encode_response(expected).value
    states = [
        (p.origin, p.signature, p.encrypted)
        for p in expected.parts
        if isinstance(p, ReasoningPart) and p.opaque
    ]
    history = converse.decode_request(history_request(CONVERSE, shown)).value
    back = [
        (p.origin, p.signature, p.encrypted)
        for message in history.messages
        for p in message.parts
        if isinstance(p, ReasoningPart) and p.opaque
    ]
    assert back == states


def test_deltas_are_forwarded_as_they_arrive() -> None:
    encoder = bedrock_converse_stream.ConverseStreamEncoder()
    assert encoder.feed(MessageStart("r", "m")) == [{"messageStart": {"role": "assistant"}}]
    start = encoder.feed(PartStart(0, ToolCallPart("call_1", "f", "")))
    assert start == [
        {
            "contentBlockStart": {
                "contentBlockIndex": 0,
                "start": {"toolUse": {"toolUseId": "call_1", "name": "f"}},
            }
        }
    ]
    delta = encoder.feed(ToolArgsDelta(0, '{"a": '))
    assert delta == [
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a": '}}}}
    ]
    encoder.feed(ToolArgsDelta(0, "1}"))
    assert encoder.feed(PartStop(0)) == [{"contentBlockStop": {"contentBlockIndex": 0}}]
    assert encoder.feed(PartStart(1, TextPart(""))) == []  # text opens with its first delta
    out = encoder.feed(TextDelta(1, "hello"))
    assert out == [{"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"text": "hello"}}}]


def test_interleaved_tool_calls_reach_converse_one_block_at_a_time() -> None:
    canonical = decode_stream(
        FORMATS["openai_chat"], list(golden_events("openai_chat_interleaved.sse"))
    )
    wire = encode_stream(FORMATS[CONVERSE], canonical)
    FORMATS[CONVERSE].validate_stream(wire)
    blocks: dict[int, str] = {}
    for event in wire:
        assert isinstance(event.data, dict)
        payload = event.data.get("contentBlockDelta")
        if payload is not None and "toolUse" in payload["delta"]:
            index = payload["contentBlockIndex"]
            blocks[index] = blocks.get(index, "") + payload["delta"]["toolUse"]["input"]
    assert [orjson.loads(v) for v in blocks.values()] == [
        {"path": "src/main.py"},
        {"path": "README.md"},
    ]


# -- errors ---------------------------------------------------------------------------------------

NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CONVERSE_ERRORS = [
    (429, "ThrottlingException", "Too many requests, please wait.", ErrorType.RATE_LIMIT),
    (400, "ValidationException", "messages.0.content.0: blank text", ErrorType.INVALID_REQUEST),
    (403, "AccessDeniedException", "You don't have access to the model.", ErrorType.PERMISSION),
    (404, "ResourceNotFoundException", "Could not resolve the model.", ErrorType.NOT_FOUND),
    (503, "ServiceUnavailableException", "Bedrock is unavailable.", ErrorType.OVERLOADED),
    (500, "InternalServerException", "Unexpected error.", ErrorType.SERVER),
]


@pytest.mark.parametrize("target", NAMES)
@pytest.mark.parametrize(("status", "name", "message", "error_type"), CONVERSE_ERRORS)
def test_converse_error_reaches_client_in_its_shape(
    status: int, name: str, message: str, error_type: ErrorType, target: str
) -> None:
    error = FORMATS[CONVERSE].decode_error(status, {"message": message})
    assert error.type is error_type and error.status == status and error.message == message
    named = bedrock_converse.decode_error(
        status, {"message": message}, exception=name + ":" + NAMESPACE
    )
    assert named.type is error_type and named.code == name
    client_body = FORMATS[target].encode_error(named)
    check_client_body(target, client_body, named)
    assert FORMATS[target].decode_error(named.status, client_body).type is error_type


CASES = [(name, *case) for name, cases in UPSTREAM_ERRORS.items() for case in cases]


@pytest.mark.parametrize(("source", "status", "body", "error_type"), CASES)
def test_upstream_error_reaches_a_converse_client(
    source: str, status: int, body: dict[str, Any], error_type: ErrorType
) -> None:
    error = FORMATS[source].decode_error(status, body)
    client_body = bedrock_converse.encode_error(error)
    assert client_body == {"message": body["error"]["message"]}
    name = bedrock_converse.exception_name(error)
    back = bedrock_converse.decode_error(error.status, client_body, exception=name)
    assert back.type is error_type and back.message == error.message


def test_unreadable_error_body_still_gives_an_error() -> None:
    error = FORMATS[CONVERSE].decode_error(502, b"<html>Bad gateway</html>")
    assert error.status == 502 and error.type is ErrorType.SERVER and error.message


@pytest.mark.parametrize("target", NAMES)
def test_converse_stream_exception_reaches_every_client(target: str) -> None:
    events: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}},
        {"throttlingException": {"message": "Too many tokens, please wait."}},
    ]
    canonical = decode_stream(FORMATS[CONVERSE], events)
    errors = [e for e in canonical if isinstance(e, StreamError)]
    assert len(errors) == 1 and errors[0].error.type is ErrorType.RATE_LIMIT
    assert errors[0].error.status == 429 and errors[0].error.code == "ThrottlingException"
    out = encode_stream(FORMATS[target], canonical)
    assert b"Too many tokens, please wait." in out[-1].encode()


@pytest.mark.parametrize("error_type", list(ErrorType))
def test_stream_error_ends_a_converse_stream(error_type: ErrorType) -> None:
    error = ErrorInfo(500, error_type, "Upstream went away")
    encoder = FORMATS[CONVERSE].stream_encoder()
    out = [
        w
        for e in (MessageStart("m1", "model"), PartStart(0, TextPart("")), TextDelta(0, "partial"))
        for w in encoder.feed(e)
    ]
    out.extend(encoder.feed(StreamError(error)))
    assert encoder.finish() == []
    FORMATS[CONVERSE].validate_stream(out)
    last = out[-1].data
    assert isinstance(last, dict)
    ((name, payload),) = last.items()
    assert name in CONVERSE_STREAM_EXCEPTIONS and payload == {"message": "Upstream went away"}
    back = decode_stream(FORMATS[CONVERSE], wire_objects(out))
    errors = [e for e in back if isinstance(e, StreamError)]
    assert len(errors) == 1 and errors[0].error.message == "Upstream went away"


# -- properties -----------------------------------------------------------------------------------


def _said(part: Part) -> Part | None:
    """What of a part Converse carries: blank text is refused, images only as bytes."""
    if isinstance(part, TextPart):
        return part if part.text.strip() else None
    if isinstance(part, ImagePart):
        return part if part.media.data is not None else None
    if isinstance(part, ToolResultPart):
        kept = tuple(c for c in part.content if not isinstance(c, TextPart) or c.text.strip())
        return replace(part, content=kept)
    return part


def expressible(request: Request) -> Request:
    messages = tuple(
        Message(m.role, tuple(p for p in map(_said, m.parts) if p is not None))
        for m in request.messages
    )
    system = tuple(p for p in request.system if p.text.strip())
    return replace(request, messages=messages, system=system)


@PROFILE
@given(requests("anthropic"))
def test_converse_request_round_trip(request: Request) -> None:
    expected = expressible(request)
    said = [m for m in expected.messages if m.parts]
    assume(said[0].role is Role.USER)  # Converse refuses a conversation opened by the assistant
    fmt = FORMATS[CONVERSE]
    encoded = fmt.encode_request(request)
    fmt.validate_request(encoded.value)
    back = fmt.decode_request(orjson.loads(orjson.dumps(encoded.value))).value
    assert conversation(back) == conversation(expected)
    assert system_text(back) == system_text(expected)
    choice = request.tool_choice
    if choice is not None and choice.mode is ToolChoiceMode.NONE:
        uses_tools = any(
            isinstance(p, ToolCallPart | ToolResultPart) for m in back.messages for p in m.parts
        )
        assert tools(back) == (tools(request) if uses_tools else [])
        assert back.tool_choice is None
        assert ("tool_choice" in encoded.loss_names) is uses_tools
    else:
        assert tools(back) == tools(request)
        assert back.tool_choice == choice
    assert back.sampling == request.sampling
    images_by_url = any(
        isinstance(p, ImagePart) and p.media.url is not None
        for m in request.messages
        for p in m.parts
    )
    assert ("image.url" in encoded.loss_names) is images_by_url


@PROFILE
@given(responses())
def test_converse_response_round_trip(response: Response) -> None:
    fmt = FORMATS[CONVERSE]
    body = fmt.encode_response(response).value
    fmt.validate_response(body)
    back = fmt.decode_response(orjson.loads(orjson.dumps(body))).value
    assert back.text() == response.text()
    assert [p for p in back.parts if isinstance(p, ToolCallPart)] == [
        replace(p, arguments=orjson.dumps(orjson.loads(p.arguments)).decode())
        for p in response.parts
        if isinstance(p, ToolCallPart)
    ]
    assert back.usage == replace(response.usage, reasoning_tokens=0)
    assert back.stop_reason is response.stop_reason
    reasoning = [p.text for p in response.parts if isinstance(p, ReasoningPart)]
    assert [p.text for p in back.parts if isinstance(p, ReasoningPart) and p.text] == reasoning


def halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


def streamed(response: Response) -> list[StreamEvent]:
    """The events an upstream stream of this answer decodes to, each string in two deltas."""
    events: list[StreamEvent] = [MessageStart(response.id, response.model)]
    for i, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            events.append(PartStart(i, TextPart("")))
            events.extend(TextDelta(i, piece) for piece in halves(part.text))
        elif isinstance(part, ToolCallPart):
            events.append(PartStart(i, replace(part, arguments="")))
            events.extend(ToolArgsDelta(i, piece) for piece in halves(part.arguments))
        elif isinstance(part, ReasoningPart):
            events.append(PartStart(i, replace(part, text="", signature=None)))
            events.extend(ReasoningDelta(i, piece) for piece in halves(part.text))
            events.append(SignatureDelta(i, signature=part.signature))
        events.append(PartStop(i))
    events.append(MessageDelta(response.stop_reason, usage=response.usage))
    events.append(MessageStop())
    return events


@PROFILE
@given(responses())
def test_converse_stream_round_trip(response: Response) -> None:
    fmt = FORMATS[CONVERSE]
    wire = encode_stream(fmt, streamed(response))
    fmt.validate_stream(wire)
    events = decode_stream(fmt, wire_objects(wire))
    check_canonical_contract(events)
    back = assemble(events)
    assert back.text() == response.text()
    assert [p for p in back.parts if isinstance(p, ToolCallPart)] == [
        p for p in response.parts if isinstance(p, ToolCallPart)
    ]
    assert back.usage == replace(response.usage, reasoning_tokens=0)
    assert back.stop_reason is response.stop_reason
    sent = [p for p in response.parts if isinstance(p, ReasoningPart)]
    got = [p for p in back.parts if isinstance(p, ReasoningPart)]
    assert [p.text for p in got] == [p.text for p in sent]
    for before, after in zip(sent, got, strict=True):
        assert after.signature is not None
        state = after if before.origin is Vendor.ANTHROPIC else unseal(after.signature)
        assert state is not None
        assert (state.origin, state.signature) == (before.origin, before.signature)
