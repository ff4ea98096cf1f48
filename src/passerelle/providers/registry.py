"""Building every configured provider: the one place that maps a provider kind to its class.

Secrets arrive already resolved (``runtime.resolve_secrets``); cloud credentials that live
outside the configuration (the AWS chain, Google's Application Default Credentials) are read by
the provider itself when it first needs them, so that a missing credential fails that route
with a clear reason instead of the whole gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from passerelle.config import Config
from passerelle.config.schema import ProviderConfig, ProviderKind
from passerelle.providers.anthropic import AnthropicProvider, BedrockProvider, TokenSource
from passerelle.providers.base import Provider
from passerelle.providers.google import GeminiProvider, VertexProvider
from passerelle.providers.openai import OpenAIProvider

VertexTokens = Callable[[str, ProviderConfig, str | None], TokenSource]
"""(provider name, its configuration, the value of its gcp_credentials reference) → tokens."""

_OPENAI_FAMILY = (
    ProviderKind.OPENAI,
    ProviderKind.AZURE_OPENAI,
    ProviderKind.OPENAI_COMPATIBLE,
    ProviderKind.MISTRAL,
)


def build_providers(
    config: Config, secrets: Mapping[str, str], *, vertex_tokens: VertexTokens | None = None
) -> dict[str, Provider]:
    built: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        api_key = secrets.get(provider.api_key.env_name) if provider.api_key else None
        kind = provider.kind
        if kind in _OPENAI_FAMILY:
            built[name] = OpenAIProvider(name, provider, api_key)
        elif kind is ProviderKind.ANTHROPIC:
            built[name] = AnthropicProvider(name, provider, api_key)
        elif kind is ProviderKind.GEMINI:
            built[name] = GeminiProvider(name, provider, api_key)
        elif kind is ProviderKind.BEDROCK:
            built[name] = BedrockProvider(name, provider)
        elif kind is ProviderKind.VERTEX:
            if vertex_tokens is None:
                from passerelle.providers.google_auth import vertex_token_source

                vertex_tokens = vertex_token_source
            credentials = (
                secrets.get(provider.gcp_credentials.env_name) if provider.gcp_credentials else None
            )
            built[name] = VertexProvider(name, provider, vertex_tokens(name, provider, credentials))
        else:  # pragma: no cover - the schema admits no other kind
            raise AssertionError(f"unknown provider kind {kind}")
    return built
