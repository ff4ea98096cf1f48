"""The AWS credential chain with its network links, cached and refreshed for Bedrock's signer.

``aws_sigv4`` reads the offline links (environment variables, static keys in the shared files);
this module adds the links that need STS, a metadata endpoint or a subprocess, and walks them all
in the order of the AWS SDK for Python (boto3's "Credentials" guide; the AWS SDKs and Tools
Reference Guide names the same providers and leaves each SDK its order). The first link that is
configured is used; a link that is configured but broken is an error, never skipped:

1. the environment variables ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (with
   ``AWS_SESSION_TOKEN``), skipped when a profile is named in code (``aws_sigv4``);
2. assume role: the profile's ``role_arn`` with ``source_profile`` (another profile's credentials,
   which may assume a role in turn) or ``credential_source`` (``Environment``, ``EcsContainer`` or
   ``Ec2InstanceMetadata``); STS ``AssumeRole``, SigV4-signed with those credentials, honouring
   ``external_id``, ``role_session_name`` and ``duration_seconds``;
3. web identity (EKS IAM roles for service accounts): ``AWS_WEB_IDENTITY_TOKEN_FILE`` +
   ``AWS_ROLE_ARN`` [+ ``AWS_ROLE_SESSION_NAME``], each variable overriding the profile's
   ``web_identity_token_file`` / ``role_arn`` / ``role_session_name``; STS
   ``AssumeRoleWithWebIdentity``, unsigned, with the token file read afresh every time;
4. IAM Identity Center (``sso_*`` settings): NOT SUPPORTED, fails saying so;
5. the profile's static keys in the shared credentials file (``aws_sigv4``);
6. the profile's ``credential_process``: the command run without a shell, its JSON (Version 1)
   read from stdout; stderr is discarded and neither stream ever reaches a message or a log;
7. the profile's static keys in the config file (``aws_sigv4``);
8. container credentials (ECS task roles, EKS Pod Identity): a GET on
   ``http://169.254.170.2`` + ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, else on
   ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, whose host must be a loopback address, ``localhost``,
   169.254.170.2 (ECS) or 169.254.170.23 / fd00:ec2::23 (EKS Pod Identity), whatever the scheme (as
   boto3 checks; no name is resolved); the ``Authorization`` header comes from the file named by
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (read every time: EKS rotates it), else from
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN``;
9. the EC2 instance metadata service, unless ``AWS_EC2_METADATA_DISABLED=true``: IMDSv2 (PUT
   ``/latest/api/token`` with a TTL header, then the role's credentials with that token), falling
   back to IMDSv1 when the token request gets HTTP 403, 404 or 405, unless
   ``AWS_EC2_METADATA_V1_DISABLED`` / ``ec2_metadata_v1_disabled`` forbid it. The endpoint is
   ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` / ``ec2_metadata_service_endpoint``, else chosen by
   ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`` (IPv4 ``169.254.169.254``, IPv6 ``fd00:ec2::254``);
   each call waits ``AWS_METADATA_SERVICE_TIMEOUT`` seconds (1 by default), so that off EC2 it
   costs little.

STS is the regional endpoint ``https://sts.{region}.amazonaws.com`` (``.amazonaws.com.cn`` in
China) for the region of ``aws_sigv4.region_from_sources`` (else the one given in code), the
global ``sts.amazonaws.com`` without one, or ``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL``.

:class:`AwsCredentialChain` caches the result: temporary credentials until five minutes before
they expire (half-way through, for a lifetime under ten minutes), static ones for five minutes so
that rotated keys are picked up without a restart. Concurrent callers share one refresh. When a
refresh fails while the cached temporary credentials are still valid, they keep being used and
the refresh is tried again shortly; when it fails otherwise, the error says which link failed and
why. No message, repr or log line carries a secret: secret access keys, session tokens, the web
identity token, the container authorization token, the IMDS session token and a process's output
are all kept out, even when an endpoint echoes one back.

HTTP goes through :class:`AwsHttp`, one call small enough for a test to fake;
:class:`TransportAwsHttp` is the real one, on Passerelle's transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

from passerelle.providers.aws_sigv4 import (
    AwsCredentials,
    CredentialsError,
    credentials_from_sources,
    profile_settings,
    read_shared_files,
    region_from_sources,
    sign_request,
)
from passerelle.providers.transport import Timeouts, Transport, TransportError

__all__ = [
    "CONTAINER_HOST",
    "IMDS_ENDPOINT",
    "IMDS_IPV6_ENDPOINT",
    "REFRESH_MARGIN_S",
    "AwsCredentialChain",
    "AwsHttp",
    "ResolvedCredentials",
    "TransportAwsHttp",
    "container_endpoint",
    "parse_process_output",
    "parse_sts_credentials",
    "split_command",
    "sts_endpoint",
]

log = logging.getLogger("passerelle.providers")

REFRESH_MARGIN_S = 300.0
STATIC_MAX_AGE_S = 300.0
RETRY_AFTER_FAILURE_S = 30.0
PROCESS_TIMEOUT_S = 60.0
STS_VERSION = "2011-06-15"
CONTAINER_HOST = "http://169.254.170.2"
IMDS_ENDPOINT = "http://169.254.169.254"
IMDS_IPV6_ENDPOINT = "http://[fd00:ec2::254]"
IMDS_TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
IMDS_CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
IMDS_TOKEN_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - a header name
IMDS_TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name
IMDS_TOKEN_TTL_S = 21600  # the longest IMDS allows; a token is used for one refresh only
STS_TIMEOUTS = Timeouts(connect_s=5.0, read_s=30.0)
# Container endpoints are local agents: slow means absent or broken, and a request waits on it.
CONTAINER_TIMEOUTS = Timeouts(connect_s=2.0, read_s=5.0)
_CONTAINER_ADDRESSES = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_IMDS_FALLBACK_STATUSES = frozenset({403, 404, 405})
_CREDENTIAL_SOURCES = ("Environment", "EcsContainer", "Ec2InstanceMetadata")
_BODY_LIMIT = 64 * 1024
_PROCESS_OUTPUT_LIMIT = 1024 * 1024
_REDACTED = "[redacted]"
# Error texts are sentences: a long run of key or token characters in one is an echo of a secret.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{32,}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    """Credentials, the link that produced them and, for temporary ones, when they expire.

    ``link`` is one of ``environment``, ``assume-role``, ``web-identity``, ``credentials-file``,
    ``process``, ``config-file``, ``container`` and ``imds``; ``origin`` says more for people
    (the profile, role or endpoint). ``expiration`` is ``None`` for static keys.
    """

    credentials: AwsCredentials
    link: str
    origin: str
    expiration: datetime | None = None


class AwsHttp(Protocol):
    """The one HTTP call the network links need. Returns the status and the body (at most 64 KiB),
    and raises ``TransportError`` when nothing answers in time."""

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> tuple[int, bytes]: ...


class TransportAwsHttp:
    """:class:`AwsHttp` on Passerelle's transport, the only HTTP client it uses.

    Without a transport, each call opens and closes its own: credentials are fetched a few times
    an hour, so a pool kept for them would sit idle, and nobody has to remember to close it.
    """

    def __init__(self, transport: Transport | None = None) -> None:
        self._transport = transport

    async def send(
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
            response = await transport.send(
                method, url, headers=headers, body=body, timeouts=timeouts
            )
            return response.status, await response.read(_BODY_LIMIT)
        finally:
            if transport is not self._transport:
                await transport.close()


class AwsCredentialChain:
    """The standard chain for one profile, shared by every request that signs with it.

    ``environ`` ``None`` reads ``os.environ`` at every resolution; ``profile`` ``None`` means
    ``AWS_PROFILE``, else ``AWS_DEFAULT_PROFILE``, else ``default``. ``read_text`` returns a file's
    text or ``None`` when it does not exist (the shared files and the token files go through it);
    ``region`` picks the STS endpoint when the environment and the profile name none (Bedrock's
    configured region, say); ``clock`` is wall-clock seconds. Building it does no I/O and needs no
    event loop.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None,
        profile: str | None,
        http: AwsHttp,
        *,
        read_text: Callable[[Path], str | None] | None = None,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
        process_timeout_s: float = PROCESS_TIMEOUT_S,
        static_max_age_s: float = STATIC_MAX_AGE_S,
    ) -> None:
        self._environ = environ
        self._profile = profile
        self._http = http
        self._read_text = read_text or _read_if_exists
        self._region = region
        self._clock = clock
        self._process_timeout_s = process_timeout_s
        self._static_max_age_s = static_max_age_s
        self._current: ResolvedCredentials | None = None
        self._refresh_at = 0.0
        self._refused = False
        self._refreshing: asyncio.Task[ResolvedCredentials] | None = None

    def __repr__(self) -> str:
        current = self._current
        shown = f"{current.link}: {current.origin}" if current else "not resolved yet"
        return f"<AwsCredentialChain profile={self._profile!r} ({shown})>"

    async def get(self) -> AwsCredentials:
        """Valid credentials to sign with (see :meth:`current`)."""
        return (await self.current()).credentials

    async def current(self) -> ResolvedCredentials:
        """The cached credentials, or one refresh shared by every caller waiting.

        A caller that is cancelled does not cancel the refresh the others are waiting for.
        """
        current = self._current
        if current is not None and self._clock() < self._refresh_at:
            return current
        task = self._refreshing
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh())
            task.add_done_callback(self._refresh_done)
            self._refreshing = task
        return await asyncio.shield(task)

    def invalidate(self) -> None:
        """Resolve again at the next call, for instance after AWS refused the credentials
        (``ExpiredTokenException``); those are then never used again, even if the refresh fails."""
        self._refresh_at = 0.0
        self._refused = True

    def _refresh_done(self, task: asyncio.Task[ResolvedCredentials]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # observed here, so a failure nobody awaited is not reported as lost

    async def _refresh(self) -> ResolvedCredentials:
        started = self._clock()
        environ = os.environ if self._environ is None else self._environ
        try:
            try:
                files = await asyncio.to_thread(read_shared_files, environ, self._read_text)
            except OSError as exc:
                raise CredentialsError(
                    f"cannot read the AWS shared file {exc.filename or ''}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
            resolved = await _Walk(self, environ, files).run()
            if resolved.expiration is not None and resolved.expiration.timestamp() <= started:
                raise CredentialsError(
                    f"AWS credentials from {resolved.origin} expired at "
                    f"{resolved.expiration.isoformat()} already"
                )
        except CredentialsError as exc:
            kept = self._current
            if self._refused or kept is None or kept.expiration is None:
                raise
            remaining = kept.expiration.timestamp() - started
            if remaining <= 0:
                raise
            log.warning(
                "AWS credentials: refresh failed, still using those from %s until they expire "
                "at %s: %s",
                kept.origin,
                kept.expiration.isoformat(),
                exc,
            )
            self._refresh_at = started + min(RETRY_AFTER_FAILURE_S, remaining / 2)
            return kept
        self._current = resolved
        self._refused = False
        if resolved.expiration is None:
            self._refresh_at = started + self._static_max_age_s
        else:
            lifetime = resolved.expiration.timestamp() - started
            # Five minutes early, or half-way through credentials issued for under ten minutes.
            self._refresh_at = started + max(lifetime - REFRESH_MARGIN_S, lifetime / 2)
        return resolved


class _Unreachable(CredentialsError):
    """The instance metadata service did not answer: most likely, not running on EC2."""


class _Walk:
    """One pass down the chain, with the environment and the shared files as they are now and the
    secrets met on the way, which every error message is scrubbed of."""

    def __init__(
        self,
        chain: AwsCredentialChain,
        environ: Mapping[str, str],
        files: tuple[str | None, str | None],
    ) -> None:
        self.env = environ
        self.credentials_file, self.config_file = files
        self.profile = chain._profile
        self.http = chain._http
        self.read_text = chain._read_text
        self.clock = chain._clock
        self.process_timeout_s = chain._process_timeout_s
        self.fallback_region = chain._region
        self.region: str | None = None
        self.secrets: list[str] = []

    async def run(self) -> ResolvedCredentials:
        env = self.env
        if self.profile is None and _env_keys(env):
            return _link(
                "the environment variables",
                lambda: ResolvedCredentials(
                    credentials_from_sources(env, None, None),
                    "environment",
                    "the environment variables",
                ),
            )
        name = self.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
        explicit = self.profile is not None or "AWS_PROFILE" in env or "AWS_DEFAULT_PROFILE" in env
        in_credentials = profile_settings(name, self.credentials_file, None)
        in_config = profile_settings(name, None, self.config_file)
        if in_credentials is None and in_config is None and explicit:
            raise CredentialsError(
                f"the AWS profile {name!r} is in neither the shared credentials file nor the "
                "config file"
            )
        settings = (in_config or {}) | (in_credentials or {})
        self.region = (
            region_from_sources(env, self.config_file, profile=name) or self.fallback_region
        )

        if _setting(settings, "role_arn") and not _setting(settings, "web_identity_token_file"):
            label = f"the assume-role profile {name!r}"
            return await _alink(label, self._assume_role(name, settings, [name]))
        token_file = _env(env, "AWS_WEB_IDENTITY_TOKEN_FILE") or _setting(
            settings, "web_identity_token_file"
        )
        if token_file:
            role_arn = _env(env, "AWS_ROLE_ARN") or _setting(settings, "role_arn")
            session = _env(env, "AWS_ROLE_SESSION_NAME") or _setting(settings, "role_session_name")
            return await _alink(
                "web identity", self._web_identity(token_file, role_arn, session, settings)
            )
        _link(f"the profile {name!r}", lambda: _refuse_sso(name, settings))
        if _has_keys(in_credentials):
            return _link(
                "the shared credentials file",
                lambda: ResolvedCredentials(
                    credentials_from_sources(env, self.credentials_file, None, profile=name),
                    "credentials-file",
                    f"the shared credentials file (profile {name!r})",
                ),
            )
        command = _setting(settings, "credential_process")
        if command:
            return await _alink(
                f"credential_process of the profile {name!r}", self._process(name, command)
            )
        if _has_keys(in_config):
            return _link(
                "the config file",
                lambda: ResolvedCredentials(
                    credentials_from_sources(env, None, self.config_file, profile=name),
                    "config-file",
                    f"the config file (profile {name!r})",
                ),
            )
        url = _link("the container credentials endpoint", lambda: container_endpoint(env))
        if url is not None:
            return await _alink("the container credentials endpoint", self._container(url))
        disabled = _env(env, "AWS_EC2_METADATA_DISABLED").lower() == "true"
        tried = (
            "no AWS credentials found: not in the environment variables, nor in the profile "
            f"{name!r} of the shared files, nor from a container endpoint"
        )
        if disabled:
            raise CredentialsError(
                f"{tried}, and the EC2 instance metadata service is disabled by "
                "AWS_EC2_METADATA_DISABLED; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or "
                "configure a profile"
            )
        try:
            return await self._imds(settings)
        except _Unreachable as exc:
            raise CredentialsError(
                f"{tried}, and {exc}: Passerelle is not running on EC2, or the service is out of "
                "reach (IMDSv2 from a container needs a hop limit of 2); set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, configure a profile, or set "
                "AWS_EC2_METADATA_DISABLED=true to skip the instance metadata service"
            ) from None
        except CredentialsError as exc:
            raise CredentialsError(
                f"AWS credentials from the EC2 instance metadata service: {exc}"
            ) from None

    # -- assume role ----------------------------------------------------------------------------

    async def _assume_role(
        self, name: str, settings: Mapping[str, str], visited: list[str]
    ) -> ResolvedCredentials:
        role_arn = _setting(settings, "role_arn")
        source_profile = _setting(settings, "source_profile")
        credential_source = _setting(settings, "credential_source")
        if _setting(settings, "mfa_serial"):
            raise CredentialsError(
                f"the profile {name!r} sets mfa_serial: a role that needs an MFA code needs a "
                "person to type it, which a gateway cannot do"
            )
        if source_profile and credential_source:
            raise CredentialsError(
                f"the profile {name!r} sets both source_profile and credential_source; AWS "
                "allows only one"
            )
        if source_profile == name:  # the profile's own static keys assume its role
            source = credentials_from_sources(
                self.env, self.credentials_file, self.config_file, profile=name
            )
        elif source_profile:
            if source_profile in visited:
                loop = " -> ".join([*visited, source_profile])
                raise CredentialsError(f"the source_profile settings form a loop: {loop}")
            source = await self._source_profile(source_profile, [*visited, source_profile])
        elif credential_source:
            source = await self._credential_source(name, credential_source, settings)
        else:
            raise CredentialsError(
                f"the profile {name!r} has role_arn but no source_profile, credential_source or "
                "web_identity_token_file"
            )
        session = self._session_name(_setting(settings, "role_session_name"))
        form = {"RoleArn": role_arn, "RoleSessionName": session}
        external_id = _setting(settings, "external_id")
        if external_id:
            form["ExternalId"] = external_id
        duration = _setting(settings, "duration_seconds")
        if duration:
            if not duration.isdigit() or not 900 <= int(duration) <= 43200:
                raise CredentialsError(
                    f"the profile {name!r} has duration_seconds {duration!r}: expected a number "
                    "of seconds from 900 to 43200"
                )
            form["DurationSeconds"] = duration
        credentials, expiration = await self._sts("AssumeRole", form, source)
        return ResolvedCredentials(
            credentials, "assume-role", f"the role {role_arn} (profile {name!r})", expiration
        )

    async def _source_profile(self, name: str, visited: list[str]) -> AwsCredentials:
        """The credentials of a ``source_profile``: its own role, process or static keys."""
        settings = profile_settings(name, self.credentials_file, self.config_file)
        if settings is None:
            raise CredentialsError(
                f"the source_profile {name!r} is in neither the shared credentials file nor the "
                "config file"
            )
        if _setting(settings, "role_arn"):
            if _setting(settings, "web_identity_token_file"):
                resolved = await self._web_identity(
                    _setting(settings, "web_identity_token_file"),
                    _setting(settings, "role_arn"),
                    _setting(settings, "role_session_name"),
                    settings,
                )
            else:
                resolved = await self._assume_role(name, settings, visited)
            return resolved.credentials
        _refuse_sso(name, settings)
        if _has_keys(settings):
            return credentials_from_sources(
                self.env, self.credentials_file, self.config_file, profile=name
            )
        command = _setting(settings, "credential_process")
        if command:
            return (await self._process(name, command)).credentials
        raise CredentialsError(
            f"the source_profile {name!r} has no credentials (no keys, role_arn or "
            "credential_process)"
        )

    async def _credential_source(
        self, name: str, source: str, settings: Mapping[str, str]
    ) -> AwsCredentials:
        if source == "Environment":
            if not _env_keys(self.env):
                raise CredentialsError(
                    f"the profile {name!r} has credential_source = Environment, but "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
                )
            return credentials_from_sources(self.env, None, None)
        if source == "EcsContainer":
            url = container_endpoint(self.env)
            if url is None:
                raise CredentialsError(
                    f"the profile {name!r} has credential_source = EcsContainer, but neither "
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI "
                    "is set"
                )
            return (await self._container(url)).credentials
        if source == "Ec2InstanceMetadata":
            return (await self._imds(settings)).credentials
        shown = source if len(source) <= 40 else source[:39] + "…"
        raise CredentialsError(
            f"the profile {name!r} has credential_source {shown!r}; expected one of "
            f"{', '.join(_CREDENTIAL_SOURCES)}"
        )

    def _session_name(self, configured: str) -> str:
        """The role session name configured, else one that says who assumed the role, and when."""
        if configured and not _SESSION_NAME.fullmatch(configured):
            raise CredentialsError(
                "the role session name (AWS_ROLE_SESSION_NAME or role_session_name) is one STS "
                "refuses: 2 to 64 letters, digits or +=,.@_- characters"
            )
        return configured or f"passerelle-{int(self.clock())}"

    # -- web identity ---------------------------------------------------------------------------

    async def _web_identity(
        self, token_file: str, role_arn: str, session: str, settings: Mapping[str, str]
    ) -> ResolvedCredentials:
        if not role_arn:
            raise CredentialsError(
                "a web identity token file is configured (AWS_WEB_IDENTITY_TOKEN_FILE or "
                "web_identity_token_file) but no role to assume (AWS_ROLE_ARN or role_arn)"
            )
        token = (await self._read(token_file, "the web identity token file")).strip()
        if not token:
            raise CredentialsError(f"the web identity token file {token_file} is empty")
        self.secrets.append(token)
        form = {
            "RoleArn": role_arn,
            "RoleSessionName": self._session_name(session),
            "WebIdentityToken": token,
        }
        duration = _setting(settings, "duration_seconds")
        if duration.isdigit():
            form["DurationSeconds"] = duration
        credentials, expiration = await self._sts("AssumeRoleWithWebIdentity", form, None)
        return ResolvedCredentials(
            credentials, "web-identity", f"the role {role_arn} (web identity)", expiration
        )

    # -- STS ------------------------------------------------------------------------------------

    async def _sts(
        self, action: str, form: Mapping[str, str], signer: AwsCredentials | None
    ) -> tuple[AwsCredentials, datetime]:
        """Call STS; ``signer`` ``None`` sends the request unsigned (web identity)."""
        url, region = sts_endpoint(self.env, self.region)
        body = urlencode({"Action": action, "Version": STS_VERSION, **form}).encode("ascii")
        headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
        if signer is not None:
            self.secrets += [signer.secret_access_key, signer.session_token or ""]
            signed = sign_request(
                "POST",
                url,
                headers,
                body,
                signer,
                region=region,
                service="sts",
                now=datetime.fromtimestamp(self.clock(), UTC),
            )
            headers |= signed.headers
        where = f"STS {action} at {url}"
        try:
            status, reply = await self.http.send("POST", url, headers, body, STS_TIMEOUTS)
        except TransportError as exc:
            raise CredentialsError(f"{where} did not answer ({exc})") from None
        if status != 200:
            code, message = _sts_error(reply)
            detail = self._redact(" ".join(part for part in (code, message) if part))
            raise CredentialsError(
                f"{where} refused: HTTP {status}" + (f" ({detail})" if detail else "")
            )
        return parse_sts_credentials(reply, action, where)

    # -- credential_process ---------------------------------------------------------------------

    async def _process(self, name: str, command: str) -> ResolvedCredentials:
        argv = split_command(command)
        where = f"the program {Path(argv[0]).name!r}"
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,  # may hold secrets: never shown nor logged
                env=dict(self.env),
            )
        except OSError as exc:
            raise CredentialsError(
                f"{where} cannot be started: {exc.strerror or type(exc).__name__}"
            ) from None
        stdout = b""
        timed_out = False
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), self.process_timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if timed_out:
            raise CredentialsError(
                f"{where} did not finish within {self.process_timeout_s:g} s and was stopped"
            )
        if process.returncode != 0:
            raise CredentialsError(
                f"{where} exited with status {process.returncode} (its output is not shown: it "
                "may hold secrets)"
            )
        if len(stdout) > _PROCESS_OUTPUT_LIMIT:
            raise CredentialsError(f"{where} printed more than {_PROCESS_OUTPUT_LIMIT} bytes")
        credentials, expiration = parse_process_output(stdout, where)
        return ResolvedCredentials(
            credentials, "process", f"credential_process (profile {name!r})", expiration
        )

    # -- container ------------------------------------------------------------------------------

    async def _container(self, url: str) -> ResolvedCredentials:
        headers = {"accept": "application/json"}
        token = await self._container_token()
        if token:
            self.secrets.append(token)
            headers["authorization"] = token
        origin = f"the container credentials endpoint {_origin(url)}"
        where = origin
        try:
            status, body = await self.http.send("GET", url, headers, None, CONTAINER_TIMEOUTS)
        except TransportError as exc:
            raise CredentialsError(f"{where} did not answer ({exc})") from None
        info = _json_object(body)
        if status != 200:
            parts = [str(info.get(key, "")) for key in ("code", "message", "Code", "Message")]
            detail = self._redact(" ".join(part for part in parts if part))
            raise CredentialsError(
                f"{where} refused: HTTP {status}" + (f" ({detail})" if detail else "")
            )
        credentials, expiration = _json_credentials(info, where, "Token")
        return ResolvedCredentials(credentials, "container", origin, expiration)

    async def _container_token(self) -> str:
        token_file = _env(self.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            token = (await self._read(token_file, "the container authorization token file")).strip()
            origin = f"the container authorization token file {token_file}"
        else:
            token = _env(self.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
            origin = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
        if "\r" in token or "\n" in token:
            raise CredentialsError(f"{origin} holds a line break, which cannot go in a header")
        return token

    # -- EC2 instance metadata ------------------------------------------------------------------

    async def _imds(self, settings: Mapping[str, str]) -> ResolvedCredentials:
        env = self.env
        base = imds_endpoint(env, settings)
        where = f"the EC2 instance metadata service at {base}"
        timeout = _env(env, "AWS_METADATA_SERVICE_TIMEOUT") or _setting(
            settings, "metadata_service_timeout"
        )
        seconds = float(timeout) if re.fullmatch(r"\d{1,3}(\.\d+)?", timeout) else 1.0
        timeouts = Timeouts(connect_s=seconds, read_s=seconds)
        v1_disabled = (
            _env(env, "AWS_EC2_METADATA_V1_DISABLED")
            or _setting(settings, "ec2_metadata_v1_disabled")
        ).lower() == "true"

        async def call(method: str, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
            try:
                return await self.http.send(method, base + path, headers, None, timeouts)
            except TransportError as exc:
                raise _Unreachable(f"{where} did not answer ({exc})") from None

        status, body = await call(
            "PUT", IMDS_TOKEN_PATH, {IMDS_TOKEN_TTL_HEADER: str(IMDS_TOKEN_TTL_S)}
        )
        headers: dict[str, str] = {}
        if status == 200 and body.strip():
            token = body.decode("ascii", "replace").strip()
            self.secrets.append(token)
            headers[IMDS_TOKEN_HEADER] = token
        elif status in _IMDS_FALLBACK_STATUSES and not v1_disabled:
            pass  # IMDSv1, as the SDKs fall back to when the token request is refused this way
        elif status in _IMDS_FALLBACK_STATUSES:
            raise CredentialsError(
                f"{where} refused an IMDSv2 session token (HTTP {status}) and the IMDSv1 "
                "fallback is disabled (AWS_EC2_METADATA_V1_DISABLED or ec2_metadata_v1_disabled)"
            )
        else:
            raise CredentialsError(f"{where} refused an IMDSv2 session token: HTTP {status}")
        status, body = await call("GET", IMDS_CREDENTIALS_PATH, headers)
        if status == 404:
            raise CredentialsError(f"{where}: this instance has no IAM role (instance profile)")
        if status == 401 and not headers:
            raise CredentialsError(
                f"{where} requires IMDSv2 (HTTP 401 without a session token), but refused one"
            )
        if status != 200:
            raise CredentialsError(f"{where} refused to name the instance's role: HTTP {status}")
        lines = body.decode("utf-8", "replace").split()
        if not lines:
            raise CredentialsError(f"{where}: this instance has no IAM role (instance profile)")
        role = lines[0]
        status, body = await call("GET", IMDS_CREDENTIALS_PATH + quote(role, safe=""), headers)
        if status != 200:
            raise CredentialsError(
                f"{where} refused the credentials of the role {role!r}: HTTP {status}"
            )
        info = _json_object(body)
        code = info.get("Code")
        if code != "Success":
            shown = self._redact(str(code)) if code else "none"
            raise CredentialsError(
                f"{where} has no credentials for the role {role!r} (Code: {shown})"
            )
        credentials, expiration = _json_credentials(info, where, "Token")
        return ResolvedCredentials(
            credentials, "imds", f"the EC2 instance metadata service (role {role!r})", expiration
        )

    # -- helpers --------------------------------------------------------------------------------

    async def _read(self, path: str, what: str) -> str:
        """A token file's text, read afresh: the platform rotates it."""
        try:
            text = await asyncio.to_thread(lambda: self.read_text(Path(path).expanduser()))
        except OSError as exc:
            raise CredentialsError(
                f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}"
            ) from None
        if text is None:
            raise CredentialsError(f"{what} {path} does not exist")
        return text

    def _redact(self, text: str) -> str:
        """An endpoint's error text, shortened, printable and without any secret it echoed."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, _REDACTED)
        text = _TOKEN_LIKE.sub(_REDACTED, text)
        text = "".join(char if char.isprintable() else " " for char in text)
        return text if len(text) <= 300 else text[:299] + "…"


# -- endpoints and wire formats (pure) -------------------------------------------------------------


def sts_endpoint(environ: Mapping[str, str], region: str | None) -> tuple[str, str]:
    """The STS URL to call and the region to sign for."""
    override = _env(environ, "AWS_ENDPOINT_URL_STS") or _env(environ, "AWS_ENDPOINT_URL")
    if override:
        parts = urlsplit(override)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CredentialsError("AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL is not an http(s) URL")
        return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}", region or "us-east-1"
    if not region:
        return "https://sts.amazonaws.com/", "us-east-1"
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise CredentialsError(f"the AWS region {region!r} is not a region name")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/", region


def container_endpoint(environ: Mapping[str, str]) -> str | None:
    """The container credentials URL the environment names, or ``None`` when it names none.

    A full URI must point at a host that only the container's own infrastructure can answer on:
    a loopback address, ``localhost``, the ECS agent (169.254.170.2) or the EKS Pod Identity agent
    (169.254.170.23, fd00:ec2::23). Anything else could send the authorization token, and trust
    the credentials, of whoever answers there.
    """
    relative = _env(environ, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative:
        return CONTAINER_HOST + (relative if relative.startswith("/") else "/" + relative)
    full = _env(environ, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not full:
        return None
    try:
        parts = urlsplit(full)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise CredentialsError("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise CredentialsError("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise CredentialsError(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI holds a user name or password; use "
            "AWS_CONTAINER_AUTHORIZATION_TOKEN instead"
        )
    if not _allowed_container_host(host):
        raise CredentialsError(
            f"AWS_CONTAINER_CREDENTIALS_FULL_URI names the host {host!r}; only a loopback "
            "address, localhost, 169.254.170.2 (ECS) or 169.254.170.23 / fd00:ec2::23 (EKS Pod "
            "Identity) may serve credentials"
        )
    return full


def imds_endpoint(environ: Mapping[str, str], settings: Mapping[str, str]) -> str:
    configured = _env(environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT") or _setting(
        settings, "ec2_metadata_service_endpoint"
    )
    if configured:
        return configured.rstrip("/")
    mode = (
        _env(environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
        or _setting(settings, "ec2_metadata_service_endpoint_mode")
        or "IPv4"
    ).lower()
    if mode not in ("ipv4", "ipv6"):
        raise CredentialsError(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE (or ec2_metadata_service_endpoint_mode) must "
            "be IPv4 or IPv6"
        )
    return IMDS_IPV6_ENDPOINT if mode == "ipv6" else IMDS_ENDPOINT


def split_command(command: str) -> list[str]:
    """A ``credential_process`` value as a program and its arguments: split on spaces, with
    double quotes around an element that holds spaces (backslashes are kept, as in a Windows
    path). No shell sees it, so nothing in it is expanded."""
    lexer = shlex.shlex(command, posix=True)
    lexer.whitespace_split = True
    lexer.quotes = '"'
    lexer.escape = ""
    lexer.commenters = ""
    try:
        argv = list(lexer)
    except ValueError:
        raise CredentialsError("credential_process has an unbalanced double quote") from None
    if not argv:
        raise CredentialsError("credential_process is empty")
    return argv


def parse_process_output(stdout: bytes, where: str) -> tuple[AwsCredentials, datetime | None]:
    """A ``credential_process`` program's output: JSON Version 1 with ``AccessKeyId``,
    ``SecretAccessKey`` and, for temporary credentials, ``SessionToken`` and ``Expiration``.
    Messages never quote the output."""
    info = _json_object(stdout)
    if not info:
        raise CredentialsError(f"{where} did not print a JSON object")
    version = info.get("Version")
    if isinstance(version, bool) or version != 1:
        raise CredentialsError(f'{where} printed JSON without "Version": 1')
    return _json_credentials(info, where, "SessionToken")


def parse_sts_credentials(
    body: bytes, action: str, where: str = "STS"
) -> tuple[AwsCredentials, datetime]:
    """The credentials and expiration of an STS ``AssumeRole*`` response (XML)."""
    root = _xml(body, where)
    credentials = _child(_child(root, f"{action}Result"), "Credentials")
    if credentials is None:
        raise CredentialsError(f"{where} answered without {action}Result/Credentials")
    values = {
        name: _text(credentials, name)
        for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    }
    for name, value in values.items():
        if not value:
            raise CredentialsError(f"{where} answered without Credentials/{name}")
    expiration = _parse_time(values["Expiration"], where)
    return (
        AwsCredentials(values["AccessKeyId"], values["SecretAccessKey"], values["SessionToken"]),
        expiration,
    )


def _sts_error(body: bytes) -> tuple[str, str]:
    """``Code`` and ``Message`` of an STS ``ErrorResponse``, or empty strings."""
    try:
        root = _xml(body, "STS")
    except CredentialsError:
        return "", ""
    error = _child(root, "Error")
    return _text(error, "Code"), _text(error, "Message")


def _xml(body: bytes, where: str) -> ElementTree.Element:
    # No DTD, hence no entity to expand: what remains is plain elements.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise CredentialsError(f"{where} answered with a DTD, which is refused")
    try:
        return ElementTree.fromstring(body)  # noqa: S314 - no DTD, checked above
    except ElementTree.ParseError:
        raise CredentialsError(f"{where} answered with malformed XML") from None


def _child(element: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
    """The first direct child called ``name``, whatever its namespace."""
    for child in element if element is not None else ():
        if child.tag == name or child.tag.endswith("}" + name):
            return child
    return None


def _text(element: ElementTree.Element | None, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        info = json.loads(body)
    except ValueError:  # not JSON, or not text: the caller says so without quoting it
        return {}
    return info if isinstance(info, dict) else {}


def _json_credentials(
    info: Mapping[str, Any], where: str, token_field: str
) -> tuple[AwsCredentials, datetime | None]:
    """Credentials from the JSON shape shared by IMDS, container endpoints and processes."""
    key_id, secret = info.get("AccessKeyId"), info.get("SecretAccessKey")
    if not isinstance(key_id, str) or not key_id.strip():
        raise CredentialsError(f"{where} answered without an AccessKeyId")
    if not isinstance(secret, str) or not secret.strip():
        raise CredentialsError(f"{where} answered without a SecretAccessKey")
    token = info.get(token_field)
    if token is not None and not isinstance(token, str):
        raise CredentialsError(f"{where} answered with a {token_field} that is not a string")
    raw = info.get("Expiration")
    expiration = None
    if raw is not None:
        if not isinstance(raw, str):
            raise CredentialsError(f"{where} answered with an Expiration that is not a string")
        expiration = _parse_time(raw, where)
    return AwsCredentials(key_id.strip(), secret.strip(), (token or "").strip() or None), expiration


def _parse_time(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CredentialsError(
            f"{where} answered with an Expiration that is not ISO 8601"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- small helpers ------------------------------------------------------------------------------


def _link(label: str, produce: Callable[[], _T]) -> _T:
    """``produce()``, with a failure's message saying which link failed."""
    try:
        return produce()
    except CredentialsError as exc:
        raise CredentialsError(f"AWS credentials from {label}: {exc}") from None


async def _alink(label: str, pending: Awaitable[ResolvedCredentials]) -> ResolvedCredentials:
    try:
        return await pending
    except CredentialsError as exc:
        raise CredentialsError(f"AWS credentials from {label}: {exc}") from None


def _refuse_sso(name: str, settings: Mapping[str, str]) -> None:
    sso = sorted(key for key in settings if key.startswith("sso_"))
    if sso:
        raise CredentialsError(
            f"the profile {name!r} uses IAM Identity Center ({', '.join(sso)}), which is not "
            "supported yet; use a role, credential_process "
            "(for instance `aws configure export-credentials --format process`) or static keys"
        )


def _env_keys(environ: Mapping[str, str]) -> bool:
    return bool(_env(environ, "AWS_ACCESS_KEY_ID") or _env(environ, "AWS_SECRET_ACCESS_KEY"))


def _has_keys(settings: Mapping[str, str] | None) -> bool:
    return settings is not None and bool(
        _setting(settings, "aws_access_key_id") or _setting(settings, "aws_secret_access_key")
    )


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _setting(settings: Mapping[str, str], name: str) -> str:
    return settings.get(name, "").strip()


def _allowed_container_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name: it would have to be resolved, and DNS could be anyone's
        return False
    return address.is_loopback or address in _CONTAINER_ADDRESSES


def _origin(url: str) -> str:
    """Scheme, host and port: the path of a container URL can be a capability, so not shown."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _read_if_exists(path: Path) -> str | None:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
