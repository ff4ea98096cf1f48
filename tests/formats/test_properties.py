"""Property tests: canonical → format → canonical keeps everything the format can express.

Conversations are generated the way agents produce them (user turns with text and images,
assistant turns with text and parallel tool calls, tool results answering every call), with
tools, a tool choice and the sampling knobs each format has.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passerelle.core.canonical import (
    ImagePart,
    Media,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    Role,
    Sampling,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    ToolResultPart,
    Usage,
    Vendor,
)
from tests.formats.registry import FORMATS, NAMES
from tests.formats.test_requests import SAMPLING, conversation, system_text, tools

PROFILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOOL_NAMES = ["read_file", "run_shell", "search"]
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(st.sampled_from(["path", "cmd", "q", "n"]), json_values, max_size=3)
images = st.one_of(
    st.builds(lambda: ImagePart(Media(media_type="image/png", data="iVBORw0KGgo="))),
    st.builds(lambda: ImagePart(Media(url="https://example.com/cat.png"))),
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    messages: list[Message] = []
    pending: list[ToolCallPart] = []
    call_number = 0
    for _ in range(draw(st.integers(1, 4))):
        user: list[Part] = [ToolResultPart(c.id, (TextPart(draw(texts)),)) for c in pending]
        extras = draw(st.lists(st.one_of(texts.map(TextPart), images), max_size=2))
        if not user and not extras:
            extras = [TextPart(draw(texts))]
        messages.append(Message(Role.USER, tuple(user + extras)))
        assistant: list[Part] = []
        if draw(st.booleans()):
            assistant.append(TextPart(draw(texts)))
        pending = []
        for _ in range(draw(st.integers(0 if assistant else 1, 3))):
            call = ToolCallPart(
                f"call_{call_number}",
                draw(st.sampled_from(TOOL_NAMES)),
                orjson.dumps(draw(arguments)).decode(),
            )
            call_number += 1
            pending.append(call)
            assistant.append(call)
        messages.append(Message(Role.ASSISTANT, tuple(assistant)))
    results = [ToolResultPart(c.id, (TextPart(draw(texts)),)) for c in pending]
    messages.append(Message(Role.USER, tuple(results) or (TextPart(draw(texts)),)))
    return tuple(messages)


def sampling_for(name: str) -> st.SearchStrategy[Sampling]:
    allowed = SAMPLING[name]
    temperature = st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 2))

    def pick(field: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.none() | strategy if field in allowed else st.none()

    return st.builds(
        Sampling,
        max_tokens=pick("max_tokens", st.integers(1, 100_000)),
        temperature=pick("temperature", temperature),
        top_p=pick("top_p", temperature),
        top_k=pick("top_k", st.integers(1, 100)),
        stop=st.lists(texts, max_size=2).map(tuple) if "stop" in allowed else st.just(()),
        seed=pick("seed", st.integers(0, 2**31)),
        presence_penalty=pick("presence_penalty", temperature),
        frequency_penalty=pick("frequency_penalty", temperature),
    )


@st.composite
def requests(draw: st.DrawFn, name: str) -> Request:
    messages = draw(conversations())
    names = sorted(
        {p.name for m in messages for p in m.parts if isinstance(p, ToolCallPart)}
        | set(draw(st.lists(st.sampled_from(TOOL_NAMES), max_size=2)))
    )
    definitions = tuple(
        ToolDefinition(n, draw(st.none() | texts), {"type": "object", "properties": {}})
        for n in names
    )
    choice = None
    if definitions and draw(st.booleans()):
        mode = draw(st.sampled_from(list(ToolChoiceMode)))
        choice = ToolChoice(
            mode, draw(st.sampled_from(names)) if mode is ToolChoiceMode.TOOL else None
        )
    if name == "anthropic" and definitions and choice is None:
        choice = None
    system = tuple(TextPart(t) for t in draw(st.lists(texts, max_size=2)))
    if name == "openai_responses":
        system = (TextPart("\n\n".join(p.text for p in system)),) if system else ()
    return Request(
        model="some-model",
        messages=messages,
        system=system,
        tools=definitions,
        tool_choice=choice,
        sampling=draw(sampling_for(name)),
    )


def round_trip(name: str, request: Request) -> Request:
    fmt = FORMATS[name]
    body = fmt.encode_request(request).value
    fmt.validate_request(body)
    return fmt.decode_request(orjson.loads(orjson.dumps(body))).value


def check_request(name: str, request: Request) -> None:
    back = round_trip(name, request)
    assert conversation(back) == conversation(request)
    assert system_text(back) == system_text(request)
    assert tools(back) == tools(request)
    assert back.tool_choice == request.tool_choice
    expected = request.sampling
    if name == "anthropic" and expected.max_tokens is None:
        expected = replace(expected, max_tokens=8192)
    assert back.sampling == expected


@PROFILE
@given(requests("openai_chat"))
def test_openai_chat_request_round_trip(request: Request) -> None:
    check_request("openai_chat", request)


@PROFILE
@given(requests("openai_responses"))
def test_openai_responses_request_round_trip(request: Request) -> None:
    check_request("openai_responses", request)


@PROFILE
@given(requests("anthropic"))
def test_anthropic_request_round_trip(request: Request) -> None:
    check_request("anthropic", request)


@PROFILE
@given(requests("gemini"))
def test_gemini_request_round_trip(request: Request) -> None:
    check_request("gemini", request)


counts = st.integers(0, 100_000)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    parts: list[Part] = []
    if draw(st.booleans()):
        # Real signatures are base64 (Gemini clients read them as bytes).
        signature = base64.b64encode(draw(st.binary(min_size=1, max_size=24))).decode()
        origin = draw(st.sampled_from(list(Vendor)))
        parts.append(ReasoningPart(draw(texts), signature=signature, origin=origin))
    if draw(st.booleans()):
        parts.append(TextPart(draw(texts)))
    calls = draw(st.integers(0, 3))
    for i in range(calls):
        parts.append(
            ToolCallPart(
                f"toolu_{i}",
                draw(st.sampled_from(TOOL_NAMES)),
                orjson.dumps(draw(arguments)).decode(),
            )
        )
    stop = (
        StopReason.TOOL_USE
        if calls
        else draw(st.sampled_from([StopReason.END_TURN, StopReason.MAX_TOKENS]))
    )
    input_tokens, output_tokens = draw(counts), draw(counts)
    cached = draw(st.integers(0, input_tokens))
    written = draw(st.integers(0, input_tokens - cached))
    usage = Usage(input_tokens, output_tokens, cached, written, draw(st.integers(0, output_tokens)))
    return Response("resp_1", "model-1", tuple(parts), stop, usage)


@PROFILE
@given(responses())
def test_response_round_trip_in_every_format(response: Response) -> None:
    for name in NAMES:
        fmt = FORMATS[name]
        body = fmt.encode_response(response).value
        fmt.validate_response(body)
        back = fmt.decode_response(orjson.loads(orjson.dumps(body))).value
        assert back.text() == response.text(), name
        assert [p for p in back.parts if isinstance(p, ToolCallPart)] == [
            replace(p, arguments=orjson.dumps(orjson.loads(p.arguments)).decode())
            if name in ("anthropic", "gemini")
            else p
            for p in response.parts
            if isinstance(p, ToolCallPart)
        ], name
        usage = (
            replace(response.usage, cache_write_tokens=0) if name == "gemini" else response.usage
        )
        assert back.usage == usage, name
        assert back.stop_reason is response.stop_reason, name
        reasoning = [p.text for p in response.parts if isinstance(p, ReasoningPart)]
        got = [p.text for p in back.parts if isinstance(p, ReasoningPart) and p.text]
        assert got == ([] if name == "openai_chat" else reasoning), name
