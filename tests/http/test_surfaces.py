"""Every surface against every provider family, through a running gateway, with real SDKs.

The gateway fronts a fake OpenAI, a fake Anthropic, a fake Gemini and a fake Bedrock (which
checks SigV4 signatures). Same format in and out must be a passthrough; different formats are
translated both ways, streams included, and each SDK must parse what it gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.storage.keys import KeyStore
from passerelle.testing import fake_bedrock
from passerelle.testing.server import serve_in_thread

from .conftest import Fake

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
providers:
  oai:
    kind: openai
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
  claude:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: confidential
  gem:
    kind: gemini
    base_url: {gemini}
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: confidential
  bedrock-eu:
    kind: bedrock
    base_url: {bedrock}
    aws_region: eu-west-3
    region: eu
    clearance: confidential
    retry: {{max_attempts: 1}}
models:
  gpt:
    routes: [{{provider: oai, model: gpt-4o-mini}}]
  claude-sonnet:
    routes: [{{provider: claude, model: claude-sonnet-4-6}}]
  gemini-flash:
    routes: [{{provider: gem, model: gemini-2.5-flash}}]
  claude-bedrock:
    routes: [{{provider: bedrock-eu, model: "eu.anthropic.claude-sonnet-4-6-v1:0"}}]
teams:
  web: {{name: Web}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
"""

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],  # type: ignore[index]
}


@dataclass
class Fleet:
    url: str
    key: str
    openai: Fake
    anthropic: Fake
    gemini: Fake
    bedrock: Fake

    def oai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    def claude(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.key, max_retries=0, **kwargs)

    def gem(self) -> genai.Client:
        return genai.Client(
            api_key=self.key, http_options=genai_types.HttpOptions(base_url=self.url)
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data = Path(tmp_path_factory.mktemp("surfaces"))
    with (
        pytest.MonkeyPatch.context() as patch,
        serve_in_thread("openai") as oai_url,
        serve_in_thread("anthropic") as anthropic_url,
        serve_in_thread("gemini") as gemini_url,
        serve_in_thread("bedrock", settings=fake_bedrock.FakeSettings(region="eu-west-3")) as br,
    ):
        # The standard AWS chain reads the environment; the fake knows this test key pair.
        patch.setenv("AWS_ACCESS_KEY_ID", fake_bedrock.TEST_ACCESS_KEY_ID)
        patch.setenv("AWS_SECRET_ACCESS_KEY", fake_bedrock.TEST_SECRET_ACCESS_KEY)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        patch.delenv("AWS_PROFILE", raising=False)
        path = data / "passerelle.yaml"
        path.write_text(
            CONFIG.format(
                data=data, openai=oai_url, anthropic=anthropic_url, gemini=gemini_url, bedrock=br
            )
        )
        app = create_app(load_config(path), environ={"UPSTREAM_KEY": "upstream-key-123456"})
        with serve_in_thread(app) as url:
            keys: KeyStore = app.state.gateway.keys
            user = keys.add_user("dev@acme.test", team="web", profile="dev")
            key, _ = keys.create_key(user, project="alpha")
            yield Fleet(url, key, Fake(oai_url), Fake(anthropic_url), Fake(gemini_url), Fake(br))


@pytest.fixture(autouse=True)
def _reset(fleet: Fleet) -> None:
    for fake in (fleet.openai, fleet.anthropic, fleet.gemini, fleet.bedrock):
        fake.reset()


# -- Anthropic surface ------------------------------------------------------------------------


def test_anthropic_passthrough_forwards_beta_headers_and_unknown_fields(fleet: Fleet) -> None:
    client = fleet.claude(default_headers={"anthropic-beta": "context-management-2025-06-27"})
    message = client.messages.create(
        model="claude-sonnet",
        max_tokens=64,
        messages=[{"role": "user", "content": "Bonjour"}],
        extra_body={"context_management": {"edits": []}},
    )
    assert message.content[0].type == "text"
    assert message.usage.input_tokens > 0
    sent = fleet.anthropic.requests()[-1]
    assert sent["headers"]["anthropic-beta"] == "context-management-2025-06-27"
    assert sent["body"]["model"] == "claude-sonnet-4-6"
    assert sent["body"]["context_management"] == {"edits": []}
    # the caller's key never reaches the provider
    assert fleet.key not in str(sent)


def test_anthropic_passthrough_stream_and_tool_use(fleet: Fleet) -> None:
    client = fleet.claude()
    with client.messages.stream(
        model="claude-sonnet",
        max_tokens=128,
        tools=[WEATHER_TOOL_ANTHROPIC],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Lyon?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = next(block for block in final.content if block.type == "tool_use")
    answer = client.messages.create(
        model="claude-sonnet",
        max_tokens=128,
        tools=[WEATHER_TOOL_ANTHROPIC],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Lyon?"},
            {"role": "assistant", "content": final.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"


def test_anthropic_count_tokens_and_head_probe(fleet: Fleet) -> None:
    count = fleet.claude().messages.count_tokens(
        model="claude-sonnet", messages=[{"role": "user", "content": "Bonjour"}]
    )
    assert count.input_tokens > 0
    probe = httpx.head(f"{fleet.url}/")
    assert probe.status_code == 200


def test_anthropic_client_served_by_openai_model_translated(fleet: Fleet) -> None:
    client = fleet.claude()
    raw = client.messages.with_raw_response.create(
        model="gpt",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Bonjour"}],
    )
    message = raw.parse()
    assert message.type == "message" and message.content[0].type == "text"
    assert "fake" in message.content[0].text.lower() or message.content[0].text
    assert "anthropic.cache_control" in raw.headers["x-passerelle-dropped"]
    sent = fleet.openai.requests()[-1]
    assert sent["path"].endswith("/chat/completions")
    assert sent["body"]["messages"][0]["role"] in ("system", "developer")
    with client.messages.stream(
        model="gpt",
        max_tokens=64,
        tools=[WEATHER_TOOL_ANTHROPIC],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Lyon?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = next(block for block in final.content if block.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    assert final.usage.output_tokens > 0


def test_anthropic_client_through_bedrock_signed_stream(fleet: Fleet) -> None:
    client = fleet.claude()
    message = client.messages.create(
        model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    with client.messages.stream(
        model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0
    sent = fleet.bedrock.requests()
    assert [r["path"].rsplit("/", 1)[-1] for r in sent] == ["invoke", "invoke-with-response-stream"]
    assert sent[0]["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in sent[0]["body"]


# -- OpenAI Chat surface ----------------------------------------------------------------------


def test_openai_client_served_by_claude_translated(fleet: Fleet) -> None:
    client = fleet.oai()
    completion = client.chat.completions.create(
        model="claude-sonnet",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Bonjour"},
        ],
        max_tokens=64,
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = fleet.anthropic.requests()[-1]
    assert sent["body"]["system"] and sent["body"]["model"] == "claude-sonnet-4-6"
    stream = client.chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "Weather in Lyon?"}],
        tools=[WEATHER_TOOL_OPENAI],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    calls = [
        c for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or []
    ]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_client_served_by_gemini_translated(fleet: Fleet) -> None:
    completion = fleet.oai().chat.completions.create(
        model="gemini-flash", messages=[{"role": "user", "content": "Bonjour"}]
    )
    assert completion.choices[0].message.content
    sent = fleet.gemini.requests()[-1]
    assert sent["path"].endswith("gemini-2.5-flash:generateContent")


def test_upstream_error_comes_back_in_the_callers_shape(fleet: Fleet) -> None:
    fleet.anthropic.faults({"status": 400})
    with pytest.raises(openai.BadRequestError) as caught:
        fleet.oai().chat.completions.create(
            model="claude-sonnet", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict) and "message" in body  # OpenAI's error object


# -- Gemini surface ---------------------------------------------------------------------------


def test_gemini_passthrough_and_stream(fleet: Fleet) -> None:
    client = fleet.gem()
    reply = client.models.generate_content(model="gemini-flash", contents="Bonjour")
    assert reply.text
    pieces = list(client.models.generate_content_stream(model="gemini-flash", contents="Salut"))
    assert "".join(p.text or "" for p in pieces)
    assert pieces[-1].usage_metadata is not None
    count = client.models.count_tokens(model="gemini-flash", contents="Bonjour")
    assert count.total_tokens and count.total_tokens > 0
    paths = [r["path"] for r in fleet.gemini.requests()]
    assert paths[0].endswith("gemini-2.5-flash:generateContent")
    assert paths[1].endswith("gemini-2.5-flash:streamGenerateContent")


def test_gemini_client_served_by_claude_translated(fleet: Fleet) -> None:
    client = fleet.gem()
    reply = client.models.generate_content(
        model="claude-sonnet",
        contents="Bonjour",
        config=genai_types.GenerateContentConfig(system_instruction="Be brief."),
    )
    assert reply.text
    pieces = list(client.models.generate_content_stream(model="claude-sonnet", contents="Salut"))
    assert "".join(p.text or "" for p in pieces)
    sent = fleet.anthropic.requests()
    assert sent[0]["body"]["system"]


def test_errors_in_each_surfaces_own_shape(fleet: Fleet) -> None:
    missing = httpx.post(
        f"{fleet.url}/v1/messages",
        headers={"x-api-key": fleet.key},
        json={"model": "nope", "max_tokens": 5, "messages": []},
    )
    assert missing.status_code == 404
    assert missing.json()["type"] == "error" and missing.headers["request-id"]
    gemini = httpx.post(
        f"{fleet.url}/v1beta/models/nope:generateContent",
        headers={"x-goog-api-key": fleet.key},
        json={"contents": []},
    )
    assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"
    bad_key = httpx.post(
        f"{fleet.url}/v1/messages", headers={"x-api-key": "psk-wrong-key-000000000000"}, json={}
    )
    assert bad_key.status_code == 401 and bad_key.json()["error"]["type"] == "authentication_error"


# -- OpenAI Responses surface -----------------------------------------------------------------


def test_responses_passthrough_to_openai(fleet: Fleet) -> None:
    client = fleet.oai()
    response = client.responses.create(
        model="gpt",
        input="Bonjour",
        store=False,
        extra_body={"prompt_cache_key": "session-1"},
    )
    assert response.output_text
    with client.responses.stream(model="gpt", input="Salut", store=False) as stream:
        final = stream.get_final_response()
    assert final.output_text and final.usage is not None and final.usage.output_tokens > 0
    sent = fleet.openai.requests()
    assert [r["path"] for r in sent] == ["/v1/responses", "/v1/responses"]
    assert sent[0]["body"]["prompt_cache_key"] == "session-1"
    assert sent[0]["body"]["model"] == "gpt-4o-mini"


def test_responses_client_served_by_claude_translated(fleet: Fleet) -> None:
    client = fleet.oai()
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": WEATHER_TOOL_ANTHROPIC["input_schema"],
    }
    with client.responses.stream(
        model="claude-sonnet",
        input="Weather in Lyon?",
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    answer = client.responses.create(
        model="claude-sonnet",
        tools=[tool],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": "Weather in Lyon?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "12 C"},
        ],
    )
    assert answer.output_text
    assert fleet.anthropic.requests()[-1]["body"]["messages"][-1]["content"][0]["type"] == (
        "tool_result"
    )
