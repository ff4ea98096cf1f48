"""A real gateway in front of a fake Anthropic and a fake OpenAI upstream, for the real clients.

The clients are the command-line tools people use (Claude Code, Codex, Gemini CLI, aider),
installed by ``make clients`` from ``package-lock.json`` and ``aider-requirements.txt`` into this
folder. A test whose client is missing is skipped locally and fails in CI (``CI=true``), so CI
cannot silently test less.

How a tool turn is made deterministic: the fake models call the first tool they are offered, with
placeholder arguments whose strings are ``"fake"``, and answer with the tool's result once they
get it. So each test offers its client one tool (a shell, or a file reader) and makes ``fake``
mean something: a command on ``PATH`` that prints ``TOOL_OUTPUT``, and a file in the working
directory that holds it. That text can only reach the client's final answer if the client ran its
tool and sent the result back through the gateway.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from passerelle.audit.export import iter_records
from passerelle.config import load_config
from passerelle.http.app import create_app
from passerelle.storage.db import Database
from passerelle.storage.keys import KeyStore
from passerelle.testing.server import serve_in_thread

HERE = Path(__file__).resolve().parent
NODE_BIN = HERE / "node_modules" / ".bin"
AIDER_BIN = HERE / ".aider-venv" / "bin"

CLIENT_TIMEOUT = 60  # seconds for one client run; each takes a few seconds here
TOOL_OUTPUT = "passerelle-tool-turn-ok"
USER = "dev@acme.test"

CONFIG = """\
version: 1
storage: {{url: "sqlite:///{data}/passerelle.db", spool_dir: "{data}/spool"}}
providers:
  claude:
    kind: anthropic
    base_url: {anthropic}
    api_key: env:UPSTREAM_KEY
    region: eu
    clearance: confidential
  local:
    kind: openai_compatible
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: on-prem
    clearance: restricted
  openai:
    kind: openai
    base_url: {openai}/v1
    api_key: env:UPSTREAM_KEY
    region: us
    clearance: internal
models:
  claude-sonnet:
    routes: [{{provider: claude, model: claude-sonnet-4-6}}]
  local-coder:
    routes: [{{provider: local, model: gpt-4o-mini}}]
  gpt-4o:
    routes: [{{provider: openai, model: gpt-4o}}]
teams:
  web: {{name: Web}}
clients:
  acme: {{name: Acme, data_class: internal}}
projects:
  alpha: {{client: acme, models: ["*"]}}
"""


@dataclass(frozen=True)
class Route:
    """A model alias of the test gateway and the upstream behind it."""

    id: str
    alias: str
    provider: str  # the provider's name in CONFIG


ANTHROPIC = Route("anthropic", "claude-sonnet", "claude")
# An OpenAI-compatible server (vLLM, Ollama...): Chat Completions only, so every surface is
# translated to it.
OPENAI_COMPATIBLE = Route("openai-compatible", "local-coder", "local")
# OpenAI itself, which has the Responses API: Codex's requests pass through untranslated.
OPENAI = Route("openai", "gpt-4o", "openai")
ROUTES = (ANTHROPIC, OPENAI_COMPATIBLE)


@dataclass
class Upstream:
    """A fake upstream's control API: its log of the requests it received."""

    url: str

    def requests(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_fake/requests")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["requests"]
        return data

    def reset(self) -> None:
        httpx.delete(f"{self.url}/_fake/requests").raise_for_status()


@dataclass
class Gateway:
    url: str
    key: str
    app: Any
    upstreams: Mapping[str, Upstream]  # by provider name

    def begin(self) -> int:
        """Empty the upstreams' logs; returns the newest audit record's sequence number, to read
        what the coming run adds after it."""
        for upstream in self.upstreams.values():
            upstream.reset()
        assert self.app.state.audit_writer.flush(10.0)
        return max((record["seq"] for record in iter_records(self._db())), default=0)

    def audit_since(self, seq: int) -> list[dict[str, Any]]:
        assert self.app.state.audit_writer.flush(10.0)
        return [record for record in iter_records(self._db()) if record["seq"] > seq]

    def _db(self) -> Database:
        keys: KeyStore = self.app.state.gateway.keys
        return keys.db


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("clients-gateway")
    with serve_in_thread("anthropic") as anthropic_url, serve_in_thread("openai") as openai_url:
        path = data / "passerelle.yaml"
        path.write_text(CONFIG.format(data=data, anthropic=anthropic_url, openai=openai_url))
        app = create_app(load_config(path), environ={"UPSTREAM_KEY": "upstream-key-123456"})
        with serve_in_thread(app) as url:
            keys: KeyStore = app.state.gateway.keys
            user = keys.add_user(USER, team="web", profile="dev")
            key, _ = keys.create_key(user, project="alpha")
            openai = Upstream(openai_url)
            upstreams = {"claude": Upstream(anthropic_url), "local": openai, "openai": openai}
            yield Gateway(url, key, app, upstreams)


@dataclass
class Workspace:
    """A fresh home and working directory for one client run, and the ``fake`` tool targets."""

    home: Path
    work: Path
    bin: Path

    def env(self, settings: Mapping[str, str]) -> dict[str, str]:
        """A minimal environment: nothing of the caller's leaks in (no real provider keys, no
        proxies, no CI variables), only ``PATH``, the temporary home and the tool's settings."""
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            **settings,
        }


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    space = Workspace(tmp_path / "home", tmp_path / "work", tmp_path / "bin")
    for folder in (space.home, space.work, space.bin):
        folder.mkdir()
    command = space.bin / "fake"
    command.write_text(f"#!/bin/sh\necho {TOOL_OUTPUT}\n")
    command.chmod(0o755)
    (space.work / "fake").write_text(f"{TOOL_OUTPUT}\n")
    return space


def client(path: Path) -> Path:
    """The installed client at ``path``: skipped locally when missing, a failure in CI."""
    if path.exists():
        return path
    message = f"{path.name} is not installed in {path.parent}: run `make clients`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run(args: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str]) -> Run:
    """Run a client to completion within ``CLIENT_TIMEOUT``; on timeout its whole process group
    is killed (the npm launchers start the real binary as a child) and the test fails."""
    process = subprocess.Popen(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"{Path(args[0]).name} did not finish in {CLIENT_TIMEOUT} s:\n{stdout}\n{stderr}"
        )
    return Run(process.returncode, stdout, stderr)


def tool_results(body: object) -> list[str]:
    """The tool results a request carries back to the model, in any of the upstream formats:
    Anthropic ``tool_result`` blocks, Chat Completions ``tool`` messages, Responses
    ``function_call_output`` items."""
    if not isinstance(body, dict):
        return []
    found: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "tool":
            found.append(_text(content))
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found.append(_text(block.get("content")))
    items = body.get("input")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            found.append(_text(item.get("output")))
    return found


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def assert_tool_round_trip(gateway: Gateway, route: Route, seq: int, endpoint: str) -> None:
    """The upstream behind ``route`` got the tool's output back, and the gateway audited the
    client's requests: who, which alias, which route, which surface."""
    results = [
        text
        for request in gateway.upstreams[route.provider].requests()
        for text in tool_results(request["body"])
    ]
    assert any(TOOL_OUTPUT in text for text in results), results
    served = [
        record
        for record in gateway.audit_since(seq)
        if record["kind"] == "request" and record["status"] == 200
    ]
    assert len(served) >= 2, served  # the tool call, then the answer to its result
    for record in served:
        assert record["actor"] == USER and record["project"] == "alpha"
        assert record["model"] == route.alias and record["provider"] == route.provider
        assert record["details"]["endpoint"] == endpoint
        assert record["output_tokens"] > 0
