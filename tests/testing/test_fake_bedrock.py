"""The fake Bedrock runtime: SigV4 checks, InvokeModel and Converse, plain and streamed.

Requests are signed with Passerelle's own signer (checked against AWS's published vectors in
tests/providers). Streams are decoded with Passerelle's event-stream decoder, and, for
InvokeModel, handed to the official Anthropic SDK through a small adapter: boto3 is not installed,
and the SDK's own Bedrock stream decoder needs it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import anthropic
import httpx
import pytest
from anthropic._streaming import ServerSentEvent

from passerelle.formats.aws_eventstream import EventStreamDecoder, EventStreamMessage, decode_all
from passerelle.providers.aws_sigv4 import AwsCredentials
from passerelle.testing._anthropic_model import sign
from passerelle.testing.fake_bedrock import (
    TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
    FakeSettings,
    create_app,
    main,
)
from passerelle.testing.server import serve_in_thread
from tests.testing._support import PNG_1X1, Control, signed_headers, signed_post

MODEL = "anthropic.claude-sonnet-4-6-v1:0"
INVOKE = f"/model/{quote(MODEL, safe='')}/invoke"
STREAM = f"/model/{quote(MODEL, safe='')}/invoke-with-response-stream"
CONVERSE = f"/model/{quote(MODEL, safe='')}/converse"
CONVERSE_STREAM = f"/model/{quote(MODEL, safe='')}/converse-stream"
CREDENTIALS = AwsCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
PROMPT = "What is ticket 42 about?"
BODY: Any = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": PROMPT}],
}
TICKET_SPEC: Any = {
    "toolSpec": {
        "name": "get_ticket",
        "description": "Fetch a ticket",
        "inputSchema": {
            "json": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
        },
    }
}
CONVERSE_USER: Any = [{"role": "user", "content": [{"text": PROMPT}]}]
API_KEY = "bedrock-api-key-for-tests"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(FakeSettings(api_key=API_KEY))) as base_url:
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


def post(http: httpx.Client, path: str, body: Any, **options: Any) -> httpx.Response:
    return signed_post(http, path, body, CREDENTIALS, **options)


def events(reply: httpx.Response) -> list[EventStreamMessage]:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.amazon.eventstream"
    return decode_all(reply.content)


def anthropic_events(messages: list[EventStreamMessage]) -> list[dict[str, Any]]:
    decoded = []
    for message in messages:
        assert message.headers == {
            ":event-type": "chunk",
            ":content-type": "application/json",
            ":message-type": "event",
        }
        payload = json.loads(message.payload)
        assert set(payload) == {"bytes", "p"}
        decoded.append(json.loads(base64.b64decode(payload["bytes"])))
    return decoded


class _EventStreamAsSSE:
    """Hands the SDK's stream machinery the Anthropic events carried in Bedrock's frames."""

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[ServerSentEvent]:
        decoder = EventStreamDecoder()
        for chunk in iterator:
            for message in decoder.feed(chunk):
                yield _as_sse(message)

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        decoder = EventStreamDecoder()
        async for chunk in iterator:
            for message in decoder.feed(chunk):
                yield _as_sse(message)


def _as_sse(message: EventStreamMessage) -> ServerSentEvent:
    payload = json.loads(message.payload)
    if message.message_type != "event":
        error = {"type": message.exception_type, "message": payload.get("message")}
        return ServerSentEvent(event="error", data=json.dumps({"type": "error", "error": error}))
    data = base64.b64decode(payload["bytes"]).decode()
    return ServerSentEvent(event=json.loads(data)["type"], data=data)


class _DecodingBedrock(anthropic.AnthropicBedrock):
    def _make_sse_decoder(self) -> Any:
        return _EventStreamAsSSE()


@pytest.fixture(scope="module")
def sdk(url: str) -> Iterator[anthropic.AnthropicBedrock]:
    with _DecodingBedrock(
        api_key=API_KEY,
        aws_region="us-east-1",
        base_url=url,
        max_retries=0,
        _strict_response_validation=True,
    ) as client:
        yield client


# -- InvokeModel -----------------------------------------------------------------------------


def test_invoke_is_labelled_fake(http: httpx.Client) -> None:
    reply = post(http, INVOKE, BODY)
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert message["model"] == f"fake-{MODEL}" and message["id"].startswith("msg_bdrk_fake")
    assert message["content"] == [{"type": "text", "text": f"This is a fake reply to: {PROMPT}"}]
    assert message["usage"]["input_tokens"] == 6 and "service_tier" not in message["usage"]
    headers = reply.headers
    assert headers["x-fake-upstream"] == "bedrock" and headers["x-amzn-requestid"]
    assert headers["x-amzn-bedrock-input-token-count"] == "6"
    assert headers["x-amzn-bedrock-output-token-count"] == "13"


def test_invoke_stream_frames(http: httpx.Client) -> None:
    reply = post(http, STREAM, BODY)
    assert reply.headers["x-amzn-bedrock-content-type"] == "application/json"
    decoded = anthropic_events(events(reply))
    types = [event["type"] for event in decoded]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "ping" not in types
    text = "".join(e["delta"]["text"] for e in decoded if e["type"] == "content_block_delta")
    assert text == f"This is a fake reply to: {PROMPT}"
    metrics = decoded[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == 6 and metrics["outputTokenCount"] == 13
    # Fed one byte at a time, the decoder yields the same messages.
    decoder = EventStreamDecoder()
    again = [m for i in range(len(reply.content)) for m in decoder.feed(reply.content[i : i + 1])]
    assert len(again) == len(decoded)


def test_the_sdk_reads_invoke_and_its_stream(sdk: anthropic.AnthropicBedrock) -> None:
    user: Any = [{"role": "user", "content": PROMPT}]
    message = sdk.messages.create(model=MODEL, max_tokens=64, messages=user)
    assert message.content[0].text == f"This is a fake reply to: {PROMPT}"  # type: ignore[union-attr]
    tools: Any = [
        {"name": "get_ticket", "input_schema": TICKET_SPEC["toolSpec"]["inputSchema"]["json"]}
    ]
    with sdk.messages.stream(
        model=MODEL,
        max_tokens=2048,
        messages=user,
        tools=tools,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.signature == sign(thinking.thinking)
    assert final.content[2].input == {"id": "fake"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_invoke_validation(http: httpx.Client) -> None:
    cases = [
        (
            {k: v for k, v in BODY.items() if k != "anthropic_version"},
            "required key [anthropic_version]",
        ),
        ({k: v for k, v in BODY.items() if k != "max_tokens"}, "required key [max_tokens]"),
        ({**BODY, "model": MODEL}, "extraneous key [model] is not permitted"),
        ({**BODY, "anthropic_version": "vertex-2023-10-16"}, "anthropic_version"),
        ({**BODY, "messages": [{"role": "robot", "content": "x"}]}, "role"),
    ]
    for body, message in cases:
        reply = post(http, INVOKE, body)
        assert reply.status_code == 400, body
        assert reply.headers["x-amzn-errortype"].startswith("ValidationException:")
        assert message in reply.json()["message"]


def test_images_through_invoke(http: httpx.Client) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1},
    }
    body = {
        **BODY,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": "This?"}]}],
    }
    reply = post(http, INVOKE, body)
    assert reply.json()["content"][0]["text"] == "This is a fake reply to: This? (with 1 image)"


# -- Converse --------------------------------------------------------------------------------


def test_converse(http: httpx.Client) -> None:
    reply = post(http, CONVERSE, {"messages": CONVERSE_USER, "inferenceConfig": {"maxTokens": 64}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": f"This is a fake reply to: {PROMPT}"}],
    }
    assert body["stopReason"] == "end_turn"
    assert body["usage"] == {
        "inputTokens": 6,
        "outputTokens": 13,
        "totalTokens": 19,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 0,
    }
    assert isinstance(body["metrics"]["latencyMs"], int)


def test_converse_tool_round_trip_and_stream(http: httpx.Client) -> None:
    config = {"tools": [TICKET_SPEC]}
    first = post(http, CONVERSE, {"messages": CONVERSE_USER, "toolConfig": config}).json()
    assert first["stopReason"] == "tool_use"
    use = first["output"]["message"]["content"][-1]["toolUse"]
    assert use["name"] == "get_ticket" and use["input"] == {"id": "fake"}
    history = [
        *CONVERSE_USER,
        first["output"]["message"],
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": use["toolUseId"],
                        "content": [{"json": {"state": "open"}}],
                    }
                }
            ],
        },
    ]
    final = post(http, CONVERSE, {"messages": history, "toolConfig": config}).json()
    assert final["output"]["message"]["content"] == [
        {"text": 'This is a fake reply using the tool results: {"state":"open"}'}
    ]
    missing_config = post(http, CONVERSE, {"messages": history})
    assert missing_config.status_code == 400
    assert "toolConfig field must be defined" in missing_config.json()["message"]

    streamed = events(
        post(http, CONVERSE_STREAM, {"messages": CONVERSE_USER, "toolConfig": config})
    )
    names = [message.event_type for message in streamed]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert all(m.headers[":message-type"] == "event" for m in streamed)
    payloads = [json.loads(m.payload) for m in streamed]
    start = next(
        p for m, p in zip(streamed, payloads, strict=True) if m.event_type == "contentBlockStart"
    )
    assert start["start"]["toolUse"]["name"] == "get_ticket"
    fragments = [
        p["delta"]["toolUse"]["input"]
        for m, p in zip(streamed, payloads, strict=True)
        if m.event_type == "contentBlockDelta" and "toolUse" in p["delta"]
    ]
    assert json.loads("".join(fragments)) == {"id": "fake"}
    assert payloads[-2]["stopReason"] == "tool_use" and payloads[-1]["usage"]["totalTokens"] > 0
    assert all(isinstance(p["p"], str) and p["p"] for p in payloads)


def test_converse_reasoning_images_and_cache_points(http: httpx.Client) -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    image = {"image": {"format": "png", "source": {"bytes": PNG_1X1}}}
    system = [{"text": "A long shared preamble. " * 40}, {"cachePoint": {"type": "default"}}]
    body = {
        "messages": [{"role": "user", "content": [image, {"text": "This?"}]}],
        "system": system,
        "inferenceConfig": {"maxTokens": 2048},
        "additionalModelRequestFields": thinking,
    }
    first = post(http, CONVERSE, body).json()
    content = first["output"]["message"]["content"]
    reasoning = content[0]["reasoningContent"]["reasoningText"]
    assert reasoning["signature"] == sign(reasoning["text"])
    assert content[1] == {"text": "This is a fake reply to: This? (with 1 image)"}
    assert first["usage"]["cacheWriteInputTokens"] == 240
    second = post(http, CONVERSE, body).json()
    assert second["usage"]["cacheReadInputTokens"] == 240
    streamed = events(post(http, CONVERSE_STREAM, body))
    deltas = [
        json.loads(m.payload)["delta"] for m in streamed if m.event_type == "contentBlockDelta"
    ]
    assert "text" in deltas[0]["reasoningContent"]
    assert any("signature" in d.get("reasoningContent", {}) for d in deltas)
    wrong_start = post(
        http, CONVERSE, {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}
    )
    assert "must start with a user message" in wrong_start.json()["message"]


# -- SigV4 -----------------------------------------------------------------------------------


def error_type(reply: httpx.Response) -> str:
    return reply.headers["x-amzn-errortype"].split(":")[0]


def test_signatures_are_verified(http: httpx.Client) -> None:
    unsigned = http.post(INVOKE, json=BODY)
    assert (
        unsigned.status_code == 403
        and error_type(unsigned) == "MissingAuthenticationTokenException"
    )
    assert unsigned.json() == {"message": "Missing Authentication Token"}

    wrong_secret = signed_post(http, INVOKE, BODY, AwsCredentials(TEST_ACCESS_KEY_ID, "nope"))
    assert (
        wrong_secret.status_code == 403 and error_type(wrong_secret) == "InvalidSignatureException"
    )
    assert wrong_secret.json()["message"].startswith(
        "The request signature we calculated does not match"
    )
    assert "%253A0" in wrong_secret.json()["message"]  # the model id's colon, encoded twice

    unknown_key = signed_post(
        http, INVOKE, BODY, AwsCredentials("AKIDUNKNOWN", TEST_SECRET_ACCESS_KEY)
    )
    assert (
        unknown_key.status_code == 403 and error_type(unknown_key) == "UnrecognizedClientException"
    )

    tampered = post(http, INVOKE, BODY, send_body=json.dumps({**BODY, "max_tokens": 65}).encode())
    assert error_type(tampered) == "InvalidSignatureException"

    stale = post(http, INVOKE, BODY, now=datetime.now(UTC) - timedelta(minutes=6))
    assert error_type(stale) == "InvalidSignatureException"
    assert stale.json()["message"].startswith("Signature expired:")
    future = post(http, INVOKE, BODY, now=datetime.now(UTC) + timedelta(minutes=6))
    assert future.json()["message"].startswith("Signature not yet current:")

    other_region = post(http, INVOKE, BODY, region="eu-west-3")
    assert "scoped to a valid region" in other_region.json()["message"]
    other_service = post(http, INVOKE, BODY, service="s3")
    assert "scoped to correct service: 'bedrock'" in other_service.json()["message"]

    garbled = http.post(INVOKE, json=BODY, headers={"authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert error_type(garbled) == "IncompleteSignatureException"

    assert post(http, INVOKE, BODY).status_code == 200


def test_region_comes_from_the_host() -> None:
    settings = FakeSettings(region="us-west-2")
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        host = {"host": "bedrock-runtime.eu-central-1.amazonaws.com"}
        good = signed_post(client, INVOKE, BODY, CREDENTIALS, region="eu-central-1", headers=host)
        assert good.status_code == 200, good.text
        wrong = signed_post(client, INVOKE, BODY, CREDENTIALS, region="us-west-2", headers=host)
        assert wrong.status_code == 403
        configured = signed_post(client, INVOKE, BODY, CREDENTIALS, region="us-west-2")
        assert configured.status_code == 200


def test_session_tokens() -> None:
    settings = FakeSettings(session_token="session-token-for-tests")
    temporary = AwsCredentials(
        TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, "session-token-for-tests"
    )
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        assert signed_post(client, INVOKE, BODY, temporary).status_code == 200
        without = signed_post(client, INVOKE, BODY, CREDENTIALS)
        assert without.status_code == 403 and error_type(without) == "UnrecognizedClientException"
        wrong = AwsCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, "other-token")
        assert signed_post(client, INVOKE, BODY, wrong).status_code == 403
        logged = client.get("/_fake/requests").json()["requests"]
    assert all(entry["headers"].get("x-amz-security-token") in (None, "***") for entry in logged)
    assert "session-token-for-tests" not in json.dumps(logged)


def test_bedrock_api_keys(http: httpx.Client) -> None:
    good = http.post(INVOKE, json=BODY, headers={"authorization": f"Bearer {API_KEY}"})
    assert good.status_code == 200
    bad = http.post(INVOKE, json=BODY, headers={"authorization": "Bearer nope"})
    assert bad.status_code == 403 and error_type(bad) == "UnrecognizedClientException"


# -- faults ----------------------------------------------------------------------------------


def test_status_faults(
    http: httpx.Client, control: Control, sdk: anthropic.AnthropicBedrock
) -> None:
    control.faults({"status": 429, "retry_after": 1}, {"status": 408}, {"status": 503})
    throttled = post(http, INVOKE, BODY)
    assert throttled.status_code == 429 and error_type(throttled) == "ThrottlingException"
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json() == {"message": "Too many requests, please wait before trying again."}
    timed_out = post(http, CONVERSE, {"messages": CONVERSE_USER})
    assert timed_out.status_code == 408 and error_type(timed_out) == "ModelTimeoutException"
    with pytest.raises(anthropic.ServiceUnavailableError):
        sdk.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert len(control.requests()) == 3


def test_faults_match_the_model_id(http: httpx.Client, control: Control) -> None:
    control.faults({"status": 500}, match_model=MODEL)
    other = f"/model/{quote('anthropic.claude-haiku-4-5-v1:0', safe='')}/invoke"
    assert post(http, other, BODY).status_code == 200
    failed = post(http, INVOKE, BODY)
    assert failed.status_code == 500 and error_type(failed) == "InternalServerException"


def test_timeout_disconnect_and_stream_cut(url: str, http: httpx.Client, control: Control) -> None:
    control.faults({"kind": "timeout", "seconds": 1})
    with httpx.Client(base_url=url, timeout=0.2) as hasty, pytest.raises(httpx.ReadTimeout):
        post(hasty, INVOKE, BODY)
    control.faults({"kind": "disconnect"})
    with pytest.raises(httpx.RemoteProtocolError):
        post(http, CONVERSE, {"messages": CONVERSE_USER})
    control.faults({"kind": "stream_cut", "after_chunks": 2})
    raw = json.dumps(BODY).encode()
    headers = signed_headers(http, STREAM, raw, CREDENTIALS)
    decoder = EventStreamDecoder()
    received: list[EventStreamMessage] = []
    with (
        http.stream("POST", STREAM, content=raw, headers=headers) as streamed,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for chunk in streamed.iter_raw():
            received.extend(decoder.feed(chunk))
    assert len(received) == 2 and decoder.pending() == 0


def test_latency_setting() -> None:
    with (
        serve_in_thread(create_app(FakeSettings(latency_ms=150))) as url,
        httpx.Client(base_url=url) as client,
    ):
        started = time.monotonic()
        assert signed_post(client, INVOKE, BODY, CREDENTIALS).status_code == 200
        assert time.monotonic() - started >= 0.15


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--region" in capsys.readouterr().out
