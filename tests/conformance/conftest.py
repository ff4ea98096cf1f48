"""One gateway in front of a fake of every provider family, for the conformance matrix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.testing import fake_bedrock, fake_google_oauth, fake_openai
from passerelle.testing.server import serve_in_thread

SERVICE_ACCOUNT = "gateway@conformance.iam.gserviceaccount.com"

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
providers:
  compat:
    kind: openai_compatible
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: on-prem
    clearance: restricted
    retry: {{max_attempts: 1}}
  oai:
    kind: openai
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
    retry: {{max_attempts: 1}}
  mistral:
    kind: mistral
    base_url: {mistral}/v1
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: confidential
    retry: {{max_attempts: 1}}
  claude:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
    retry: {{max_attempts: 1}}
  gem:
    kind: gemini
    base_url: {gemini}
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
    retry: {{max_attempts: 1}}
  bedrock:
    kind: bedrock
    base_url: {bedrock}
    aws_region: eu-west-3
    region: eu
    clearance: confidential
    retry: {{max_attempts: 1}}
  vertex:
    kind: vertex
    base_url: {gemini}
    gcp_project: conformance
    gcp_location: europe-west1
    gcp_credentials: env:VERTEX_KEY
    region: eu
    clearance: confidential
    retry: {{max_attempts: 1}}
models:
  openai-chat: {{routes: [{{provider: compat, model: gpt-4o-mini}}]}}
  openai: {{routes: [{{provider: oai, model: gpt-4o-mini}}]}}
  mistral: {{routes: [{{provider: mistral, model: mistral-large-latest}}]}}
  anthropic: {{routes: [{{provider: claude, model: claude-sonnet-4-6}}]}}
  gemini: {{routes: [{{provider: gem, model: gemini-2.5-flash}}]}}
  bedrock: {{routes: [{{provider: bedrock, model: "eu.anthropic.claude-sonnet-4-6-v1:0"}}]}}
  bedrock-converse: {{routes: [{{provider: bedrock, model: "eu.amazon.nova-pro-v1:0"}}]}}
  vertex-gemini: {{routes: [{{provider: vertex, model: gemini-2.5-pro}}]}}
  vertex-claude: {{routes: [{{provider: vertex, model: claude-sonnet-4-6}}]}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
"""


@dataclass
class Upstream:
    """A fake provider's control API: fault injection and the requests it received."""

    url: str

    def fail_next(self, status: int) -> None:
        httpx.post(
            f"{self.url}/_fake/faults", json={"faults": [{"status": status}]}
        ).raise_for_status()

    def requests(self) -> list[dict[str, object]]:
        response = httpx.get(f"{self.url}/_fake/requests")
        response.raise_for_status()
        data: list[dict[str, object]] = response.json()["requests"]
        return data

    def reset(self) -> None:
        httpx.delete(f"{self.url}/_fake/faults").raise_for_status()
        httpx.delete(f"{self.url}/_fake/requests").raise_for_status()


@dataclass
class Gateway:
    url: str
    key: str
    upstreams: dict[str, Upstream]  # by model alias


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = Path(tmp_path_factory.mktemp("conformance"))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oauth = fake_google_oauth.FakeGoogleOAuth(
        fake_google_oauth.FakeSettings(service_accounts={SERVICE_ACCOUNT: private.public_key()})
    )
    with (
        pytest.MonkeyPatch.context() as patch,
        serve_in_thread(oauth.app) as oauth_url,
        serve_in_thread("openai") as openai_url,
        serve_in_thread(
            "openai", settings=fake_openai.FakeSettings(dialect="mistral")
        ) as mistral_url,
        serve_in_thread("anthropic") as anthropic_url,
        serve_in_thread("gemini") as gemini_url,
        serve_in_thread(
            "bedrock", settings=fake_bedrock.FakeSettings(region="eu-west-3")
        ) as bedrock_url,
    ):
        patch.setenv("AWS_ACCESS_KEY_ID", fake_bedrock.TEST_ACCESS_KEY_ID)
        patch.setenv("AWS_SECRET_ACCESS_KEY", fake_bedrock.TEST_SECRET_ACCESS_KEY)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        patch.delenv("AWS_PROFILE", raising=False)
        service_account = json.dumps(
            {
                "type": "service_account",
                "private_key_id": "k",
                "private_key": private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "client_email": SERVICE_ACCOUNT,
                "token_uri": oauth_url + fake_google_oauth.TOKEN_PATH,
            }
        )
        path = data / "passerelle.yaml"
        path.write_text(
            CONFIG.format(
                data=data,
                openai=openai_url,
                mistral=mistral_url,
                anthropic=anthropic_url,
                gemini=gemini_url,
                bedrock=bedrock_url,
            )
        )
        app = create_app(
            load_config(path),
            environ={"UPSTREAM_KEY": "upstream-key-123456", "VERTEX_KEY": service_account},
        )
        with serve_in_thread(app) as url:
            keys = app.state.gateway.keys
            user = keys.add_user("dev@acme.test")
            key, _ = keys.create_key(user, project="alpha")
            upstreams = {
                "openai-chat": Upstream(openai_url),
                "openai": Upstream(openai_url),
                "mistral": Upstream(mistral_url),
                "anthropic": Upstream(anthropic_url),
                "gemini": Upstream(gemini_url),
                "bedrock": Upstream(bedrock_url),
                "bedrock-converse": Upstream(bedrock_url),
                "vertex-gemini": Upstream(gemini_url),
                "vertex-claude": Upstream(gemini_url),
            }
            yield Gateway(url, key, upstreams)
