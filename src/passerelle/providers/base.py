"""What every provider is to the gateway: a wire format per model, and how to address a call.

A provider is endpoint + auth + quirks, nothing more (the wire formats themselves live in
``passerelle.formats``). For each call the gateway asks the provider which wire format the model
speaks there (:meth:`Provider.wire_for`), builds a body in that format (the caller's own body
when the formats match, a translation otherwise), then asks the provider to turn it into an HTTP
request (:meth:`Provider.prepare`): URL, headers, signature, the few body changes the vendor
needs (the model name, Bedrock's ``anthropic_version``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from passerelle.config.schema import ProviderConfig


class Wire(StrEnum):
    """The wire formats a provider may speak for a model."""

    OPENAI_CHAT = "openai_chat"
    OPENAI_RESPONSES = "openai_responses"
    OPENAI_EMBEDDINGS = "openai_embeddings"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    # Bedrock's own format for every model family; no caller speaks it, so always translated.
    BEDROCK_CONVERSE = "bedrock_converse"


class Operation(StrEnum):
    GENERATE = "generate"
    COUNT_TOKENS = "count_tokens"
    EMBED = "embed"


class Framing(StrEnum):
    """How a streamed answer is cut into events on the wire."""

    SSE = "sse"
    # AWS event stream: binary frames whose payload is {"bytes": base64(event JSON)}.
    AWS_EVENTSTREAM = "aws_eventstream"


class Unsupported(Exception):
    """The provider cannot serve this operation for this model; the gateway tries the next
    route. The message names what is missing."""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    framing: Framing = Framing.SSE


# Caller headers a provider of the same wire format may need to see: Anthropic's beta flags and
# version select behaviour (Claude Code depends on them). Everything else the caller sent, and
# above all its credentials, stays with the gateway.
FORWARDED_HEADERS = ("anthropic-beta", "anthropic-version")


class Provider(Protocol):
    name: str
    config: ProviderConfig

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        """The wire format to speak to ``model`` for ``operation``: ``preferred`` (the caller's)
        when the provider speaks it, so that the call is a passthrough. Raises Unsupported."""
        ...

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
        """The HTTP request for ``body`` (already in ``wire``). ``body`` may be changed."""
        ...

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        """An upstream error body in ``wire``'s own error shape. A host that wraps a vendor's
        API (Bedrock, Vertex) answers errors in its own shape; callers of that wire format
        must get the format's shape, passthrough or not."""
        ...

    async def close(self) -> None: ...
