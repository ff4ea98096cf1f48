"""AWS Signature Version 4 for request headers, and the offline part of the credential chain.

Bedrock authenticates every call with SigV4. Signing is four pure steps, each exposed so that a
test can check it against AWS's published test suite and a server (the fake Bedrock) can run
the same steps to verify::

    canonical_request()   method, URI-encoded path, sorted query, signed headers, payload hash
    string_to_sign()      algorithm, x-amz-date, credential scope, SHA-256 of the canonical request
    signing_key()         HMAC chain over date, region, service and "aws4_request"
    sign_request()        all of the above: the headers to add (authorization, x-amz-date,
                          x-amz-security-token, optionally x-amz-content-sha256)

The path is signed as it goes on the wire, URI-encoded once more: for every service but S3 a
model id such as ``anthropic.claude-v2:1`` sent as ``/model/anthropic.claude-v2%3A1/invoke`` is
signed as ``/model/anthropic.claude-v2%253A1/invoke``. So pass ``sign_request`` the URL exactly as
it will be sent.

Credentials come from, in order (the offline links of the AWS SDKs' default chain):

1. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (skipped when a
   profile is named explicitly in code, as the AWS SDKs do);
2. the profile ``AWS_PROFILE`` (or ``default``) in the shared credentials file
   (``~/.aws/credentials``, or ``AWS_SHARED_CREDENTIALS_FILE``), then in the config file
   (``~/.aws/config``, or ``AWS_CONFIG_FILE``) under ``[profile NAME]`` (``[default]`` for the
   default profile).

TODO: the links that need the network or a subprocess are not implemented yet: assume-role
(``role_arn`` + ``source_profile``), ``credential_process``, IAM Identity Center (``sso_*``), web
identity (``AWS_WEB_IDENTITY_TOKEN_FILE``), container credentials
(``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` / ``_FULL_URI``) and the EC2 instance metadata
service. A profile that relies on one of them fails with a ``CredentialsError`` that says so.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "AwsCredentials",
    "CredentialsError",
    "SignedRequest",
    "amz_date",
    "canonical_headers",
    "canonical_path",
    "canonical_query",
    "canonical_request",
    "credential_scope",
    "credentials_from_sources",
    "profile_settings",
    "read_shared_files",
    "region_from_sources",
    "resolve_credentials",
    "resolve_region",
    "sign_request",
    "signature",
    "signing_key",
    "string_to_sign",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# Headers a proxy or the HTTP client may add, drop or rewrite: signing them would break the
# signature in transit for no security gain.
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_GENERATED = frozenset({"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_SPACES = re.compile(r" +")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair, with the session token that temporary credentials also need."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What signing produced: the headers to add, and each intermediate step for debugging."""

    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str
    signed_headers: str
    signature: str


class CredentialsError(LookupError):
    """No usable AWS credentials: says which sources were tried and what was wrong."""


# -- the four steps ------------------------------------------------------------------------------


def uri_encode(value: str, *, encode_slash: bool = True) -> str:
    """RFC 3986 percent-encoding of every byte but the unreserved ones (uppercase hex)."""
    out = []
    for byte in value.encode("utf-8"):
        if byte in _UNRESERVED or (byte == 0x2F and not encode_slash):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_path(path: str, *, normalize: bool = True, encode: bool = True) -> str:
    """The canonical URI: the wire path, normalized and URI-encoded once more.

    S3 is the exception to both rules (``normalize=False, encode=False``); every other service
    removes ``.`` and ``..`` segments and empty segments, then encodes each segment.
    """
    if not path:
        return "/"
    if normalize:
        segments: list[str] = []
        for segment in path.split("/"):
            if segment in ("", "."):
                continue
            if segment == "..":
                if segments:
                    segments.pop()
                continue
            segments.append(segment)
        trailing = path.endswith("/") and bool(segments)
        path = "/" + "/".join(segments) + ("/" if trailing else "")
    return uri_encode(path, encode_slash=False) if encode else path


def canonical_query(query: str) -> str:
    """Parameters decoded, re-encoded strictly, sorted by name then value, joined with ``&``.

    A ``+`` is kept as a literal plus (encoded ``%2B``), never read as a space.
    """
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Iterable[str]) -> str:
    """``name:value`` lines for the signed headers: names lowercased, values trimmed with inner
    runs of spaces collapsed, repeated headers joined with commas in their order of appearance."""
    wanted = set(signed)
    values: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in wanted:
            values.setdefault(lowered, []).append(_SPACES.sub(" ", value.strip()))
    return "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in sorted(wanted))


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: Iterable[str],
    payload_hash: str,
    *,
    normalize_path: bool = True,
    encode_path: bool = True,
) -> str:
    """The canonical request of SigV4 (``path`` and ``query`` as they are on the wire)."""
    signed = sorted({name.lower() for name in signed_headers})
    return "\n".join(
        [
            method.upper(),
            canonical_path(path, normalize=normalize_path, encode=encode_path),
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    """Algorithm, ``x-amz-date`` timestamp, credential scope and the canonical request's hash."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived for one day, region and service (``date`` is ``YYYYMMDD``)."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def amz_date(moment: datetime) -> str:
    """The ``x-amz-date`` form of a moment: ``20150830T123600Z`` (UTC)."""
    if moment.tzinfo is None:
        raise ValueError("the signing time needs a time zone")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    *,
    region: str,
    service: str,
    now: datetime,
    payload_hash: str | None = None,
    content_sha256_header: bool = False,
    normalize_path: bool = True,
    encode_path: bool = True,
) -> SignedRequest:
    """Sign a request; the caller adds ``SignedRequest.headers`` to the request it sends.

    Every header in ``headers`` is signed except those a proxy may rewrite (``UNSIGNED_HEADERS``),
    together with ``host`` (taken from ``url`` unless given), ``x-amz-date`` and, for temporary
    credentials, ``x-amz-security-token``. ``payload_hash`` defaults to the SHA-256 of ``body``
    (pass ``UNSIGNED_PAYLOAD`` where the service allows it); ``content_sha256_header`` also sends
    it as ``x-amz-content-sha256``, which S3 requires and other services accept.
    """
    parts = urlsplit(url)
    timestamp = amz_date(now)
    digest = payload_hash or hashlib.sha256(body).hexdigest()
    all_headers: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in UNSIGNED_HEADERS and lowered not in _GENERATED:
            all_headers[lowered] = value
    all_headers.setdefault("host", _host(parts.scheme, parts.hostname or "", parts.port))
    added = {"x-amz-date": timestamp}
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    if content_sha256_header:
        added["x-amz-content-sha256"] = digest
    all_headers |= added
    signed = sorted(all_headers)
    canonical = canonical_request(
        method,
        parts.path or "/",
        parts.query,
        all_headers.items(),
        signed,
        digest,
        normalize_path=normalize_path,
        encode_path=encode_path,
    )
    scope = credential_scope(timestamp[:8], region, service)
    to_sign = string_to_sign(timestamp, scope, canonical)
    signed_list = ";".join(signed)
    result = signature(
        signing_key(credentials.secret_access_key, timestamp[:8], region, service), to_sign
    )
    authorization = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_list}, Signature={result}"
    )
    return SignedRequest(
        {"authorization": authorization, **added}, canonical, to_sign, signed_list, result
    )


def _host(scheme: str, hostname: str, port: int | None) -> str:
    """The ``host`` header an HTTP client sends for this URL: no port when it is the default."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is None or str(port) == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


# -- credentials -----------------------------------------------------------------------------

_UNSUPPORTED_KEYS = {
    "role_arn": "assume-role profiles (role_arn)",
    "credential_process": "credential_process",
    "sso_session": "IAM Identity Center (sso_session)",
    "sso_start_url": "IAM Identity Center (sso_start_url)",
    "web_identity_token_file": "web identity (web_identity_token_file)",
}


def credentials_from_sources(
    environ: Mapping[str, str],
    credentials_file: str | None,
    config_file: str | None,
    *,
    profile: str | None = None,
) -> AwsCredentials:
    """Credentials from the environment and the two shared files' text (``None``: no file).

    Pure: ``resolve_credentials`` is this function fed from the real environment and disk.
    """
    if profile is None:
        from_env = _environment_credentials(environ)
        if from_env is not None:
            return from_env
    name = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    explicit = profile is not None or "AWS_PROFILE" in environ or "AWS_DEFAULT_PROFILE" in environ
    sections = _profile_sections(name, credentials_file, config_file)
    if not sections:
        if explicit:
            raise CredentialsError(
                f"the AWS profile {name!r} is in neither the shared credentials file nor the "
                "config file"
            )
        raise CredentialsError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "configure a profile in the shared credentials or config file (container and "
            "instance-metadata credentials are not supported yet)"
        )
    merged: dict[str, str] = {}
    for section in reversed(sections):  # the credentials file wins over the config file
        merged |= section
    key_id = merged.get("aws_access_key_id", "").strip()
    secret = merged.get("aws_secret_access_key", "").strip()
    if key_id and secret:
        token = (merged.get("aws_session_token") or merged.get("aws_security_token") or "").strip()
        return AwsCredentials(key_id, secret, token or None)
    if key_id or secret:
        missing = "aws_secret_access_key" if key_id else "aws_access_key_id"
        raise CredentialsError(f"the AWS profile {name!r} has no {missing}")
    unsupported = [label for key, label in _UNSUPPORTED_KEYS.items() if key in merged]
    if unsupported:
        raise CredentialsError(
            f"the AWS profile {name!r} uses {', '.join(unsupported)}, which is not supported "
            "yet: use static keys or environment variables"
        )
    raise CredentialsError(f"the AWS profile {name!r} has no aws_access_key_id")


def region_from_sources(
    environ: Mapping[str, str], config_file: str | None, *, profile: str | None = None
) -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's ``region`` in the config."""
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if environ.get(variable):
            return environ[variable].strip()
    name = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    sections = _profile_sections(name, None, config_file)
    region = sections[0].get("region", "").strip() if sections else ""
    return region or None


def resolve_credentials(
    environ: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    read_text: Callable[[Path], str | None] | None = None,
) -> AwsCredentials:
    """Credentials from the real environment and shared files (see the module docstring)."""
    env = os.environ if environ is None else environ
    read = read_text or _read_if_exists
    return credentials_from_sources(
        env,
        read(_shared_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials")),
        read(_shared_path(env, "AWS_CONFIG_FILE", "config")),
        profile=profile,
    )


def resolve_region(
    environ: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    read_text: Callable[[Path], str | None] | None = None,
) -> str | None:
    env = os.environ if environ is None else environ
    read = read_text or _read_if_exists
    return region_from_sources(
        env, read(_shared_path(env, "AWS_CONFIG_FILE", "config")), profile=profile
    )


def profile_settings(
    name: str, credentials_file: str | None, config_file: str | None
) -> dict[str, str] | None:
    """A profile's settings in the shared files' text, the credentials file winning over the
    config file; ``None`` when neither has the profile. For the chain's other links
    (``aws_credentials``), which read ``role_arn``, ``credential_process`` and the like."""
    sections = _profile_sections(name, credentials_file, config_file)
    if not sections:
        return None
    merged: dict[str, str] = {}
    for section in reversed(sections):
        merged |= section
    return merged


def read_shared_files(
    environ: Mapping[str, str], read_text: Callable[[Path], str | None] | None = None
) -> tuple[str | None, str | None]:
    """The text of the shared credentials file and of the config file (``None``: no such file)."""
    read = read_text or _read_if_exists
    return (
        read(_shared_path(environ, "AWS_SHARED_CREDENTIALS_FILE", "credentials")),
        read(_shared_path(environ, "AWS_CONFIG_FILE", "config")),
    )


def _environment_credentials(environ: Mapping[str, str]) -> AwsCredentials | None:
    key_id = environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        present, missing = (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if key_id
            else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        )
        raise CredentialsError(f"{present} is set but {missing} is not")
    token = (environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or "").strip()
    return AwsCredentials(key_id, secret, token or None)


def _profile_sections(
    name: str, credentials_file: str | None, config_file: str | None
) -> list[dict[str, str]]:
    """The profile's sections, credentials file first; missing sections are left out."""
    found = []
    if credentials_file is not None:
        section = _ini(credentials_file, "shared credentials file").get(name)
        if section is not None:
            found.append(section)
    if config_file is not None:
        config = _ini(config_file, "config file")
        section = config.get(f"profile {name}")
        if section is None and name == "default":
            section = config.get("default")
        if section is not None:
            found.append(section)
    return found


def _ini(text: str, what: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise CredentialsError(f"the AWS {what} cannot be parsed: {error.message}") from error
    return {
        section.strip(): {key: value for key, value in parser.items(section)}
        for section in parser.sections()
    }


def _shared_path(environ: Mapping[str, str], variable: str, default_name: str) -> Path:
    configured = environ.get(variable)
    if configured:
        return Path(os.path.expanduser(configured))
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".aws" / default_name


def _read_if_exists(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
