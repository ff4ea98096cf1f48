"""Anthropic's Messages API, directly or through Bedrock and Vertex AI.

The three hosts take the same Messages body with small differences, applied in :meth:`prepare`:

- **Anthropic**: the model in the body; ``x-api-key``; ``anthropic-version`` and
  ``anthropic-beta`` headers (the caller's own when it sent them, so Claude Code's beta
  features keep working).
- **Bedrock** (``InvokeModel``): the model in the URL, ``anthropic_version`` in the body
  (``bedrock-2023-05-31``), beta flags in the body's ``anthropic_beta``, no ``stream`` field (the
  URL says it), SigV4; the stream comes back as AWS event-stream frames wrapping each event.
- **Vertex AI** (``rawPredict``): the model in the URL, ``anthropic_version`` in the body
  (``vertex-2023-10-16``), beta flags as a header, an OAuth bearer token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from passerelle.config.schema import ProviderConfig
from passerelle.errors import PasserelleError
from passerelle.formats.bedrock_converse import request_path as converse_path
from passerelle.providers.aws_credentials import AwsCredentialChain, TransportAwsHttp
from passerelle.providers.aws_sigv4 import AwsCredentials, CredentialsError, sign_request
from passerelle.providers.base import Framing, Operation, Unsupported, UpstreamRequest, Wire

DEFAULT_VERSION = "2023-06-01"
BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
# What count_tokens accepts: a body translated from another format may carry generation
# settings that the endpoint refuses.
_COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)


# Bedrock's exception names (x-amzn-ErrorType) as Anthropic error types.
_BEDROCK_ERRORS = {
    "ValidationException": "invalid_request_error",
    "AccessDeniedException": "permission_error",
    "UnrecognizedClientException": "authentication_error",
    "ResourceNotFoundException": "not_found_error",
    "ThrottlingException": "rate_limit_error",
    "ServiceQuotaExceededException": "rate_limit_error",
    "ModelTimeoutException": "timeout_error",
    "ServiceUnavailableException": "overloaded_error",
    "ModelNotReadyException": "overloaded_error",
}
_STATUS_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str, kind: str | None = None) -> bytes:
    error_type = kind or _STATUS_ERRORS.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})


def message_of(body: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "The provider answered with an error that is not JSON."
    if not isinstance(parsed, dict):
        return None, "The provider answered with an unexpected error."
    inner = parsed.get("error")
    source = inner if isinstance(inner, dict) else parsed
    message = source.get("message")
    return parsed, message if isinstance(message, str) and message else "The provider failed."


class CloudCredentialsError(PasserelleError):
    """A cloud provider's credentials cannot be obtained; the message says which and why."""


def _betas(client_headers: Mapping[str, str]) -> list[str]:
    value = client_headers.get("anthropic-beta", "")
    return [beta.strip() for beta in value.split(",") if beta.strip()]


def _messages_body(operation: Operation, body: dict[str, Any]) -> dict[str, Any]:
    if operation is Operation.COUNT_TOKENS:
        return {k: v for k, v in body.items() if k in _COUNT_FIELDS}
    return body


class AnthropicProvider:
    """Anthropic's own API."""

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.config = config
        self._api_key = api_key

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        if operation is Operation.EMBED:
            raise Unsupported(f"provider '{self.name}' (Anthropic) has no embeddings")
        return Wire.ANTHROPIC

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
        body = _messages_body(operation, body)
        body["model"] = model
        headers = {
            "content-type": "application/json",
            **self.config.headers,
            "anthropic-version": client_headers.get("anthropic-version")
            or self.config.api_version
            or DEFAULT_VERSION,
        }
        betas = _betas(client_headers)
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        if self._api_key:
            headers["x-api-key"] = self._api_key
        path = (
            "/v1/messages/count_tokens" if operation is Operation.COUNT_TOKENS else "/v1/messages"
        )
        return UpstreamRequest("POST", self.config.url + path, headers, orjson.dumps(body))

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        return body

    async def close(self) -> None:
        return None


class BedrockCredentials:
    """The standard AWS credential chain (environment, shared files and profiles, assume-role,
    web identity, credential_process, container and instance metadata), refreshed before its
    temporary credentials expire; failures become :class:`CloudCredentialsError` so that the
    route is skipped with the reason."""

    def __init__(self, chain: AwsCredentialChain) -> None:
        self._chain = chain

    @classmethod
    def standard(cls, config: ProviderConfig) -> BedrockCredentials:
        return cls(
            AwsCredentialChain(
                None, config.aws_profile, TransportAwsHttp(), region=config.aws_region
            )
        )

    async def get(self) -> AwsCredentials:
        try:
            return await self._chain.get()
        except CredentialsError as exc:
            raise CloudCredentialsError(f"AWS credentials: {exc}") from None

    def invalidate(self) -> None:
        self._chain.invalidate()


class BedrockProvider:
    """Amazon Bedrock: Claude through InvokeModel with Anthropic's own body (so an Anthropic
    caller gets a passthrough), every other model family through the Converse API."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        credentials: BedrockCredentials | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.config = config
        self._credentials = credentials or BedrockCredentials.standard(config)
        self._clock = clock

    @staticmethod
    def is_anthropic(model: str) -> bool:
        return "anthropic." in model or model.startswith("claude")

    def wire_for(self, operation: Operation, model: str, preferred: Wire) -> Wire:
        if operation is not Operation.GENERATE:
            raise Unsupported(f"provider '{self.name}' (Bedrock) does not count tokens or embed")
        return Wire.ANTHROPIC if self.is_anthropic(model) else Wire.BEDROCK_CONVERSE

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
        body.pop("model", None)
        body.pop("stream", None)
        if wire is Wire.BEDROCK_CONVERSE:
            url = self.config.url + converse_path(model, stream=stream)
        else:
            body["anthropic_version"] = BEDROCK_VERSION
            betas = _betas(client_headers)
            if betas:
                body["anthropic_beta"] = betas
            action = "invoke-with-response-stream" if stream else "invoke"
            url = f"{self.config.url}/model/{quote(model, safe='')}/{action}"
        payload = orjson.dumps(body)
        headers = {
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream" if stream else "application/json",
            **self.config.headers,
        }
        credentials = await self._credentials.get()
        signed = sign_request(
            "POST",
            url,
            headers,
            payload,
            credentials,
            region=self.config.aws_region or "",
            service="bedrock",
            now=self._clock(),
        )
        framing = Framing.AWS_EVENTSTREAM if stream else Framing.SSE
        return UpstreamRequest("POST", url, {**headers, **signed.headers}, payload, framing)

    def error_body(self, wire: Wire, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        """Bedrock answers ``{"message": ...}`` and names the exception in a header."""
        exception = headers.get("x-amzn-errortype", "").split(":", 1)[0]
        if wire is Wire.BEDROCK_CONVERSE:  # the Converse codec reads the name from __type
            _, message = message_of(body)
            return orjson.dumps(
                {"message": message, "__type": exception or "InternalServerException"}
            )
        parsed, message = message_of(body)
        if parsed is not None and parsed.get("type") == "error":
            return body  # already Anthropic's shape (an error from the model itself)
        exception = headers.get("x-amzn-errortype", "").split(":", 1)[0]
        return anthropic_error(status, message, _BEDROCK_ERRORS.get(exception))

    async def close(self) -> None:
        return None


TokenSource = Callable[[], Awaitable[str]]


def vertex_model_url(config: ProviderConfig, publisher: str, model: str, method: str) -> str:
    return (
        f"{config.url}/v1/projects/{quote(config.gcp_project or '', safe='')}"
        f"/locations/{quote(config.gcp_location or '', safe='')}"
        f"/publishers/{publisher}/models/{quote(model, safe='')}:{method}"
    )


class VertexAnthropic:
    """Claude on Vertex AI; used by :class:`passerelle.providers.google.VertexProvider`."""

    def __init__(self, config: ProviderConfig, token: TokenSource) -> None:
        self.config = config
        self._token = token

    async def prepare(
        self,
        operation: Operation,
        model: str,
        body: dict[str, Any],
        *,
        stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        body = _messages_body(operation, body)
        if operation is Operation.COUNT_TOKENS:
            body["model"] = model  # count-tokens names the model in the body
            url = vertex_model_url(self.config, "anthropic", "count-tokens", "rawPredict")
        else:
            body.pop("model", None)
            url = vertex_model_url(
                self.config, "anthropic", model, "streamRawPredict" if stream else "rawPredict"
            )
        body["anthropic_version"] = VERTEX_VERSION
        headers = {
            "content-type": "application/json",
            **self.config.headers,
            "authorization": f"Bearer {await self._token()}",
        }
        betas = _betas(client_headers)
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))
