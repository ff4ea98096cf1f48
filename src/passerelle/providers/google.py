"""Google: the Gemini API (API key) and Vertex AI (OAuth token; Gemini and Claude models).

The Gemini wire format names the model in the URL, not in the body, and chooses streaming by
method (``:streamGenerateContent?alt=sse``), so a body goes upstream exactly as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from passerelle.config.schema import ProviderConfig
from passerelle.providers.anthropic import (
    TokenSource,
    VertexAnthropic,
    anthropic_error,
    message_of,
    vertex_model_url,
)
from passerelle.providers.base import Operation, Unsupported, UpstreamRequest, Wire

_METHODS = {
    Operation.GENERATE: "generateContent",
    Operation.COUNT_TOKENS: "countTokens",
}


def _gemini_method(operation: Operation, stream: bool) -> str:
    if operation is Operation.GENERATE and stream:
        return "streamGenerateContent?alt=sse"
    return _METHODS[operation]


def _count_body(model_path: str, body: dict[str, Any]) -> dict[str, Any]:
    """countTokens takes ``contents`` alone, or a whole ``generateContentRequest``; a body with
    a system instruction or tools (what a translation produces) must be wrapped."""
    if set(body) <= {"contents", "generateContentRequest"}:
        return body
    return {"generateContentRequest": {"model": model_path, **body}}


class GeminiProvider:
    """The Gemini API at generativelanguage.googleapis.com."""

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.config = config
        self._api_key = api_key

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        if operation is Operation.EMBED:
            raise Unsupported(f"provider '{self.name}' (Gemini) embeddings are not served yet")
        return Wire.GEMINI

    async def prepare(
        self,
        operation: Operation,
        wire: Wire,
        model: str,
        body: dict[str, Any],
        *,
        stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        if operation is Operation.COUNT_TOKENS:
            body = _count_body(f"models/{model}", body)
        url = (
            f"{self.config.url}/v1beta/models/{quote(model, safe='')}:"
            f"{_gemini_method(operation, stream)}"
        )
        headers = {"content-type": "application/json", **self.config.headers}
        if self._api_key:
            headers["x-goog-api-key"] = self._api_key
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        return body

    async def close(self) -> None:
        return None


class VertexProvider:
    """Vertex AI: Gemini models through the google publisher, Claude through anthropic's."""

    def __init__(self, name: str, config: ProviderConfig, token: TokenSource) -> None:
        self.name = name
        self.config = config
        self._token = token
        self._anthropic = VertexAnthropic(config, token)

    @staticmethod
    def is_anthropic(model: str) -> bool:
        return model.startswith("claude")

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        if operation is Operation.EMBED:
            raise Unsupported(f"provider '{self.name}' (Vertex AI) embeddings are not served yet")
        return Wire.ANTHROPIC if self.is_anthropic(model) else Wire.GEMINI

    async def prepare(
        self,
        operation: Operation,
        wire: Wire,
        model: str,
        body: dict[str, Any],
        *,
        stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        if wire is Wire.ANTHROPIC:
            return await self._anthropic.prepare(
                operation, model, body, stream=stream, client_headers=client_headers
            )
        if operation is Operation.COUNT_TOKENS:
            body = _count_body(
                f"projects/{self.config.gcp_project}/locations/{self.config.gcp_location}"
                f"/publishers/google/models/{model}",
                body,
            )
        url = vertex_model_url(self.config, "google", model, _gemini_method(operation, stream))
        headers = {
            "content-type": "application/json",
            **self.config.headers,
            "authorization": f"Bearer {await self._token()}",
        }
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        """Vertex answers Google's error shape, also for Claude; Anthropic callers need
        Anthropic's."""
        if wire is not Wire.ANTHROPIC:
            return body
        parsed, message = message_of(body)
        if parsed is not None and parsed.get("type") == "error":
            return body
        return anthropic_error(status, message)

    async def close(self) -> None:
        return None
