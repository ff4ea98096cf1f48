"""A FAKE Google token endpoint and metadata server, for tests of Vertex AI credentials.

It speaks the wire formats of Google's OAuth2 token endpoint and of the Compute Engine metadata
server, and refuses what they refuse, so that a client which satisfies it is right about more
than its own assumptions:

* ``POST /token`` (form-encoded): the JWT bearer grant
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=...``), whose RS256
  signature is verified with the public key of the service account named in ``iss``, whose
  ``aud`` must be this very URL, which must ask for a ``scope`` and live at most an hour around
  now; and the refresh-token grant, for a known refresh token with its client id and secret.
  Refusals are ``{"error": ..., "error_description": ...}`` with status 400 or 401.
* ``GET /computeMetadata/v1/instance/service-accounts/default/token``: only with
  ``Metadata-Flavor: Google`` (else 403), answered with that header too.

Both answer ``{"access_token": "ya29.fake-...", "expires_in": ..., "token_type": "Bearer"}``.
Tests steer it in-process (it runs in the test's own process, see ``serve_in_thread``): queue a
reply (an error, or any body) with :meth:`FakeGoogleOAuth.answer_next`, slow it down with
``FakeSettings.delay_s``, and read :attr:`FakeGoogleOAuth.grants`, which records claims and
outcomes but never a secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/token"  # noqa: S105 - a path
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"  # noqa: S105
_MAX_LIFETIME_S = 3600


@dataclass
class FakeSettings:
    """Who may get tokens and how the fake behaves; ``clock`` may be a test's fake clock."""

    service_accounts: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)  # by client_email
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # refresh token: (id, secret)
    expires_in: int = 3600
    delay_s: float = 0.0
    clock: Callable[[], float] = time.time
    max_skew_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Grant:
    """One token request as the fake saw it: no assertion, secret or refresh token in here."""

    kind: str  # "jwt_bearer", "refresh_token", "metadata" or the unknown grant_type
    status: int
    access_token: str | None = None
    header: Mapping[str, Any] = field(default_factory=dict)  # the assertion's JOSE header
    claims: Mapping[str, Any] = field(default_factory=dict)  # the assertion's claims
    client_id: str | None = None


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class FakeGoogleOAuth:
    """The fake's state and its ASGI app (``.app``), to run with ``serve_in_thread``."""

    def __init__(self, settings: FakeSettings | None = None) -> None:
        self.settings = settings or FakeSettings()
        self.grants: list[Grant] = []
        self._replies: deque[tuple[int, Mapping[str, Any]]] = deque()
        self._lock = threading.Lock()  # the server thread writes what the test thread reads
        self.app = Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route(METADATA_TOKEN_PATH, self._metadata_token, methods=["GET"]),
            ]
        )

    def answer_next(self, status: int, body: Mapping[str, Any] | None = None) -> None:
        """Answer the next token request (either endpoint) with this status and JSON body."""
        with self._lock:
            self._replies.append((status, body or {"error": "internal_failure"}))

    def issued(self) -> list[str]:
        """The access tokens handed out so far, oldest first."""
        with self._lock:
            return [grant.access_token for grant in self.grants if grant.access_token]

    def _record(self, grant: Grant) -> None:
        with self._lock:
            self.grants.append(grant)

    def _queued(self) -> tuple[int, Mapping[str, Any]] | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    def _issue(self, grant: Grant, headers: Mapping[str, str] | None = None) -> Response:
        token = f"ya29.fake-{len(self.grants) + 1}-{secrets.token_urlsafe(24)}"
        self._record(replace(grant, access_token=token))
        body = {
            "access_token": token,
            "expires_in": self.settings.expires_in,
            "token_type": "Bearer",
        }
        return JSONResponse(body, headers=dict(headers or {}))

    async def _token(self, request: Request) -> Response:
        if self.settings.delay_s:
            await asyncio.sleep(self.settings.delay_s)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        kind = {JWT_BEARER: "jwt_bearer"}.get(
            form.get("grant_type", ""), form.get("grant_type", "")
        )
        reply = self._queued()
        if reply is not None:
            self._record(Grant(kind, reply[0]))
            return JSONResponse(dict(reply[1]), status_code=reply[0])
        try:
            if content_type != "application/x-www-form-urlencoded":
                raise _Refused(400, "invalid_request", "Expected a form-encoded body.")
            url = request.url
            if kind == "jwt_bearer":
                header, claims = self._verify_assertion(
                    form.get("assertion", ""), f"{url.scheme}://{url.netloc}{url.path}"
                )
                return self._issue(Grant(kind, 200, header=header, claims=claims))
            if kind == "refresh_token":
                client_id = form.get("client_id", "")
                expected = self.settings.users.get(form.get("refresh_token", ""))
                if expected is None:
                    raise _Refused(400, "invalid_grant", "Bad Request")
                if expected != (client_id, form.get("client_secret")):
                    raise _Refused(401, "invalid_client", "The OAuth client was not found.")
                return self._issue(Grant(kind, 200, client_id=client_id))
            raise _Refused(400, "unsupported_grant_type", "Invalid grant_type.")
        except _Refused as refused:
            self._record(Grant(kind, refused.status))
            body = {"error": refused.error, "error_description": refused.description}
            return JSONResponse(body, status_code=refused.status)

    async def _metadata_token(self, request: Request) -> Response:
        if self.settings.delay_s:
            await asyncio.sleep(self.settings.delay_s)
        if request.headers.get("metadata-flavor") != "Google":
            self._record(Grant("metadata", 403))
            return PlainTextResponse("Missing Metadata-Flavor:Google header.", status_code=403)
        reply = self._queued()
        if reply is not None:
            self._record(Grant("metadata", reply[0]))
            return JSONResponse(dict(reply[1]), status_code=reply[0])
        return self._issue(Grant("metadata", 200), {"Metadata-Flavor": "Google"})

    def _verify_assertion(
        self, assertion: str, audience: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The assertion's header and claims once every check Google makes has passed."""
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _Refused(400, "invalid_grant", "Invalid JWT: not three segments.")
        header, claims = _segment(parts[0]), _segment(parts[1])
        if header.get("alg") != "RS256":
            raise _Refused(400, "invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        key = self.settings.service_accounts.get(str(claims.get("iss")))
        if key is None:
            raise _Refused(400, "invalid_grant", "Invalid grant: account not found")
        try:
            key.verify(
                _unb64(parts[2]),
                f"{parts[0]}.{parts[1]}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise _Refused(400, "invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("aud") != audience:
            raise _Refused(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        if not isinstance(claims.get("scope"), str) or not claims["scope"]:
            raise _Refused(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        issued, expires, now = claims.get("iat"), claims.get("exp"), self.settings.clock()
        skew = self.settings.max_skew_s
        if (
            not isinstance(issued, int)
            or not isinstance(expires, int)
            or not 0 < expires - issued <= _MAX_LIFETIME_S
            or issued > now + skew
            or expires < now - skew
        ):
            raise _Refused(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return header, claims


def _unb64(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _Refused(400, "invalid_grant", "Invalid JWT: bad base64.") from None


def _segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(segment))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _Refused(400, "invalid_grant", "Invalid JWT: a segment is not a JSON object.")
    return value
