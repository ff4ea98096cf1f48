"""Each fake's wire output, byte for byte, against the golden files under ``golden/<provider>/``.

The golden files are the contract the gateway's codecs are written against: a change in what a
fake sends shows up here as a diff to review. Ids, timestamps and latencies are replaced by
placeholders before comparing (see ``_support.normalize``). After an intended change, rewrite
the files with ``PASSERELLE_UPDATE_GOLDEN=1 pytest tests/testing/test_golden.py`` and review the
diff.

Streams are kept as text (``.sse``) or, for AWS event streams, as the decoded messages in JSON
(``.eventstream.json``), with a Bedrock chunk's base64 ``bytes`` decoded to the event it carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from passerelle.formats.aws_eventstream import decode_all
from passerelle.providers.aws_sigv4 import AwsCredentials
from passerelle.testing.fake_bedrock import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from passerelle.testing.server import serve_in_thread
from tests.testing._support import PNG_1X1, check_golden, eventstream_as_json, signed_post

PROMPT = "What is ticket 42 about?"
TICKET_SCHEMA: Any = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
    "required": ["id", "priority"],
}


def error_record(reply: httpx.Response, *headers: str) -> dict[str, Any]:
    record: dict[str, Any] = {"status": reply.status_code}
    record |= {name: reply.headers[name] for name in headers}
    record["body"] = reply.json()
    return record


# -- Anthropic -------------------------------------------------------------------------------

ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
ANTHROPIC_TOOL: Any = {
    "name": "get_ticket",
    "description": "Fetch a ticket",
    "input_schema": TICKET_SCHEMA,
}
ANTHROPIC_USER: Any = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def anthropic_http() -> Iterator[httpx.Client]:
    with (
        serve_in_thread("anthropic") as url,
        httpx.Client(base_url=url, headers=ANTHROPIC_HEADERS) as client,
    ):
        yield client


def test_anthropic_golden(anthropic_http: httpx.Client) -> None:
    http = anthropic_http

    def create(**body: Any) -> httpx.Response:
        return http.post(
            "/v1/messages", json={"model": "claude-sonnet-4-6", "max_tokens": 2048, **body}
        )

    check_golden("anthropic/plain.json", create(messages=ANTHROPIC_USER).json())
    check_golden("anthropic/stream.sse", create(messages=ANTHROPIC_USER, stream=True).text)
    tool_call = create(messages=ANTHROPIC_USER, tools=[ANTHROPIC_TOOL]).json()
    check_golden("anthropic/tool_call.json", tool_call)
    use = tool_call["content"][-1]
    history = [
        *ANTHROPIC_USER,
        {"role": "assistant", "content": tool_call["content"]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use["id"], "content": "Login page broken"}
            ],
        },
    ]
    check_golden(
        "anthropic/tool_result.json", create(messages=history, tools=[ANTHROPIC_TOOL]).json()
    )
    thinking = {"type": "enabled", "budget_tokens": 1024}
    streamed = create(
        messages=ANTHROPIC_USER, tools=[ANTHROPIC_TOOL], thinking=thinking, stream=True
    )
    check_golden("anthropic/stream_thinking_tool.sse", streamed.text)
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1},
    }
    with_image = [
        {"role": "user", "content": [image, {"type": "text", "text": "What is in this image?"}]}
    ]
    check_golden("anthropic/image.json", create(messages=with_image).json())
    counted = http.post(
        "/v1/messages/count_tokens", json={"model": "m", "messages": ANTHROPIC_USER}
    )
    check_golden("anthropic/count_tokens.json", counted.json())
    invalid = http.post("/v1/messages", json={"model": "m", "messages": ANTHROPIC_USER})
    check_golden("anthropic/error.json", error_record(invalid))


# -- Gemini and Vertex AI --------------------------------------------------------------------

GEMINI_HEADERS = {"x-goog-api-key": "k"}
GEMINI_USER: Any = [{"role": "user", "parts": [{"text": PROMPT}]}]
GEMINI_TOOLS: Any = [
    {
        "functionDeclarations": [
            {
                "name": "get_ticket",
                "description": "Fetch a ticket",
                "parameters": {
                    "type": "OBJECT",
                    "properties": {"id": {"type": "STRING"}},
                    "required": ["id"],
                },
            }
        ]
    }
]
GEMINI = "/v1beta/models/gemini-2.5-flash"
VERTEX = "/v1/projects/p/locations/us-central1/publishers"


@pytest.fixture(scope="module")
def gemini_http() -> Iterator[httpx.Client]:
    with serve_in_thread("gemini") as url, httpx.Client(base_url=url) as client:
        yield client


def test_gemini_golden(gemini_http: httpx.Client) -> None:
    http = gemini_http

    def generate(method: str = "generateContent", **body: Any) -> httpx.Response:
        params = {"alt": "sse"} if method == "streamGenerateContent" else {}
        return http.post(f"{GEMINI}:{method}", params=params, json=body, headers=GEMINI_HEADERS)

    check_golden("gemini/plain.json", generate(contents=GEMINI_USER).json())
    check_golden("gemini/stream.sse", generate("streamGenerateContent", contents=GEMINI_USER).text)
    tool_call = generate(contents=GEMINI_USER, tools=GEMINI_TOOLS).json()
    check_golden("gemini/tool_call.json", tool_call)
    history = [
        *GEMINI_USER,
        tool_call["candidates"][0]["content"],
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_ticket",
                        "response": {"summary": "Login page broken"},
                    }
                }
            ],
        },
    ]
    check_golden("gemini/tool_result.json", generate(contents=history, tools=GEMINI_TOOLS).json())
    thinking = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
    streamed = generate(
        "streamGenerateContent", contents=GEMINI_USER, tools=GEMINI_TOOLS, generationConfig=thinking
    )
    check_golden("gemini/stream_thinking_tool.sse", streamed.text)
    image = {"inlineData": {"mimeType": "image/png", "data": PNG_1X1}}
    with_image = [{"role": "user", "parts": [image, {"text": "What is in this image?"}]}]
    check_golden("gemini/image.json", generate(contents=with_image).json())
    check_golden("gemini/count_tokens.json", generate("countTokens", contents=GEMINI_USER).json())
    check_golden("gemini/error.json", error_record(generate(contents=[])))

    bearer = {"authorization": "Bearer t"}
    vertex_plain = http.post(
        f"{VERTEX}/google/models/gemini-2.5-flash:generateContent",
        json={"contents": GEMINI_USER},
        headers=bearer,
    )
    check_golden("gemini/vertex_plain.json", vertex_plain.json())
    claude = http.post(
        f"{VERTEX}/anthropic/models/claude-sonnet-4-6@20260101:streamRawPredict",
        json={
            "anthropic_version": "vertex-2023-10-16",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
        },
        headers=bearer,
    )
    check_golden("gemini/vertex_claude_stream.sse", claude.text)


# -- Bedrock ---------------------------------------------------------------------------------

CREDENTIALS = AwsCredentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
BEDROCK_MODEL = quote("anthropic.claude-sonnet-4-6-v1:0", safe="")
CONVERSE_USER: Any = [{"role": "user", "content": [{"text": PROMPT}]}]
CONVERSE_TOOLS: Any = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_ticket",
                "description": "Fetch a ticket",
                "inputSchema": {"json": TICKET_SCHEMA},
            }
        }
    ]
}


@pytest.fixture(scope="module")
def bedrock_http() -> Iterator[httpx.Client]:
    with serve_in_thread("bedrock") as url, httpx.Client(base_url=url) as client:
        yield client


def test_bedrock_golden(bedrock_http: httpx.Client) -> None:
    http = bedrock_http

    def post(operation: str, body: Any) -> httpx.Response:
        return signed_post(http, f"/model/{BEDROCK_MODEL}/{operation}", body, CREDENTIALS)

    invoke_body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    check_golden("bedrock/invoke.json", post("invoke", invoke_body).json())
    stream = post("invoke-with-response-stream", invoke_body)
    check_golden(
        "bedrock/invoke_stream.eventstream.json", eventstream_as_json(decode_all(stream.content))
    )
    check_golden("bedrock/converse.json", post("converse", {"messages": CONVERSE_USER}).json())
    converse_stream = post("converse-stream", {"messages": CONVERSE_USER})
    check_golden(
        "bedrock/converse_stream.eventstream.json",
        eventstream_as_json(decode_all(converse_stream.content)),
    )
    tool_call = post("converse", {"messages": CONVERSE_USER, "toolConfig": CONVERSE_TOOLS}).json()
    check_golden("bedrock/converse_tool_call.json", tool_call)
    use = tool_call["output"]["message"]["content"][-1]["toolUse"]
    history = [
        *CONVERSE_USER,
        tool_call["output"]["message"],
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": use["toolUseId"],
                        "content": [{"text": "Login page broken"}],
                    }
                }
            ],
        },
    ]
    final = post("converse", {"messages": history, "toolConfig": CONVERSE_TOOLS}).json()
    check_golden("bedrock/converse_tool_result.json", final)
    image = {"image": {"format": "png", "source": {"bytes": PNG_1X1}}}
    with_image = [{"role": "user", "content": [image, {"text": "What is in this image?"}]}]
    check_golden("bedrock/converse_image.json", post("converse", {"messages": with_image}).json())
    invalid = post("invoke", {**invoke_body, "model": "anthropic.claude-sonnet-4-6-v1:0"})
    check_golden("bedrock/error.json", error_record(invalid, "x-amzn-errortype"))


# -- OpenAI Responses ------------------------------------------------------------------------

OPENAI_HEADERS = {"authorization": "Bearer k"}
RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_ticket",
    "description": "Fetch a ticket",
    "parameters": {**TICKET_SCHEMA, "additionalProperties": False},
    "strict": True,
}
# Responses ids and timestamps, on top of what ``_support.normalize`` replaces.
_RESPONSES_VOLATILE = [
    (re.compile(r"\b(resp|msg|fc|rs|call)_fake[0-9a-f]+"), r"\1_fake<id>"),
    (re.compile(r'("(?:created_at|completed_at)": ?)[0-9]+'), r"\g<1>0"),
]


def responses_stable(value: Any) -> Any:
    """A Responses body (decoded JSON) or stream (text) with its ids and timestamps fixed."""
    text = value if isinstance(value, str) else json.dumps(value)
    for pattern, replacement in _RESPONSES_VOLATILE:
        text = pattern.sub(replacement, text)
    return text if isinstance(value, str) else json.loads(text)


@pytest.fixture(scope="module")
def openai_http() -> Iterator[httpx.Client]:
    with (
        serve_in_thread("openai") as url,
        httpx.Client(base_url=url, headers=OPENAI_HEADERS) as client,
    ):
        yield client


def test_openai_responses_golden(openai_http: httpx.Client) -> None:
    http = openai_http

    def create(**body: Any) -> httpx.Response:
        return http.post("/v1/responses", json={"model": "gpt-5", **body})

    def check(name: str, value: Any) -> None:
        check_golden(f"openai/{name}", responses_stable(value))

    check("responses_plain.json", create(input=PROMPT).json())
    check("responses_stream.sse", create(input=PROMPT, stream=True).text)
    tool_call = create(input=PROMPT, tools=[RESPONSES_TOOL]).json()
    check("responses_tool_call.json", tool_call)
    call = tool_call["output"][-1]
    history = [
        {"role": "user", "content": [{"type": "input_text", "text": PROMPT}]},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "Login page broken"},
    ]
    check("responses_tool_result.json", create(input=history, tools=[RESPONSES_TOOL]).json())
    codex_like = create(
        input=PROMPT,
        tools=[RESPONSES_TOOL],
        reasoning={"effort": "medium", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
        stream=True,
    )
    check("responses_stream_reasoning_tool.sse", codex_like.text)
    chat_style = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    check("responses_error.json", error_record(create(input=chat_style)))
