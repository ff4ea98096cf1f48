"""Vertex AI end to end: a service-account key, the OAuth token exchange, Gemini and Claude.

The gateway reads the key from an ``env:`` reference, signs a JWT, exchanges it at the (fake)
token endpoint, and calls the (fake) Vertex endpoints with the token it got: Gemini models
through the google publisher, Claude through anthropic's ``rawPredict``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.testing import fake_google_oauth
from passerelle.testing.fake_google_oauth import FakeGoogleOAuth
from passerelle.testing.server import serve_in_thread

from .conftest import Fake

EMAIL = "gateway@demo-project.iam.gserviceaccount.com"

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
providers:
  vertex-eu:
    kind: vertex
    base_url: {vertex}
    gcp_project: demo-project
    gcp_location: europe-west1
    gcp_credentials: env:VERTEX_SA_KEY
    region: eu
    clearance: confidential
models:
  gemini-pro:
    routes: [{{provider: vertex-eu, model: gemini-2.5-pro}}]
  claude-vertex:
    routes: [{{provider: vertex-eu, model: claude-sonnet-4-6}}]
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
"""


@pytest.fixture(scope="module")
def vertex(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, Fake, FakeGoogleOAuth]]:
    data = Path(tmp_path_factory.mktemp("vertex"))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oauth = FakeGoogleOAuth(
        fake_google_oauth.FakeSettings(service_accounts={EMAIL: private.public_key()})
    )
    with serve_in_thread(oauth.app) as oauth_url, serve_in_thread("gemini") as vertex_url:
        key_file = data / "sa.json"
        key_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "demo-project",
                    "private_key_id": "k1",
                    "private_key": private.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode(),
                    "client_email": EMAIL,
                    "token_uri": f"{oauth_url}{fake_google_oauth.TOKEN_PATH}",
                }
            )
        )
        path = data / "passerelle.yaml"
        path.write_text(CONFIG.format(data=data, vertex=vertex_url))
        app = create_app(load_config(path), environ={"VERTEX_SA_KEY": str(key_file)})
        with serve_in_thread(app) as url:
            keys = app.state.gateway.keys
            user = keys.add_user("dev@acme.test")
            key, _ = keys.create_key(user, project="alpha")
            yield url, key, Fake(vertex_url), oauth


def test_gemini_on_vertex_with_a_service_account(
    vertex: tuple[str, str, Fake, FakeGoogleOAuth],
) -> None:
    url, key, fake, oauth = vertex
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    for _ in range(2):
        reply = client.chat.completions.create(
            model="gemini-pro", messages=[{"role": "user", "content": "Bonjour"}]
        )
        assert reply.choices[0].message.content
    sent = [r for r in fake.requests() if "gemini-2.5-pro" in r["path"]]
    assert sent[-1]["path"] == (
        "/v1/projects/demo-project/locations/europe-west1/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    assert len(oauth.issued()) == 1  # the token is cached between calls


def test_claude_on_vertex_streams_to_an_anthropic_client(
    vertex: tuple[str, str, Fake, FakeGoogleOAuth],
) -> None:
    url, key, fake, _ = vertex
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    with client.messages.stream(
        model="claude-vertex", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text
    sent = fake.requests()[-1]
    assert sent["path"].endswith("/publishers/anthropic/models/claude-sonnet-4-6:streamRawPredict")
    assert sent["body"]["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in sent["body"]
