"""Three real gateway processes sharing one PostgreSQL database and one Redis, behind no load
balancer: the clients spread their requests over the three themselves.

Everything about budgets and limits that must hold "on three instances" is proved here, with
``passerelle serve`` processes exactly as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.net import (
    REDIS_URL,
    delete_redis_keys,
    fake_openai_process,
    free_port,
    new_redis_prefix,
    require_redis,
    wait_ready,
)

BIN = Path(sys.executable).parent
UPSTREAM_KEY = "upstream-key-for-the-cluster-tests"


@dataclass
class Cluster:
    urls: list[str]
    config: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "passerelle"), "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self) -> None:
        """Stop the three gracefully: each writer commits what it holds."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def fake_upstream() -> Iterator[str]:
    with fake_openai_process() as url:
        yield url


@pytest.fixture
def cluster_factory(tmp_path: Path, postgres_url: str, fake_upstream: str) -> Iterator[object]:
    """``start(policy_yaml) -> Cluster``: three instances of one configuration."""
    require_redis()
    prefix = new_redis_prefix()
    started: list[Cluster] = []

    def start(policy: str, projects: list[str]) -> tuple[Cluster, dict[str, str]]:
        config = tmp_path / "passerelle.yaml"
        project_lines = "\n".join(
            f"  {name}: {{client: acme, models: [chat]}}" for name in projects
        )
        config.write_text(
            f"""\
version: 1
storage: {{url: "{postgres_url}", spool_dir: "{tmp_path}/spool"}}
audit: {{key: env:AUDIT_KEY}}
state: {{backend: redis, redis_url: "{REDIS_URL}", key_prefix: "{prefix}", redis_timeout_s: 2}}
limits: {{default_output_tokens: 64}}
providers:
  fake: {{kind: openai_compatible, base_url: "{fake_upstream}/v1", region: on-prem,
          clearance: restricted, api_key: env:UPSTREAM_KEY}}
models:
  chat: {{routes: [{{provider: fake, model: gpt-4o-mini}}]}}
clients: {{acme: {{name: Acme, data_class: internal}}}}
projects:
{project_lines}
prices:
  openai_compatible/gpt-4o-mini: {{input: 10000000, output: 10000000}}
{policy}
"""
        )
        env = {**os.environ, "AUDIT_KEY": "k" * 32, "UPSTREAM_KEY": UPSTREAM_KEY}
        cluster = Cluster([], config, env, [])
        started.append(cluster)
        cluster.cli("users", "add", "load@acme.test")
        keys = {
            project: cluster.cli(
                "keys", "create", "--user", "load@acme.test", "--project", project, "-q"
            ).strip()
            for project in projects
        }
        for _ in range(3):
            port = free_port()
            process = subprocess.Popen(
                [
                    str(BIN / "passerelle"),
                    "-c",
                    str(config),
                    "serve",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env=env,
            )
            cluster.processes.append(process)
            cluster.urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(cluster.urls, cluster.processes, strict=True):
            wait_ready(url + "/readyz", process)
        return cluster, keys

    yield start
    for cluster in started:
        cluster.stop()
    delete_redis_keys(prefix)
