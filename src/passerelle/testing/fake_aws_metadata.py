"""A FAKE EC2 instance metadata service, container credentials endpoint and STS, in one app.

For tests of the AWS credential chain (``passerelle.providers.aws_credentials``). Labelled fake
wherever a client could look: issued access key ids start with ``ASIAFAKE``, session tokens with
``FAKE``, roles live in the account ``000000000000`` and every response carries
``x-fake-upstream: aws-metadata``. It speaks the real wire formats and refuses what the real
services refuse, so that a client which satisfies it is right about more than its own guesses:

* **IMDSv2** (``/latest/...``): ``PUT /latest/api/token`` needs
  ``X-aws-ec2-metadata-token-ttl-seconds`` between 1 and 21600 (else 400) and is refused with 403
  when it carries ``X-Forwarded-For``; it answers the token as text, with the TTL header echoed.
  ``GET /latest/meta-data/iam/security-credentials/`` lists the role (404 without one) and
  ``GET .../{role}`` answers ``{"Code": "Success", "LastUpdated", "Type": "AWS-HMAC",
  "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``. A GET with an unknown or expired
  ``X-aws-ec2-metadata-token`` gets 401, and so does one without a token when
  ``imds_tokens_required`` (IMDSv2 enforced, EC2's recommended setting); ``imds_token_status``
  makes the token request answer another status instead (403, 404 or 405 where IMDSv2 is off).
* **Container endpoints**: ``GET /v2/credentials/{id}`` (the ECS agent) and ``GET /v1/credentials``
  (the EKS Pod Identity agent) answer ``{"AccessKeyId", "SecretAccessKey", "Token",
  "Expiration", "RoleArn"}``. With ``container_authorization`` set, the ``Authorization`` header
  must be exactly that (else 401 ``{"code": ..., "message": ...}``).
* **STS** (``POST /``, form-encoded, ``Version=2011-06-15``): ``AssumeRoleWithWebIdentity``,
  unsigned, for a known web identity token and role; ``AssumeRole``, SigV4-signed (service
  ``sts``, region ``FakeSettings.region``) by a configured key or one the fake issued, which lets
  roles chain. The signature is verified with ``passerelle.providers.aws_sigv4``. Answers are
  ``<AssumeRoleResponse>`` / ``<AssumeRoleWithWebIdentityResponse>`` documents; refusals are
  ``<ErrorResponse>`` with STS's codes (``InvalidIdentityToken``, ``AccessDenied``,
  ``MissingAuthenticationToken``, ``InvalidClientTokenId``, ``SignatureDoesNotMatch``,
  ``IncompleteSignature``, ``ValidationError``, ``InvalidAction``).

Every request issues fresh credentials, valid ``lifetime_s`` (or ``DurationSeconds``) from
``FakeSettings.clock``, which a test may share with the client. Tests steer the fake in-process:
queue an answer with :meth:`FakeAwsMetadata.answer_next`, slow it down with ``delay_s``, and read
:attr:`FakeAwsMetadata.calls`, which records what was asked and the outcome but never a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from passerelle.providers import aws_sigv4
from passerelle.providers.aws_sigv4 import AwsCredentials

__all__ = [
    "ACCOUNT",
    "KINDS",
    "Call",
    "FakeAwsMetadata",
    "FakeSettings",
    "sts_error",
]

ACCOUNT = "000000000000"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
TOKEN_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - a header name
TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
KINDS = ("imds-token", "imds-role", "imds-credentials", "container", "sts")
_FAKE_HEADER = {"x-fake-upstream": "aws-metadata"}
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")


@dataclass
class FakeSettings:
    """What the fake knows and how it behaves; ``clock`` may be a test's fake clock."""

    region: str = "us-east-1"
    roles: set[str] = field(default_factory=set)  # role ARNs that exist and trust every caller
    web_identity_tokens: set[str] = field(default_factory=set)  # tokens the IdP would vouch for
    access_keys: dict[str, tuple[str, str | None]] = field(
        default_factory=dict
    )  # id: secret, token
    instance_role: str | None = "passerelle-fake-instance-role"
    imds_tokens_required: bool = True
    imds_token_status: int = 200
    container_authorization: str | None = None
    container_role: str = f"arn:aws:iam::{ACCOUNT}:role/passerelle-fake-task-role"
    lifetime_s: int = 3600
    delay_s: float = 0.0
    max_skew_s: float = 300.0
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the fake saw it: never a token, secret or signature in here.

    ``detail`` holds what a test may check: the STS action and its parameters (without
    ``WebIdentityToken``), the key that signed, whether an IMDS token or an authorization header
    came with the request, the TTL asked for.
    """

    kind: str
    status: int
    detail: Mapping[str, str] = field(default_factory=dict)
    access_key_id: str | None = None  # of the credentials issued, when some were


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sts_error(status: int, code: str, message: str, kind: str = "Sender") -> Response:
    """An STS ``ErrorResponse`` document, as STS answers a refused query-protocol call."""
    body = (
        f'<ErrorResponse xmlns="{STS_NAMESPACE}">\n'
        f"  <Error>\n    <Type>{kind}</Type>\n    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n  </Error>\n"
        f"  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n"
    )
    return Response(body, status, headers=_FAKE_HEADER, media_type="text/xml")


class FakeAwsMetadata:
    """The fake's state and its ASGI app (``.app``), to run with ``serve_in_thread``."""

    def __init__(self, settings: FakeSettings | None = None) -> None:
        self.settings = settings or FakeSettings()
        self.calls: list[Call] = []
        self._issued: dict[str, AwsCredentials] = {}
        self._imds_tokens: dict[str, float] = {}
        self._replies: dict[str, deque[tuple[int, bytes, str]]] = {kind: deque() for kind in KINDS}
        self._lock = threading.Lock()  # the server thread writes what the test thread reads
        self.app = Starlette(
            routes=[
                Route("/latest/api/token", self._imds_token, methods=["PUT"]),
                Route("/latest/meta-data/iam/security-credentials/", self._imds_role),
                Route("/latest/meta-data/iam/security-credentials/{role}", self._imds_credentials),
                Route("/v2/credentials/{id}", self._container),
                Route("/v1/credentials", self._container),
                Route("/", self._sts, methods=["POST"]),
            ]
        )

    # -- control and inspection -----------------------------------------------------------------

    def answer_next(
        self, kind: str, status: int, body: str | bytes, content_type: str = "text/plain"
    ) -> None:
        """Answer the next request of ``kind`` (one of ``KINDS``) with this status and body."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._replies[kind].append((status, data, content_type))

    def kinds(self) -> list[str]:
        """The kinds of the requests seen so far, oldest first."""
        with self._lock:
            return [call.kind for call in self.calls]

    def issued(self) -> list[str]:
        """The access key ids handed out so far, oldest first."""
        with self._lock:
            return [call.access_key_id for call in self.calls if call.access_key_id]

    def credentials(self, access_key_id: str) -> AwsCredentials:
        """The full credentials issued under ``access_key_id`` (for a test's assertions)."""
        with self._lock:
            return self._issued[access_key_id]

    # -- plumbing -------------------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    async def _queued(self, kind: str, detail: Mapping[str, str]) -> Response | None:
        if self.settings.delay_s:
            await asyncio.sleep(self.settings.delay_s)
        with self._lock:
            reply = self._replies[kind].popleft() if self._replies[kind] else None
        if reply is None:
            return None
        self._record(Call(kind, reply[0], dict(detail)))
        return Response(reply[1], reply[0], headers=_FAKE_HEADER, media_type=reply[2])

    def _issue(
        self, kind: str, detail: Mapping[str, str], lifetime_s: int
    ) -> tuple[AwsCredentials, str]:
        credentials = AwsCredentials(
            "ASIAFAKE" + secrets.token_hex(6).upper(),
            secrets.token_urlsafe(30),
            "FAKE" + secrets.token_urlsafe(96),
        )
        with self._lock:
            self._issued[credentials.access_key_id] = credentials
            self.calls.append(Call(kind, 200, dict(detail), credentials.access_key_id))
        expiration = datetime.fromtimestamp(self.settings.clock() + lifetime_s, UTC)
        return credentials, expiration.strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- IMDSv2 ---------------------------------------------------------------------------------

    async def _imds_token(self, request: Request) -> Response:
        ttl = request.headers.get(TOKEN_TTL_HEADER, "")
        detail = {"ttl": ttl}
        queued = await self._queued("imds-token", detail)
        if queued is not None:
            return queued
        status = self.settings.imds_token_status
        if "x-forwarded-for" in request.headers:
            status = 403
        elif not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            status = 400
        if status != 200:
            self._record(Call("imds-token", status, detail))
            return Response(b"", status, headers=_FAKE_HEADER, media_type="text/plain")
        token = "AQAEAFAKE" + secrets.token_urlsafe(40)
        with self._lock:
            self._imds_tokens[token] = self.settings.clock() + int(ttl)
        self._record(Call("imds-token", 200, detail))
        headers = {**_FAKE_HEADER, TOKEN_TTL_HEADER: ttl}
        return Response(token, 200, headers=headers, media_type="text/plain")

    def _imds_refusal(self, request: Request) -> int | None:
        """401 when the session token is unknown or expired, or missing where it is required."""
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return 401 if self.settings.imds_tokens_required else None
        with self._lock:
            expires = self._imds_tokens.get(token)
        return None if expires is not None and self.settings.clock() < expires else 401

    async def _imds_role(self, request: Request) -> Response:
        detail = {"token": str(TOKEN_HEADER in request.headers)}
        queued = await self._queued("imds-role", detail)
        if queued is not None:
            return queued
        status = self._imds_refusal(request) or (404 if not self.settings.instance_role else 200)
        self._record(Call("imds-role", status, detail))
        body = (self.settings.instance_role or "") if status == 200 else ""
        return Response(body, status, headers=_FAKE_HEADER, media_type="text/plain")

    async def _imds_credentials(self, request: Request) -> Response:
        role = request.path_params["role"]
        detail = {"token": str(TOKEN_HEADER in request.headers), "role": role}
        queued = await self._queued("imds-credentials", detail)
        if queued is not None:
            return queued
        status = self._imds_refusal(request) or (404 if role != self.settings.instance_role else 0)
        if status:
            self._record(Call("imds-credentials", status, detail))
            return Response(b"", status, headers=_FAKE_HEADER, media_type="text/plain")
        credentials, expiration = self._issue("imds-credentials", detail, self.settings.lifetime_s)
        updated = datetime.fromtimestamp(self.settings.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "Code": "Success",
            "LastUpdated": updated,
            "Type": "AWS-HMAC",
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": expiration,
        }
        return _json(200, body)

    # -- container endpoints --------------------------------------------------------------------

    async def _container(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        expected = self.settings.container_authorization
        detail = {"path": request.url.path, "authorization": str(authorization is not None)}
        queued = await self._queued("container", detail)
        if queued is not None:
            return queued
        if expected is not None and (
            authorization is None or not hmac.compare_digest(authorization, expected)
        ):
            self._record(Call("container", 401, detail))
            message = "Authorization header is missing or invalid"
            return _json(401, {"code": "AccessDeniedException", "message": message})
        credentials, expiration = self._issue("container", detail, self.settings.lifetime_s)
        body = {
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "Token": credentials.session_token,
            "Expiration": expiration,
            "RoleArn": self.settings.container_role,
        }
        return _json(200, body)

    # -- STS ------------------------------------------------------------------------------------

    async def _sts(self, request: Request) -> Response:
        body = await request.body()
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        detail = {key: value for key, value in params.items() if key != "WebIdentityToken"}
        queued = await self._queued("sts", detail)
        if queued is not None:
            return queued
        try:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                raise _Refused(400, "InvalidAction", "Could not find operation for the request")
            if params.get("Version") != "2011-06-15":
                raise _Refused(400, "InvalidAction", "Could not find operation for the request")
            role_arn, session = params.get("RoleArn", ""), params.get("RoleSessionName", "")
            if not role_arn or not _ROLE_SESSION_NAME.fullmatch(session):
                raise _Refused(
                    400,
                    "ValidationError",
                    "1 validation error detected: Value at 'roleSessionName' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
                )
            lifetime = self._duration(params.get("DurationSeconds"))
            if action == "AssumeRoleWithWebIdentity":
                if "authorization" in request.headers:
                    detail["signed"] = "True"
                token = params.get("WebIdentityToken", "")
                if token not in self.settings.web_identity_tokens:
                    raise _Refused(
                        400,
                        "InvalidIdentityToken",
                        "Couldn't retrieve verification key from your identity provider, please "
                        "reference AssumeRoleWithWebIdentity documentation for requirements",
                    )
            elif action == "AssumeRole":
                detail["signed_by"] = self._verify_signature(request, body)
            else:
                raise _Refused(400, "InvalidAction", f"Could not find operation {action}")
            if role_arn not in self.settings.roles:
                raise _Refused(
                    403, "AccessDenied", f"Not authorized to perform sts:{action} on {role_arn}"
                )
        except _Refused as refused:
            self._record(Call("sts", refused.status, detail))
            return sts_error(refused.status, refused.code, refused.message)
        credentials, expiration = self._issue("sts", detail, lifetime)
        role_name = role_arn.rsplit("/", 1)[-1]
        extra = ""
        if action == "AssumeRoleWithWebIdentity":
            extra = (
                "    <SubjectFromWebIdentityToken>system:serviceaccount:fake:passerelle"
                "</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n"
                "    <Provider>oidc.eks.fake.amazonaws.com/id/FAKE</Provider>\n"
            )
        document = (
            f'<{action}Response xmlns="{STS_NAMESPACE}">\n  <{action}Result>\n{extra}'
            "    <AssumedRoleUser>\n"
            f"      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{escape(role_name)}/"
            f"{escape(session)}</Arn>\n"
            f"      <AssumedRoleId>AROAFAKE{secrets.token_hex(6).upper()}:{escape(session)}"
            "</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n"
            f"      <AccessKeyId>{credentials.access_key_id}</AccessKeyId>\n"
            f"      <SecretAccessKey>{escape(credentials.secret_access_key)}</SecretAccessKey>\n"
            f"      <SessionToken>{escape(credentials.session_token or '')}</SessionToken>\n"
            f"      <Expiration>{expiration}</Expiration>\n    </Credentials>\n"
            f"  </{action}Result>\n  <ResponseMetadata>\n"
            f"    <RequestId>{uuid.uuid4()}</RequestId>\n  </ResponseMetadata>\n"
            f"</{action}Response>\n"
        )
        return Response(document, 200, headers=_FAKE_HEADER, media_type="text/xml")

    def _duration(self, value: str | None) -> int:
        if value is None:
            return self.settings.lifetime_s
        if not value.isdigit() or not 900 <= int(value) <= 43200:
            raise _Refused(
                400,
                "ValidationError",
                "1 validation error detected: Value at 'durationSeconds' failed to satisfy "
                "constraint: Member must have value between 900 and 43200",
            )
        return int(value)

    def _verify_signature(self, request: Request, body: bytes) -> str:
        """The access key that signed the request, once its SigV4 signature checks out."""
        authorization = request.headers.get("authorization")
        if authorization is None:
            raise _Refused(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        match = _AUTHORIZATION.fullmatch(authorization.strip())
        if match is None:
            raise _Refused(400, "IncompleteSignature", "Authorization header is malformed")
        key_id = match["key"]
        with self._lock:
            issued = self._issued.get(key_id)
        known = self.settings.access_keys.get(key_id) or (
            (issued.secret_access_key, issued.session_token) if issued else None
        )
        token = request.headers.get("x-amz-security-token")
        if known is None or (token or None) != known[1]:
            raise _Refused(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        timestamp = request.headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _Refused(
                400, "IncompleteSignature", "X-Amz-Date is missing or malformed"
            ) from None
        if abs(signed_at.timestamp() - self.settings.clock()) > self.settings.max_skew_s:
            raise _Refused(403, "SignatureDoesNotMatch", "Signature expired: " + timestamp)
        if match["date"] != timestamp[:8] or match["region"] != self.settings.region:
            raise _Refused(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to a valid region. ({match['region']})",
            )
        if match["service"] != "sts":
            raise _Refused(
                403,
                "SignatureDoesNotMatch",
                "Credential should be scoped to correct service: 'sts'.",
            )
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise _Refused(403, "SignatureDoesNotMatch", "'Host' and 'X-Amz-Date' must be signed.")
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        canonical = aws_sigv4.canonical_request(
            request.method,
            raw_path.decode("utf-8", "replace"),
            request.scope["query_string"].decode("latin-1"),
            request.headers.items(),
            signed,
            hashlib.sha256(body).hexdigest(),
        )
        scope = aws_sigv4.credential_scope(match["date"], match["region"], "sts")
        to_sign = aws_sigv4.string_to_sign(timestamp, scope, canonical)
        key = aws_sigv4.signing_key(known[0], match["date"], match["region"], "sts")
        if not hmac.compare_digest(aws_sigv4.signature(key, to_sign), match["signature"]):
            raise _Refused(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.",
            )
        return key_id


def _json(status: int, body: Mapping[str, object]) -> Response:
    return Response(
        json.dumps(body, indent=2), status, headers=_FAKE_HEADER, media_type="application/json"
    )
