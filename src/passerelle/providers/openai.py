"""OpenAI-family providers: OpenAI, Azure OpenAI, Mistral and any OpenAI-compatible server.

They share OpenAI's wire format; what differs is the endpoint, the auth header and a few model
quirks (a :class:`Profile`). Same format in and out is passthrough: the body goes upstream as
the caller sent it, with only the model name replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from passerelle.config.schema import ProviderConfig, ProviderKind


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True, slots=True)
class Profile:
    """Model and server quirks that change what we send."""

    # Whether the server accepts ``stream_options: {include_usage: true}``. Mistral reports
    # usage on the last chunk by itself and rejects unknown stream options.
    accepts_stream_options: bool = True


PROFILES: dict[ProviderKind, Profile] = {
    ProviderKind.OPENAI: Profile(),
    ProviderKind.AZURE_OPENAI: Profile(),
    ProviderKind.OPENAI_COMPATIBLE: Profile(),
    ProviderKind.MISTRAL: Profile(accepts_stream_options=False),
}


@dataclass(frozen=True, slots=True)
class OpenAIProvider:
    """Endpoint and auth for one configured OpenAI-family provider."""

    name: str
    config: ProviderConfig
    api_key: str | None
    profile: Profile

    def url(self, endpoint: Endpoint, model: str) -> str:
        base = self.config.base_url.rstrip("/")
        if self.config.kind is ProviderKind.AZURE_OPENAI:
            if self.config.api_version:
                deployment = quote(model, safe="")
                version = quote(self.config.api_version, safe="")
                return (
                    f"{base}/openai/deployments/{deployment}/{endpoint.value}?api-version={version}"
                )
            return f"{base}/openai/v1/{endpoint.value}"
        return f"{base}/{endpoint.value}"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        if self.api_key:
            if self.config.kind is ProviderKind.AZURE_OPENAI:
                headers["api-key"] = self.api_key
            else:
                headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def build_provider(name: str, config: ProviderConfig, api_key: str | None) -> OpenAIProvider:
    return OpenAIProvider(name=name, config=config, api_key=api_key, profile=PROFILES[config.kind])
