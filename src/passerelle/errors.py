"""Passerelle's one error tree, and the only place that turns an error into a wire body.

::

    PasserelleError                 anything Passerelle raises on purpose
    ├── ConfigError                 a configuration file is wrong (file, line, what is expected)
    ├── StorageError                the database cannot be reached or is in an unexpected state
    ├── AuditIntegrityError         the audit chain does not verify
    └── GatewayError                an API request fails; carries an HTTP status and a code
        ├── InvalidRequest          400  malformed JSON, wrong content type, missing field
        ├── AuthenticationFailed    401  missing, unknown, expired or revoked key
        ├── PermissionDenied        403  model or endpoint not allowed for this key
        │   ├── PolicyViolation     403  data policy refuses the request (names rule and findings)
        │   └── HeldForReview       403  queued for a human reviewer; carries the review id
        ├── NotFound                404  unknown model alias or path
        ├── MethodNotAllowed        405
        ├── PayloadTooLarge         413  body over the configured limit
        ├── UnsupportedMediaType    415  body is not JSON
        ├── RateLimited             429  a rate limit of the gateway's or of the provider's
        │   └── BudgetExceeded      429  a hard budget cap is reached (OpenAI: insufficient_quota)
        ├── InternalError           500  a bug; the message never carries internals
        ├── UpstreamError           502  the provider answered with an error we cannot pass on
        ├── UpstreamUnavailable     503  no route could be reached (refused, circuit open)
        ├── DlpUnavailable          503  the DLP scanner is not ready or failed: fail closed
        ├── LimitsUnavailable       503  budgets or rate limits cannot be checked: fail closed
        └── UpstreamTimeout         504  the provider did not answer in time

Every ``GatewayError`` renders to the caller's own API format: OpenAI, Anthropic or Gemini.
Messages say what to fix and never carry a secret: callers build them from names, never from
request values. Policy refusals name the rule and the types and counts of what was found, never
what was found.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class WireFormat(StrEnum):
    """The API dialect a caller speaks; errors go back in the same dialect."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


class PasserelleError(Exception):
    """Base of every error Passerelle raises on purpose."""


class ConfigError(PasserelleError):
    """A configuration file is invalid. ``str()`` names the file, the line and what is expected."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.detail = message
        where = source
        if line is not None:
            where = f"{source}:{line}" if source else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class StorageError(PasserelleError):
    """The database is unreachable or not in the expected state."""


class AuditIntegrityError(PasserelleError):
    """The audit trail does not verify."""


# OpenAI error "type", Anthropic error "type", Gemini "status" per HTTP status.
_WIRE_TYPES: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    401: ("authentication_error", "authentication_error", "UNAUTHENTICATED"),
    403: ("permission_error", "permission_error", "PERMISSION_DENIED"),
    404: ("not_found_error", "not_found_error", "NOT_FOUND"),
    405: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    413: ("invalid_request_error", "request_too_large", "INVALID_ARGUMENT"),
    415: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    429: ("rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("server_error", "api_error", "INTERNAL"),
    502: ("upstream_error", "api_error", "UNAVAILABLE"),
    503: ("service_unavailable", "overloaded_error", "UNAVAILABLE"),
    504: ("timeout_error", "timeout_error", "DEADLINE_EXCEEDED"),
}


class GatewayError(PasserelleError):
    """An API request that cannot be served. Rendered by :func:`error_body`."""

    status: int = 500
    code: str = "internal_error"
    openai_type: str | None = None
    """The OpenAI error ``type`` when it is not the one of the HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    code = "permission_denied"


class PolicyViolation(PermissionDenied):
    """The data policy refuses the request: its data class may not go to any route of the
    model, or it carries a prompt-injection signature and the policy blocks those."""

    code = "policy_violation"


class HeldForReview(PermissionDenied):
    """The request waits for a human reviewer; ``review_id`` identifies it in the queue."""

    code = "held_for_review"

    def __init__(self, message: str, *, review_id: str, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"x-passerelle-review": review_id})
        self.review_id = review_id


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    """A hard budget cap would be passed. OpenAI's own answer to an exhausted quota is a 429 of
    type ``insufficient_quota``, which coding agents (Codex among them) report as final instead
    of retrying; the other dialects only have their rate-limit error for it."""

    code = "budget_exceeded"
    openai_type = "insufficient_quota"


class InternalError(GatewayError):
    status = 500
    code = "internal_error"


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"


class UpstreamUnavailable(GatewayError):
    status = 503
    code = "upstream_unavailable"


class DlpUnavailable(GatewayError):
    """The DLP scanner is still starting or cannot scan: the request is refused, never sent
    unscanned."""

    status = 503
    code = "dlp_unavailable"


class LimitsUnavailable(GatewayError):
    """The shared state behind budgets and rate limits (Redis) cannot be reached: a request
    they apply to is refused, never sent unchecked."""

    status = 503
    code = "limits_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"


def error_body(error: GatewayError, wire: WireFormat) -> dict[str, Any]:
    """The JSON body for ``error`` in the caller's dialect."""
    openai_type, anthropic_type, gemini_status = _WIRE_TYPES.get(error.status, _WIRE_TYPES[500])
    if wire is WireFormat.ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type, "message": error.message}}
    if wire is WireFormat.GEMINI:
        body: dict[str, Any] = {
            "code": error.status,
            "message": error.message,
            "status": gemini_status,
        }
        retry_after = error.headers.get("retry-after")
        if retry_after is not None:
            # How Google APIs say when to retry; the Gemini CLI and SDKs read it.
            retry_info = "type.googleapis.com/google.rpc.RetryInfo"
            body["details"] = [{"@type": retry_info, "retryDelay": f"{retry_after}s"}]
        return {"error": body}
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type or openai_type,
            "param": error.param,
            "code": error.code,
        }
    }
