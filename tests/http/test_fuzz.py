"""Whatever arrives, the gateway answers: never a crash, never a 500, always a well-formed body."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passerelle.http.auth import PUBLIC_PATHS

from .conftest import RunningGateway

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

# Bodies that look like chat requests but get every field wrong in some way.
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["chat", "embed", "nope", ""]), json_values),
        "messages": st.one_of(
            st.lists(
                st.fixed_dictionaries({}, optional={"role": json_values, "content": json_values}),
                max_size=3,
            ),
            json_values,
        ),
        "stream": json_values,
        "stream_options": json_values,
        "tools": json_values,
    },
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return
    body: Any = response.json()
    if response.status_code >= 400:
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@SETTINGS
@given(body=chat_like)
def test_structured_garbage(gateway: RunningGateway, body: dict[str, Any]) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        response = httpx.post(
            gateway.url + path,
            content=json.dumps(body),
            headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"},
            timeout=30,
        )
        check(response)


@SETTINGS
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=latin-1", "multipart/x"]
    ),
)
def test_raw_bytes(gateway: RunningGateway, raw: bytes, content_type: str) -> None:
    headers = {"authorization": f"Bearer {gateway.key}"}
    if content_type:
        headers["content-type"] = content_type
    check(
        httpx.post(gateway.url + "/v1/chat/completions", content=raw, headers=headers, timeout=30)
    )


printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@SETTINGS
@given(token=printable, path=st.text(max_size=30))
def test_any_key_and_path(gateway: RunningGateway, token: str, path: str) -> None:
    # Header values and paths a client can actually send; what the HTTP parser itself rejects
    # never reaches the gateway.
    headers = {"authorization": f"Bearer {token}".strip()}
    if token.strip():
        headers["x-api-key"] = token.strip()
    response = httpx.get(gateway.url + "/" + quote(path), headers=headers, timeout=30)
    check(response)
    if response.url.path in PUBLIC_PATHS:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code in (401, 404, 405), response.text
