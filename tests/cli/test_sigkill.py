"""A request whose response completed is in the audit trail even if the gateway is SIGKILLed
right after: the proof runs real processes, and the writer is told to hold its batches for
five seconds so that the kill always lands before the database commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.net import fake_openai_process, free_port, wait_ready

BIN = Path(sys.executable).parent
ENV = {**os.environ, "AUDIT_KEY": "k" * 32, "UPSTREAM_KEY": "upstream-key"}


@pytest.fixture
def fake_upstream() -> Iterator[str]:
    with fake_openai_process() as url:
        yield url


def passerelle(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "passerelle"), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )


def test_completed_requests_survive_sigkill(tmp_path: Path, fake_upstream: str) -> None:
    config = tmp_path / "passerelle.yaml"
    config.write_text(
        f"""\
version: 1
audit: {{key: env:AUDIT_KEY, group_commit_ms: 5000}}
providers:
  fake: {{kind: openai_compatible, base_url: "{fake_upstream}/v1", region: on-prem,
          clearance: restricted, api_key: env:UPSTREAM_KEY}}
models:
  chat: {{routes: [{{provider: fake, model: gpt-4o-mini}}]}}
clients: {{acme: {{name: Acme, data_class: internal}}}}
projects: {{p: {{client: acme, models: [chat]}}}}
"""
    )
    assert passerelle(config, "users", "add", "ops@acme.test").returncode == 0
    created = passerelle(
        config, "keys", "create", "--user", "ops@acme.test", "--project", "p", "-q"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()

    port = free_port()
    server = subprocess.Popen(
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
        env=ENV,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", server)
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": "survive this"}]}
        plain = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
        assert plain.status_code == 200
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            json={**body, "stream": True},
            headers=headers,
            timeout=10,
        ) as streamed:
            text = b"".join(streamed.iter_bytes())
        assert text.endswith(b"data: [DONE]\n\n")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    verify = passerelle(config, "audit", "verify", "-q")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    exported = passerelle(config, "audit", "export", "--kind", "request")
    records = [orjson.loads(line) for line in exported.stdout.splitlines()]
    ids = {record["record_id"] for record in records}
    assert plain.headers["x-request-id"] in ids
    assert streamed.headers["x-request-id"] in ids
    streamed_record = next(r for r in records if r["record_id"] == streamed.headers["x-request-id"])
    assert streamed_record["status"] == 200 and streamed_record["output_tokens"] > 0
