"""The fake Anthropic upstream, over real HTTP, read by the official SDK and by raw httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from passerelle.formats.sse import SSEDecoder, event_data
from passerelle.testing._anthropic_model import sign
from passerelle.testing.fake_anthropic import FakeSettings, create_app, main
from passerelle.testing.server import serve_in_thread
from tests.testing._support import PNG_1X1, Control

TICKET_TOOL: Any = {
    "name": "get_ticket",
    "description": "Fetch a ticket",
    "input_schema": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
        "required": ["id", "priority"],
    },
}
SEARCH_TOOL: Any = {"name": "search", "input_schema": {"type": "object", "properties": {}}}
USER: Any = [{"role": "user", "content": "What is ticket 42 about?"}]
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(FakeSettings())) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture(scope="module")
def control(http: httpx.Client) -> Control:
    return Control(http)


@pytest.fixture(autouse=True)
def _reset(control: Control) -> None:
    control.reset()


@pytest.fixture(scope="module")
def sdk(url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=url, api_key="sk-ant-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def raw_events(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a raw streamed answer."""
    with http.stream("POST", "/v1/messages", json={**body, "stream": True}, headers=HEADERS) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        decoder = SSEDecoder()
        events = [event for chunk in r.iter_bytes() for event in decoder.feed(chunk)]
    pairs = []
    for event in events:
        first, _, _ = event.partition(b"\n")
        assert first.startswith(b"event: ")
        data = json.loads(event_data(event) or b"null")
        assert data["type"] == first[len(b"event: ") :].decode()  # the name matches the data
        pairs.append((data["type"], data))
    return pairs


# -- messages --------------------------------------------------------------------------------


def test_plain_message_is_labelled_fake(sdk: anthropic.Anthropic) -> None:
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=USER
    )
    message = raw.parse()
    assert raw.headers["x-fake-upstream"] == "anthropic"
    assert raw.headers["request-id"].startswith("req_fake")
    assert message.model == "fake-claude-sonnet-4-6" and message.id.startswith("msg_fake")
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "This is a fake reply to: What is ticket 42 about?"  # type: ignore[union-attr]
    usage = message.usage
    assert usage.input_tokens == 6 and usage.output_tokens == 13
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert usage.service_tier == "standard"


def test_streaming_with_the_sdk_helper(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "This is a fake reply to: What is ticket 42 about?"
    assert len(texts) > 2 and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 13 and final.usage.input_tokens == 6


def test_raw_event_order(http: httpx.Client) -> None:
    body = {"model": "m", "max_tokens": 64, "messages": USER}
    names = [name for name, _ in raw_events(http, body)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    pairs = raw_events(http, body)
    start = pairs[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    delta = pairs[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 13 and delta["usage"]["input_tokens"] == 6


def test_stop_sequences_and_max_tokens(sdk: anthropic.Anthropic) -> None:
    stopped = sdk.messages.create(model="m", max_tokens=64, messages=USER, stop_sequences=["reply"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "reply"
    assert stopped.content[0].text == "This is a fake "  # type: ignore[union-attr]
    short = sdk.messages.create(model="m", max_tokens=2, messages=USER)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 2


def test_count_tokens(sdk: anthropic.Anthropic) -> None:
    counted = sdk.messages.count_tokens(model="m", messages=USER, tools=[TICKET_TOOL])
    plain = sdk.messages.count_tokens(model="m", messages=USER)
    assert plain.input_tokens == 6 and counted.input_tokens > plain.input_tokens
    assert (
        counted.input_tokens
        == sdk.messages.create(
            model="m",
            max_tokens=10,
            messages=USER,
            tools=[TICKET_TOOL],
            tool_choice={"type": "none"},
        ).usage.input_tokens
    )


# -- tools -----------------------------------------------------------------------------------


def test_tool_use_round_trip(sdk: anthropic.Anthropic) -> None:
    messages: list[Any] = list(USER)
    first = sdk.messages.create(model="m", max_tokens=256, messages=messages, tools=[TICKET_TOOL])
    assert first.stop_reason == "tool_use"
    assert [block.type for block in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert use.type == "tool_use" and use.name == "get_ticket" and use.id.startswith("toolu_")
    assert use.input == {"id": "fake", "priority": "low"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Login broken"}],
        },
    ]
    final = sdk.messages.create(model="m", max_tokens=256, messages=messages, tools=[TICKET_TOOL])
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "This is a fake reply using the tool results: Login broken"  # type: ignore[union-attr]


def test_streamed_tool_use(sdk: anthropic.Anthropic, http: httpx.Client) -> None:
    with sdk.messages.stream(
        model="m", max_tokens=256, messages=USER, tools=[TICKET_TOOL]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"id": "fake", "priority": "low"}
    deltas = [
        data["delta"]
        for name, data in raw_events(
            http, {"model": "m", "max_tokens": 64, "messages": USER, "tools": [TICKET_TOOL]}
        )
        if name == "content_block_delta" and data["index"] == 1
    ]
    assert deltas[0] == {"type": "input_json_delta", "partial_json": ""}
    assert json.loads("".join(d["partial_json"] for d in deltas)) == {
        "id": "fake",
        "priority": "low",
    }


def test_tool_choice_and_parallel_use(sdk: anthropic.Anthropic) -> None:
    tools = [TICKET_TOOL, SEARCH_TOOL]
    ask: Any = [{"role": "user", "content": "Do these in parallel please"}]

    def blocks(**options: Any) -> list[str]:
        message = sdk.messages.create(
            model="m", max_tokens=64, messages=ask, tools=tools, **options
        )
        return [b.name if b.type == "tool_use" else b.type for b in message.content]

    assert blocks() == ["text", "get_ticket", "search"]
    assert blocks(tool_choice={"type": "auto", "disable_parallel_tool_use": True}) == [
        "text",
        "get_ticket",
    ]
    assert blocks(tool_choice={"type": "any"}) == ["get_ticket", "search"]
    assert blocks(tool_choice={"type": "tool", "name": "search"}) == ["search"]
    assert blocks(tool_choice={"type": "none"}) == ["text"]
    with pytest.raises(anthropic.BadRequestError, match="not found"):
        blocks(tool_choice={"type": "tool", "name": "missing"})


def test_tool_pairing_is_enforced(sdk: anthropic.Anthropic) -> None:
    orphan: Any = [
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        sdk.messages.create(model="m", max_tokens=64, messages=orphan)
    unanswered: Any = [
        *USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_y", "name": "get_ticket", "input": {}}],
        },
        {"role": "user", "content": "never mind"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        sdk.messages.create(model="m", max_tokens=64, messages=unanswered, tools=[TICKET_TOOL])


# -- thinking, images, caching ---------------------------------------------------------------


def test_thinking_blocks_and_their_signatures(sdk: anthropic.Anthropic, http: httpx.Client) -> None:
    message = sdk.messages.create(model="m", max_tokens=2048, messages=USER, thinking=THINKING)
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.signature == sign(thinking.thinking)
    assert message.content[1].type == "text"

    names = [
        data["delta"]["type"]
        for name, data in raw_events(
            http, {"model": "m", "max_tokens": 2048, "messages": USER, "thinking": THINKING}
        )
        if name == "content_block_delta" and data["index"] == 0
    ]
    assert set(names[:-1]) == {"thinking_delta"} and names[-1] == "signature_delta"

    tampered: Any = [
        *USER,
        {"role": "assistant", "content": [{**thinking.model_dump(), "thinking": "edited"}]},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        sdk.messages.create(model="m", max_tokens=2048, messages=tampered, thinking=THINKING)


def test_thinking_rules(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        sdk.messages.create(
            model="m",
            max_tokens=2048,
            messages=USER,
            thinking={"type": "enabled", "budget_tokens": 10},
        )
    with pytest.raises(anthropic.BadRequestError, match="must be greater than"):
        sdk.messages.create(model="m", max_tokens=1024, messages=USER, thinking=THINKING)
    with pytest.raises(anthropic.BadRequestError, match="forces tool use"):
        sdk.messages.create(
            model="m", max_tokens=2048, messages=USER, thinking=THINKING,
            tools=[TICKET_TOOL], tool_choice={"type": "any"},
        )  # fmt: skip
    # The turn whose tool use is answered must start with its thinking block.
    first = sdk.messages.create(
        model="m", max_tokens=2048, messages=USER, thinking=THINKING, tools=[TICKET_TOOL]
    )
    use = first.content[-1]
    assert use.type == "tool_use"
    without_thinking: Any = [
        *USER,
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in first.content[1:]],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}],
        },
    ]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        sdk.messages.create(
            model="m",
            max_tokens=2048,
            messages=without_thinking,
            thinking=THINKING,
            tools=[TICKET_TOOL],
        )
    with_thinking = [*without_thinking]
    with_thinking[1] = {
        "role": "assistant",
        "content": [b.model_dump(exclude_none=True) for b in first.content],
    }
    final = sdk.messages.create(
        model="m", max_tokens=2048, messages=with_thinking, thinking=THINKING, tools=[TICKET_TOOL]
    )
    assert final.stop_reason == "end_turn"


def test_images_are_accepted_and_checked(sdk: anthropic.Anthropic) -> None:
    image: Any = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1},
    }
    content: Any = [image, {"type": "text", "text": "What is this?"}]
    message = sdk.messages.create(
        model="m", max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    assert message.content[0].text == "This is a fake reply to: What is this? (with 1 image)"  # type: ignore[union-attr]
    assert message.usage.input_tokens == 1600 + 4
    wrong_type = {**image, "source": {**image["source"], "media_type": "image/jpeg"}}
    with pytest.raises(anthropic.BadRequestError, match="does not match the provided media type"):
        sdk.messages.create(
            model="m", max_tokens=64, messages=[{"role": "user", "content": [wrong_type]}]
        )
    unsupported = {**image, "source": {**image["source"], "media_type": "image/bmp"}}
    with pytest.raises(anthropic.BadRequestError, match="media_type"):
        sdk.messages.create(
            model="m", max_tokens=64, messages=[{"role": "user", "content": [unsupported]}]
        )
    url_image: Any = {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/a.png"},
    }
    assert sdk.messages.create(
        model="m", max_tokens=64, messages=[{"role": "user", "content": [url_image]}]
    ).content


def test_prompt_caching_writes_then_reads() -> None:
    system: Any = [
        {
            "type": "text",
            "text": "A long shared preamble. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    with (
        serve_in_thread(create_app(FakeSettings())) as url,
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client,
    ):
        first = client.messages.create(model="m", max_tokens=32, system=system, messages=USER)
        second = client.messages.create(model="m", max_tokens=32, system=system, messages=USER)
        hour = [{**system[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
        third = client.messages.create(model="m", max_tokens=32, system=hour, messages=USER)
    written = first.usage.cache_creation_input_tokens
    assert written == 240 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 240
    assert (
        second.usage.cache_read_input_tokens == 240
        and second.usage.cache_creation_input_tokens == 0
    )
    assert first.usage.input_tokens == second.usage.input_tokens == 6
    assert third.usage.cache_creation is not None
    assert third.usage.cache_creation.ephemeral_1h_input_tokens == 240  # a new prefix: written


# -- errors and authentication ---------------------------------------------------------------


def test_missing_key_and_version(http: httpx.Client) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": USER}
    no_key = http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    assert no_key.json()["type"] == "error" and no_key.json()["request_id"].startswith("req_")
    no_version = http.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"
    bearer = http.post(
        "/v1/messages",
        json=body,
        headers={"authorization": "Bearer oauth-token", "anthropic-version": "2023-06-01"},
    )
    assert bearer.status_code == 200  # OAuth clients send a bearer token instead
    beta = http.post("/v1/messages?beta=true", json=body, headers=HEADERS)
    assert beta.status_code == 200


def test_configured_key_must_match() -> None:
    with serve_in_thread(create_app(FakeSettings(api_key="right"))) as url:
        with anthropic.Anthropic(base_url=url, api_key="right", max_retries=0) as good:
            assert good.models.list().data
        with (
            anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0) as bad,
            pytest.raises(anthropic.AuthenticationError) as info,
        ):
            bad.messages.create(model="m", max_tokens=10, messages=USER)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": info.value.body["request_id"],  # type: ignore[index]
    }


def test_invalid_requests(sdk: anthropic.Anthropic, http: httpx.Client) -> None:
    cases: list[tuple[Any, str]] = [
        ({"model": "m", "messages": USER}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        ({"max_tokens": 5, "messages": USER}, "model: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "role"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "magic"}]}],
            },
            "does not match any of the expected tags",
        ),
    ]
    for body, message in cases:
        reply = http.post("/v1/messages", json=body, headers=HEADERS)
        assert reply.status_code == 400, body
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and message in error["message"]
    not_json = http.post("/v1/messages", content=b"{oops", headers=HEADERS)
    assert not_json.status_code == 400
    unknown = http.post("/v1/nothing", headers=HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    assert http.get("/v1/messages", headers=HEADERS).status_code == 405
    with pytest.raises(anthropic.NotFoundError):
        sdk.models.retrieve("nope")
    assert sdk.models.retrieve("claude-sonnet-4-6").display_name == "Fake claude-sonnet-4-6"


# -- faults ----------------------------------------------------------------------------------


def test_status_faults(sdk: anthropic.Anthropic, control: Control) -> None:
    control.faults({"status": 529}, {"status": 500}, {"status": 400})
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        sdk.messages.create(model="m", max_tokens=10, messages=USER)
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError) as internal:
        sdk.messages.create(model="m", max_tokens=10, messages=USER)
    assert internal.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.count_tokens(model="m", messages=USER)
    assert sdk.messages.create(model="m", max_tokens=10, messages=USER).content
    assert len(control.requests()) == 4


def test_rate_limit_fault(sdk: anthropic.Anthropic, url: str, control: Control) -> None:
    control.faults({"status": 429, "retry_after": 1})
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(model="m", max_tokens=10, messages=USER)
    headers = info.value.response.headers
    assert (
        headers["retry-after"] == "1" and headers["anthropic-ratelimit-requests-remaining"] == "0"
    )
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    control.faults({"status": 429, "retry_after": 1})
    started = time.monotonic()
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=1) as patient:
        assert patient.messages.create(model="m", max_tokens=10, messages=USER).content
    assert time.monotonic() - started >= 1.0


def test_faults_target_one_model(sdk: anthropic.Anthropic, control: Control) -> None:
    control.faults({"status": 529}, match_model="claude-opus-4-7")
    assert sdk.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER).content
    with pytest.raises(anthropic.OverloadedError):
        sdk.messages.create(model="claude-opus-4-7", max_tokens=10, messages=USER)


def test_timeout_disconnect_and_stream_cut(
    url: str, sdk: anthropic.Anthropic, control: Control
) -> None:
    control.faults({"kind": "timeout", "seconds": 1})
    with (
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=0.2) as hasty,
        pytest.raises(anthropic.APITimeoutError),
    ):
        hasty.messages.create(model="m", max_tokens=10, messages=USER)
    control.faults({"kind": "disconnect"})
    with pytest.raises(anthropic.APIConnectionError):
        sdk.messages.create(model="m", max_tokens=10, messages=USER)
    control.faults({"kind": "stream_cut", "after_chunks": 3})
    received = []
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        sdk.messages.stream(model="m", max_tokens=64, messages=USER) as stream,
    ):
        received.extend(event.type for event in stream)
    assert received == ["message_start", "content_block_start"]  # the ping is not surfaced
    control.faults({"kind": "stream_cut"})
    with pytest.raises(anthropic.APIConnectionError):
        sdk.messages.create(model="m", max_tokens=10, messages=USER)


def test_request_log_redacts_the_key(sdk: anthropic.Anthropic, control: Control) -> None:
    sdk.messages.create(model="m", max_tokens=10, messages=USER, metadata={"user_id": "u1"})
    (entry,) = control.requests()
    sent = entry["headers"]
    assert entry["path"] == "/v1/messages"
    # Depending on its version the SDK sends the key as x-api-key or as a bearer token.
    assert sent.get("x-api-key", sent.get("authorization")) == "***"
    assert entry["body"]["metadata"] == {"user_id": "u1"}
    assert "sk-ant-test" not in json.dumps(entry)


def test_latency_and_chunk_delay() -> None:
    settings = FakeSettings(latency_ms=150, chunk_delay_ms=30)
    with (
        serve_in_thread(create_app(settings)) as url,
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client,
    ):
        started = time.monotonic()
        client.messages.create(model="m", max_tokens=10, messages=USER)
        assert time.monotonic() - started >= 0.15
        with client.messages.stream(model="m", max_tokens=64, messages=USER) as stream:
            arrivals = [time.monotonic() for _ in stream]
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.5


def test_reply_words_pads_replies() -> None:
    with (
        serve_in_thread(create_app(FakeSettings(reply_words=40))) as url,
        anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client,
    ):
        message = client.messages.create(model="m", max_tokens=500, messages=USER)
    assert len(message.content[0].text.split()) == 40  # type: ignore[union-attr]


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--chunk-delay-ms" in capsys.readouterr().out
