"""``passerelle canary``, run as an operator would, on SQLite: status, and every decision by
hand, each an admin audit record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from passerelle.cli.main import cli

CONFIG = """\
version: 1
providers:
  old: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: restricted}
  new: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: restricted}
models:
  chat:
    routes: [{provider: old, model: m1}]
    canary:
      start: manual
      routes: [{provider: new, model: m2}]
      stages: [5, 25, 100]
  plain: {routes: [{provider: old, model: m1}]}
clients:
  acme: {name: Acme, data_class: internal}
projects:
  p1: {client: acme, models: [chat]}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "passerelle.yaml"
    path.write_text(CONFIG)
    return path


def run(config: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    assert result.exit_code == code, result.output
    return result.output


def status(config: Path) -> dict[str, Any]:
    (entry,) = orjson.loads(run(config, "canary", "status", "chat", "--format", "json"))
    assert isinstance(entry, dict)
    return entry


def test_status_and_decisions_by_hand(config: Path) -> None:
    assert "chat: not started (canary start); new version new/m2" in run(config, "canary", "status")
    assert "start one with 'passerelle canary start chat'" in run(
        config, "canary", "pause", "chat", code=2
    )
    run(config, "canary", "status", "plain", code=2)

    out = run(config, "canary", "start", "chat", "--reason", "approved by the architects")
    assert "roll-out 1 of chat: running, stage 1/3, 5 % of requests" in out
    entry = status(config)
    assert (entry["status"], entry["percent"], entry["stages"]) == ("running", 5, [5, 25, 100])
    assert entry["updated_by"].startswith("cli:")
    current = entry["current"]
    assert isinstance(current, dict) and current["decision"] == "wait"
    assert current["canary"]["requests"] == 0
    table = run(config, "canary", "status", "chat")
    assert "roll-out 1 running, stage 1/3, 5 % of requests to new/m2" in table
    assert "gates   wait: waiting for 0/100 canary requests" in table
    assert "error_rate" in table  # the detailed view lists each gate

    assert "paused" in run(config, "canary", "pause", "chat")
    assert "cannot be paused" in run(config, "canary", "pause", "chat", code=2)
    assert "running" in run(config, "canary", "resume", "chat")
    assert "stage 2/3, 25 %" in run(config, "canary", "promote", "chat")
    assert "promoted, stage 3/3, 100 %" in run(config, "canary", "promote", "chat", "--full")
    assert "rolled_back" in run(config, "canary", "rollback", "chat", "--reason", "too slow")
    assert status(config)["percent"] == 0
    refused = run(config, "canary", "start", "chat", "--reason", "see ana.martin@acme.fr", code=2)
    assert "1 email" in refused and "ana.martin" not in refused
    assert "roll-out 2 of chat: running" in run(config, "canary", "start", "chat")
    history = status(config)["history"]
    assert isinstance(history, list)
    assert [(h["id"], h["status"]) for h in history] == [(2, "running"), (1, "rolled_back")]

    records = [
        orjson.loads(line)
        for line in run(config, "audit", "export", "--kind", "admin").splitlines()
    ]
    steps = [
        (r["details"]["action"], r["details"]["rollout_id"], r["details"]["reason"])
        for r in records
        if str(r["details"]["action"]).startswith("canary.")
    ]
    assert steps == [
        ("canary.start", 1, "approved by the architects"),
        ("canary.pause", 1, None),
        ("canary.resume", 1, None),
        ("canary.advance", 1, None),
        ("canary.promote", 1, None),
        ("canary.rollback", 1, "too slow"),
        ("canary.start", 2, None),
    ]
    assert all(r["actor"].startswith("cli:") for r in records)
    assert "audit trail OK: 7 records verified" in run(config, "audit", "verify")
