"""The official OpenAI SDK, sync and async, against a running gateway in front of the fake."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from passerelle.audit.export import iter_records

from .conftest import UPSTREAM_KEY, Fake, RunningGateway


def client(gateway: RunningGateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or gateway.key, max_retries=0)


def audit_of(gateway: RunningGateway, request_id: str) -> dict[str, object]:
    gateway.flush_audit()
    for record in iter_records(gateway.keys.db):
        if record["record_id"] == request_id:
            return record
    raise AssertionError(f"{request_id} is not in the audit trail")


def test_chat_completion_passthrough(gateway: RunningGateway, primary: Fake) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "Bonjour, résume ce ticket"}],
        temperature=0.2,
        extra_body={"an_unknown_field": {"kept": True}, "seed": 7},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert "Bonjour" in completion.choices[0].message.content
    assert completion.model == "fake-gpt-4o-mini"  # the upstream's own answer, untouched
    assert raw.headers["x-passerelle-route"] == "primary"
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_")

    sent = primary.requests()[-1]
    # Only the model name changed; unknown fields and values reached the provider as sent.
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["an_unknown_field"] == {"kept": True}
    assert sent["body"]["seed"] == 7 and sent["body"]["temperature"] == 0.2
    assert sent["path"] == "/v1/chat/completions"
    # The gateway authenticates upstream with the provider's key, never the caller's.
    assert sent["headers"]["authorization"] == "***"
    assert gateway.key not in json.dumps(sent)

    record = audit_of(gateway, request_id)
    assert record["status"] == 200
    assert record["actor"] == "dev@acme.test"
    assert record["project"] == "alpha" and record["client"] == "acme" and record["team"] == "web"
    assert record["model"] == "chat" and record["provider"] == "primary"
    usage = completion.usage
    assert usage is not None
    assert record["input_tokens"] == usage.prompt_tokens
    assert record["output_tokens"] == usage.completion_tokens
    # 150000 and 600000 micro-USD per million tokens, from the config's price override.
    expected = (usage.prompt_tokens * 150_000 + usage.completion_tokens * 600_000 + 500_000) // (
        1_000_000
    )
    assert record["cost_micro_usd"] == expected
    assert record["details"]["config_hash"] == gateway.config.hash  # type: ignore[index]
    dumped = json.dumps(record)
    assert gateway.key not in dumped and UPSTREAM_KEY not in dumped


def test_streaming_relays_chunks_and_accounts_usage(gateway: RunningGateway, primary: Fake) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Stream me a short answer please"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream me" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The caller did not ask for usage: the gateway asked upstream for it, and kept it to itself.
    assert all(c.choices for c in chunks)
    sent = primary.requests()[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    request_id = stream.response.headers["x-request-id"]
    record = audit_of(gateway, request_id)
    assert record["status"] == 200
    assert record["output_tokens"] > 0 and record["input_tokens"] > 0
    assert record["details"]["usage_reported"] is True  # type: ignore[index]
    assert record["details"]["stream"] is True  # type: ignore[index]


def test_streaming_with_usage_requested_passes_it_on(gateway: RunningGateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "count my tokens"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    record = audit_of(gateway, stream.response.headers["x-request-id"])
    assert record["output_tokens"] == chunks[-1].usage.completion_tokens


def test_tool_call_round_trip(gateway: RunningGateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_ticket",
                "description": "Fetch a ticket",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            },
        }
    ]
    sdk = client(gateway)
    messages: list[dict[str, object]] = [{"role": "user", "content": "What is ticket 42 about?"}]
    first = sdk.chat.completions.create(model="chat", messages=messages, tools=tools)  # type: ignore[arg-type]
    call = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and call
    assert call[0].function.name == "get_ticket"  # type: ignore[union-attr]
    assert "id" in json.loads(call[0].function.arguments)  # type: ignore[union-attr]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call[0].id, "content": "Login page broken"})
    final = sdk.chat.completions.create(model="chat", messages=messages, tools=tools)  # type: ignore[arg-type]
    assert "Login page broken" in (final.choices[0].message.content or "")


def test_streamed_tool_call(gateway: RunningGateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    stream = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "look it up"}],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
    )
    arguments = ""
    name = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    name = call.function.name
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
    assert name == "lookup"
    json.loads(arguments)


def test_structured_output(gateway: RunningGateway) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "priority": {"type": "integer"}},
        "required": ["title", "priority"],
        "additionalProperties": False,
    }
    completion = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Make a ticket"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "ticket", "schema": schema, "strict": True},
        },
    )
    value = json.loads(completion.choices[0].message.content or "")
    assert isinstance(value["title"], str) and isinstance(value["priority"], int)


def test_embeddings_and_models(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    result = sdk.embeddings.create(model="embed", input=["un", "deux"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    models = sorted(m.id for m in sdk.models.list())
    assert models == ["azure-chat", "chat", "embed", "unreachable"]  # only project alpha's
    assert sdk.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("secret-model")


def test_embedding_model_cannot_chat(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="embed", messages=[{"role": "user", "content": "hi"}]
        )
    assert "embedding model" in str(info.value)


def test_azure_deployment_url_and_auth(gateway: RunningGateway, primary: Fake) -> None:
    completion = client(gateway).chat.completions.create(
        model="azure-chat", messages=[{"role": "user", "content": "hello azure"}]
    )
    assert completion.choices[0].message.content
    sent = primary.requests()[-1]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == "***"
    assert "authorization" not in sent["headers"]


def test_async_client_concurrent_requests(gateway: RunningGateway) -> None:
    async def run() -> list[str]:
        sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
        async with sdk:

            async def one(i: int) -> str:
                completion = await sdk.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": f"question {i}"}]
                )
                return completion.choices[0].message.content or ""

            async def streamed() -> str:
                stream = await sdk.chat.completions.create(
                    model="chat",
                    messages=[{"role": "user", "content": "async stream"}],
                    stream=True,
                )
                return "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )

            return await asyncio.gather(*(one(i) for i in range(20)), streamed())

    answers = asyncio.run(run())
    for i in range(20):
        assert f"question {i}" in answers[i]
    assert "async stream" in answers[20]
