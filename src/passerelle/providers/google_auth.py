"""OAuth2 access tokens for Vertex AI, from the sources of Google's Application Default Credentials.

Vertex AI takes a short-lived bearer token, not an API key. Credentials are looked for in this
order; the first source found is used, and a broken one is an error, never skipped:

1. the configured variable (``gcp_credentials: env:NAME``): a JSON file's path, or the JSON itself
   when the value starts with ``{``;
2. ``GOOGLE_APPLICATION_CREDENTIALS``, a JSON file's path;
3. gcloud's ``application_default_credentials.json`` (``gcloud auth application-default login``)
   in ``$CLOUDSDK_CONFIG``, else in ``~/.config/gcloud`` (``%APPDATA%\\gcloud`` on Windows);
4. the metadata server of Compute Engine, GKE and Cloud Run (``GCE_METADATA_HOST`` moves it):
   tried when nothing above exists, or first when asked for explicitly.

A JSON file is a ``service_account`` key, whose RS256-signed JWT is traded at its ``token_uri``
for a token (the JWT bearer grant, RFC 7523), or an ``authorized_user`` refresh token (RFC 6749
section 6). Other types, such as ``external_account`` (workload identity federation), fail with an
error that names them.

A token is reused until five minutes before it expires, and concurrent callers share one refresh:
a burst of requests at start-up or at expiry costs one round trip to Google, not one each. The
network is reached through :class:`TokenHttp`, two calls small enough for a test to fake;
:class:`TransportTokenHttp` is the real one. Errors never carry a secret (private key, client
secret, refresh token, assertion, access token), even when the token server echoes one back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from passerelle.errors import PasserelleError
from passerelle.providers.transport import Timeouts, Transport, TransportError

if TYPE_CHECKING:
    from passerelle.config.schema import ProviderConfig

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - an address
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
METADATA_URL = "http://metadata.google.internal"
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"  # noqa: S105
WELL_KNOWN_FILE = "application_default_credentials.json"
REFRESH_MARGIN_S = 300.0
MAX_ASSERTION_LIFETIME_S = 3600  # Google refuses assertions valid for longer than an hour
# Token servers answer in well under a second; the metadata server is a link-local hop, so a slow
# connection means "not on Google Cloud", which must not hold a request up for long.
TOKEN_TIMEOUTS = Timeouts(connect_s=5.0, read_s=30.0)
METADATA_TIMEOUTS = Timeouts(connect_s=1.0, read_s=10.0)
_BODY_LIMIT = 64 * 1024
_REDACTED = "[redacted]"
_SECRET_FIELDS = ("assertion", "client_secret", "refresh_token")
# Anything shaped like a token, key or assertion: error descriptions are sentences, so a long run
# of base64 characters in one is an echo of a secret (perhaps a truncated one) and is hidden.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{32,}")


class GoogleAuthError(PasserelleError):
    """No Google access token: credentials missing, malformed or refused. Never carries a secret."""


@dataclass(frozen=True, slots=True)
class ServiceAccountKey:
    """A service account's key file: the account's address and the RSA key that signs for it."""

    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str | None
    token_uri: str
    project_id: str | None
    origin: str  # where it was read, for error messages


@dataclass(frozen=True, slots=True)
class AuthorizedUser:
    """A user's refresh token and the OAuth client it was issued to (gcloud's own, usually)."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_uri: str
    quota_project_id: str | None
    origin: str


@dataclass(frozen=True, slots=True)
class MetadataServer:
    """The instance's metadata server, which hands out tokens for the attached service account."""

    base_url: str

    @property
    def token_url(self) -> str:
        return self.base_url + METADATA_TOKEN_PATH


CredentialSource = ServiceAccountKey | AuthorizedUser | MetadataServer


class TokenHttp(Protocol):
    """The two HTTP calls tokens need: a URL-encoded form POST to a token endpoint, and a GET from
    the metadata server. Both return the status and the body, and raise ``TransportError`` when
    nothing answers."""

    async def post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, bytes]: ...

    async def get(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]: ...


class TransportTokenHttp:
    """:class:`TokenHttp` on Passerelle's transport, the only HTTP client it uses.

    Without a transport, each call opens and closes its own: a token is fetched about once an
    hour, so a pool kept for it would sit idle, and nobody has to remember to close it.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        token_timeouts: Timeouts = TOKEN_TIMEOUTS,
        metadata_timeouts: Timeouts = METADATA_TIMEOUTS,
    ) -> None:
        self._transport = transport
        self._token_timeouts = token_timeouts
        self._metadata_timeouts = metadata_timeouts

    async def post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        sent = {**headers, "content-type": "application/x-www-form-urlencoded"}
        body = urlencode(form).encode("ascii")
        return await self._send("POST", url, sent, body, self._token_timeouts)

    async def get(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self._send("GET", url, headers, None, self._metadata_timeouts)

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> tuple[int, bytes]:
        transport = self._transport or Transport(max_connections=1)
        if transport is not self._transport:
            await transport.start()
        try:
            sent = {"accept": "application/json", **headers}
            response = await transport.send(method, url, headers=sent, body=body, timeouts=timeouts)
            return response.status, await response.read(_BODY_LIMIT)
        finally:
            if transport is not self._transport:
                await transport.close()


# -- reading credentials ------------------------------------------------------------------------


def parse_credentials_json(text: str, origin: str) -> ServiceAccountKey | AuthorizedUser:
    """A credentials JSON file's content; ``origin`` says where it came from in error messages.

    The private key is loaded here, so that a broken key fails at start-up, not at first use.
    """
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:  # its message holds a position, never the text
        raise GoogleAuthError(
            f"{origin} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(info, dict):
        raise GoogleAuthError(f"{origin} is not a JSON object")
    kind = info.get("type")
    if kind == "service_account":
        pem = _required(info, "private_key", origin)
        try:
            key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise GoogleAuthError(
                f"{origin}: private_key is not an unencrypted PEM private key"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise GoogleAuthError(f"{origin}: private_key is not an RSA key")
        return ServiceAccountKey(
            client_email=_required(info, "client_email", origin),
            private_key=key,
            private_key_id=_optional(info, "private_key_id"),
            token_uri=_optional(info, "token_uri") or DEFAULT_TOKEN_URI,
            project_id=_optional(info, "project_id"),
            origin=origin,
        )
    if kind == "authorized_user":
        return AuthorizedUser(
            client_id=_required(info, "client_id", origin),
            client_secret=_required(info, "client_secret", origin),
            refresh_token=_required(info, "refresh_token", origin),
            token_uri=_optional(info, "token_uri") or DEFAULT_TOKEN_URI,
            quota_project_id=_optional(info, "quota_project_id"),
            origin=origin,
        )
    if kind == "external_account":
        raise GoogleAuthError(
            f"{origin} holds external_account credentials (workload identity federation), "
            "which are not supported: use a service account key, gcloud user credentials or "
            "the metadata server"
        )
    named = kind if isinstance(kind, str) and len(kind) <= 64 else "an unknown type"
    raise GoogleAuthError(
        f"{origin} holds credentials of type {named!r}, which is not supported: expected "
        "service_account or authorized_user"
    )


def find_credentials(
    configured: str | None,
    *,
    configured_name: str = "the configured Google credentials",
    environ: Mapping[str, str] | None = None,
    read_text: Callable[[Path], str | None] | None = None,
    use_metadata_server: bool | None = None,
    metadata_url: str | None = None,
) -> CredentialSource:
    """The first credentials found in the order of the module docstring.

    ``configured`` is the value of the configured variable (``None``: not configured), named
    ``configured_name`` in messages. ``read_text`` returns a file's text, or ``None`` when it does
    not exist. ``use_metadata_server``: ``None`` tries it when nothing else is found, ``True``
    uses it without looking at files (but after ``configured``), ``False`` never does.
    ``metadata_url`` overrides ``GCE_METADATA_HOST`` and the default address.
    """
    env = os.environ if environ is None else environ
    read = read_text or _read_if_exists
    if configured is not None and configured.strip():
        if configured.lstrip().startswith("{"):
            return parse_credentials_json(configured, f"the JSON in {configured_name}")
        path = Path(configured.strip()).expanduser()
        return _from_file(path, configured_name, read, secret=True)
    if use_metadata_server:
        return _metadata_server(env, metadata_url)
    named = env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    if named:
        return _from_file(Path(named).expanduser(), "GOOGLE_APPLICATION_CREDENTIALS", read)
    well_known = _well_known_path(env)
    text = _read(read, well_known, str(well_known))
    if text is not None:
        return parse_credentials_json(text, f"the gcloud credentials file {well_known}")
    if use_metadata_server is False:
        raise GoogleAuthError(
            "no Google credentials found: set gcp_credentials or GOOGLE_APPLICATION_CREDENTIALS, "
            "or run `gcloud auth application-default login` (the metadata server is disabled)"
        )
    return _metadata_server(env, metadata_url)


def _from_file(
    path: Path, name: str, read: Callable[[Path], str | None], *, secret: bool = False
) -> CredentialSource:
    """The credentials in the file ``name`` gives. A ``secret`` variable's value is not shown: it
    may be a key pasted in some other form than JSON."""
    shown = f"the file named by {name}" if secret else str(path)
    text = _read(read, path, shown)
    if text is None and secret:
        raise GoogleAuthError(
            f"{name} is neither a credentials JSON (starting with '{{') nor the path of a file"
        )
    if text is None:
        raise GoogleAuthError(f"{name} names the file {path}, which does not exist")
    return parse_credentials_json(text, shown if secret else f"{path} (from {name})")


def _read(read: Callable[[Path], str | None], path: Path, shown: str) -> str | None:
    try:
        return read(path)
    except OSError as exc:
        raise GoogleAuthError(
            f"cannot read {shown}: {exc.strerror or type(exc).__name__}"
        ) from None


def _read_if_exists(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None


def _well_known_path(environ: Mapping[str, str]) -> Path:
    configured = environ.get("CLOUDSDK_CONFIG", "").strip()
    if configured:
        return Path(configured).expanduser() / WELL_KNOWN_FILE
    if os.name == "nt" and environ.get("APPDATA"):
        return Path(environ["APPDATA"]) / "gcloud" / WELL_KNOWN_FILE
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".config" / "gcloud" / WELL_KNOWN_FILE


def _metadata_server(environ: Mapping[str, str], metadata_url: str | None) -> MetadataServer:
    host = environ.get("GCE_METADATA_HOST", "").strip()
    base = metadata_url or (f"http://{host}" if host else METADATA_URL)
    return MetadataServer(base.rstrip("/"))


def _required(info: Mapping[str, Any], name: str, origin: str) -> str:
    value = info.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GoogleAuthError(f"{origin} has no {name}")
    return value


def _optional(info: Mapping[str, Any], name: str) -> str | None:
    value = info.get(name)
    return value if isinstance(value, str) and value else None


# -- the service account's assertion ------------------------------------------------------------


def service_account_assertion(
    key: ServiceAccountKey,
    *,
    scope: str,
    now: float,
    lifetime_s: int = MAX_ASSERTION_LIFETIME_S,
    subject: str | None = None,
) -> str:
    """The signed JWT the JWT bearer grant trades for a token (``subject``: a user to act as,
    for domain-wide delegation)."""
    if not 0 < lifetime_s <= MAX_ASSERTION_LIFETIME_S:
        raise ValueError(f"an assertion lives at most {MAX_ASSERTION_LIFETIME_S} s")
    header = {"alg": "RS256", "typ": "JWT"}
    if key.private_key_id:
        header["kid"] = key.private_key_id
    issued = int(now)
    claims: dict[str, str | int] = {
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": issued,
        "exp": issued + lifetime_s,
    }
    if subject:
        claims["sub"] = subject
    signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}"
    signature = key.private_key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{_b64(signature)}"


def _compact(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- tokens -------------------------------------------------------------------------------------


class GoogleCredentials:
    """Access tokens for one credential source, shared by every request that needs one.

    Building it does no I/O and needs no event loop; ``token`` is the ``TokenSource`` a Vertex
    provider takes.
    """

    def __init__(
        self,
        source: CredentialSource,
        http: TokenHttp,
        *,
        scope: str = CLOUD_PLATFORM_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._http = http
        self._scope = scope
        self._clock = clock  # wall-clock seconds: it dates the assertion as well as the cache
        self._token: str | None = None
        self._refresh_at = 0.0
        self._refreshing: asyncio.Task[str] | None = None

    async def token(self) -> str:
        """A valid access token: the cached one, or one refresh shared by every caller waiting.

        A caller that is cancelled does not cancel the refresh the others are waiting for.
        """
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        task = self._refreshing
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh())
            task.add_done_callback(self._refresh_done)
            self._refreshing = task
        return await asyncio.shield(task)

    def invalidate(self) -> None:
        """Refresh at the next call, for instance after Vertex refused the token (HTTP 401)."""
        self._refresh_at = 0.0  # the old token is kept, to be hidden from a refusal's message

    def _refresh_done(self, task: asyncio.Task[str]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # observed here, so a failure nobody awaited is not reported as lost

    async def _refresh(self) -> str:
        started = self._clock()
        source = self.source
        secrets = [self._token or ""]  # a refused refresh must not show the previous token either
        if isinstance(source, MetadataServer):
            where = f"the metadata server at {source.base_url}"
            reply = self._http.get(source.token_url, {"Metadata-Flavor": "Google"})
        else:
            where = f"the token endpoint {source.token_uri}"
            form = _grant_form(source, self._scope, started)
            secrets += [form.get(name, "") for name in _SECRET_FIELDS]
            reply = self._http.post_form(source.token_uri, form, {})
        try:
            status, body = await reply
        except TransportError as exc:
            hint = ""
            if isinstance(source, MetadataServer):
                hint = (
                    ": Passerelle is not running on Google Cloud, or the metadata server is "
                    "blocked; configure gcp_credentials or GOOGLE_APPLICATION_CREDENTIALS instead"
                )
            raise GoogleAuthError(
                f"cannot get a Google access token from {where} ({exc}){hint}"
            ) from None
        token, lifetime = _token_from_response(status, body, where, secrets)
        self._token = token
        # Five minutes early, or half-way through a token issued for less than ten minutes.
        self._refresh_at = started + max(lifetime - REFRESH_MARGIN_S, lifetime / 2)
        return token


def _grant_form(
    source: ServiceAccountKey | AuthorizedUser, scope: str, now: float
) -> dict[str, str]:
    """The token request's form: the JWT bearer grant, or the refresh-token grant."""
    if isinstance(source, ServiceAccountKey):
        assertion = service_account_assertion(source, scope=scope, now=now)
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    return {
        "grant_type": "refresh_token",
        "client_id": source.client_id,
        "client_secret": source.client_secret,
        "refresh_token": source.refresh_token,
    }


def _token_from_response(
    status: int, body: bytes, where: str, secrets: list[str]
) -> tuple[str, float]:
    """The access token and its lifetime in seconds, or an error saying what went wrong."""
    try:
        info = json.loads(body)
    except ValueError:  # not JSON, or not text: the status alone will have to do
        info = None
    if not isinstance(info, dict):
        info = {}
    if status != 200:
        detail = " ".join(
            str(info[name]) for name in ("error", "error_description") if info.get(name)
        )
        detail = _redact(detail, secrets)
        raise GoogleAuthError(
            f"{where} refused to issue an access token: HTTP {status}"
            + (f" ({detail})" if detail else "")
        )
    token = info.get("access_token")
    if not isinstance(token, str) or not token:
        raise GoogleAuthError(f"{where} answered without an access_token")
    lifetime = info.get("expires_in", MAX_ASSERTION_LIFETIME_S)  # one hour, when not said
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise GoogleAuthError(f"{where} answered with an invalid expires_in")
    return token, float(lifetime)


def _redact(text: str, secrets: list[str]) -> str:
    """A token server's error text, shortened, printable, and with any secret it echoed removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    text = _TOKEN_LIKE.sub(_REDACTED, text)
    text = "".join(char if char.isprintable() else " " for char in text)
    return text if len(text) <= 200 else text[:199] + "…"


def vertex_token_source(
    name: str, provider: ProviderConfig, credentials: str | None
) -> Callable[[], Awaitable[str]]:
    """The token source of the Vertex provider ``name``; ``credentials`` is the value of its
    ``gcp_credentials`` variable (``None`` when not configured).

    Credentials are looked for at the first request, not here: a missing one fails that
    provider's routes with a clear reason instead of the gateway's start-up, and is looked for
    again at the next request, so that fixing it needs no restart.
    """
    reference = provider.gcp_credentials
    label = f"{reference.env_name} (gcp_credentials of provider {name!r})" if reference else ""
    found: list[GoogleCredentials] = []

    async def token() -> str:
        if not found:  # nothing awaited before the append: concurrent first calls build one
            source = find_credentials(credentials, configured_name=label or "gcp_credentials")
            found.append(GoogleCredentials(source, TransportTokenHttp()))
        return await found[0].token()

    return token
