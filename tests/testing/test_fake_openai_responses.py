"""The fake OpenAI upstream's Responses API, over real HTTP, read by the official SDK.

Every non-streamed body is validated strictly with ``openai.types.responses.Response`` and every
raw stream event with the SDK's model for its type, so a field the SDK requires cannot go missing
unnoticed (the SDK's own parsing is lenient); streams are also consumed by the SDK's helpers.
"""

from __future__ import annotations

import json
import math
import time
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from passerelle.testing.fake_openai import FakeSettings, create_app
from passerelle.testing.server import serve_in_thread
from tests.testing._support import PNG_1X1, Control

PROMPT = "What is ticket 42 about?"
TICKET_TOOL: Any = {
    "type": "function",
    "name": "get_ticket",
    "description": "Fetch a ticket",
    "parameters": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
        "required": ["id", "priority"],
        "additionalProperties": False,
    },
    "strict": True,
}
SEARCH_TOOL: Any = {
    "type": "function",
    "name": "search",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    "strict": False,
}
# What Codex CLI sends besides function tools: accepted and echoed, never called.
CODEX_TOOLS: Any = [
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    },
    {"type": "local_shell"},
    {"type": "web_search"},
]
HEADERS = {"authorization": "Bearer k"}
# The SDK's model for each stream event type, to validate raw events strictly.
EVENT_MODELS: dict[str, Any] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(create_app(FakeSettings())) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def control(http: httpx.Client) -> Control:
    fake = Control(http)
    fake.reset()
    return fake


@pytest.fixture(scope="module")
def sdk(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-test-secret", max_retries=0) as client:
        yield client


def create(sdk: openai.OpenAI, **params: Any) -> Response:
    """A non-streamed response, validated strictly from the bytes on the wire."""
    params.setdefault("model", "gpt-5")
    raw = sdk.responses.with_raw_response.create(**params)
    assert raw.headers["x-fake-upstream"] == "openai"
    return Response.model_validate(raw.http_response.json())


def post(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/responses", json={"model": "gpt-5", **body}, headers=HEADERS)


def raw_events(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A stream's events from the raw bytes, each checked against its ``event:`` name and
    validated strictly with the SDK's model for its type."""
    reply = post(http, {**body, "stream": True})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    frames = reply.text.split("\n\n")
    assert frames[-1] == ""  # every event ends with a blank line; no [DONE] sentinel
    events = []
    for frame in frames[:-1]:
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: {")
        event = json.loads(data_line[len("data: ") :])
        assert event["type"] == name_line[len("event: ") :]
        EVENT_MODELS[event["type"]].model_validate(event)
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]  # type: ignore[no-any-return]


# -- plain text ------------------------------------------------------------------------------


def test_plain_response_is_labelled_fake(sdk: openai.OpenAI) -> None:
    response = create(sdk, input=PROMPT)
    assert response.id.startswith("resp_fake") and response.object == "response"
    assert response.status == "completed" and response.model == "fake-gpt-5"
    assert response.completed_at is not None and response.completed_at >= response.created_at
    assert response.output_text == f"This is a fake reply to: {PROMPT}"
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_fake")
    assert message.role == "assistant" and message.status == "completed"
    [part] = message.content
    assert part.type == "output_text" and part.annotations == []
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == math.ceil(len(PROMPT) / 4)
    assert usage.output_tokens == math.ceil(len(response.output_text) / 4)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.store is True and response.tools == [] and response.tool_choice == "auto"
    assert response.text and response.text.format and response.text.format.type == "text"


def test_input_items_and_instructions(sdk: openai.OpenAI) -> None:
    image = {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_1X1}"}
    items: Any = [
        {"role": "developer", "content": "Answer briefly."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        },
        {"role": "user", "content": [image, {"type": "input_text", "text": "What is this?"}]},
    ]
    response = create(sdk, input=items, instructions="You are terse.", metadata={"k": "v"})
    assert response.output_text == "This is a fake reply to: What is this?"
    assert response.instructions == "You are terse." and response.metadata == {"k": "v"}
    chars = len("You are terse.Answer briefly.HiHelloWhat is this?")
    assert response.usage and response.usage.input_tokens == math.ceil(chars / 4)


def test_reply_words_and_max_output_tokens() -> None:
    settings = FakeSettings(reply_words=50, words_per_chunk=1)
    with (
        serve_in_thread(create_app(settings)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
    ):
        full = create(client, input=PROMPT)
        assert len(full.output_text.split()) == 50
        deltas = [
            e
            for e in client.responses.create(model="m", input=PROMPT, stream=True)
            if e.type == "response.output_text.delta"
        ]
        assert len(deltas) == 50 and "".join(e.delta for e in deltas) == full.output_text

        cut = create(client, input=PROMPT, max_output_tokens=16)
        assert cut.status == "incomplete" and cut.completed_at is None
        assert cut.incomplete_details and cut.incomplete_details.reason == "max_output_tokens"
        assert cut.output_text == full.output_text[:64] and cut.output[0].status == "incomplete"
        assert cut.usage and cut.usage.output_tokens == 16

        # Reasoning counts against the limit: here it leaves nothing for a message.
        thinking = create(client, input=PROMPT, max_output_tokens=16, reasoning={})
        assert thinking.status == "incomplete" and [o.type for o in thinking.output] == [
            "reasoning"
        ]
        stream = client.responses.create(model="m", input=PROMPT, max_output_tokens=16, stream=True)
        last = list(stream)[-1]
        assert last.type == "response.incomplete" and last.response.status == "incomplete"


def test_structured_outputs(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "priority": {"type": "integer", "minimum": 1}},
        "required": ["title", "priority"],
        "additionalProperties": False,
    }
    text_format: Any = {"type": "json_schema", "name": "ticket", "schema": schema, "strict": True}
    shaped = create(sdk, input=PROMPT, text={"format": text_format})
    assert json.loads(shaped.output_text) == {"title": "fake", "priority": 1}
    assert shaped.text and shaped.text.format and shaped.text.format.type == "json_schema"
    json_mode = create(sdk, input=PROMPT, text={"format": {"type": "json_object"}})
    assert json.loads(json_mode.output_text) == {"reply": f"This is a fake reply to: {PROMPT}"}


# -- streaming -------------------------------------------------------------------------------


def test_stream_events_in_the_api_order(sdk: openai.OpenAI, http: httpx.Client) -> None:
    events = raw_events(http, {"input": PROMPT})
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == []
    assert created["usage"] is None and created["id"] == completed["id"]
    assert completed["status"] == "completed" and completed["usage"]["total_tokens"] > 0
    item = events[2]["item"]
    assert item["status"] == "in_progress" and item["content"] == []
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    text = "".join(e["delta"] for e in deltas)
    assert text == events[8]["text"] == f"This is a fake reply to: {PROMPT}"
    assert {(e["item_id"], e["output_index"], e["content_index"]) for e in deltas} == {
        (item["id"], 0, 0)
    }
    assert events[-2]["item"] == completed["output"][0]
    assert completed["output"][0]["content"][0]["text"] == text


def test_sdk_reads_the_stream(sdk: openai.OpenAI) -> None:
    plain = create(sdk, input=PROMPT)
    events = list(sdk.responses.create(model="gpt-5", input=PROMPT, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == plain.output_text
    with sdk.responses.stream(model="gpt-5", input=PROMPT) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == plain.output_text
    assert final.status == "completed" and final.usage == plain.usage


# -- tools -----------------------------------------------------------------------------------


def test_tool_call_round_trip(sdk: openai.OpenAI) -> None:
    first = create(sdk, input=PROMPT, tools=[TICKET_TOOL])
    [call] = first.output
    assert call.type == "function_call" and call.status == "completed"
    assert call.id and call.id.startswith("fc_fake") and call.call_id.startswith("call_fake")
    assert call.name == "get_ticket"
    assert json.loads(call.arguments) == {"id": "fake", "priority": "low"}
    assert first.output_text == "" and first.tools[0].type == "function"
    assert first.tools[0].strict is True  # echoed as the API echoes it

    history: Any = [
        {"role": "user", "content": PROMPT},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Login page broken"},
    ]
    final = create(sdk, input=history, tools=[TICKET_TOOL])
    assert final.output_text == "This is a fake reply using the tool results: Login page broken"

    # The same loop on the server's memory: only the tool output is sent again.
    follow = create(
        sdk,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Done"}],
        tools=[TICKET_TOOL],
    )
    assert follow.output_text.endswith("tool results: Done")
    assert follow.previous_response_id == first.id


def test_streamed_tool_call_with_the_helper(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="gpt-5", input=PROMPT, tools=[TICKET_TOOL]) as stream:
        deltas = [
            event.delta
            for event in stream
            if event.type == "response.function_call_arguments.delta"
        ]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and "".join(deltas) == call.arguments
    assert call.parsed_arguments == {"id": "fake", "priority": "low"}  # strict: the SDK parses


def test_tool_choice_and_parallel_calls(sdk: openai.OpenAI) -> None:
    tools = [TICKET_TOOL, SEARCH_TOOL]

    def names(**options: Any) -> list[str]:
        response = create(sdk, input="Do these in parallel please", tools=tools, **options)
        return [item.name for item in response.output if item.type == "function_call"]

    assert names() == ["get_ticket", "search"]
    assert names(parallel_tool_calls=False) == ["get_ticket"]
    assert names(tool_choice={"type": "function", "name": "search"}) == ["search"]
    assert names(tool_choice="none") == []
    allowed = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "search"}],
    }
    assert names(tool_choice=allowed) == ["search"]
    with pytest.raises(openai.BadRequestError) as info:
        names(tool_choice={"type": "function", "name": "missing"})
    assert info.value.param == "tool_choice"


def test_codex_style_turns(sdk: openai.OpenAI, control: Control) -> None:
    """Two turns as Codex CLI runs them: stateless, streamed, reasoning carried encrypted."""
    codex: Any = {
        "model": "gpt-5-codex",
        "instructions": "You are a coding agent.",
        "tools": [{**SEARCH_TOOL, "description": "Search the code"}, *CODEX_TOOLS],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "text": {"verbosity": "low"},
    }
    user: Any = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Sandbox: workspace-write"}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Find the bug"}],
        },
    ]
    with sdk.responses.stream(input=user, **codex) as stream:
        names = [event.type for event in stream]
        first = stream.get_final_response()
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert reasoning.summary and "Find the bug" in reasoning.summary[0].text
    assert call.type == "function_call" and call.name == "search"
    assert "response.reasoning_summary_text.delta" in names
    assert first.store is False and first.prompt_cache_key == "0199-session"
    assert [tool.type for tool in first.tools] == [
        "function",
        "custom",
        "local_shell",
        "web_search",
    ]
    assert first.text and first.text.verbosity == "low"
    assert first.reasoning and first.reasoning.effort == "medium"
    Response.model_validate(first.model_dump(mode="json", exclude_unset=True))

    replayed = [
        *user,
        reasoning.model_dump(exclude_none=True),
        call.model_dump(exclude_none=True, exclude={"parsed_arguments"}),
        {"type": "function_call_output", "call_id": call.call_id, "output": "line 3: off by one"},
    ]
    with sdk.responses.stream(input=replayed, **codex) as stream:
        second = stream.get_final_response()
    assert [item.type for item in second.output] == ["reasoning", "message"]
    assert second.output_text == "This is a fake reply using the tool results: line 3: off by one"
    sent = control.requests()[-1]["body"]
    assert sent["store"] is False and sent["stream"] is True
    assert sent["input"][2]["encrypted_content"] == reasoning.encrypted_content

    # Tampered reasoning is refused; without its content it cannot be found (nothing is stored).
    tampered = [*replayed]
    tampered[2] = {**replayed[2], "encrypted_content": "gAAAAABtampered=="}
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(input=tampered, **codex)
    assert info.value.code == "invalid_encrypted_content"
    assert info.value.message.endswith("The encrypted content gAAA...ed== could not be verified.")
    bare = [*replayed]
    bare[2] = {key: value for key, value in replayed[2].items() if key != "encrypted_content"}
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.create(input=bare, **codex)
    assert "Items are not persisted when `store` is set to false" in missing.value.message


def test_stored_responses_resolve_references() -> None:
    with (
        serve_in_thread(create_app(FakeSettings(stored_responses=1))) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
    ):
        first = create(client, input="one", reasoning={"summary": "concise"})
        reasoning = first.output[0]
        assert reasoning.type == "reasoning" and reasoning.encrypted_content is None
        by_reference: Any = [
            {"type": "item_reference", "id": reasoning.id},
            {"type": "reasoning", "id": reasoning.id, "summary": []},
            {"role": "user", "content": "two"},
        ]
        assert create(client, input=by_reference).output_text.endswith("two")
        unstored = create(client, input="three", store=False)
        with pytest.raises(openai.BadRequestError) as info:
            create(client, input="four", previous_response_id=unstored.id)
        assert info.value.code == "previous_response_not_found"
        assert info.value.param == "previous_response_id"
        # Only one response is kept: the second one pushed the first out.
        with pytest.raises(openai.BadRequestError):
            create(client, input="five", previous_response_id=first.id)


# -- reasoning -------------------------------------------------------------------------------


def test_reasoning_summary(sdk: openai.OpenAI, http: httpx.Client) -> None:
    response = create(sdk, input=PROMPT, reasoning={"effort": "high", "summary": "detailed"})
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_fake")
    [summary] = reasoning.summary
    thought = summary.text.split("\n\n", 1)[1]
    assert PROMPT in thought and summary.type == "summary_text"
    usage = response.usage
    assert usage and usage.output_tokens_details.reasoning_tokens == math.ceil(len(thought) / 4)
    assert usage.output_tokens == usage.output_tokens_details.reasoning_tokens + math.ceil(
        len(response.output_text) / 4
    )
    assert message.type == "message" and response.reasoning
    assert (response.reasoning.effort, response.reasoning.summary) == ("high", "detailed")

    unsummarised = create(sdk, input=PROMPT, reasoning={"effort": "low"})
    assert unsummarised.output[0].type == "reasoning" and unsummarised.output[0].summary == []
    off = create(sdk, input=PROMPT, reasoning={"effort": "none"})
    assert [o.type for o in off.output] == ["message"]
    assert off.reasoning and off.reasoning.effort == "none"

    events = raw_events(http, {"input": PROMPT, "reasoning": {"summary": "auto"}})
    kinds = [e["type"] for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    assert events[2]["item"] == {"id": events[2]["item"]["id"], "type": "reasoning", "summary": []}
    deltas = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    [text_done] = [e for e in events if e["type"] == "response.reasoning_summary_text.done"]
    [part_done] = [e for e in events if e["type"] == "response.reasoning_summary_part.done"]
    assert "".join(deltas) == text_done["text"] == part_done["part"]["text"]
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index(
        "response.content_part.added"
    )
    assert events[-1]["response"]["output"][0]["summary"] == [part_done["part"]]


# -- errors, Azure and faults ----------------------------------------------------------------


def test_invalid_requests_get_openai_errors(http: httpx.Client) -> None:
    text_part = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    loose = {**TICKET_TOOL, "parameters": {"type": "object", "properties": {"id": {}}}}
    orphan = [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]
    cases: list[tuple[dict[str, Any], str | None, str | None]] = [
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "unknown_parameter"),
        ({"input": "hi", "max_tokens": 5}, "max_tokens", "unknown_parameter"),
        ({}, "input", "missing_required_parameter"),
        ({"input": text_part}, "input[0].content[0].type", "invalid_value"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role", "invalid_value"),
        ({"input": orphan}, "input", None),
        ({"input": "hi", "tools": [loose]}, "tools[0].parameters", "invalid_function_parameters"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", None),
        ({"input": "hi", "reasoning": {"effort": "huge"}}, "reasoning.effort", "invalid_value"),
        ({"input": "hi", "include": ["everything"]}, "include[0]", "invalid_value"),
        ({"input": "hi", "max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value"),
        (
            {"input": "hi", "text": {"format": {"type": "yaml"}}},
            "text.format.type",
            "invalid_value",
        ),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"input": 42}, "input", "invalid_type"),
    ]
    for body, param, code in cases:
        reply = post(http, body)
        assert reply.status_code == 400, body
        error = error_of(reply)
        assert error["param"] == param, body
        if code is not None:
            assert error["code"] == code, body
    strict = error_of(post(http, {"input": "hi", "tools": [loose]}))
    assert strict["message"] == (
        "Invalid schema for function 'get_ticket': In context=(), 'additionalProperties' is "
        "required to be supplied and to be false."
    )
    assert error_of(post(http, {"input": text_part}))["message"] == (
        "Invalid value: 'text'. Supported values are: 'input_text', 'input_image', 'input_file', "
        "and 'input_audio'."
    )
    conversation = post(http, {"input": "hi", "conversation": "conv_1"})
    assert conversation.status_code == 404 and error_of(conversation)["param"] == "conversation"
    no_model = http.post("/v1/responses", json={"input": "hi"}, headers=HEADERS)
    assert no_model.status_code == 400 and error_of(no_model)["param"] == "model"
    anonymous = http.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert anonymous.status_code == 401


def test_azure_paths(url: str, http: httpx.Client, control: Control) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=url, api_key="azure-secret", api_version="2025-04-01-preview", max_retries=0
    ) as azure:
        raw = azure.responses.with_raw_response.create(model="my-deployment", input=PROMPT)
    response = Response.model_validate(raw.http_response.json())
    assert response.model == "fake-my-deployment"
    sent = control.requests()[0]
    assert sent["path"] == "/openai/responses" and sent["query"] == "api-version=2025-04-01-preview"
    assert sent["headers"]["api-key"] == "***"
    assert "azure-secret" not in json.dumps(control.requests())

    azure_key = {"api-key": "k"}
    body = {"model": "m", "input": PROMPT}
    v1 = http.post("/openai/v1/responses", json=body, headers=azure_key)
    assert v1.status_code == 200 and Response.model_validate(v1.json()).model == "fake-m"
    undated = http.post("/openai/responses", json=body, headers=azure_key)
    assert undated.status_code == 404 and "api-version" in error_of(undated)["message"]
    assert http.post("/v1/responses", json=body, headers=azure_key).status_code == 401


def test_status_faults(sdk: openai.OpenAI, url: str, control: Control) -> None:
    custom = {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}
    }
    control.faults({"status": 503}, {"status": 500, "body": custom})
    with pytest.raises(openai.InternalServerError) as info:
        create(sdk, input=PROMPT)
    assert info.value.status_code == 503 and info.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as info:
        sdk.responses.create(model="m", input=PROMPT, stream=True)
    assert info.value.response.json() == custom
    assert create(sdk, input=PROMPT).status == "completed"
    assert len(control.requests()) == 3  # a faulted request is still logged

    control.faults({"status": 429, "retry_after": 1}, match_model="gpt-5-mini")
    assert create(sdk, model="gpt-5", input=PROMPT).output_text  # another model is not affected
    with pytest.raises(openai.RateLimitError) as limited:
        create(sdk, model="gpt-5-mini", input=PROMPT)
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.code == "rate_limit_exceeded"
    control.faults({"status": 429, "retry_after": 1})
    started = time.monotonic()
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=1) as patient:
        assert patient.responses.create(model="m", input=PROMPT).output_text
    assert time.monotonic() - started >= 1.0


def test_timeout_and_disconnect_faults(sdk: openai.OpenAI, url: str, control: Control) -> None:
    control.faults({"kind": "timeout", "seconds": 1})
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=0.2) as hasty,
        pytest.raises(openai.APITimeoutError),
    ):
        hasty.responses.create(model="m", input=PROMPT)
    control.faults({"kind": "disconnect"})
    with pytest.raises(openai.APIConnectionError):
        sdk.responses.create(model="m", input=PROMPT)
    assert create(sdk, input=PROMPT).status == "completed"


def test_stream_cut_fault(sdk: openai.OpenAI, http: httpx.Client, control: Control) -> None:
    control.faults({"kind": "stream_cut", "after_chunks": 3})
    received = []
    with pytest.raises(openai.APIConnectionError):
        for event in sdk.responses.create(model="m", input=PROMPT, stream=True):
            received.append(event.type)
    assert received == ["response.created", "response.in_progress", "response.output_item.added"]

    control.faults({"kind": "stream_cut", "after_chunks": 2})
    with http.stream(
        "POST",
        "/v1/responses",
        headers=HEADERS,
        json={"model": "m", "input": PROMPT, "stream": True},
    ) as reply:
        parts: list[bytes] = []
        with pytest.raises(httpx.RemoteProtocolError):
            parts.extend(reply.iter_raw())
    assert b"".join(parts).count(b"event: ") == 2

    control.faults({"kind": "stream_cut"})  # a non-streamed answer loses half its body
    with pytest.raises(openai.APIConnectionError):
        sdk.responses.create(model="m", input=PROMPT)


def test_request_log_keeps_the_body_and_hides_the_key(sdk: openai.OpenAI, control: Control) -> None:
    sdk.responses.create(model="gpt-5", input=PROMPT, prompt_cache_key="k1", extra_body={"x": 1})
    [entry] = control.requests()
    assert entry["path"] == "/v1/responses" and entry["method"] == "POST"
    assert entry["body"] == {"model": "gpt-5", "input": PROMPT, "prompt_cache_key": "k1", "x": 1}
    assert entry["headers"]["authorization"] == "***"
    assert "sk-test-secret" not in json.dumps(entry)


def test_latency_and_chunk_delay() -> None:
    settings = FakeSettings(latency_ms=150, chunk_delay_ms=30)
    with (
        serve_in_thread(create_app(settings)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
    ):
        started = time.monotonic()
        client.responses.create(model="m", input=PROMPT)
        assert time.monotonic() - started >= 0.15
        arrivals = [
            time.monotonic() for _ in client.responses.create(model="m", input=PROMPT, stream=True)
        ]
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.9
