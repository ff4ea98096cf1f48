"""The fake Google upstream (Gemini API, Vertex AI Gemini and Claude), read by the official SDKs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from passerelle.formats.sse import SSEDecoder, event_data
from passerelle.testing.fake_gemini import FakeSettings, create_app, main
from passerelle.testing.server import serve_in_thread
from tests.testing._support import PNG_1X1, Control

MODEL = "gemini-2.5-flash"
PROMPT = "What is ticket 42 about?"
KEY = {"x-goog-api-key": "gemini-test-key"}
TICKET = types.FunctionDeclaration(
    name="get_ticket",
    description="Fetch a ticket",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"id": types.Schema(type=types.Type.STRING)},
        required=["id"],
    ),
)
SEARCH = types.FunctionDeclaration(
    name="search", parameters_json_schema={"type": "object", "properties": {}}
)
VERTEX_PREFIX = "/v1/projects/p/locations/us-central1/publishers"
CLAUDE_PREFIX = "/v1/projects/p/locations/us-east5/publishers/anthropic/models"


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
def client(url: str) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=url, retry_options=types.HttpRetryOptions(attempts=1))
    with genai.Client(api_key="gemini-test-key", http_options=options) as gemini:
        yield gemini


@pytest.fixture(scope="module")
def vertex(url: str) -> Iterator[genai.Client]:
    with genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="vertex-token"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=url),
    ) as google_cloud:
        yield google_cloud


@pytest.fixture(scope="module")
def claude(url: str) -> Iterator[anthropic.AnthropicVertex]:
    with anthropic.AnthropicVertex(
        region="us-east5",
        project_id="p",
        access_token="vertex-token",
        base_url=url + "/v1",
        max_retries=0,
        _strict_response_validation=True,
    ) as vertex_claude:
        yield vertex_claude


def tools(*declarations: types.FunctionDeclaration) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(tools=[types.Tool(function_declarations=list(declarations))])


# -- Gemini API ------------------------------------------------------------------------------


def test_generate_content_is_labelled_fake(client: genai.Client) -> None:
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text == f"This is a fake reply to: {PROMPT}"
    assert response.model_version == f"fake-{MODEL}"
    assert response.response_id and response.response_id.startswith("fake")
    candidate = (response.candidates or [])[0]
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (6, 13)
    assert usage.total_token_count == 19 and usage.thoughts_token_count is None
    assert usage.prompt_tokens_details and usage.prompt_tokens_details[0].token_count == 6
    headers = response.sdk_http_response.headers if response.sdk_http_response else {}
    assert headers and headers["x-fake-upstream"] == "gemini"


def test_streaming_reassembles_the_reply(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) > 2
    assert "".join(chunk.text or "" for chunk in chunks) == f"This is a fake reply to: {PROMPT}"
    assert all(c.response_id == chunks[0].response_id for c in chunks)
    assert [c.candidates[0].finish_reason for c in chunks if c.candidates][-1] == "STOP"
    assert chunks[0].usage_metadata and chunks[0].usage_metadata.candidates_token_count is None
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count == 19


def test_raw_sse_framing_and_json_array(http: httpx.Client) -> None:
    body = {"contents": [{"parts": [{"text": PROMPT}]}]}
    path = f"/v1beta/models/{MODEL}:streamGenerateContent"
    reply = http.post(path, params={"alt": "sse"}, json=body, headers=KEY)
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.content.endswith(b"}\r\n\r\n")
    events = SSEDecoder().feed(reply.content)
    chunks = [json.loads(event_data(event) or b"") for event in events]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert set(chunks[0]) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    array = http.post(path, json=body, headers=KEY)
    assert array.headers["content-type"] == "application/json"
    assert json.loads(array.content) == [
        {**c, "responseId": c["responseId"]} for c in json.loads(array.content)
    ]
    assert len(json.loads(array.content)) == len(chunks)


def test_count_tokens(client: genai.Client, http: httpx.Client) -> None:
    counted = client.models.count_tokens(model=MODEL, contents=PROMPT)
    assert counted.total_tokens == 6
    wrapped = http.post(
        f"/v1beta/models/{MODEL}:countTokens",
        json={
            "generateContentRequest": {
                "model": f"models/{MODEL}",
                "contents": [{"parts": [{"text": PROMPT}]}],
            }
        },
        headers=KEY,
    )
    assert wrapped.json()["totalTokens"] == 6


def test_function_call_round_trip(client: genai.Client) -> None:
    config = tools(TICKET)
    first = client.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_ticket", {"id": "fake"})]
    assert (first.candidates or [])[0].finish_reason == "STOP"
    history = [
        types.Content(role="user", parts=[types.Part(text=PROMPT)]),
        (first.candidates or [])[0].content,
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(
                    name="get_ticket", response={"summary": "Login broken"}
                )
            ],
        ),
    ]
    final = client.models.generate_content(model=MODEL, contents=history, config=config)  # type: ignore[arg-type]
    assert final.text == 'This is a fake reply using the tool results: {"summary":"Login broken"}'
    streamed = list(
        client.models.generate_content_stream(model=MODEL, contents=PROMPT, config=config)
    )
    assert len(streamed) == 1 and streamed[0].function_calls


def test_parallel_calls_and_calling_modes(client: genai.Client) -> None:
    def names(config: types.GenerateContentConfig, prompt: str = "Both, in parallel") -> list[str]:
        response = client.models.generate_content(model=MODEL, contents=prompt, config=config)
        return [call.name or "" for call in response.function_calls or []]

    assert names(tools(TICKET, SEARCH)) == ["get_ticket", "search"]
    assert names(tools(TICKET, SEARCH), "one only") == ["get_ticket"]
    none = tools(TICKET)
    none.tool_config = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.NONE
        )
    )
    assert names(none) == []
    only_search = tools(TICKET, SEARCH)
    only_search.tool_config = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["search"]
        )
    )
    assert names(only_search, "one") == ["search"]


def test_function_turn_rules(http: httpx.Client) -> None:
    path = f"/v1beta/models/{MODEL}:generateContent"
    response_part = {"functionResponse": {"name": "get_ticket", "response": {"ok": True}}}
    orphan = {"contents": [{"role": "user", "parts": [response_part]}]}
    reply = http.post(path, json=orphan, headers=KEY)
    assert reply.status_code == 400
    assert "immediately after a function call turn" in reply.json()["error"]["message"]
    call_part = {"functionCall": {"name": "get_ticket", "args": {}}}
    uneven = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [call_part, call_part]},
            {"role": "user", "parts": [response_part]},
        ]
    }
    reply = http.post(path, json=uneven, headers=KEY)
    assert "number of function response parts" in reply.json()["error"]["message"]


def test_thinking_and_cached_content(client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        cached_content="cachedContents/fake-cache",
    )
    response = client.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    parts = (response.candidates or [])[0].content.parts or []  # type: ignore[union-attr]
    assert parts[0].thought is True and parts[0].text and parts[0].text.startswith("The user wrote")
    assert response.text == f"This is a fake reply to: {PROMPT}"  # thoughts are not the text
    thought_tokens = -(-len(parts[0].text) // 4)  # the fakes' four characters a token
    usage = response.usage_metadata
    assert usage is not None and usage.thoughts_token_count == thought_tokens
    assert usage.cached_content_token_count == 1024 and usage.prompt_token_count == 1030
    assert usage.total_token_count == 1030 + 13 + thought_tokens
    hidden = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=512))
    quiet = client.models.generate_content(model=MODEL, contents=PROMPT, config=hidden)
    assert quiet.usage_metadata and quiet.usage_metadata.thoughts_token_count == thought_tokens
    assert len((quiet.candidates or [])[0].content.parts or []) == 1  # type: ignore[union-attr]


def test_images_json_mode_and_limits(client: genai.Client, http: httpx.Client) -> None:
    image = types.Part.from_bytes(data=base64.b64decode(PNG_1X1), mime_type="image/png")
    response = client.models.generate_content(model=MODEL, contents=[image, "What is this?"])
    assert response.text == "This is a fake reply to: What is this? (with 1 image)"
    details = (response.usage_metadata and response.usage_metadata.prompt_tokens_details) or []
    assert [(d.modality, d.token_count) for d in details] == [("TEXT", 4), ("IMAGE", 258)]
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    json_mode = client.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )
    assert json.loads(json_mode.text or "") == {"title": "fake"}
    short = client.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(max_output_tokens=2, candidate_count=2),
    )
    assert [(c.index, c.finish_reason) for c in short.candidates or []] == [
        (0, "MAX_TOKENS"),
        (1, "MAX_TOKENS"),
    ]
    bad = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}
    reply = http.post(f"/v1beta/models/{MODEL}:generateContent", json=bad, headers=KEY)
    assert reply.status_code == 400 and "Base64 decoding failed" in reply.json()["error"]["message"]


def test_errors_have_google_shapes(client: genai.Client, http: httpx.Client) -> None:
    path = f"/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    missing = http.post(path, json=body)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    bad_bodies: list[Any] = [
        {},
        {"contents": []},
        {"contents": [{"parts": []}]},
        {"contents": [{"parts": [{}]}]},
        {"contents": [{"role": "robot", "parts": [{"text": "x"}]}]},
    ]
    for bad in bad_bodies:
        reply = http.post(path, json=bad, headers=KEY)
        assert reply.status_code == 400, bad
        error = reply.json()["error"]
        assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model=MODEL, contents=[types.Content(role="robot", parts=[types.Part(text="x")])]
        )
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    unknown = http.post(f"/v1beta/models/{MODEL}:explode", json=body, headers=KEY)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"


def test_configured_key_and_query_key() -> None:
    with (
        serve_in_thread(create_app(FakeSettings(api_key="right"))) as url,
        httpx.Client(base_url=url) as http,
    ):
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        path = f"/v1beta/models/{MODEL}:generateContent"
        wrong = http.post(path, json=body, headers={"x-goog-api-key": "wrong"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        assert http.post(path, params={"key": "right"}, json=body).status_code == 200
        logged = http.get("/_fake/requests").json()["requests"]
        assert logged[-1]["query"] == "key=***" and "right" not in json.dumps(logged)
        assert http.get("/v1beta/models").status_code == 403
        assert http.get("/v1beta/models", headers={"x-goog-api-key": "right"}).status_code == 200


def test_models(client: genai.Client) -> None:
    names = [model.name for model in client.models.list()]
    assert f"models/{MODEL}" in names
    assert client.models.get(model=MODEL).display_name == f"Fake {MODEL}"


# -- Vertex AI -------------------------------------------------------------------------------


def test_vertex_gemini(vertex: genai.Client, control: Control) -> None:
    response = vertex.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text == f"This is a fake reply to: {PROMPT}"
    assert response.create_time is not None
    assert response.usage_metadata and response.usage_metadata.traffic_type == "ON_DEMAND"
    streamed = list(vertex.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert "".join(c.text or "" for c in streamed) == response.text
    assert vertex.models.count_tokens(model=MODEL, contents=PROMPT).total_tokens == 6
    paths = [entry["path"] for entry in control.requests()]
    assert (
        paths[0] == f"/v1beta1/projects/p/locations/us-central1/publishers/google/models/{MODEL}"
        ":generateContent"
    )
    assert control.requests()[0]["headers"]["authorization"] == "***"


def test_vertex_needs_a_bearer_token_and_roles(http: httpx.Client) -> None:
    path = f"{VERTEX_PREFIX}/google/models/{MODEL}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    missing = http.post(path, json=body)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    bearer = {"authorization": "Bearer t"}
    no_role = http.post(path, json={"contents": [{"parts": [{"text": "hi"}]}]}, headers=bearer)
    assert no_role.status_code == 400
    assert no_role.json()["error"]["message"] == "Please use a valid role: user, model."
    assert http.post(path, json=body, headers=bearer).status_code == 200
    with serve_in_thread(create_app(FakeSettings(vertex_access_token="right"))) as url:
        wrong = httpx.post(url + path, json=body, headers=bearer)
    assert wrong.status_code == 401


def test_claude_on_vertex(claude: anthropic.AnthropicVertex, control: Control) -> None:
    user: Any = [{"role": "user", "content": PROMPT}]
    message = claude.messages.create(
        model="claude-sonnet-4-5@20250929", max_tokens=64, messages=user
    )
    assert (
        message.id.startswith("msg_vrtx_fake")
        and message.model == "fake-claude-sonnet-4-5@20250929"
    )
    assert message.content[0].text == f"This is a fake reply to: {PROMPT}"  # type: ignore[union-attr]
    with claude.messages.stream(
        model="claude-haiku-4-5@20251001", max_tokens=64, messages=user
    ) as stream:
        assert stream.get_final_message().content[0].text == message.content[0].text  # type: ignore[union-attr]
    assert (
        claude.messages.count_tokens(model="claude-haiku-4-5@20251001", messages=user).input_tokens
        == 6
    )
    sent = control.requests()
    assert sent[0]["path"] == f"{CLAUDE_PREFIX}/claude-sonnet-4-5@20250929:rawPredict"
    assert "model" not in sent[0]["body"] and "anthropic_version" in sent[0]["body"]
    assert sent[1]["path"].endswith(":streamRawPredict")
    assert sent[2]["path"] == f"{CLAUDE_PREFIX}/count-tokens:rawPredict"


def test_claude_on_vertex_body_rules(http: httpx.Client) -> None:
    path = f"{VERTEX_PREFIX}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    bearer = {"authorization": "Bearer t"}
    body: dict[str, Any] = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        (body, "anthropic_version: Field required"),
        ({**body, "anthropic_version": "bedrock-2023-05-31"}, "anthropic_version"),
        ({**body, "anthropic_version": "vertex-2023-10-16", "model": "x"}, "Extra inputs"),
    ]
    for payload, message in cases:
        reply = http.post(path, json=payload, headers=bearer)
        assert reply.status_code == 400
        assert reply.json()["type"] == "error" and message in reply.json()["error"]["message"]
    good = http.post(path, json={**body, "anthropic_version": "vertex-2023-10-16"}, headers=bearer)
    assert good.status_code == 200 and good.json()["type"] == "message"


# -- faults ----------------------------------------------------------------------------------


def test_status_faults(client: genai.Client, control: Control, http: httpx.Client) -> None:
    control.faults({"status": 429, "retry_after": 2}, {"status": 503})
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert limited.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
    ]
    with pytest.raises(errors.ServerError) as unavailable:
        client.models.generate_content_stream(model=MODEL, contents=PROMPT).__next__()
    assert unavailable.value.code == 503 and unavailable.value.status == "UNAVAILABLE"
    control.faults({"status": 529})
    reply = http.post(
        f"{VERTEX_PREFIX}/anthropic/models/claude-x:rawPredict",
        json={"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": []},
        headers={"authorization": "Bearer t"},
    )
    assert reply.status_code == 529 and reply.json()["error"]["type"] == "overloaded_error"


def test_faults_match_the_model_in_the_path(client: genai.Client, control: Control) -> None:
    control.faults({"status": 500}, match_model="gemini-2.5-pro")
    assert client.models.generate_content(model=MODEL, contents=PROMPT).text
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)


def test_timeout_disconnect_and_stream_cut(
    url: str, client: genai.Client, control: Control
) -> None:
    # The SDK lets its HTTP library's exceptions through: they are matched by name here.
    control.faults({"kind": "timeout", "seconds": 1})
    hasty = types.HttpOptions(
        base_url=url, timeout=200, retry_options=types.HttpRetryOptions(attempts=1)
    )
    with (
        genai.Client(api_key="k", http_options=hasty) as impatient,
        pytest.raises(Exception) as slow,
    ):
        impatient.models.generate_content(model=MODEL, contents=PROMPT)
    assert type(slow.value).__name__ == "ReadTimeout"
    control.faults({"kind": "disconnect"})
    with pytest.raises(Exception, match="without sending a response"):
        client.models.generate_content(model=MODEL, contents=PROMPT)
    control.faults({"kind": "stream_cut", "after_chunks": 1})
    received = []
    with pytest.raises(Exception, match="incomplete chunked read"):
        for chunk in client.models.generate_content_stream(model=MODEL, contents=PROMPT):
            received.append(chunk.text)
    assert received == ["This is a "]


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--vertex-token" in capsys.readouterr().out
