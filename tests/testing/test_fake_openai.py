"""The fake OpenAI upstream, over real HTTP, read by the official SDK and by raw httpx."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from passerelle.testing.fake_openai import FakeSettings, create_app, main
from passerelle.testing.server import serve_in_thread

TICKET_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_ticket",
        "description": "Fetch a ticket",
        "parameters": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "verbose": {"type": "boolean"},
                "priority": {"enum": ["low", "high"]},
            },
            "required": ["id", "priority"],
        },
    },
}
SEARCH_TOOL: Any = {
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {}}},
}
USER: Any = [{"role": "user", "content": "What is ticket 42 about?"}]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(FakeSettings())) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture(autouse=True)
def _reset(http: httpx.Client) -> None:
    http.delete("/_fake/faults").raise_for_status()
    http.delete("/_fake/requests").raise_for_status()


@pytest.fixture(scope="module")
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-test-secret", max_retries=0) as client:
        yield client


def faults(http: httpx.Client, *items: dict[str, Any], match_model: str | None = None) -> None:
    body: dict[str, Any] = {"faults": list(items)}
    if match_model is not None:
        body["match_model"] = match_model
    http.post("/_fake/faults", json=body).raise_for_status()


def logged(http: httpx.Client) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = http.get("/_fake/requests").json()["requests"]
    return requests


# -- chat completions ------------------------------------------------------------------------


def test_plain_completion_is_labelled_fake(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()
    assert raw.headers["x-fake-upstream"] == "openai"
    assert completion.model == "fake-gpt-4o"
    assert completion.system_fingerprint == "fp_passerelle_fake"
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.content == "This is a fake reply to: What is ticket 42 about?"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == math.ceil(len(USER[0]["content"]) / 4)
    assert usage.completion_tokens == math.ceil(len(choice.message.content) / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_max_tokens_truncates_and_n_repeats(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="m", messages=USER, max_tokens=3, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    for choice in completion.choices:
        assert choice.finish_reason == "length"
        assert choice.message.content == "This is a fa"
    assert completion.usage and completion.usage.completion_tokens == 6
    limited = sdk.chat.completions.create(model="m", messages=USER, max_completion_tokens=2)
    assert limited.choices[0].message.content == "This is "


def test_reply_words_pads_replies_for_benchmarks() -> None:
    with (
        serve_in_thread(create_app(FakeSettings(reply_words=50, words_per_chunk=1))) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
    ):
        completion = client.chat.completions.create(model="m", messages=USER)
        content = completion.choices[0].message.content or ""
        assert len(content.split()) == 50 and content.startswith("This is a fake reply")
        stream = client.chat.completions.create(model="m", messages=USER, stream=True)
        chunks = list(stream)
        assert len(chunks) == 1 + 50 + 1  # role, one word each, finish
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == content


def test_streaming_reassembles_text_without_usage(sdk: openai.OpenAI) -> None:
    plain = sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)
    stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    chunks = list(stream)
    assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert len(chunks) > 3
    assert all(c.choices and c.usage is None for c in chunks)
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.model == "fake-gpt-4o-mini" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_streaming_usage_chunk_only_with_include_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert all(c.choices and c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_raw_sse_framing(http: httpx.Client) -> None:
    body = {
        "model": "gpt-4o",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": "Bearer k"}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert reply.headers["x-fake-upstream"] == "openai"
        raw = reply.read()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    chunks = []
    for event in events[:-2]:
        assert event.startswith(b"data: {") and b"\n" not in event
        chunks.append(json.loads(event[len(b"data: ") :]))
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["system_fingerprint"] == "fp_passerelle_fake"
        assert "usage" in chunk  # null on every chunk but the last, as OpenAI does
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_tool_call_round_trip(sdk: openai.OpenAI) -> None:
    messages: list[Any] = list(USER)
    first = sdk.chat.completions.create(model="gpt-4o", messages=messages, tools=[TICKET_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].id.startswith("call_")
    function = calls[0].function
    assert function.name == "get_ticket"
    assert json.loads(function.arguments) == {"id": "fake", "priority": "low"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "Login page broken"})
    final = sdk.chat.completions.create(model="gpt-4o", messages=messages, tools=[TICKET_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert "Login page broken" in (final.choices[0].message.content or "")


def test_tool_choice_and_parallel_calls(sdk: openai.OpenAI) -> None:
    tools = [TICKET_TOOL, SEARCH_TOOL]
    ask: Any = [{"role": "user", "content": "Do these in parallel please"}]

    def names(**options: Any) -> list[str]:
        completion = sdk.chat.completions.create(model="m", messages=ask, tools=tools, **options)
        calls = completion.choices[0].message.tool_calls or []
        return [call.function.name for call in calls]

    assert names() == ["get_ticket", "search"]
    assert names(parallel_tool_calls=False) == ["get_ticket"]
    assert names(tool_choice={"type": "function", "function": {"name": "search"}}) == ["search"]
    assert names(tool_choice="none") == []
    with pytest.raises(openai.BadRequestError):
        names(tool_choice={"type": "function", "function": {"name": "missing"}})


def test_streamed_parallel_tool_calls(sdk: openai.OpenAI) -> None:
    ask: Any = [{"role": "user", "content": "parallel lookups"}]
    stream = sdk.chat.completions.create(
        model="m", messages=ask, tools=[TICKET_TOOL, SEARCH_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            if delta.id:  # the opening delta of each call carries its id, type and name
                assert delta.type == "function" and delta.function
                assert delta.function.name and delta.function.arguments == ""
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "args": ""}
            elif delta.function and delta.function.arguments:
                calls[delta.index]["args"] += delta.function.arguments
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_ticket", "search"]
    assert json.loads(calls[0]["args"]) == {"id": "fake", "priority": "low"}
    assert json.loads(calls[1]["args"]) == {}


def test_structured_outputs(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "priority": {"type": "integer", "minimum": 1},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "owner": {"$ref": "#/$defs/person"},
            "due": {"type": ["string", "null"], "format": "date"},
        },
        "required": ["title", "priority", "score", "tags", "owner", "due"],
        "additionalProperties": False,
        "$defs": {
            "person": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}},
                "required": ["email"],
            }
        },
    }
    completion = sdk.chat.completions.create(
        model="m",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "ticket", "schema": schema, "strict": True},
        },
    )
    value = json.loads(completion.choices[0].message.content or "")
    assert value == {
        "title": "fake",
        "priority": 1,
        "score": 0.0,
        "tags": [],
        "owner": {"email": "fake@example.com"},
        "due": "1970-01-01",
    }
    json_mode = sdk.chat.completions.create(
        model="m", messages=USER, response_format={"type": "json_object"}
    )
    assert "ticket 42" in json.loads(json_mode.choices[0].message.content or "")["reply"]


def test_invalid_requests_get_openai_errors(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="m", messages=[])
    assert info.value.code == "empty_array" and info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="m", messages=USER, n=0)
    assert info.value.param == "n"

    headers = {"authorization": "Bearer k", "content-type": "application/json"}
    for content in (b"{not json", b"[]", b'{"messages": []}'):
        reply = http.post("/v1/chat/completions", content=content, headers=headers)
        assert reply.status_code == 400
        assert reply.json()["error"]["type"] == "invalid_request_error"
    unknown = http.post("/v1/nothing", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("Invalid")
    wrong_method = http.get("/v1/chat/completions", headers=headers)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


# -- authentication and Azure ----------------------------------------------------------------


def test_missing_key_is_refused(http: httpx.Client) -> None:
    body = {"model": "m", "messages": USER}
    for headers in ({}, {"authorization": "Bearer"}, {"authorization": "Basic a2V5"}):
        reply = http.post("/v1/chat/completions", json=body, headers=headers)
        assert reply.status_code == 401
        error = reply.json()["error"]
        assert "didn't provide an API key" in error["message"]
        assert error["type"] == "invalid_request_error"
    assert len(logged(http)) == 3


def test_configured_key_must_match() -> None:
    with serve_in_thread(create_app(FakeSettings(api_key="right"))) as url:
        for key, status in (("right", 200), ("wrong", 401)):
            with openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
                if status == 200:
                    assert client.models.list().data
                    continue
                with pytest.raises(openai.AuthenticationError) as info:
                    client.chat.completions.create(model="m", messages=USER)
                assert info.value.code == "invalid_api_key"
                assert info.value.body == {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }


def test_azure_paths_take_an_api_key_header(url: str, http: httpx.Client) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=url, api_key="azure-secret", api_version="2024-10-21", max_retries=0
    ) as azure:
        completion = azure.chat.completions.create(model="my-deployment", messages=USER)
        vectors = azure.embeddings.create(model="my-embedder", input="hello")
    assert completion.model == "fake-my-deployment"
    assert vectors.model == "fake-my-embedder" and len(vectors.data[0].embedding) == 8
    sent = logged(http)[0]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == "***"
    assert "azure-secret" not in json.dumps(logged(http))

    headers = {"api-key": "k"}
    v1 = http.post(
        "/openai/v1/chat/completions", json={"model": "m", "messages": USER}, headers=headers
    )
    assert v1.status_code == 200 and v1.json()["model"] == "fake-m"
    no_version = http.post(
        "/openai/deployments/d/chat/completions", json={"messages": USER}, headers=headers
    )
    assert no_version.status_code == 404
    # The api-key header is an Azure convention: OpenAI's own paths want a bearer token.
    plain = http.post(
        "/v1/chat/completions", json={"model": "m", "messages": USER}, headers=headers
    )
    assert plain.status_code == 401


# -- embeddings and models -------------------------------------------------------------------


def test_embeddings_float_and_base64_agree(sdk: openai.OpenAI) -> None:
    floats = sdk.embeddings.create(
        model="text-embedding-3-small", input=["un", "deux"], encoding_format="float"
    )
    decoded = sdk.embeddings.create(model="text-embedding-3-small", input=["un", "deux"])
    assert floats.model == "fake-text-embedding-3-small"
    assert [d.index for d in floats.data] == [0, 1]
    assert [d.embedding for d in floats.data] == [d.embedding for d in decoded.data]
    first, second = (d.embedding for d in floats.data)
    assert len(first) == 8 and first != second
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-5)
    assert floats.usage.prompt_tokens == 2 and floats.usage.total_tokens == 2
    again = sdk.embeddings.create(model="x", input="un", encoding_format="float", dimensions=3)
    assert len(again.data[0].embedding) == 3


def test_embeddings_raw_base64_and_token_inputs(http: httpx.Client) -> None:
    headers = {"authorization": "Bearer k"}
    body = {"model": "e", "input": [[1, 2, 3], [4]], "encoding_format": "base64", "dimensions": 4}
    reply = http.post("/v1/embeddings", json=body, headers=headers).json()
    assert reply["object"] == "list" and reply["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    vector = struct.unpack("<4f", base64.b64decode(reply["data"][0]["embedding"]))
    single = http.post(
        "/v1/embeddings",
        headers=headers,
        json={**body, "input": [1, 2, 3], "encoding_format": "float"},
    ).json()
    assert single["data"][0]["embedding"] == list(vector)
    bad_inputs: list[Any] = ["", [], [""], [[]], [{"text": "x"}], 3]
    for bad in bad_inputs:
        refused = http.post("/v1/embeddings", json={"model": "e", "input": bad}, headers=headers)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"


def test_models(sdk: openai.OpenAI, http: httpx.Client) -> None:
    assert [m.id for m in sdk.models.list()] == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    assert sdk.models.retrieve("gpt-4o").owned_by == "passerelle-fake"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")
    assert http.get("/v1/models").status_code == 200  # the readiness probe needs no key


# -- faults ----------------------------------------------------------------------------------


def test_status_faults_are_consumed_in_order(sdk: openai.OpenAI, http: httpx.Client) -> None:
    custom = {
        "error": {
            "message": "bad temperature",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": None,
        }
    }
    faults(http, {"status": 503}, {"status": 500, "body": custom})
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(model="m", messages=USER)
    assert info.value.status_code == 503 and info.value.response.headers["x-fake-upstream"]
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(model="m", messages=USER)
    assert info.value.status_code == 500 and info.value.response.json() == custom
    assert sdk.chat.completions.create(model="m", messages=USER).choices
    assert len(logged(http)) == 3  # a faulted request is still logged


def test_rate_limit_fault(sdk: openai.OpenAI, url: str, http: httpx.Client) -> None:
    faults(http, {"status": 429, "retry_after": 1})
    with pytest.raises(openai.RateLimitError) as info:
        sdk.embeddings.create(model="e", input="x")
    headers = info.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert info.value.type == "requests" and info.value.code == "rate_limit_exceeded"

    faults(http, {"status": 429, "retry_after": 1})
    started = time.monotonic()
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=1) as patient:
        assert patient.chat.completions.create(model="m", messages=USER).choices
    assert time.monotonic() - started >= 1.0  # the SDK waited as the header asked


def test_faults_can_target_one_model(sdk: openai.OpenAI, http: httpx.Client) -> None:
    faults(http, {"status": 503}, match_model="gpt-4o")
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
    pending = http.get("/_fake/faults").json()["faults"]
    assert [(f["status"], f["match_model"]) for f in pending] == [(503, "gpt-4o")]
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert http.get("/_fake/faults").json()["faults"] == []


def test_timeout_fault(url: str, http: httpx.Client) -> None:
    faults(http, {"kind": "timeout", "seconds": 1})
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=0.2) as hasty,
        pytest.raises(openai.APITimeoutError),
    ):
        hasty.chat.completions.create(model="m", messages=USER)


def test_disconnect_fault(sdk: openai.OpenAI, http: httpx.Client) -> None:
    faults(http, {"kind": "disconnect"})
    with pytest.raises(openai.APIConnectionError) as info:
        sdk.chat.completions.create(model="m", messages=USER)
    assert type(info.value.__cause__).__name__ == "RemoteProtocolError"
    assert "without sending a response" in str(info.value.__cause__)
    assert sdk.chat.completions.create(model="m", messages=USER).choices  # the next one is fine


def test_stream_cut_fault(sdk: openai.OpenAI, http: httpx.Client) -> None:
    faults(http, {"kind": "stream_cut", "after_chunks": 2})
    received = []
    stream = sdk.chat.completions.create(model="m", messages=USER, stream=True)
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2

    faults(http, {"kind": "stream_cut", "after_chunks": 2})
    with http.stream(
        "POST",
        "/v1/chat/completions",
        headers={"authorization": "Bearer k"},
        json={"model": "m", "messages": USER, "stream": True},
    ) as reply:
        parts: list[bytes] = []
        with pytest.raises(httpx.RemoteProtocolError):
            parts.extend(reply.iter_raw())
    assert b"".join(parts).count(b"data: ") == 2 and b"[DONE]" not in b"".join(parts)

    faults(http, {"kind": "stream_cut"})  # an answer that is not streamed loses half its body
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model="m", messages=USER)


def test_control_api_refuses_bad_faults(http: httpx.Client) -> None:
    bad_specs: list[Any] = [
        {"faults": [{"status": 200}]},
        {"faults": [{"kind": "explode"}]},
        {"faults": [{"status": 500, "typo": 1}]},
        {"faults": [{"kind": "stream_cut", "after_chunks": -1}]},
        {"fault": []},
    ]
    for body in bad_specs:
        assert http.post("/_fake/faults", json=body).status_code == 400
    assert http.get("/_fake/faults").json()["faults"] == []


# -- request log and settings ----------------------------------------------------------------


def test_request_log_redacts_credentials(sdk: openai.OpenAI, http: httpx.Client) -> None:
    sdk.chat.completions.create(model="gpt-4o", messages=USER, temperature=0.2, extra_body={"x": 1})
    sdk.embeddings.create(model="e", input="x")
    sdk.models.list()  # the model list is a readiness probe: it is not logged
    entries = logged(http)
    assert [e["path"] for e in entries] == ["/v1/chat/completions", "/v1/embeddings"]
    first = entries[0]
    assert first["method"] == "POST" and first["query"] == ""
    assert first["body"] == {"model": "gpt-4o", "messages": USER, "temperature": 0.2, "x": 1}
    assert first["headers"]["authorization"] == "***"
    assert "sk-test-secret" not in json.dumps(entries)
    last = http.get("/_fake/requests", params={"limit": 1}).json()["requests"]
    assert [e["path"] for e in last] == ["/v1/embeddings"]
    assert http.delete("/_fake/requests").json() == {"cleared": 2}
    assert logged(http) == []


def test_latency_and_chunk_delay() -> None:
    settings = FakeSettings(latency_ms=150, chunk_delay_ms=30)
    with (
        serve_in_thread(create_app(settings)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
    ):
        started = time.monotonic()
        client.chat.completions.create(model="m", messages=USER)
        assert time.monotonic() - started >= 0.15
        stream = client.chat.completions.create(model="m", messages=USER, stream=True)
        arrivals = [time.monotonic() for _ in stream]
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.9


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--chunk-delay-ms" in capsys.readouterr().out
