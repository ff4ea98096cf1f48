"""OpenAI-family providers: OpenAI, Azure OpenAI, Mistral and any OpenAI-compatible server.

They share OpenAI's wire formats; what differs is the endpoint, the auth header and a few model
quirks (a :class:`Profile`). Same format in and out is passthrough: the body goes upstream as
the caller sent it, with only the model name replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from passerelle.config.schema import ProviderConfig, ProviderKind
from passerelle.providers.base import Operation, Unsupported, UpstreamRequest, Wire


@dataclass(frozen=True, slots=True)
class Profile:
    """Model and server quirks that change what we send."""

    # Whether the server accepts ``stream_options: {include_usage: true}``. Mistral reports
    # usage on the last chunk by itself and rejects unknown stream options.
    accepts_stream_options: bool = True
    # Whether the server has the Responses API (Codex's format). Others get Chat Completions,
    # translated.
    responses_api: bool = False


PROFILES: dict[ProviderKind, Profile] = {
    ProviderKind.OPENAI: Profile(responses_api=True),
    ProviderKind.AZURE_OPENAI: Profile(responses_api=True),
    ProviderKind.OPENAI_COMPATIBLE: Profile(),
    ProviderKind.MISTRAL: Profile(accepts_stream_options=False),
}

_PATHS = {
    Wire.OPENAI_CHAT: "chat/completions",
    Wire.OPENAI_RESPONSES: "responses",
    Wire.OPENAI_EMBEDDINGS: "embeddings",
}


class OpenAIProvider:
    """Endpoint and auth for one configured OpenAI-family provider."""

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.config = config
        self.api_key = api_key
        self.profile = PROFILES[config.kind]
        headers = {"content-type": "application/json", **config.headers}
        if api_key:
            if config.kind is ProviderKind.AZURE_OPENAI:
                headers["api-key"] = api_key
            else:
                headers["authorization"] = f"Bearer {api_key}"
        self._headers = headers

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        if operation is Operation.EMBED:
            return Wire.OPENAI_EMBEDDINGS
        if operation is Operation.COUNT_TOKENS:
            raise Unsupported(f"provider '{self.name}' has no token counting endpoint")
        if preferred is Wire.OPENAI_RESPONSES and self.profile.responses_api:
            return Wire.OPENAI_RESPONSES
        return Wire.OPENAI_CHAT

    def url(self, wire: Wire, model: str) -> str:
        base = self.config.url
        path = _PATHS[wire]
        if self.config.kind is ProviderKind.AZURE_OPENAI:
            if self.config.api_version:
                version = quote(self.config.api_version, safe="")
                if wire is Wire.OPENAI_RESPONSES:  # deployment named in the body
                    return f"{base}/openai/responses?api-version={version}"
                deployment = quote(model, safe="")
                return f"{base}/openai/deployments/{deployment}/{path}?api-version={version}"
            return f"{base}/openai/v1/{path}"
        return f"{base}/{path}"

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

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
        body["model"] = model
        if not self.profile.accepts_stream_options:
            # Mistral refuses the field outright (422) and reports usage on its own; a caller's
            # or a translation's stream_options would fail the whole request.
            body.pop("stream_options", None)
        elif stream and wire is Wire.OPENAI_CHAT:
            # Ask for usage so that streams are charged from the provider's own count; the relay
            # hides the extra chunk from a caller who did not ask for it.
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return UpstreamRequest("POST", self.url(wire, model), self.headers(), orjson.dumps(body))

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        """Mistral answers errors flat (``{"object": "error", "message", ...}``, the message
        sometimes a validation object); OpenAI's shape nests them under ``error``."""
        if self.config.kind is not ProviderKind.MISTRAL:
            return body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(parsed, dict) or "error" in parsed or "message" not in parsed:
            return body
        message = parsed.get("message")
        if not isinstance(message, str):
            message = orjson.dumps(message).decode()
        return orjson.dumps(
            {
                "error": {
                    "message": message,
                    "type": parsed.get("type") or "invalid_request_error",
                    "param": parsed.get("param"),
                    "code": parsed.get("code"),
                }
            }
        )

    async def close(self) -> None:
        return None


def build_openai(name: str, config: ProviderConfig, api_key: str | None) -> OpenAIProvider:
    return OpenAIProvider(name, config, api_key)
