"""Helpers shared by the fake-upstream tests: the control API, golden files, signed requests."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from passerelle.formats.aws_eventstream import EventStreamMessage
from passerelle.providers.aws_sigv4 import AwsCredentials, sign_request

GOLDEN = Path(__file__).parent / "golden"
# A valid 1 x 1 PNG: the fakes check that image bytes match their declared media type.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)

# Values that change on every request, replaced before comparing with a golden file.
_VOLATILE = [
    (re.compile(r"(msg_(?:vrtx_|bdrk_)?fake)[0-9a-f]+"), r"\1<id>"),
    (re.compile(r"(toolu_fake)[0-9a-f]+"), r"\1<id>"),
    (re.compile(r"(req_fake)[0-9a-f]+"), r"\1<id>"),
    (re.compile(r'("responseId": ?")fake[A-Za-z0-9_-]+'), r"\1fake<id>"),
    (re.compile(r'("createTime": ?")[0-9T:.Z-]+'), r"\1<time>"),
]
_VOLATILE_KEYS = frozenset({"latencyMs", "invocationLatency", "firstByteLatency"})


@dataclass
class Control:
    """The ``/_fake/`` control API of one running fake."""

    http: httpx.Client

    def faults(self, *items: dict[str, Any], match_model: str | None = None) -> None:
        body: dict[str, Any] = {"faults": list(items)}
        if match_model is not None:
            body["match_model"] = match_model
        self.http.post("/_fake/faults", json=body).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.http.get("/_fake/requests").json()["requests"]
        return entries

    def reset(self) -> None:
        self.http.delete("/_fake/faults").raise_for_status()
        self.http.delete("/_fake/requests").raise_for_status()


def normalize_text(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def normalize(value: Any) -> Any:
    """A decoded body with its ids, timestamps and latencies replaced by placeholders."""
    normalized = json.loads(normalize_text(json.dumps(value)))
    return _zero_latencies(normalized)


def _zero_latencies(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: 0 if k in _VOLATILE_KEYS else _zero_latencies(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zero_latencies(item) for item in value]
    return value


def eventstream_as_json(messages: list[EventStreamMessage]) -> list[dict[str, Any]]:
    """Event-stream messages as JSON: headers, and the payload decoded (a Bedrock ``chunk``'s
    base64 ``bytes`` decoded to the Anthropic event it carries)."""
    decoded = []
    for message in messages:
        payload = json.loads(message.payload)
        if isinstance(payload, dict) and isinstance(payload.get("bytes"), str):
            payload = {**payload, "bytes": json.loads(base64.b64decode(payload["bytes"]))}
        decoded.append({"headers": dict(message.headers), "payload": payload})
    return normalize(decoded)  # type: ignore[no-any-return]


def check_golden(name: str, actual: Any) -> None:
    """Compare with ``golden/<name>``; ``PASSERELLE_UPDATE_GOLDEN=1`` rewrites the file instead.

    ``.sse`` files hold the normalized text of a stream, the others normalized JSON.
    """
    path = GOLDEN / name
    if name.endswith(".sse"):
        text = normalize_text(actual)
    else:
        text = json.dumps(normalize(actual), indent=2, ensure_ascii=False) + "\n"
    # Bytes, not text: a stream's CRLF line ends are part of the wire format.
    if os.environ.get("PASSERELLE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return
    assert path.exists(), f"{path} is missing: run with PASSERELLE_UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes().decode("utf-8")
    assert text == expected, f"the fake's output no longer matches {name}"


def signed_headers(
    client: httpx.Client,
    path: str,
    raw: bytes,
    credentials: AwsCredentials,
    *,
    region: str = "us-east-1",
    service: str = "bedrock",
    now: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a POST signed with SigV4 as a Bedrock client would sign it."""
    base = {"content-type": "application/json", "accept": "application/json", **(headers or {})}
    signed = sign_request(
        "POST",
        str(client.base_url.join(path)),
        base,
        raw,
        credentials,
        region=region,
        service=service,
        now=now or datetime.now(UTC),
    )
    return base | signed.headers


def signed_post(
    client: httpx.Client,
    path: str,
    body: Any,
    credentials: AwsCredentials,
    *,
    send_body: bytes | None = None,
    **options: Any,
) -> httpx.Response:
    """A signed POST of ``body`` as JSON (``send_body`` replaces what is sent, to tamper)."""
    raw = json.dumps(body).encode()
    headers = signed_headers(client, path, raw, credentials, **options)
    return client.post(path, content=raw if send_body is None else send_body, headers=headers)
