"""Helpers the wire-format codecs share: strict field readers, data URLs, SSE output events.

The readers raise :class:`~passerelle.errors.InvalidRequest` naming the field by its path in the
body (``messages[2].content[0].text``) and what was expected, so that a client sees which part of
its own request to fix. They never echo the offending value: it may hold a secret.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from passerelle.core.canonical import ErrorType, Media
from passerelle.errors import InvalidRequest
from passerelle.formats.wire import JSON as JSON
from passerelle.formats.wire import WireEvent as WireEvent  # kept importable from here too
from passerelle.formats.wire import sse_json as sse_json


def invalid(path: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"'{path}' {expected}.", param=path)


def obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(path, "must be an object")
    return value


def arr(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise invalid(path, "must be an array")
    return value


def req(body: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in body or body[key] is None:
        raise invalid(f"{path}.{key}" if path else key, "is required")
    return body[key]


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def opt_str(value: Any, path: str) -> str | None:
    return None if value is None else string(value, path)


def opt_int(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise invalid(path, "must be an integer")
    return value


def opt_float(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(path, "must be a number")
    return float(value)


def opt_bool(value: Any, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(path, "must be true or false")
    return value


def str_list(value: Any, path: str) -> tuple[str, ...]:
    """A string or an array of strings (the ``stop`` fields accept both)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(string(item, f"{path}[{i}]") for i, item in enumerate(arr(value, path)))


def count(value: Any) -> int:
    """A token count from an upstream body: anything but a non-negative integer reads as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def text_of(value: Any) -> str:
    """An upstream string field, tolerating null."""
    return value if isinstance(value, str) else ""


def json_text(value: Any) -> str:
    """Compact JSON text for a parsed value (tool arguments given as an object)."""
    return orjson.dumps(value).decode()


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it is not one."""
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def is_complete_json(text: str) -> bool:
    """Whether ``text`` is a whole JSON value: any further character would make it invalid, so a
    streamed tool call whose arguments are complete can be closed before the stream says so."""
    if not text.strip():
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


# -- media --------------------------------------------------------------------------------------


def parse_data_url(url: str) -> Media | None:
    """``data:<type>;base64,<data>`` as inline media; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    media_type = header[: -len(";base64")] or None
    return Media(media_type=media_type, data=data)


def data_url(media: Media) -> str:
    return f"data:{media.media_type or 'application/octet-stream'};base64,{media.data}"


_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
}


def guess_media_type(url: str, default: str) -> str:
    """A MIME type from a URL's extension, for formats that require one with a URL (Gemini)."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    for extension, media_type in _EXTENSIONS.items():
        if path.endswith(extension):
            return media_type
    return default


def b64_to_text(data: str) -> str | None:
    """A base64 payload as UTF-8 text, or None when it is not text."""
    try:
        return base64.b64decode(data, validate=False).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def text_to_b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def now() -> int:
    """Unix seconds, for formats that require a creation time the source did not give."""
    return int(time.time())


# -- errors -------------------------------------------------------------------------------------

# Each format's own word for a canonical error type: OpenAI ``type``, Anthropic ``type``,
# Gemini ``status``.
ERROR_NAMES: dict[ErrorType, tuple[str, str, str]] = {
    ErrorType.INVALID_REQUEST: (
        "invalid_request_error",
        "invalid_request_error",
        "INVALID_ARGUMENT",
    ),
    ErrorType.AUTHENTICATION: ("authentication_error", "authentication_error", "UNAUTHENTICATED"),
    ErrorType.PERMISSION: ("permission_error", "permission_error", "PERMISSION_DENIED"),
    ErrorType.NOT_FOUND: ("not_found_error", "not_found_error", "NOT_FOUND"),
    ErrorType.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large", "INVALID_ARGUMENT"),
    ErrorType.RATE_LIMIT: ("rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    ErrorType.OVERLOADED: ("service_unavailable", "overloaded_error", "UNAVAILABLE"),
    ErrorType.TIMEOUT: ("timeout_error", "timeout_error", "DEADLINE_EXCEEDED"),
    ErrorType.SERVER: ("server_error", "api_error", "INTERNAL"),
}


def error_type_named(name: str, column: int) -> ErrorType | None:
    """The canonical type whose name in one format (0 OpenAI, 1 Anthropic, 2 Gemini) is
    ``name``; the first match wins, so shared names map to the most general type."""
    for error_type, names in ERROR_NAMES.items():
        if names[column] == name:
            return error_type
    return None


def as_obj(value: Any) -> Mapping[str, Any]:
    """An upstream object field, tolerating anything else as empty: upstream answers are read
    leniently, client requests strictly."""
    return value if isinstance(value, Mapping) else {}
