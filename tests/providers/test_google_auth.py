"""Google access tokens: the assertion, the three grants, caching, failures and ADC discovery.

Tokens come from a fake token endpoint and metadata server served on a real socket
(``passerelle.testing.fake_google_oauth``), which verifies the assertion's RS256 signature and
claims as Google does; google-auth (a development dependency only) checks the same assertion
independently, so that the signer and the fake cannot be wrong together.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.auth import jwt as google_jwt

from passerelle.config.schema import ProviderConfig
from passerelle.providers.google_auth import (
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_TOKEN_URI,
    JWT_BEARER_GRANT,
    METADATA_URL,
    AuthorizedUser,
    GoogleAuthError,
    GoogleCredentials,
    MetadataServer,
    ServiceAccountKey,
    TokenHttp,
    TransportTokenHttp,
    find_credentials,
    parse_credentials_json,
    service_account_assertion,
    vertex_token_source,
)
from passerelle.providers.transport import Transport
from passerelle.testing.fake_google_oauth import FakeGoogleOAuth, FakeSettings
from passerelle.testing.server import serve_in_thread
from tests.net import free_port

EMAIL = "vertex-caller@demo-project.iam.gserviceaccount.com"
CLIENT_ID = "764086051850-fake.apps.googleusercontent.com"
CLIENT_SECRET = "d-FL95Q19q7MQmFpd7hHD0Ty-fake-client-secret"
REFRESH_TOKEN = "1//0fake-refresh-token-Wd8kDcK3hZs9Qp2Lm4Nv6Rt8Yx0Bc"
T = TypeVar("T")


class FakeClock:
    """Wall-clock seconds that only move when a test says so; the fake server shares it."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class RecordingHttp:
    """The real HTTP seam, plus a record of every form sent (the test's view, not the fake's)."""

    def __init__(self, inner: TokenHttp) -> None:
        self.inner = inner
        self.forms: list[dict[str, str]] = []

    async def post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        self.forms.append(dict(form))
        return await self.inner.post_form(url, form, headers)

    async def get(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self.inner.get(url, headers)


def run(body: Callable[[RecordingHttp], Awaitable[T]]) -> T:
    """Run ``body`` in a fresh event loop with a started transport behind the HTTP seam."""

    async def main() -> T:
        transport = Transport()
        await transport.start()
        try:
            return await body(RecordingHttp(TransportTokenHttp(transport)))
        finally:
            await transport.close()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(rsa_key: rsa.RSAPrivateKey, clock: FakeClock) -> FakeGoogleOAuth:
    settings = FakeSettings(
        service_accounts={EMAIL: rsa_key.public_key()},
        users={REFRESH_TOKEN: (CLIENT_ID, CLIENT_SECRET)},
        clock=clock,
    )
    return FakeGoogleOAuth(settings)


@pytest.fixture
def server(fake: FakeGoogleOAuth) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def service_account_json(key: rsa.RSAPrivateKey, token_uri: str, **extra: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": "3f1c0e9d8b7a",
            "private_key": pem(key),
            "client_email": EMAIL,
            "client_id": "104729384756",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }
        | extra
    )


def authorized_user_json(token_uri: str | None = None) -> str:
    info = {
        "type": "authorized_user",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "quota_project_id": "demo-project",
    }
    if token_uri is not None:
        info["token_uri"] = token_uri
    return json.dumps(info)


def service_account(key: rsa.RSAPrivateKey, server: str) -> ServiceAccountKey:
    parsed = parse_credentials_json(service_account_json(key, f"{server}/token"), "test key")
    assert isinstance(parsed, ServiceAccountKey)
    return parsed


def segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# -- the assertion ------------------------------------------------------------------------------


def test_assertion_is_an_rs256_jwt_google_auth_accepts(rsa_key: rsa.RSAPrivateKey) -> None:
    key = service_account(rsa_key, "https://oauth2.example.test")
    now = 1_750_000_000
    assertion = service_account_assertion(key, scope=CLOUD_PLATFORM_SCOPE, now=now + 0.7)
    header, claims, _ = assertion.split(".")
    assert segment(header) == {"alg": "RS256", "typ": "JWT", "kid": "3f1c0e9d8b7a"}
    assert segment(claims) == {
        "iss": EMAIL,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": "https://oauth2.example.test/token",
        "iat": now,
        "exp": now + 3600,
    }
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # google-auth checks the signature and the times against the real clock, hence a fresh one.
    fresh = service_account_assertion(key, scope=CLOUD_PLATFORM_SCOPE, now=time.time())
    decoded = google_jwt.decode(  # type: ignore[no-untyped-call]
        fresh, certs=public_pem, audience=key.token_uri
    )
    assert decoded["iss"] == EMAIL and decoded["scope"] == CLOUD_PLATFORM_SCOPE


def test_assertion_subject_and_lifetime(rsa_key: rsa.RSAPrivateKey) -> None:
    key = service_account(rsa_key, "https://oauth2.example.test")
    assertion = service_account_assertion(
        key, scope="s", now=100, lifetime_s=600, subject="ada@example.test"
    )
    claims = segment(assertion.split(".")[1])
    assert claims["sub"] == "ada@example.test"
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(ValueError, match="at most 3600"):
        service_account_assertion(key, scope="s", now=100, lifetime_s=3601)


# -- the three grants ---------------------------------------------------------------------------


def test_service_account_grant_verified_by_the_token_endpoint(
    rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    async def body(http: RecordingHttp) -> tuple[str, list[dict[str, str]]]:
        credentials = GoogleCredentials(service_account(rsa_key, server), http, clock=clock)
        return await credentials.token(), http.forms

    token, forms = run(body)
    assert [sorted(form) for form in forms] == [["assertion", "grant_type"]]
    assert forms[0]["grant_type"] == JWT_BEARER_GRANT
    assert fake.issued() == [token]
    (grant,) = fake.grants
    assert grant.kind == "jwt_bearer" and grant.status == 200
    assert grant.claims["aud"] == f"{server}/token"
    assert grant.claims["scope"] == CLOUD_PLATFORM_SCOPE
    assert grant.claims["iat"] == int(clock.now)
    assert grant.claims["exp"] - grant.claims["iat"] <= 3600
    assert grant.header["kid"] == "3f1c0e9d8b7a"


def test_a_key_the_endpoint_does_not_know_is_refused(server: str, clock: FakeClock) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def body(http: RecordingHttp) -> None:
        credentials = GoogleCredentials(service_account(other, server), http, clock=clock)
        await credentials.token()

    with pytest.raises(GoogleAuthError, match=r"HTTP 400 \(invalid_grant Invalid JWT Signature"):
        run(body)


def test_authorized_user_refresh_grant(server: str, fake: FakeGoogleOAuth) -> None:
    source = parse_credentials_json(authorized_user_json(f"{server}/token"), "test file")
    assert isinstance(source, AuthorizedUser)
    assert source.quota_project_id == "demo-project"

    async def body(http: RecordingHttp) -> tuple[str, list[dict[str, str]]]:
        return await GoogleCredentials(source, http).token(), http.forms

    token, forms = run(body)
    assert forms == [
        {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
    ]
    assert fake.issued() == [token]
    assert fake.grants[0].kind == "refresh_token" and fake.grants[0].client_id == CLIENT_ID


def test_metadata_server_flow(server: str, fake: FakeGoogleOAuth) -> None:
    async def body(http: RecordingHttp) -> str:
        credentials = GoogleCredentials(MetadataServer(server), http)
        return await credentials.token()

    token = run(body)
    assert fake.issued() == [token]
    assert [grant.kind for grant in fake.grants] == ["metadata"]


def test_metadata_server_unreachable_is_a_clear_error() -> None:
    source = find_credentials(
        None, environ={}, read_text=lambda _: None, metadata_url=f"http://127.0.0.1:{free_port()}"
    )
    assert isinstance(source, MetadataServer)

    async def body(http: RecordingHttp) -> str:
        return await GoogleCredentials(source, http).token()

    with pytest.raises(GoogleAuthError) as caught:
        run(body)
    message = str(caught.value)
    assert "metadata server" in message and "not running on Google Cloud" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message


def test_transport_errors_on_the_token_endpoint_are_google_auth_errors(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    key = service_account(rsa_key, f"http://127.0.0.1:{free_port()}")

    async def body(http: RecordingHttp) -> str:
        return await GoogleCredentials(key, http).token()

    with pytest.raises(GoogleAuthError, match="cannot get a Google access token from the token"):
        run(body)


# -- caching and refresh ------------------------------------------------------------------------


def test_one_refresh_for_many_concurrent_callers_then_the_cache(
    rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    fake.settings.delay_s = 0.05

    async def body(http: RecordingHttp) -> list[str]:
        credentials = GoogleCredentials(service_account(rsa_key, server), http, clock=clock)
        tokens = await asyncio.gather(*(credentials.token() for _ in range(50)))
        tokens.append(await credentials.token())
        return tokens

    tokens = run(body)
    assert len(fake.grants) == 1
    assert set(tokens) == set(fake.issued())


def test_refresh_five_minutes_before_expiry(
    rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    async def body(http: RecordingHttp) -> list[str]:
        credentials = GoogleCredentials(service_account(rsa_key, server), http, clock=clock)
        seen = [await credentials.token()]
        clock.now += 3600 - 300 - 1
        seen.append(await credentials.token())
        clock.now += 1
        seen.append(await credentials.token())
        credentials.invalidate()
        seen.append(await credentials.token())
        return seen

    first, cached, renewed, after_invalidate = run(body)
    assert first == cached
    assert len({first, renewed, after_invalidate}) == 3
    assert fake.issued() == [first, renewed, after_invalidate]


def test_short_lived_token_is_renewed_half_way(
    server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    fake.settings.expires_in = 400

    async def body(http: RecordingHttp) -> list[str]:
        credentials = GoogleCredentials(MetadataServer(server), http, clock=clock)
        seen = [await credentials.token()]
        clock.now += 199
        seen.append(await credentials.token())
        clock.now += 1
        seen.append(await credentials.token())
        return seen

    first, cached, renewed = run(body)
    assert first == cached != renewed


def test_a_failed_refresh_is_shared_then_retried(
    rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    fake.settings.delay_s = 0.05
    fake.answer_next(503, {"error": "backend_error"})

    async def body(http: RecordingHttp) -> tuple[list[BaseException | str], str]:
        credentials = GoogleCredentials(service_account(rsa_key, server), http, clock=clock)
        calls = (credentials.token() for _ in range(5))
        failed = await asyncio.gather(*calls, return_exceptions=True)
        return failed, await credentials.token()

    failed, token = run(body)
    assert all(isinstance(result, GoogleAuthError) for result in failed)
    assert "HTTP 503 (backend_error)" in str(failed[0])
    assert [grant.status for grant in fake.grants] == [503, 200]
    assert fake.issued() == [token]


def test_a_cancelled_caller_does_not_cancel_the_shared_refresh(
    server: str, fake: FakeGoogleOAuth
) -> None:
    fake.settings.delay_s = 0.1

    async def body(http: RecordingHttp) -> str:
        credentials = GoogleCredentials(MetadataServer(server), http)
        impatient = asyncio.create_task(credentials.token())
        patient = asyncio.create_task(credentials.token())
        await asyncio.sleep(0.02)
        impatient.cancel()
        token = await patient
        assert impatient.cancelled()
        return token

    token = run(body)
    assert fake.issued() == [token]


def test_invalid_token_responses(server: str, fake: FakeGoogleOAuth) -> None:
    async def body(http: RecordingHttp) -> list[str]:
        credentials = GoogleCredentials(MetadataServer(server), http)
        messages = []
        replies: list[dict[str, Any]] = [
            {"token_type": "Bearer"},
            {"access_token": "x", "expires_in": -5},
        ]
        for reply in replies:
            fake.answer_next(200, reply)
            try:
                await credentials.token()
            except GoogleAuthError as exc:
                messages.append(str(exc))
        return messages

    assert run(body) == [
        f"the metadata server at {server} answered without an access_token",
        f"the metadata server at {server} answered with an invalid expires_in",
    ]


# -- secrets never leak -------------------------------------------------------------------------


def _assert_no_secret(error: BaseException, secrets: list[str]) -> None:
    shown = [str(error), repr(error)]
    cause = error.__cause__ or error.__context__
    if cause is not None:
        shown += [str(cause), repr(cause)]
    for text in shown:
        for secret in secrets:
            assert secret not in text


def test_refusals_never_show_secrets_even_when_echoed(
    rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    user = parse_credentials_json(authorized_user_json(f"{server}/token"), "test file")
    key = service_account(rsa_key, server)

    async def body(http: RecordingHttp) -> tuple[list[GoogleAuthError], list[str]]:
        errors = []
        tokens = []
        for source in (key, user):
            credentials = GoogleCredentials(source, http, clock=clock)
            tokens.append(await credentials.token())
            credentials.invalidate()
            sent = http.forms[-1]
            echoed = " ".join(value for value in [*sent.values(), *tokens])
            fake.answer_next(400, {"error": "invalid_grant", "error_description": echoed})
            try:
                await credentials.token()
            except GoogleAuthError as exc:
                errors.append(exc)
        return errors, [form.get("assertion", "") for form in http.forms] + tokens

    errors, sent_secrets = run(body)
    assert len(errors) == 2
    pem_lines = [line for line in pem(rsa_key).splitlines() if "PRIVATE KEY" not in line]
    secrets = [CLIENT_SECRET, REFRESH_TOKEN, *pem_lines, *filter(None, sent_secrets)]
    for error in errors:
        assert "HTTP 400 (invalid_grant" in str(error)
        _assert_no_secret(error, secrets)
        assert "eyJ" not in str(error)  # not even a piece of the assertion


def test_parse_errors_never_show_secrets(rsa_key: rsa.RSAPrivateKey) -> None:
    broken_pem = pem(rsa_key).replace("MII", "MIJ", 1)
    cases = [
        service_account_json(rsa_key, DEFAULT_TOKEN_URI, private_key=broken_pem),
        service_account_json(rsa_key, DEFAULT_TOKEN_URI)[:-40],  # truncated: not JSON
        authorized_user_json()[:-3],
    ]
    for text in cases:
        with pytest.raises(GoogleAuthError) as caught:
            find_credentials(text, configured_name="VERTEX_KEY", environ={})
        assert "VERTEX_KEY" in str(caught.value)
        _assert_no_secret(caught.value, [broken_pem[40:80], pem(rsa_key)[40:80], CLIENT_SECRET])


def test_sources_do_not_show_secrets_in_repr(rsa_key: rsa.RSAPrivateKey) -> None:
    key = service_account(rsa_key, "https://oauth2.example.test")
    user = parse_credentials_json(authorized_user_json(), "test file")
    assert "private_key=" not in repr(key) and EMAIL in repr(key)
    assert CLIENT_SECRET not in repr(user) and REFRESH_TOKEN not in repr(user)


# -- reading credential files -------------------------------------------------------------------


def test_credential_types_and_defaults(rsa_key: rsa.RSAPrivateKey) -> None:
    info = json.loads(service_account_json(rsa_key, DEFAULT_TOKEN_URI))
    del info["token_uri"], info["private_key_id"]
    key = parse_credentials_json(json.dumps(info), "test file")
    assert isinstance(key, ServiceAccountKey)
    assert key.token_uri == DEFAULT_TOKEN_URI and key.private_key_id is None
    assert key.project_id == "demo-project"
    user = parse_credentials_json(authorized_user_json(), "test file")
    assert isinstance(user, AuthorizedUser) and user.token_uri == DEFAULT_TOKEN_URI


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"type": "external_account", "audience": "x"}, "external_account credentials .*"),
        ({"type": "impersonated_service_account"}, "type 'impersonated_service_account'"),
        ({"client_email": EMAIL}, "type 'an unknown type'"),
        ({"type": "authorized_user", "client_id": "a", "client_secret": "b"}, "no refresh_token"),
        ({"type": "service_account", "client_email": EMAIL}, "no private_key"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_unsupported_or_incomplete_files(info: object, expected: str) -> None:
    with pytest.raises(GoogleAuthError, match=f"the test file .*{expected}"):
        parse_credentials_json(json.dumps(info), "the test file")


def test_non_rsa_and_encrypted_keys_are_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    text = service_account_json(rsa_key, DEFAULT_TOKEN_URI, private_key=pem(ec_key))
    with pytest.raises(GoogleAuthError, match="private_key is not an RSA key"):
        parse_credentials_json(text, "test file")
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode("ascii")
    text = service_account_json(rsa_key, DEFAULT_TOKEN_URI, private_key=encrypted)
    with pytest.raises(GoogleAuthError, match="not an unencrypted PEM private key"):
        parse_credentials_json(text, "test file")


# -- Application Default Credentials discovery --------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / ".config" / "gcloud").mkdir(parents=True)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_discovery_order(home: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    gcloud = write(
        home / "home" / ".config" / "gcloud" / "application_default_credentials.json",
        authorized_user_json("https://gcloud.example.test/token"),
    )
    explicit = write(home / "explicit.json", service_account_json(rsa_key, "https://explicit.test"))
    adc = write(home / "adc.json", service_account_json(rsa_key, "https://adc.test"))
    environ = {"HOME": str(home / "home"), "GOOGLE_APPLICATION_CREDENTIALS": str(adc)}

    def found(configured: str | None, env: Mapping[str, str], **options: Any) -> object:
        source = find_credentials(configured, environ=env, **options)
        if isinstance(source, MetadataServer):
            return source.base_url
        return source.token_uri

    inline = service_account_json(rsa_key, "https://inline.test")
    assert found("  " + inline, environ) == "https://inline.test"
    assert found(str(explicit), environ) == "https://explicit.test"
    assert found(None, environ) == "https://adc.test"
    assert found("", environ) == "https://adc.test"  # an empty variable is no configuration
    without_adc = {"HOME": str(home / "home")}
    assert found(None, without_adc) == "https://gcloud.example.test/token"
    sdk = write(home / "sdk" / "application_default_credentials.json", authorized_user_json())
    assert found(None, without_adc | {"CLOUDSDK_CONFIG": str(sdk.parent)}) == DEFAULT_TOKEN_URI
    gcloud.unlink()
    assert found(None, without_adc) == METADATA_URL
    assert found(None, without_adc | {"GCE_METADATA_HOST": "169.254.169.254"}) == (
        "http://169.254.169.254"
    )
    assert found(None, without_adc, metadata_url="http://127.0.0.1:9/") == "http://127.0.0.1:9"
    # Asked for explicitly, the metadata server comes before the files, but not before the
    # configured credentials; disabled, it is never used.
    assert found(None, environ, use_metadata_server=True) == METADATA_URL
    assert found(str(explicit), environ, use_metadata_server=True) == "https://explicit.test"
    with pytest.raises(GoogleAuthError, match=r"no Google credentials found.*disabled"):
        found(None, without_adc, use_metadata_server=False)


def test_named_files_must_exist(home: Path) -> None:
    missing = home / "nowhere.json"
    with pytest.raises(GoogleAuthError, match="VERTEX_KEY is neither a credentials JSON") as caught:
        find_credentials(str(missing), configured_name="VERTEX_KEY", environ={})
    assert "nowhere" not in str(caught.value)  # the variable's value may be a secret
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(missing), "HOME": str(home / "home")}
    with pytest.raises(GoogleAuthError, match="GOOGLE_APPLICATION_CREDENTIALS names the file"):
        find_credentials(None, environ=environ)


def test_unreadable_files_are_google_auth_errors() -> None:
    def unreadable(path: Path) -> str | None:
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.raises(GoogleAuthError, match=r"cannot read .*: Permission denied"):
        find_credentials(None, environ={"HOME": "home"}, read_text=unreadable)


def test_vertex_token_source_finds_credentials_at_first_use(
    home: Path, rsa_key: rsa.RSAPrivateKey, server: str, fake: FakeGoogleOAuth, clock: FakeClock
) -> None:
    clock.now = time.time()  # the token source runs on the real clock
    config = ProviderConfig.model_validate(
        {
            "kind": "vertex",
            "gcp_project": "demo-project",
            "gcp_location": "europe-west1",
            "gcp_credentials": "env:VERTEX_KEY",
            "region": "eu",
            "clearance": "internal",
        }
    )
    broken = vertex_token_source("vertex", config, str(home / "absent.json"))
    working = vertex_token_source(
        "vertex", config, service_account_json(rsa_key, f"{server}/token")
    )

    async def main() -> tuple[str, str]:
        with pytest.raises(
            GoogleAuthError, match=r"VERTEX_KEY \(gcp_credentials of provider 'vertex'\)"
        ):
            await broken()
        return await working(), await working()

    first, second = asyncio.run(main())
    assert first == second and fake.issued() == [first]
