from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from passerelle.core.canonical import (
    ErrorInfo,
    ErrorType,
    ReasoningPart,
    StopReason,
    TextPart,
    ToolCallPart,
    Usage,
)
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartSequencer,
    PartStart,
    PartStop,
    ReasoningDelta,
    ResponseAssembler,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
)


def run(events: list[StreamEvent]) -> list[StreamEvent]:
    sequencer = PartSequencer()
    return [out for event in events for out in sequencer.feed(event)]


def assert_sequential(events: list[StreamEvent]) -> None:
    open_index: int | None = None
    next_index = 0
    for event in events:
        if isinstance(event, PartStart):
            assert open_index is None and event.index == next_index
            open_index, next_index = event.index, next_index + 1
        elif isinstance(event, PartStop):
            assert event.index == open_index
            open_index = None
        elif isinstance(event, TextDelta | ToolArgsDelta | ReasoningDelta | SignatureDelta):
            assert event.index == open_index
    assert open_index is None


def test_sequential_stream_passes_through_unchanged() -> None:
    events: list[StreamEvent] = [
        MessageStart("m", "x"),
        PartStart(0, TextPart("")),
        TextDelta(0, "a"),
        PartStop(0),
        PartStart(1, ToolCallPart("c", "f", "")),
        ToolArgsDelta(1, "{}"),
        PartStop(1),
        MessageDelta(StopReason.TOOL_USE),
        MessageStop(),
    ]
    assert run(events) == events


def test_interleaved_tool_calls_are_serialised() -> None:
    events: list[StreamEvent] = [
        MessageStart("m", "x"),
        PartStart(0, ToolCallPart("a", "f", "")),
        ToolArgsDelta(0, '{"x":'),
        PartStart(1, ToolCallPart("b", "f", "")),
        ToolArgsDelta(1, '{"y":'),
        ToolArgsDelta(0, "1}"),
        ToolArgsDelta(1, "2}"),
        MessageDelta(StopReason.TOOL_USE),
        MessageStop(),
    ]
    out = run(events)
    assert_sequential(out)
    assert out[1:4] == [
        PartStart(0, ToolCallPart("a", "f", "")),
        ToolArgsDelta(0, '{"x":'),
        ToolArgsDelta(0, "1}"),
    ]
    assert [e for e in out if isinstance(e, ToolArgsDelta) and e.index == 1] == [
        ToolArgsDelta(1, '{"y":'),
        ToolArgsDelta(1, "2}"),
    ]
    assert isinstance(out[-1], MessageStop)


def test_waiting_part_is_released_when_the_open_one_stops() -> None:
    out = run(
        [
            PartStart(5, TextPart("")),
            PartStart(7, ReasoningPart()),
            ReasoningDelta(7, "think"),
            PartStop(7),
            TextDelta(5, "hi"),
            PartStop(5),
        ]
    )
    assert out == [
        PartStart(0, TextPart("")),
        TextDelta(0, "hi"),
        PartStop(0),
        PartStart(1, ReasoningPart()),
        ReasoningDelta(1, "think"),
        PartStop(1),
    ]


def test_forgotten_starts_and_stops_are_supplied() -> None:
    out = run(
        [
            TextDelta(3, "a"),
            ToolArgsDelta(9, "{}"),
            StreamError(ErrorInfo(500, ErrorType.SERVER, "x")),
        ]
    )
    assert out[:3] == [PartStart(0, TextPart("")), TextDelta(0, "a"), PartStop(0)]
    assert isinstance(out[-1], StreamError)


events_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["text", "args", "stop"]), st.text(max_size=3)),
    max_size=30,
)


@given(events_strategy)
def test_any_interleaving_comes_out_sequential_and_complete(
    steps: list[tuple[int, str, str]],
) -> None:
    events: list[StreamEvent] = [MessageStart("m", "x")]
    started: set[int] = set()
    stopped: set[int] = set()
    expected: dict[int, str] = {}
    for index, action, text in steps:
        if index in stopped:
            continue
        if index not in started:
            started.add(index)
            events.append(PartStart(index, ToolCallPart(f"c{index}", "f", "")))
            expected[index] = ""
        if action == "stop":
            stopped.add(index)
            events.append(PartStop(index))
        else:
            events.append(ToolArgsDelta(index, text))
            expected[index] += text
    events += [MessageDelta(StopReason.TOOL_USE), MessageStop()]
    out = run(events)
    assert_sequential(out)
    assembler = ResponseAssembler()
    for event in out:
        assembler.feed(event)
    got = {p.id: p.arguments for p in assembler.response().parts if isinstance(p, ToolCallPart)}
    assert got == {f"c{i}": (v or "{}") for i, v in expected.items()}


def test_assembler_builds_the_response() -> None:
    assembler = ResponseAssembler()
    for event in [
        MessageStart("msg_1", "model", Usage(10, 0), created=7),
        PartStart(0, ReasoningPart(origin=None)),
        ReasoningDelta(0, "th"),
        ReasoningDelta(0, "ink"),
        SignatureDelta(0, signature="s1"),
        SignatureDelta(0, signature="s2"),
        PartStop(0),
        PartStart(1, TextPart("")),
        TextDelta(1, "Hello"),
        PartStop(1),
        MessageDelta(StopReason.MAX_TOKENS, usage=Usage(10, 20)),
        MessageStop(),
    ]:
        assembler.feed(event)
    response = assembler.response()
    assert response.id == "msg_1" and response.created == 7
    assert response.parts == (ReasoningPart("think", signature="s1s2"), TextPart("Hello"))
    assert response.stop_reason is StopReason.MAX_TOKENS
    assert response.usage == Usage(10, 20)
