"""The SigV4 signer against AWS's published signature test suite, and the credential chain.

The vectors come from the AWS SigV4 test suite (aws-sig-v4-test-suite, as kept in
awslabs/aws-c-auth ``tests/aws-signing-test-suite/v4``): access key ``AKIDEXAMPLE``, region
``us-east-1``, service ``service``, time 2015-08-30T12:36:00Z. The fake Bedrock verifies with the
same functions, so these published values are what keeps the signer and the verifier from being
wrong together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from passerelle.providers.aws_sigv4 import (
    EMPTY_SHA256,
    AwsCredentials,
    CredentialsError,
    canonical_path,
    canonical_query,
    credentials_from_sources,
    region_from_sources,
    resolve_credentials,
    resolve_region,
    sign_request,
    signing_key,
)

EXAMPLE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SESSION_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
HOST = "https://example.amazonaws.com"
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def sign(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    credentials: AwsCredentials = EXAMPLE,
    **options: bool,
) -> str:
    signed = sign_request(
        method,
        url,
        headers or {},
        body,
        credentials,
        region="us-east-1",
        service="service",
        now=WHEN,
        **options,
    )
    return signed.headers["authorization"]


def authorization(signed_headers: str, signature: str) -> str:
    return (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )


@pytest.mark.parametrize(
    ("method", "url", "headers", "signature"),
    [
        ("GET", "/", {}, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        (
            "GET",
            "/?Param2=value2&Param1=value1",
            {},
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "GET",
            f"/?{UNRESERVED}={UNRESERVED}",
            {},
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        ("GET", "/ሴ", {}, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        (
            "GET",
            "/example space/",
            {},
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        ),
        (
            "GET",
            "//example//",
            {},
            "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        ),
        (
            "GET",
            "/example1/example2/../..",
            {},
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        ("POST", "/", {}, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
    ids=[
        "get-vanilla",
        "get-vanilla-query-order-key-case",
        "get-vanilla-query-unreserved",
        "get-utf8",
        "get-space-normalized",
        "get-slashes-normalized",
        "get-relative-relative-normalized",
        "post-vanilla",
    ],
)
def test_published_vectors(method: str, url: str, headers: dict[str, str], signature: str) -> None:
    assert sign(method, HOST + url, headers) == authorization("host;x-amz-date", signature)


def test_get_header_value_trim() -> None:
    headers = {"My-Header1": " value1", "My-Header2": ' "a   b   c"'}
    assert sign("GET", HOST + "/", headers) == authorization(
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    )


def test_get_vanilla_with_session_token() -> None:
    temporary = AwsCredentials(EXAMPLE.access_key_id, EXAMPLE.secret_access_key, SESSION_TOKEN)
    signed = sign_request(
        "GET", HOST + "/", {}, b"", temporary, region="us-east-1", service="service", now=WHEN
    )
    assert signed.headers == {
        "authorization": authorization(
            "host;x-amz-date;x-amz-security-token",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        ),
        "x-amz-date": "20150830T123600Z",
        "x-amz-security-token": SESSION_TOKEN,
    }


def test_post_x_www_form_urlencoded_with_content_sha256() -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "13"}
    signed = sign_request(
        "POST",
        HOST + "/",
        headers,
        b"Param1=value1",
        EXAMPLE,
        region="us-east-1",
        service="service",
        now=WHEN,
        content_sha256_header=True,
    )
    body_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    assert signed.headers["x-amz-content-sha256"] == body_hash
    assert signed.headers["authorization"] == authorization(
        "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
        "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
    )


def test_intermediate_steps_of_get_vanilla() -> None:
    signed = sign_request(
        "GET", HOST + "/", {}, b"", EXAMPLE, region="us-east-1", service="service", now=WHEN
    )
    assert signed.canonical_request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{EMPTY_SHA256}"
    )
    assert signed.string_to_sign == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    key = signing_key(EXAMPLE.secret_access_key, "20150830", "us-east-1", "service")
    assert key.hex() == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"


def test_bedrock_model_ids_are_encoded_twice() -> None:
    # The wire path carries the model id percent-encoded; SigV4 encodes the path once more.
    wire = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke"
    assert canonical_path(wire) == "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/invoke"
    assert canonical_path("/model/a:0/invoke") == "/model/a%3A0/invoke"
    assert canonical_path("/a/b", normalize=False, encode=False) == "/a/b"  # S3's rules
    assert canonical_path("") == "/"
    assert canonical_query("b=2&a=1&a=0&empty&plus=a+b") == "a=0&a=1&b=2&empty=&plus=a%2Bb"


def test_host_and_unsigned_headers() -> None:
    signed = sign_request(
        "POST",
        "http://127.0.0.1:8080/model/m/invoke",
        {"User-Agent": "x", "Content-Type": "application/json", "X-Amz-Date": "ignored"},
        b"{}",
        EXAMPLE,
        region="eu-west-3",
        service="bedrock",
        now=WHEN,
    )
    assert signed.signed_headers == "content-type;host;x-amz-date"
    assert "host:127.0.0.1:8080\n" in signed.canonical_request
    default_port = sign_request(
        "GET", "https://example.amazonaws.com:443/", {}, b"", EXAMPLE,
        region="us-east-1", service="service", now=WHEN,
    )  # fmt: skip
    assert "host:example.amazonaws.com\n" in default_port.canonical_request
    with pytest.raises(ValueError, match="time zone"):
        sign_request(
            "GET", HOST, {}, b"", EXAMPLE, region="r", service="s", now=datetime(2015, 8, 30)
        )


def test_credentials_repr_hides_secrets() -> None:
    shown = repr(AwsCredentials("AKID", "very-secret", "token-secret"))
    assert "AKID" in shown and "secret" not in shown


# -- credential chain ------------------------------------------------------------------------

CREDENTIALS_FILE = """\
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default-secret

[work]
aws_access_key_id = AKIDWORK
aws_secret_access_key = work-secret
aws_session_token = work-token
"""
CONFIG_FILE = """\
[default]
region = eu-west-3

[profile work]
region = eu-central-1
aws_access_key_id = AKIDIGNORED
aws_secret_access_key = ignored

[profile only-config]
aws_access_key_id = AKIDCONFIG
aws_secret_access_key = config-secret

[profile assumed]
role_arn = arn:aws:iam::123456789012:role/r
source_profile = default
"""


def test_environment_variables_come_first() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "env-token",
        "AWS_PROFILE": "work",
    }
    assert credentials_from_sources(env, CREDENTIALS_FILE, CONFIG_FILE) == AwsCredentials(
        "AKIDENV", "env-secret", "env-token"
    )
    # A profile named in code skips the environment, as the AWS SDKs do.
    named = credentials_from_sources(env, CREDENTIALS_FILE, CONFIG_FILE, profile="default")
    assert named.access_key_id == "AKIDDEFAULT" and named.session_token is None
    with pytest.raises(CredentialsError, match="AWS_SECRET_ACCESS_KEY is not"):
        credentials_from_sources({"AWS_ACCESS_KEY_ID": "x"}, None, None)


def test_profiles_from_the_shared_files() -> None:
    work = credentials_from_sources({"AWS_PROFILE": "work"}, CREDENTIALS_FILE, CONFIG_FILE)
    assert work == AwsCredentials("AKIDWORK", "work-secret", "work-token")  # credentials win
    default = credentials_from_sources({}, CREDENTIALS_FILE, CONFIG_FILE)
    assert default.access_key_id == "AKIDDEFAULT"
    only_config = credentials_from_sources({}, None, CONFIG_FILE, profile="only-config")
    assert only_config.access_key_id == "AKIDCONFIG"
    assert region_from_sources({"AWS_PROFILE": "work"}, CONFIG_FILE) == "eu-central-1"
    assert region_from_sources({}, CONFIG_FILE) == "eu-west-3"
    assert region_from_sources({"AWS_REGION": "us-west-2"}, CONFIG_FILE) == "us-west-2"
    assert region_from_sources({"AWS_DEFAULT_REGION": "ap-south-1"}, None) == "ap-south-1"
    assert region_from_sources({}, None) is None


def test_missing_or_unsupported_profiles_say_why() -> None:
    with pytest.raises(CredentialsError, match="'nope' is in neither"):
        credentials_from_sources({"AWS_PROFILE": "nope"}, CREDENTIALS_FILE, CONFIG_FILE)
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        credentials_from_sources({}, None, None)
    with pytest.raises(CredentialsError, match=r"assume-role profiles \(role_arn\)"):
        credentials_from_sources({}, None, CONFIG_FILE, profile="assumed")
    with pytest.raises(CredentialsError, match="has no aws_secret_access_key"):
        credentials_from_sources({}, "[default]\naws_access_key_id = A\n", None)
    with pytest.raises(CredentialsError, match="cannot be parsed"):
        credentials_from_sources({}, "not an ini file", None)


def test_file_locations_follow_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(CREDENTIALS_FILE)
    (home / ".aws" / "config").write_text(CONFIG_FILE)
    assert resolve_credentials({"HOME": str(home)}).access_key_id == "AKIDDEFAULT"
    assert resolve_region({"HOME": str(home)}) == "eu-west-3"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "creds").write_text(
        "[default]\naws_access_key_id=AKIDMOVED\naws_secret_access_key=s\n"
    )
    (elsewhere / "conf").write_text("[default]\nregion = sa-east-1\n")
    env = {
        "HOME": str(home),
        "AWS_SHARED_CREDENTIALS_FILE": str(elsewhere / "creds"),
        "AWS_CONFIG_FILE": str(elsewhere / "conf"),
    }
    assert resolve_credentials(env).access_key_id == "AKIDMOVED"
    assert resolve_region(env) == "sa-east-1"
    with pytest.raises(CredentialsError):
        resolve_credentials({"HOME": str(tmp_path / "empty")})
