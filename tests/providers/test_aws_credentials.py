"""The AWS credential chain: each network link, the order of the links, caching and secrecy.

Credentials come from a FAKE instance metadata service, container endpoint and STS served on a
real socket (``passerelle.testing.fake_aws_metadata``), which speaks their wire formats and
verifies AssumeRole's SigV4 signature with ``aws_sigv4`` as STS would; ``credential_process``
runs real child processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs

import pytest

from passerelle.providers.aws_credentials import (
    AwsCredentialChain,
    AwsHttp,
    ResolvedCredentials,
    TransportAwsHttp,
    container_endpoint,
    parse_sts_credentials,
    split_command,
    sts_endpoint,
)
from passerelle.providers.aws_sigv4 import CredentialsError
from passerelle.providers.transport import Timeouts, Transport
from passerelle.testing.fake_aws_metadata import FakeAwsMetadata, FakeSettings, sts_error
from passerelle.testing.server import serve_in_thread
from tests.net import free_port

REGION = "eu-west-3"
ROLE_ARN = "arn:aws:iam::000000000000:role/passerelle-bedrock"
HOP_ROLE_ARN = "arn:aws:iam::000000000000:role/passerelle-hop"
WEB_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZmFrZSJ9"
    ".ZmFrZS1zaWduYXR1cmUtZmFrZS1zaWduYXR1cmU"
)
STATIC_KEY_ID = "AKIAFAKESTATIC000001"
STATIC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKESECRET1"
ENV_KEY_ID = "AKIAFAKEENVIRON00002"
ENV_SECRET = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbFAKESECRET2"
CONTAINER_TOKEN = "Bearer fake-container-authorization-0123456789abcdef"
T = TypeVar("T")


class FakeClock:
    """Wall-clock seconds that only move when a test says so; the fake server shares it."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    method: str
    url: str  # as the chain built it, before any rerouting
    headers: dict[str, str]
    body: bytes | None
    timeouts: Timeouts


class RecordingHttp:
    """The real HTTP seam, recording each request and rerouting fixed addresses (the ECS agent,
    the instance metadata service) to the fake."""

    def __init__(self, inner: AwsHttp, routes: Mapping[str, str]) -> None:
        self.inner = inner
        self.routes = routes
        self.sent: list[Sent] = []

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> tuple[int, bytes]:
        self.sent.append(Sent(method, url, dict(headers), body, timeouts))
        for prefix, target in self.routes.items():
            if url.startswith(prefix):
                url = target + url[len(prefix) :]
                break
        return await self.inner.send(method, url, headers, body, timeouts)


def run(
    body: Callable[[RecordingHttp], Awaitable[T]], routes: Mapping[str, str] | None = None
) -> T:
    """Run ``body`` in a fresh event loop with a started transport behind the HTTP seam."""

    async def main() -> T:
        transport = Transport()
        await transport.start()
        try:
            return await body(RecordingHttp(TransportAwsHttp(transport), routes or {}))
        finally:
            await transport.close()

    return asyncio.run(main())


def resolve(
    environ: Mapping[str, str],
    clock: FakeClock,
    *,
    profile: str | None = None,
    routes: Mapping[str, str] | None = None,
    process_timeout_s: float = 20.0,
) -> tuple[ResolvedCredentials, list[Sent]]:
    """One resolution through a new chain, and the requests it sent."""

    async def body(http: RecordingHttp) -> tuple[ResolvedCredentials, list[Sent]]:
        chain = AwsCredentialChain(
            environ, profile, http, clock=clock, process_timeout_s=process_timeout_s
        )
        return await chain.current(), http.sent

    return run(body, routes)


def failure(environ: Mapping[str, str], clock: FakeClock, **options: object) -> str:
    """The message of the CredentialsError a resolution ends with."""
    with pytest.raises(CredentialsError) as caught:
        resolve(environ, clock, **options)  # type: ignore[arg-type]
    return str(caught.value)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeAwsMetadata:
    settings = FakeSettings(
        region=REGION,
        roles={ROLE_ARN, HOP_ROLE_ARN},
        web_identity_tokens={WEB_TOKEN},
        access_keys={STATIC_KEY_ID: (STATIC_SECRET, None), ENV_KEY_ID: (ENV_SECRET, None)},
        clock=clock,
    )
    return FakeAwsMetadata(settings)


@pytest.fixture
def server(fake: FakeAwsMetadata) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
def env(server: str, tmp_path: Path) -> dict[str, str]:
    """No credentials anywhere, STS at the fake, the instance metadata service disabled."""
    (tmp_path / "home").mkdir()
    return {
        "HOME": str(tmp_path / "home"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_STS": server,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def write(path: Path | str, text: str) -> str:
    Path(path).write_text(text, "utf-8")
    return str(path)


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def program(tmp_path: Path, code: str, *arguments: str) -> str:
    """A ``credential_process`` value running ``code`` with this Python, paths quoted."""
    script = tmp_path / f"credentials_{abs(hash(code))}.py"
    script.write_text(code, "utf-8")
    quoted = " ".join(f'"{argument}"' for argument in arguments)
    return f'"{sys.executable}" "{script}" {quoted}'.strip()


def process_output(clock: FakeClock, lifetime_s: float | None = 900) -> dict[str, object]:
    output: dict[str, object] = {
        "Version": 1,
        "AccessKeyId": "ASIAFAKEPROCESS00003",
        "SecretAccessKey": "process-secret-FAKE/0123456789abcdefghijkl",
        "SessionToken": "FAKEprocess-session-token-0123456789abcdefghijklmnop",
    }
    if lifetime_s is not None:
        output["Expiration"] = moment(clock.now + lifetime_s).isoformat().replace("+00:00", "Z")
    return output


# -- environment variables ----------------------------------------------------------------------


def test_environment_variables_need_no_request(env: dict[str, str], clock: FakeClock) -> None:
    env |= {"AWS_ACCESS_KEY_ID": ENV_KEY_ID, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}
    resolved, sent = resolve(env, clock)
    assert resolved.link == "environment" and resolved.expiration is None
    assert resolved.credentials.access_key_id == ENV_KEY_ID
    assert sent == []
    del env["AWS_SECRET_ACCESS_KEY"]
    assert failure(env, clock) == (
        "AWS credentials from the environment variables: AWS_ACCESS_KEY_ID is set but "
        "AWS_SECRET_ACCESS_KEY is not"
    )


def test_a_profile_named_in_code_skips_the_environment_and_must_exist(
    env: dict[str, str], clock: FakeClock
) -> None:
    env |= {"AWS_ACCESS_KEY_ID": ENV_KEY_ID, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}
    write(
        env["AWS_SHARED_CREDENTIALS_FILE"],
        f"[work]\naws_access_key_id = {STATIC_KEY_ID}\naws_secret_access_key = {STATIC_SECRET}\n",
    )
    resolved, _ = resolve(env, clock, profile="work")
    assert resolved.link == "credentials-file"
    assert resolved.credentials.access_key_id == STATIC_KEY_ID
    assert "profile 'absent' is in neither" in failure(env, clock, profile="absent")


# -- web identity -------------------------------------------------------------------------------


def test_web_identity_from_the_environment(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, tmp_path: Path
) -> None:
    env |= {
        "AWS_WEB_IDENTITY_TOKEN_FILE": write(tmp_path / "token", WEB_TOKEN + "\n"),
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_ROLE_SESSION_NAME": "gateway-pod",
    }
    resolved, sent = resolve(env, clock)
    assert resolved.link == "web-identity"
    assert resolved.origin == f"the role {ROLE_ARN} (web identity)"
    assert resolved.expiration == moment(clock.now + 3600)
    assert resolved.credentials == fake.credentials(fake.issued()[0])
    (call,) = fake.calls
    assert call.kind == "sts" and call.status == 200
    assert dict(call.detail) == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE_ARN,
        "RoleSessionName": "gateway-pod",
    }
    (request,) = sent
    assert (request.method, request.url) == ("POST", f"{server}/")
    assert "authorization" not in request.headers  # the token is the proof: unsigned
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs((request.body or b"").decode())["WebIdentityToken"] == [WEB_TOKEN]


def test_web_identity_from_a_profile_reads_the_token_file_afresh(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    write(token_file, WEB_TOKEN)
    write(
        env["AWS_CONFIG_FILE"],
        f"[default]\nrole_arn = {ROLE_ARN}\nweb_identity_token_file = {token_file}\n",
    )
    rotated = WEB_TOKEN[:-4] + "ROTA"
    fake.settings.web_identity_tokens.add(rotated)

    async def body(http: RecordingHttp) -> list[ResolvedCredentials]:
        chain = AwsCredentialChain(env, None, http, clock=clock)
        first = await chain.current()
        write(token_file, rotated)
        clock.now += 3600 - 300
        return [first, await chain.current()]

    first, second = run(body)
    assert first.link == second.link == "web-identity"
    assert first.credentials != second.credentials
    sessions = [call.detail["RoleSessionName"] for call in fake.calls]
    assert sessions == [f"passerelle-{int(clock.now) - 3300}", f"passerelle-{int(clock.now)}"]


def test_web_identity_refusals_say_why_without_the_token(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, tmp_path: Path
) -> None:
    unknown = WEB_TOKEN.replace("ZmFrZS1z", "b3RoZXIt")
    env |= {"AWS_WEB_IDENTITY_TOKEN_FILE": write(tmp_path / "token", unknown)}
    assert "but no role to assume (AWS_ROLE_ARN or role_arn)" in failure(env, clock)
    env["AWS_ROLE_ARN"] = ROLE_ARN
    message = failure(env, clock)
    assert message.startswith(
        f"AWS credentials from web identity: STS AssumeRoleWithWebIdentity at {server}/ refused: "
        "HTTP 400 (InvalidIdentityToken Couldn't retrieve verification key"
    )
    echo = sts_error(400, "InvalidIdentityToken", f"Token {unknown} is not valid").body
    fake.answer_next("sts", 400, bytes(echo), "text/xml")
    message = failure(env, clock)
    assert "InvalidIdentityToken Token [redacted] is not valid" in message
    assert unknown not in message and unknown[:40] not in message
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(tmp_path / "absent")
    assert f"the web identity token file {tmp_path / 'absent'} does not exist" in failure(
        env, clock
    )


# -- container credentials ----------------------------------------------------------------------


def test_container_relative_uri_ecs(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    fake.settings.container_authorization = CONTAINER_TOKEN
    env |= {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/5f8e-task",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN,
    }
    resolved, sent = resolve(env, clock, routes={"http://169.254.170.2": server})
    assert resolved.link == "container"
    assert resolved.origin == "the container credentials endpoint http://169.254.170.2"
    assert resolved.expiration == moment(clock.now + 3600)
    assert resolved.credentials == fake.credentials(fake.issued()[0])
    assert [(request.method, request.url) for request in sent] == [
        ("GET", "http://169.254.170.2/v2/credentials/5f8e-task")
    ]
    assert sent[0].headers["authorization"] == CONTAINER_TOKEN
    assert fake.calls[0].detail == {"path": "/v2/credentials/5f8e-task", "authorization": "True"}


def test_container_full_uri_eks_pod_identity_rereads_the_token_file(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    write(token_file, "first-token-value\n")
    fake.settings.container_authorization = "first-token-value"
    env |= {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server}/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored-when-the-file-is-set",
    }

    async def body(http: RecordingHttp) -> tuple[list[ResolvedCredentials], str]:
        chain = AwsCredentialChain(env, None, http, clock=clock)
        seen = [await chain.current()]
        write(token_file, "second-token-value")
        fake.settings.container_authorization = "second-token-value"
        chain.invalidate()
        seen.append(await chain.current())
        write(token_file, "stale-token-value")
        chain.invalidate()
        with pytest.raises(CredentialsError) as caught:
            await chain.current()
        return seen, str(caught.value)

    seen, message = run(body)
    assert [resolved.link for resolved in seen] == ["container", "container"]
    assert seen[0].credentials != seen[1].credentials
    assert message == (
        "AWS credentials from the container credentials endpoint: the container credentials "
        f"endpoint {server} refused: HTTP 401 (AccessDeniedException Authorization header is "
        "missing or invalid)"
    )
    assert "stale-token-value" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/get-credentials",
        "http://localhost/get-credentials",
        "http://[::1]:9000/creds",
        "http://127.0.0.53/creds",
        "http://169.254.170.2/v2/credentials/abc",
        "http://169.254.170.23/v1/credentials",
        "http://[fd00:ec2::23]/v1/credentials",
        "https://127.0.0.1/creds",
    ],
)
def test_container_hosts_allowed(url: str) -> None:
    assert container_endpoint({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url}) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.0.0.1/creds", "names the host '10.0.0.1'"),
        ("http://169.254.170.3/v2/credentials", "names the host '169.254.170.3'"),
        ("http://169.254.169.254/latest", "names the host '169.254.169.254'"),
        ("http://credentials.example.test/creds", "names the host 'credentials.example.test'"),
        ("https://evil.example.test/creds", "names the host 'evil.example.test'"),
        ("http://127.0.0.1.nip.io/creds", "names the host '127.0.0.1.nip.io'"),
        ("http://[fd00:ec2::24]/v1/credentials", "names the host 'fd00:ec2::24'"),
        ("ftp://127.0.0.1/creds", "is not an http(s) URL"),
        ("http://user:hunter2@127.0.0.1/creds", "holds a user name or password"),
        ("http://127.0.0.1:port/creds", "is not a valid URL"),
    ],
)
def test_container_hosts_refused(url: str, expected: str) -> None:
    with pytest.raises(CredentialsError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI") as caught:
        container_endpoint({"AWS_CONTAINER_CREDENTIALS_FULL_URI": url})
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_refused_container_host_is_never_called(env: dict[str, str], clock: FakeClock) -> None:
    env |= {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.10/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN,
    }

    async def body(http: RecordingHttp) -> list[Sent]:
        chain = AwsCredentialChain(env, None, http, clock=clock)
        with pytest.raises(CredentialsError, match="from the container credentials endpoint: "):
            await chain.get()
        return http.sent

    assert run(body) == []
    assert container_endpoint({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "v2/x"}) == (
        "http://169.254.170.2/v2/x"
    )
    assert container_endpoint({}) is None


# -- EC2 instance metadata ----------------------------------------------------------------------


def imds_env(env: dict[str, str], server: str | None) -> dict[str, str]:
    del env["AWS_EC2_METADATA_DISABLED"]
    if server is not None:
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server
    return env


def test_imds_v2_token_then_role_then_credentials(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    resolved, sent = resolve(imds_env(env, server), clock)
    assert resolved.link == "imds"
    assert resolved.origin == (
        "the EC2 instance metadata service (role 'passerelle-fake-instance-role')"
    )
    assert resolved.expiration == moment(clock.now + 3600)
    assert resolved.credentials == fake.credentials(fake.issued()[0])
    role_path = "/latest/meta-data/iam/security-credentials/"
    assert [(request.method, request.url) for request in sent] == [
        ("PUT", f"{server}/latest/api/token"),
        ("GET", f"{server}{role_path}"),
        ("GET", f"{server}{role_path}passerelle-fake-instance-role"),
    ]
    assert sent[0].headers == {"x-aws-ec2-metadata-token-ttl-seconds": "21600"}
    assert all("x-aws-ec2-metadata-token" in request.headers for request in sent[1:])
    assert {request.timeouts for request in sent} == {Timeouts(connect_s=1.0, read_s=1.0)}
    assert [(call.kind, call.status) for call in fake.calls] == [
        ("imds-token", 200),
        ("imds-role", 200),
        ("imds-credentials", 200),
    ]
    assert fake.calls[0].detail == {"ttl": "21600"}


@pytest.mark.parametrize(
    ("settings", "address"),
    [
        ({}, "http://169.254.169.254"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}, "http://[fd00:ec2::254]"),
    ],
)
def test_imds_default_addresses(
    env: dict[str, str],
    clock: FakeClock,
    server: str,
    settings: dict[str, str],
    address: str,
) -> None:
    resolved, sent = resolve(imds_env(env, None) | settings, clock, routes={address: server})
    assert resolved.link == "imds"
    assert sent[0].url == f"{address}/latest/api/token"


@pytest.mark.parametrize("status", [403, 404, 405])
def test_imds_falls_back_to_v1_when_the_token_is_refused(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, status: int
) -> None:
    fake.settings.imds_token_status = status
    fake.settings.imds_tokens_required = False
    resolved, sent = resolve(imds_env(env, server), clock)
    assert resolved.link == "imds"
    assert all("x-aws-ec2-metadata-token" not in request.headers for request in sent[1:])
    assert [call.status for call in fake.calls] == [status, 200, 200]
    env["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    message = failure(env, clock)
    assert (
        f"refused an IMDSv2 session token (HTTP {status}) and the IMDSv1 fallback is disabled"
        in (message)
    )
    assert fake.kinds()[3:] == ["imds-token"]  # no IMDSv1 request once it is disabled


def test_imds_errors(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    imds_env(env, server)
    fake.settings.imds_token_status = 500
    assert failure(env, clock) == (
        "AWS credentials from the EC2 instance metadata service: the EC2 instance metadata "
        f"service at {server} refused an IMDSv2 session token: HTTP 500"
    )
    fake.settings.imds_token_status = 200
    fake.settings.instance_role = None
    assert failure(env, clock).endswith("this instance has no IAM role (instance profile)")
    fake.settings.instance_role = "passerelle-fake-instance-role"
    fake.answer_next("imds-credentials", 200, json.dumps({"Code": "AssumeRoleUnauthorized"}))
    assert "(Code: AssumeRoleUnauthorized)" in failure(env, clock)


def test_imds_disabled_sends_nothing(env: dict[str, str], clock: FakeClock) -> None:
    async def body(http: RecordingHttp) -> tuple[str, list[Sent]]:
        with pytest.raises(CredentialsError) as caught:
            await AwsCredentialChain(env, None, http, clock=clock).get()
        return str(caught.value), http.sent

    message, sent = run(body)
    assert sent == []
    assert message.startswith("no AWS credentials found: not in the environment variables")
    assert "disabled by AWS_EC2_METADATA_DISABLED" in message


def test_imds_unreachable_means_no_credentials(env: dict[str, str], clock: FakeClock) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    message = failure(imds_env(env, address), clock)
    assert message.startswith(
        "no AWS credentials found: not in the environment variables, nor in the profile "
        f"'default' of the shared files, nor from a container endpoint, and the EC2 instance "
        f"metadata service at {address} did not answer ("
    )
    assert "not running on EC2" in message and "AWS_EC2_METADATA_DISABLED=true" in message


# -- assume role --------------------------------------------------------------------------------


def assume_role_files(env: dict[str, str], secret: str = STATIC_SECRET, **extra: str) -> None:
    settings = "".join(f"{key} = {value}\n" for key, value in extra.items())
    write(
        env["AWS_SHARED_CREDENTIALS_FILE"],
        f"[base]\naws_access_key_id = {STATIC_KEY_ID}\naws_secret_access_key = {secret}\n",
    )
    write(
        env["AWS_CONFIG_FILE"],
        f"[profile bedrock]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n{settings}",
    )


def test_assume_role_signed_with_the_source_profile_and_verified_by_sts(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    assume_role_files(
        env, external_id="partner-7", duration_seconds="1800", role_session_name="gw-test"
    )
    env["AWS_PROFILE"] = "bedrock"
    resolved, sent = resolve(env, clock)
    assert resolved.link == "assume-role"
    assert resolved.origin == f"the role {ROLE_ARN} (profile 'bedrock')"
    assert resolved.expiration == moment(clock.now + 1800)
    assert resolved.credentials == fake.credentials(fake.issued()[0])
    (call,) = fake.calls
    assert call.status == 200
    assert dict(call.detail) == {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": ROLE_ARN,
        "RoleSessionName": "gw-test",
        "ExternalId": "partner-7",
        "DurationSeconds": "1800",
        "signed_by": STATIC_KEY_ID,
    }
    (request,) = sent
    assert request.url == f"{server}/"
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={STATIC_KEY_ID}/20250615/{REGION}/sts/aws4_request, "
    )
    assert "x-amz-security-token" not in request.headers


def test_a_wrong_source_secret_is_refused_by_sts(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata
) -> None:
    wrong = STATIC_SECRET[:-6] + "WRONG0"
    assume_role_files(env, secret=wrong)
    message = failure(env, clock, profile="bedrock")
    assert message.startswith(
        "AWS credentials from the assume-role profile 'bedrock': STS AssumeRole at "
    )
    assert "HTTP 403 (SignatureDoesNotMatch The request signature we calculated" in message
    assert wrong not in message and STATIC_SECRET not in message
    assert [call.status for call in fake.calls] == [403]


def test_the_region_given_in_code_scopes_sts_when_nothing_else_does(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata
) -> None:
    assume_role_files(env)
    del env["AWS_REGION"]  # STS at the fake: the region only scopes the signature
    message = failure(env, clock, profile="bedrock")
    assert "SignatureDoesNotMatch Credential should be scoped to a valid region. (us-east-1)" in (
        message
    )

    async def body(http: RecordingHttp) -> ResolvedCredentials:
        chain = AwsCredentialChain(env, "bedrock", http, region=REGION, clock=clock)
        return await chain.current()

    assert run(body).link == "assume-role"
    assert [call.status for call in fake.calls] == [403, 200]


def test_roles_chain_through_source_profiles(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata
) -> None:
    write(
        env["AWS_SHARED_CREDENTIALS_FILE"],
        f"[base]\naws_access_key_id = {STATIC_KEY_ID}\naws_secret_access_key = {STATIC_SECRET}\n",
    )
    write(
        env["AWS_CONFIG_FILE"],
        f"[profile final]\nrole_arn = {ROLE_ARN}\nsource_profile = hop\n"
        f"[profile hop]\nrole_arn = {HOP_ROLE_ARN}\nsource_profile = base\n",
    )
    resolved, _ = resolve(env, clock, profile="final")
    hop_key, final_key = fake.issued()
    assert [call.detail["RoleArn"] for call in fake.calls] == [HOP_ROLE_ARN, ROLE_ARN]
    assert [call.detail["signed_by"] for call in fake.calls] == [STATIC_KEY_ID, hop_key]
    assert resolved.credentials.access_key_id == final_key


def test_credential_source_environment_and_instance_metadata(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    env |= {"AWS_ACCESS_KEY_ID": ENV_KEY_ID, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}
    write(
        env["AWS_CONFIG_FILE"],
        f"[profile from-env]\nrole_arn = {ROLE_ARN}\ncredential_source = Environment\n"
        f"[profile from-ec2]\nrole_arn = {ROLE_ARN}\ncredential_source = Ec2InstanceMetadata\n",
    )
    resolved, _ = resolve(env, clock, profile="from-env")  # named in code: the variables are
    assert resolved.link == "assume-role"  # only the source, not the answer
    assert fake.calls[-1].detail["signed_by"] == ENV_KEY_ID
    resolved, _ = resolve(imds_env(env, server), clock, profile="from-ec2")
    assert resolved.link == "assume-role"
    instance_key = fake.issued()[1]  # a session token signs too: the fake checks it
    assert fake.calls[-1].detail["signed_by"] == instance_key
    assert fake.credentials(instance_key).session_token


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\n"
            f"[profile b]\nrole_arn = {ROLE_ARN}\nsource_profile = a\n",
            "the source_profile settings form a loop: a -> b -> a",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\n"
            "credential_source = Environment\n",
            "sets both source_profile and credential_source",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = a\n"
            "mfa_serial = arn:aws:iam::000000000000:mfa/ada\n",
            "sets mfa_serial",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\ncredential_source = Ec2Metadata\n",
            "credential_source 'Ec2Metadata'; expected one of Environment, EcsContainer",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\n",
            "has role_arn but no source_profile, credential_source or web_identity_token_file",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = nowhere\n",
            "the source_profile 'nowhere' is in neither",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\n[profile b]\nregion = x\n",
            "the source_profile 'b' has no credentials",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\ncredential_source = EcsContainer\n",
            "credential_source = EcsContainer, but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ),
        (
            f"[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\nduration_seconds = 60\n"
            "[profile b]\naws_access_key_id = AKIAFAKE\naws_secret_access_key = s\n",
            "duration_seconds '60': expected a number of seconds from 900 to 43200",
        ),
    ],
)
def test_assume_role_misconfigurations(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, config: str, expected: str
) -> None:
    write(env["AWS_CONFIG_FILE"], config)
    message = failure(env, clock, profile="a")
    assert message.startswith("AWS credentials from the assume-role profile 'a': ")
    assert expected in message
    assert fake.calls == []


def test_iam_identity_center_is_a_clear_gap(env: dict[str, str], clock: FakeClock) -> None:
    write(
        env["AWS_CONFIG_FILE"],
        "[profile dev]\nsso_session = corp\nsso_account_id = 000000000000\n"
        "sso_role_name = Bedrock\n[sso-session corp]\nsso_start_url = https://corp.example\n",
    )
    message = failure(env, clock, profile="dev")
    assert message.startswith(
        "AWS credentials from the profile 'dev': the profile 'dev' uses IAM Identity Center "
        "(sso_account_id, sso_role_name, sso_session), which is not supported yet"
    )


# -- credential_process -------------------------------------------------------------------------


def test_credential_process_success(env: dict[str, str], clock: FakeClock, tmp_path: Path) -> None:
    output = process_output(clock)
    code = (
        "import json, sys\n"
        "assert sys.argv[1:] == ['two words', '--flag'], sys.argv\n"
        f"print(json.dumps({output!r}))\n"
    )
    command = program(tmp_path, code, "two words", "--flag")
    write(env["AWS_CONFIG_FILE"], f"[default]\ncredential_process = {command}\n")
    resolved, sent = resolve(env, clock)
    assert sent == []
    assert resolved.link == "process"
    assert resolved.origin == "credential_process (profile 'default')"
    assert resolved.expiration == moment(clock.now + 900)
    assert resolved.credentials.access_key_id == output["AccessKeyId"]
    assert resolved.credentials.secret_access_key == output["SecretAccessKey"]
    assert resolved.credentials.session_token == output["SessionToken"]


def test_credential_process_without_expiration_is_static(
    env: dict[str, str], clock: FakeClock, tmp_path: Path
) -> None:
    output = process_output(clock, lifetime_s=None)
    del output["SessionToken"]
    command = program(tmp_path, f"import json\nprint(json.dumps({output!r}))\n")
    write(env["AWS_CONFIG_FILE"], f"[default]\ncredential_process = {command}\n")
    resolved, _ = resolve(env, clock)
    assert resolved.expiration is None and resolved.credentials.session_token is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            'import sys\nprint(\'{"SecretAccessKey": "%s"}\' % sys.argv[1])\n'
            "print('stderr %s' % sys.argv[1], file=sys.stderr)\nsys.exit(3)\n",
            "exited with status 3 (its output is not shown: it may hold secrets)",
        ),
        ("import sys\nprint('password=%s' % sys.argv[1])\n", "did not print a JSON object"),
        (
            "import json, sys\nprint(json.dumps({'Version': 2, 'AccessKeyId': 'AKIAFAKE', "
            "'SecretAccessKey': sys.argv[1]}))\n",
            'printed JSON without "Version": 1',
        ),
        (
            "import json, sys\nprint(json.dumps({'Version': 1, 'AccessKeyId': sys.argv[1]}))\n",
            "answered without a SecretAccessKey",
        ),
        (
            "import json, sys\nprint(json.dumps({'Version': 1, 'AccessKeyId': 'AKIAFAKE', "
            "'SecretAccessKey': sys.argv[1], 'Expiration': 'tomorrow'}))\n",
            "answered with an Expiration that is not ISO 8601",
        ),
    ],
)
def test_credential_process_failures_never_show_the_output(
    env: dict[str, str], clock: FakeClock, tmp_path: Path, code: str, expected: str
) -> None:
    secret = "process-secret-FAKE/abcdefghijklmnopqrstuvwxyz0123"
    command = program(tmp_path, code, secret)
    write(env["AWS_CONFIG_FILE"], f"[default]\ncredential_process = {command}\n")
    message = failure(env, clock)
    assert message.startswith(
        "AWS credentials from credential_process of the profile 'default': the program "
    )
    assert expected in message
    assert secret not in message and "password" not in message and "stderr" not in message


def test_credential_process_timeout_and_missing_program(
    env: dict[str, str], clock: FakeClock, tmp_path: Path
) -> None:
    command = program(tmp_path, "import time\ntime.sleep(60)\n")
    write(env["AWS_CONFIG_FILE"], f"[default]\ncredential_process = {command}\n")
    started = time.monotonic()
    message = failure(env, clock, process_timeout_s=0.5)
    assert "did not finish within 0.5 s and was stopped" in message
    assert time.monotonic() - started < 10
    missing = tmp_path / "no-such-program"
    write(env["AWS_CONFIG_FILE"], f"[default]\ncredential_process = {missing} --flag\n")
    assert "the program 'no-such-program' cannot be started" in failure(env, clock)


def test_split_command() -> None:
    assert split_command('"C:\\Program Files\\creds.exe" --user "Ada L" x') == [
        "C:\\Program Files\\creds.exe",
        "--user",
        "Ada L",
        "x",
    ]
    assert split_command("/opt/bin/creds $HOME `id` ;rm") == [
        "/opt/bin/creds",
        "$HOME",
        "`id`",
        ";rm",
    ]
    with pytest.raises(CredentialsError, match="unbalanced double quote"):
        split_command('"/opt/bin/creds --user')
    with pytest.raises(CredentialsError, match="is empty"):
        split_command("   ")


# -- the order of the links ---------------------------------------------------------------------


def test_the_chain_order(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, tmp_path: Path
) -> None:
    """Everything configured at once; removing the winner each time reveals the next link."""
    imds_env(env, server)
    env |= {
        "AWS_ACCESS_KEY_ID": ENV_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ENV_SECRET,
        "AWS_PROFILE": "main",
        "AWS_WEB_IDENTITY_TOKEN_FILE": write(tmp_path / "token", WEB_TOKEN),
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server}/v1/credentials",
    }
    command = program(tmp_path, f"import json\nprint(json.dumps({process_output(clock)!r}))\n")
    config = {
        "role": f"role_arn = {ROLE_ARN}\nsource_profile = base\n",
        "process": f"credential_process = {command}\n",
        "keys": "aws_access_key_id = AKIAFAKECONFIGFILE01\naws_secret_access_key = config-secret\n",
    }
    credentials = {
        "main": "[main]\naws_access_key_id = AKIAFAKECREDFILE0001\naws_secret_access_key = cf\n",
        "base": f"[base]\naws_access_key_id = {STATIC_KEY_ID}\n"
        f"aws_secret_access_key = {STATIC_SECRET}\n",
    }

    def winner() -> str:
        write(env["AWS_CONFIG_FILE"], "[profile main]\n" + "".join(config.values()))
        write(env["AWS_SHARED_CREDENTIALS_FILE"], "".join(credentials.values()))
        return resolve(env, clock)[0].link

    order = [winner()]
    for remove in (
        lambda: [env.pop("AWS_ACCESS_KEY_ID"), env.pop("AWS_SECRET_ACCESS_KEY")],
        lambda: config.pop("role"),
        lambda: env.pop("AWS_WEB_IDENTITY_TOKEN_FILE"),
        lambda: credentials.pop("main"),
        lambda: config.pop("process"),
        lambda: config.pop("keys"),
        lambda: env.pop("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ):
        remove()
        order.append(winner())
    assert order == [
        "environment",
        "assume-role",
        "web-identity",
        "credentials-file",
        "process",
        "config-file",
        "container",
        "imds",
    ]


# -- caching and refresh ------------------------------------------------------------------------


def container_env(env: dict[str, str], server: str) -> dict[str, str]:
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{server}/v1/credentials"
    return env


def test_refresh_five_minutes_before_expiry(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    async def body(http: RecordingHttp) -> list[str]:
        chain = AwsCredentialChain(container_env(env, server), None, http, clock=clock)
        seen = [(await chain.get()).access_key_id]
        clock.now += 3600 - 300 - 1
        seen.append((await chain.get()).access_key_id)
        clock.now += 1
        seen.append((await chain.get()).access_key_id)
        return seen

    first, cached, renewed = run(body)
    assert first == cached != renewed
    assert fake.issued() == [first, renewed]


def test_short_lived_credentials_are_renewed_half_way(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    fake.settings.lifetime_s = 400

    async def body(http: RecordingHttp) -> list[str]:
        chain = AwsCredentialChain(container_env(env, server), None, http, clock=clock)
        seen = [(await chain.get()).access_key_id]
        clock.now += 199
        seen.append((await chain.get()).access_key_id)
        clock.now += 1
        seen.append((await chain.get()).access_key_id)
        return seen

    first, cached, renewed = run(body)
    assert first == cached != renewed


def test_static_credentials_are_read_again_every_five_minutes(
    env: dict[str, str], clock: FakeClock
) -> None:
    env |= {"AWS_ACCESS_KEY_ID": ENV_KEY_ID, "AWS_SECRET_ACCESS_KEY": ENV_SECRET}

    async def body(http: RecordingHttp) -> list[str]:
        chain = AwsCredentialChain(env, None, http, clock=clock)
        seen = [(await chain.get()).access_key_id]
        env["AWS_ACCESS_KEY_ID"] = "AKIAFAKEROTATED00003"
        clock.now += 299
        seen.append((await chain.get()).access_key_id)
        clock.now += 2
        seen.append((await chain.get()).access_key_id)
        return seen

    assert run(body) == [ENV_KEY_ID, ENV_KEY_ID, "AKIAFAKEROTATED00003"]


def test_one_refresh_for_fifty_concurrent_callers(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    fake.settings.delay_s = 0.05

    async def body(http: RecordingHttp) -> list[str]:
        chain = AwsCredentialChain(imds_env(env, server), None, http, clock=clock)
        keys = await asyncio.gather(*(chain.get() for _ in range(50)))
        keys.append(await chain.get())
        return [key.access_key_id for key in keys]

    keys = run(body)
    assert fake.kinds() == ["imds-token", "imds-role", "imds-credentials"]
    assert set(keys) == set(fake.issued())


def test_a_failed_first_refresh_is_shared_then_retried(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    fake.settings.delay_s = 0.05
    fake.answer_next("container", 503, json.dumps({"code": "Throttled"}), "application/json")

    async def body(http: RecordingHttp) -> tuple[list[object], str]:
        chain = AwsCredentialChain(container_env(env, server), None, http, clock=clock)
        failed = await asyncio.gather(*(chain.get() for _ in range(5)), return_exceptions=True)
        return list(failed), (await chain.get()).access_key_id

    failed, key = run(body)
    assert all(isinstance(result, CredentialsError) for result in failed)
    assert "HTTP 503 (Throttled)" in str(failed[0])
    assert [call.status for call in fake.calls] == [503, 200]
    assert fake.issued() == [key]


def test_a_failed_refresh_keeps_still_valid_credentials(
    env: dict[str, str],
    clock: FakeClock,
    fake: FakeAwsMetadata,
    server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(http: RecordingHttp) -> tuple[list[str], str]:
        chain = AwsCredentialChain(container_env(env, server), None, http, clock=clock)
        seen = [(await chain.get()).access_key_id]
        clock.now += 3600 - 300
        fake.answer_next("container", 500, "{}", "application/json")
        seen.append((await chain.get()).access_key_id)  # kept: still valid for five minutes
        clock.now += 29
        seen.append((await chain.get()).access_key_id)  # not retried before 30 s
        clock.now += 1
        seen.append((await chain.get()).access_key_id)
        fake.answer_next("container", 500, "{}", "application/json")
        chain.invalidate()  # refused upstream: never used again
        with pytest.raises(CredentialsError) as caught:
            await chain.get()
        return seen, str(caught.value)

    with caplog.at_level(logging.WARNING, logger="passerelle.providers"):
        seen, message = run(body)
    assert seen[0] == seen[1] == seen[2] != seen[3]
    assert [call.status for call in fake.calls] == [200, 500, 200, 500]
    assert "HTTP 500" in message
    (record,) = [record for record in caplog.records if record.name == "passerelle.providers"]
    assert "refresh failed, still using those from the container credentials endpoint" in (
        record.getMessage()
    )


def test_credentials_that_already_expired_are_refused(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    stale = {
        "AccessKeyId": "ASIAFAKESTALE0000004",
        "SecretAccessKey": "stale-secret",
        "Token": "FAKEstale",
        "Expiration": moment(clock.now - 1).isoformat(),
    }
    fake.answer_next("container", 200, json.dumps(stale), "application/json")
    message = failure(container_env(env, server), clock)
    assert message.startswith(
        f"AWS credentials from the container credentials endpoint {server} expired at "
    )


def test_the_transport_adapter_works_without_a_shared_transport(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str
) -> None:
    async def main() -> ResolvedCredentials:
        chain = AwsCredentialChain(imds_env(env, server), None, TransportAwsHttp(), clock=clock)
        return await chain.current()

    assert asyncio.run(main()).credentials.access_key_id == fake.issued()[0]


# -- secrets never leak -------------------------------------------------------------------------


def test_no_secret_in_any_message_or_repr(
    env: dict[str, str], clock: FakeClock, fake: FakeAwsMetadata, server: str, tmp_path: Path
) -> None:
    """Endpoints that echo what they were sent: every secret is hidden all the same."""
    assume_role_files(env)
    env |= {
        "AWS_WEB_IDENTITY_TOKEN_FILE": write(tmp_path / "token", WEB_TOKEN),
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN,
    }
    secrets = [STATIC_SECRET, WEB_TOKEN, CONTAINER_TOKEN, CONTAINER_TOKEN.split()[1]]
    errors: list[BaseException] = []

    async def body(http: RecordingHttp) -> list[ResolvedCredentials]:
        resolved = []
        # Web identity (from the environment) and AssumeRole (profile 'bedrock'), then the
        # container endpoint: each endpoint echoes the secrets it was sent.
        for profile, environ in (
            (None, env),
            ("bedrock", env),
            (None, container_env({**env, "AWS_WEB_IDENTITY_TOKEN_FILE": ""}, server)),
        ):
            chain = AwsCredentialChain(environ, profile, http, clock=clock)
            resolved.append(await chain.current())
            secrets.extend(
                [
                    resolved[-1].credentials.secret_access_key,
                    resolved[-1].credentials.session_token or "",
                ]
            )
            echoed = " ".join(secrets)
            kind = "container" if environ is not env else "sts"
            reply = (
                json.dumps({"code": "Denied", "message": echoed})
                if kind == "container"
                else bytes(sts_error(403, "AccessDenied", echoed).body).decode()
            )
            fake.answer_next(kind, 403, reply)
            chain.invalidate()
            try:
                await chain.get()
            except CredentialsError as exc:
                errors.append(exc)
            repr_text = repr(chain) + repr(resolved[-1]) + repr(resolved[-1].credentials)
            for secret in secrets:
                assert secret not in repr_text
        return resolved

    resolved = run(body)
    assert [item.link for item in resolved] == ["web-identity", "assume-role", "container"]
    assert len(errors) == 3
    for error in errors:
        shown = [str(error), repr(error)]
        if error.__cause__ is not None or error.__context__ is not None:
            shown.append(repr(error.__cause__ or error.__context__))
        for text in shown:
            for secret in filter(None, secrets):
                assert secret not in text
        assert "[redacted]" in str(error)


# -- endpoints and wire formats -----------------------------------------------------------------


def test_sts_endpoints() -> None:
    assert sts_endpoint({}, "eu-west-3") == ("https://sts.eu-west-3.amazonaws.com/", "eu-west-3")
    assert sts_endpoint({}, "cn-north-1") == (
        "https://sts.cn-north-1.amazonaws.com.cn/",
        "cn-north-1",
    )
    assert sts_endpoint({}, None) == ("https://sts.amazonaws.com/", "us-east-1")
    assert sts_endpoint({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "eu-west-1") == (
        "http://127.0.0.1:4566/",
        "eu-west-1",
    )
    override = {"AWS_ENDPOINT_URL": "http://a.test", "AWS_ENDPOINT_URL_STS": "https://sts.test/"}
    assert sts_endpoint(override, None) == ("https://sts.test/", "us-east-1")
    with pytest.raises(CredentialsError, match="not a region name"):
        sts_endpoint({}, "eu-west-3.evil.test/")


def test_sts_responses_are_parsed_strictly() -> None:
    document = (
        b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        b"<AssumeRoleResult><Credentials><AccessKeyId>ASIAFAKE</AccessKeyId>"
        b"<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
        b"<Expiration>2025-06-15T16:06:40.123Z</Expiration></Credentials></AssumeRoleResult>"
        b"</AssumeRoleResponse>"
    )
    credentials, expiration = parse_sts_credentials(document, "AssumeRole")
    assert (credentials.access_key_id, credentials.session_token) == ("ASIAFAKE", "t")
    assert expiration == datetime(2025, 6, 15, 16, 6, 40, 123000, tzinfo=UTC)
    with pytest.raises(CredentialsError, match="without AssumeRoleWithWebIdentityResult"):
        parse_sts_credentials(document, "AssumeRoleWithWebIdentity")
    with pytest.raises(CredentialsError, match="without Credentials/SessionToken"):
        parse_sts_credentials(
            document.replace(b"<SessionToken>t</SessionToken>", b""), "AssumeRole"
        )
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><AssumeRoleResponse>&a;</AssumeRoleResponse>'
    with pytest.raises(CredentialsError, match="a DTD, which is refused"):
        parse_sts_credentials(bomb, "AssumeRole")
    with pytest.raises(CredentialsError, match="malformed XML"):
        parse_sts_credentials(b"<AssumeRoleResponse>", "AssumeRole")
