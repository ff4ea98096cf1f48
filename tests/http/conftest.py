"""A real gateway (uvicorn, real sockets, real SQLite) in front of real fake upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from passerelle.config import Config, load_config
from passerelle.core.context import KeyScope
from passerelle.http.app import create_app
from passerelle.storage.keys import KeyStore
from passerelle.testing.fake_openai import FakeSettings
from passerelle.testing.fake_openai import create_app as create_fake
from passerelle.testing.server import serve_in_thread
from tests.net import free_port as closed_port

UPSTREAM_KEY = "upstream-secret-value-1234567890"


CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
gateway: {{max_body_bytes: 65536}}
providers:
  primary:
    kind: openai_compatible
    base_url: {primary}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: on-prem
    clearance: restricted
    retry: {{max_attempts: 3, backoff_initial_ms: 1, backoff_max_ms: 5, max_retry_after_s: 2}}
    timeouts: {{connect: 1, read: 1.5}}
  backup:
    kind: openai
    base_url: {backup}/v1
    api_key: env:TEST_UPSTREAM_KEY
    region: eu
    clearance: confidential
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 5}}
  azure:
    kind: azure_openai
    base_url: {primary}
    api_key: env:TEST_UPSTREAM_KEY
    api_version: "2024-10-21"
    region: eu
    clearance: confidential
  dead:
    kind: openai_compatible
    base_url: http://127.0.0.1:{dead_port}/v1
    region: on-prem
    clearance: restricted
    retry: {{max_attempts: 2, backoff_initial_ms: 1, backoff_max_ms: 2}}
models:
  chat:
    routes:
      - {{provider: primary, model: gpt-4o-mini}}
      - {{provider: backup, model: gpt-4o}}
  azure-chat:
    routes:
      - {{provider: azure, model: my-deployment, pricing_model: gpt-4o}}
  unreachable:
    routes:
      - {{provider: dead, model: x}}
  embed:
    kind: embedding
    routes:
      - {{provider: primary, model: text-embedding-3-small}}
  secret-model:
    routes:
      - {{provider: primary, model: gpt-4o}}
teams:
  web: {{name: Web}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: [chat, azure-chat, unreachable, embed]}}
  beta: {{client: acme, models: [secret-model]}}
prices:
  openai_compatible/gpt-4o-mini: {{input: 150000, output: 600000}}
"""


@dataclass
class Fake:
    url: str

    def faults(self, *faults: dict[str, Any], match_model: str | None = None) -> None:
        body: dict[str, Any] = {"faults": list(faults)}
        if match_model:
            body["match_model"] = match_model
        httpx.post(f"{self.url}/_fake/faults", json=body).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_fake/requests")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["requests"]
        return data

    def reset(self) -> None:
        httpx.delete(f"{self.url}/_fake/faults").raise_for_status()
        httpx.delete(f"{self.url}/_fake/requests").raise_for_status()


@dataclass
class RunningGateway:
    url: str
    config: Config
    keys: KeyStore
    app: Any
    key: str  # an inference key for project alpha
    admin_key: str

    def new_key(self, project: str = "alpha", **kwargs: Any) -> str:
        user = self.keys.get_user("dev@acme.test")
        plaintext, _ = self.keys.create_key(user, project=project, **kwargs)
        return plaintext

    def flush_audit(self) -> None:
        assert self.app.state.audit_writer.flush(10.0)


@pytest.fixture(scope="session")
def primary() -> Iterator[Fake]:
    with serve_in_thread(create_fake(FakeSettings())) as url:
        yield Fake(url)


@pytest.fixture(scope="session")
def backup() -> Iterator[Fake]:
    with serve_in_thread(create_fake(FakeSettings())) as url:
        yield Fake(url)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    primary: Fake,
    backup: Fake,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[RunningGateway]:
    data = tmp_path_factory.mktemp("gateway")
    path = Path(data) / "passerelle.yaml"
    path.write_text(
        CONFIG.format(data=data, primary=primary.url, backup=backup.url, dead_port=closed_port())
    )
    config = load_config(path)
    app = create_app(config, environ={"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    with serve_in_thread(app) as url:
        keys = app.state.gateway.keys
        user = keys.add_user("dev@acme.test", name="Dev", team="web", profile="dev")
        key, _ = keys.create_key(user, project="alpha")
        admin_key, _ = keys.create_key(user, project=None, scope=KeyScope.ADMIN)
        yield RunningGateway(url, config, keys, app, key, admin_key)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(autouse=True)
def _clean_fakes(primary: Fake, backup: Fake) -> None:
    primary.reset()
    backup.reset()
