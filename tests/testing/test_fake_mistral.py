"""The fake OpenAI upstream in its Mistral dialect: Mistral's variant of Chat Completions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from passerelle.testing.fake_openai import FakeSettings
from passerelle.testing.server import serve_in_thread
from tests.testing._support import check_golden

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def mistral() -> Iterator[str]:
    with serve_in_thread("openai", settings=FakeSettings(dialect="mistral")) as url:
        yield url


_VOLATILE = (
    (re.compile(r'"id":\s*"chatcmpl-fake[0-9a-f]+"'), '"id": "<id>"'),
    (re.compile(r'"created":\s*\d+'), '"created": 0'),
)


def _stable(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def _chat(url: str, **body: Any) -> httpx.Response:
    payload = {"model": "mistral-large-latest", "messages": [{"role": "user", "content": "Salut"}]}
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={**payload, **body},
        headers={"authorization": "Bearer test-key"},
        timeout=10,
    )


def test_plain_reply_matches_the_golden_file_and_parses(mistral: str) -> None:
    reply = _chat(mistral)
    assert reply.status_code == 200
    check_golden("mistral/chat_plain.json", json.loads(_stable(reply.text)))
    client = openai.OpenAI(base_url=f"{mistral}/v1", api_key="k", max_retries=0)
    parsed = client.chat.completions.create(
        model="mistral-large-latest", messages=[{"role": "user", "content": "Salut"}]
    )
    assert parsed.model == "fake-mistral-large-latest" and parsed.usage is not None


def test_stream_carries_usage_on_its_last_chunk_without_being_asked(mistral: str) -> None:
    reply = _chat(mistral, stream=True)
    check_golden("mistral/chat_stream.sse", _stable(reply.text))
    client = openai.OpenAI(base_url=f"{mistral}/v1", api_key="k", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="mistral-large-latest",
            messages=[{"role": "user", "content": "Salut"}],
            stream=True,
        )
    )
    last = chunks[-1]
    assert last.usage is not None and last.choices and last.choices[0].finish_reason == "stop"
    assert all(chunk.choices for chunk in chunks)  # no empty usage-only chunk as OpenAI sends


def test_stream_options_are_refused_with_mistrals_flat_error(mistral: str) -> None:
    reply = _chat(mistral, stream=True, stream_options={"include_usage": True})
    assert reply.status_code == 422
    body = reply.json()
    assert body["object"] == "error" and "stream_options" in body["message"]
    assert "error" not in body
    check_golden("mistral/error_422.json", body)


def test_injected_faults_use_the_flat_shape_too(mistral: str) -> None:
    httpx.post(f"{mistral}/_fake/faults", json={"faults": [{"status": 429}]}).raise_for_status()
    reply = _chat(mistral)
    assert reply.status_code == 429
    assert reply.json()["object"] == "error" and reply.json()["message"]


def test_tool_call_ids_are_nine_letters_and_digits(mistral: str) -> None:
    reply = _chat(mistral, tools=[TOOL]).json()
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", call["id"])


def test_there_is_no_responses_api(mistral: str) -> None:
    reply = httpx.post(
        f"{mistral}/v1/responses",
        json={"model": "m", "input": "x"},
        headers={"authorization": "Bearer test-key"},
        timeout=10,
    )
    assert reply.status_code == 404
