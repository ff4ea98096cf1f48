"""Every credential detector finds its format, and lets look-alikes through."""

from __future__ import annotations

import base64
import random

import pytest

from passerelle.dlp import Category, Scanner
from passerelle.dlp.rules.catalog import rule_types
from tests.dlp._samples import ALNUM, B64, HEX, TOKENS, rand, uuid
from tests.dlp.conftest import rules_found


@pytest.mark.parametrize("rule", sorted(TOKENS))
@pytest.mark.parametrize(
    "frame",
    ["{v}", "export TOKEN={v}", 'key = "{v}"', "voici la clé : {v}, merci", "curl -H 'X: {v}' h"],
)
def test_vendor_formats_are_found(scanner: Scanner, rule: str, frame: str) -> None:
    value = TOKENS[rule](random.Random(rule))
    text = frame.format(v=value)
    assert (rule, value) in rules_found(scanner, text)


def test_every_rule_type_has_a_sample_or_a_dedicated_test(scanner: Scanner) -> None:
    dedicated = {
        "aws_secret_key", "azure_storage_key", "azure_sas_token", "azure_shared_access_key",
        "gcp_service_account_key", "datadog_api_key", "datadog_app_key", "twilio_auth_token",
        "url_password", "http_basic_auth", "bearer_token", "password", "generic_secret",
        "client_term", "instruction_override", "role_marker", "unicode_tags", "bidi_control",
        "encoded_injection", "email", "phone_fr", "phone_intl", "iban", "fr_rib", "credit_card",
        "fr_nir", "fr_siren", "fr_siret", "ipv4", "ipv6",
    }  # fmt: skip
    missing = set(rule_types(scanner.rules)) - set(TOKENS) - dedicated
    assert not missing
    assert len(rule_types(scanner.rules)) >= 40


def test_findings_are_secrets_of_the_restricted_class(scanner: Scanner) -> None:
    text = "token " + TOKENS["github_pat"](random.Random(1))
    (finding,) = scanner.scan(text).findings
    assert finding.category is Category.SECRET
    assert finding.data_class == "restricted"


def test_aws_secret_next_to_its_key_id(scanner: Scanner, rng: random.Random) -> None:
    key_id = TOKENS["aws_access_key"](rng)
    secret = rand(rng, ALNUM, 38) + "/+"
    text = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    assert rules_found(scanner, text) == [("aws_access_key", key_id), ("aws_secret_key", secret)]
    # Alone, a 40-character string is nothing; after AWS's own variable name it is a secret.
    assert rules_found(scanner, f"checksum {secret}") == []
    assert rules_found(scanner, f'AWS_SECRET_ACCESS_KEY="{secret}"') == [("aws_secret_key", secret)]


def test_aws_published_examples_are_ignored(scanner: Scanner) -> None:
    text = (
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    assert rules_found(scanner, text) == []


def test_azure_connection_strings(scanner: Scanner, rng: random.Random) -> None:
    account_key = base64.b64encode(rng.randbytes(64)).decode()
    text = (
        "DefaultEndpointsProtocol=https;AccountName=acme;"
        f"AccountKey={account_key};EndpointSuffix=core.windows.net"
    )
    assert rules_found(scanner, text) == [("azure_storage_key", account_key)]
    shared = base64.b64encode(rng.randbytes(32)).decode()
    text = (
        "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;"
        f"SharedAccessKey={shared}"
    )
    assert rules_found(scanner, text) == [("azure_shared_access_key", shared)]
    signature = base64.b64encode(rng.randbytes(32)).decode().replace("/", "%2F").replace("+", "%2B")
    signature = signature.replace("=", "%3D")
    url = f"https://acme.blob.core.windows.net/c?sv=2022-11-02&sp=r&se=2025-01-01&sig={signature}"
    assert rules_found(scanner, url) == [("azure_sas_token", signature)]
    # Without the sv= version parameter, sig= is just a word.
    assert rules_found(scanner, f"https://example.org/?sig={signature}") == []


def test_gcp_service_account(scanner: Scanner, rng: random.Random) -> None:
    key_id = rand(rng, HEX, 40)
    text = (
        '{"type": "service_account", "project_id": "p", "private_key_id": "'
        + key_id
        + '", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + "\\n".join(rand(rng, B64, 64) for _ in range(6))
        + '\\n-----END PRIVATE KEY-----\\n"}'
    )
    found = [rule for rule, _ in rules_found(scanner, text)]
    assert found == ["gcp_service_account_key", "private_key"]


def test_vendor_hex_keys_need_their_vendor_name(scanner: Scanner, rng: random.Random) -> None:
    api, app, twilio = rand(rng, HEX, 32), rand(rng, HEX, 40), rand(rng, HEX, 32)
    text = f"DD_API_KEY={api}\nDD_APP_KEY={app}\nTWILIO_AUTH_TOKEN={twilio}\n"
    assert rules_found(scanner, text) == [
        ("datadog_api_key", api),
        ("datadog_app_key", app),
        ("twilio_auth_token", twilio),
    ]
    assert rules_found(scanner, f"md5 {api}\nsha1 {app}\n") == []


def test_private_keys_whole_truncated_and_placeholders(
    scanner: Scanner, rng: random.Random
) -> None:
    key = TOKENS["private_key"](rng)
    assert rules_found(scanner, f"key:\n{key}\nend") == [("private_key", key)]
    truncated = key.split("-----END")[0].rstrip()
    assert [r for r, _ in rules_found(scanner, truncated)] == ["private_key"]
    example = "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----"
    assert rules_found(scanner, example) == []
    public = "-----BEGIN PUBLIC KEY-----\n" + rand(rng, B64, 64) + "\n-----END PUBLIC KEY-----"
    assert rules_found(scanner, public) == []


def test_jwt_needs_a_json_header(scanner: Scanner, rng: random.Random) -> None:
    token = TOKENS["jwt"](rng)
    assert rules_found(scanner, f"Authorization: Bearer {token}") == [("jwt", token)]
    fake = "eyJ" + rand(rng, ALNUM, 20) + ".eyJ" + rand(rng, ALNUM, 20) + "." + rand(rng, ALNUM, 20)
    assert [r for r, _ in rules_found(scanner, fake)] == []


def test_passwords_in_assignments_urls_and_prose(scanner: Scanner) -> None:
    cases = {
        'password = "Tr0ub4dor&3"': "Tr0ub4dor&3",
        "DB_PASSWORD=Sup3rS3cret!": "Sup3rS3cret!",
        "  password: Kx9#mPq2": "Kx9#mPq2",
        "mon mot de passe est Lune2024! pour le serveur": "Lune2024!",
        "mysql -u root --password=Zq8$wL4n app": "Zq8$wL4n",
        '{"password": "Wv3%tY7u"}': "Wv3%tY7u",
    }
    for text, value in cases.items():
        assert rules_found(scanner, text) == [("password", value)], text
    url = "DATABASE_URL=postgresql://app:Hq7%21kz93@db.internal:5432/app"
    assert rules_found(scanner, url) == [("url_password", "Hq7%21kz93")]


@pytest.mark.parametrize(
    "text",
    [
        'password = "changeme"',
        "DATABASE_URL=postgres://user:password@localhost:5432/app",
        "redis://[[username]:[password]]@localhost:6379/0",
        "password = getpass.getpass()",
        "def login(username: str, password: str) -> Token:",
        "    password: Optional[str] = None",
        "user = User(username='scolvin', password='password1')",
        "Le mot de passe doit contenir au moins 12 caractères.",
        "Click 'forgot password' to reset it.",
        'password = "${DB_PASSWORD}"',
        "password: {{ vault_password }}",
        'password_hash = "$2b$12$abcdefghijklmnopqrstuv"',
        "postgresql://scott:tiger@localhost/test",
        'placeholder="Mot de passe"',
    ],
)
def test_password_look_alikes(scanner: Scanner, text: str) -> None:
    assert rules_found(scanner, text) == []


def test_generic_secrets_near_credential_words(scanner: Scanner, rng: random.Random) -> None:
    value = rand(rng, ALNUM, 32)
    for text in (
        f'api_key = "{value}"',
        f"SECRET_KEY={value}",
        f'"client_secret": "{value}",',
        f"./deploy.sh --token {value}",
        f"app.config['JWT_SIGNING_KEY'] = '{value}'",
    ):
        assert rules_found(scanner, text) == [("generic_secret", value)], text


@pytest.mark.parametrize(
    "text",
    [
        'api_key = os.environ["API_KEY"]',
        "token = tokens.pop(0)",
        "max_tokens = 4096",
        'token_type = "bearer"',
        'secret_name = "prod-db-credentials"',
        "private_key: PKCS7PrivateKeyTypes,",
        "checksum_token_sha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8'",
        'session_token = "123e4567-e89b-12d3-a456-426614174000"',
        'OPENAI_API_KEY="<YOUR_API_KEY>"',
        "client = OpenAI(api_key='your-api-key-here')",
        "export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        'token = r"[-!#$%&*+.^_|~0-9a-zA-Z]+"',
        'auth_token="auth_tokens/tok_123"',
        "Authorization: Bearer <token>",
    ],
)
def test_generic_look_alikes(scanner: Scanner, text: str) -> None:
    assert rules_found(scanner, text) == []


def test_http_authorization_headers(scanner: Scanner, rng: random.Random) -> None:
    basic = base64.b64encode(b"marie:Kq9!x2Lm").decode()
    assert rules_found(scanner, f"Authorization: Basic {basic}") == [("http_basic_auth", basic)]
    bearer = rand(rng, ALNUM, 40)
    assert rules_found(scanner, f"Authorization: Bearer {bearer}") == [("bearer_token", bearer)]


def test_hard_negatives_stay_quiet(scanner: Scanner, rng: random.Random) -> None:
    blob = base64.b64encode(rng.randbytes(300)).decode()
    text = "\n".join(
        [
            f"sha256: {rand(rng, HEX, 64)}",
            f"commit {rand(rng, HEX, 40)}",
            f"request_id={uuid(rng)}",
            f'"data": "{blob}"',
            f'<img src="data:image/png;base64,{blob}">',
            'function a(b,c){return b+c*42}var d=e.f(1,"x8Kq2z");',
            "version 10.0.19041.1 and v1.2.3.4, build 2024-05-01",
            "Commande n° CMD-2024-000123, facture 2024-0042, order #88451233",
            "ts=1714564800 ts_ms=1714564800123",
        ]
    )
    assert rules_found(scanner, text) == []
