"""``passerelle kill`` and ``passerelle feedback``, run as an operator would, on SQLite."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import append_now
from passerelle.cli.main import cli
from passerelle.config import load_config
from passerelle.runtime import open_database
from passerelle.storage.db import now_us
from passerelle.storage.feedback import FeedbackStore

CONFIG = """\
version: 1
providers:
  fake: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
         clearance: restricted}
  other: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
          clearance: restricted}
models:
  chat: {routes: [{provider: fake, model: m}, {provider: other, model: m}]}
clients:
  acme: {name: Acme, data_class: internal}
projects:
  p1: {client: acme, models: [chat]}
"""
FAKE_AWS_KEY = "AKIA2OGYBAH6STMJXYZQ"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "passerelle.yaml"
    path.write_text(CONFIG)
    return path


def run(config: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_kill_set_list_lift_and_audit(config: Path) -> None:
    run(config, "users", "add", "ana@acme.test")
    out = run(config, "kill", "model", "chat", "--reason", "wrong answers reported")
    assert "kill switch 1 set: model 'chat'" in out
    run(config, "kill", "provider", "fake", "--reason", "provider incident")
    run(config, "kill", "project", "p1", "--reason", "contract paused")
    run(config, "kill", "user", "ANA@acme.test", "--reason", "stolen laptop")

    listed = orjson.loads(run(config, "kill", "list", "--format", "json"))
    assert [(s["id"], s["scope"], s["target"]) for s in listed] == [
        (4, "user", "ana@acme.test"),
        (3, "project", "p1"),
        (2, "provider", "fake"),
        (1, "model", "chat"),
    ]
    assert listed[0]["user_id"] and listed[0]["set_by"].startswith("cli:")
    table = run(config, "kill", "list")
    assert "wrong answers reported" in table and "stolen laptop" in table

    assert "lifted" in run(config, "kill", "lift", "1")
    run(config, "kill", "lift", "1", code=2)  # already lifted
    run(config, "kill", "lift", "99", code=2)
    active = orjson.loads(run(config, "kill", "list", "--format", "json"))
    assert [s["id"] for s in active] == [4, 3, 2]
    every = orjson.loads(run(config, "kill", "list", "--all", "--format", "json"))
    assert len(every) == 4 and every[-1]["lifted_at_us"] is not None

    records = [
        orjson.loads(line)
        for line in run(config, "audit", "export", "--kind", "admin").splitlines()
    ]
    kills = [
        (r["details"]["action"], r["details"]["target"])
        for r in records
        if r["details"]["action"].startswith("kill.")
    ]
    assert kills == [
        ("kill.set", "model:chat"),
        ("kill.set", "provider:fake"),
        ("kill.set", "project:p1"),
        ("kill.set", "user:ana@acme.test"),
        ("kill.lift", "model:chat"),
    ]
    project_record = next(r for r in records if r["details"]["target"] == "project:p1")
    assert project_record["project"] == "p1"
    assert "audit trail OK" in run(config, "audit", "verify", "-q")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "nope", "--reason", "r"], "no model 'nope' in the configuration (chat)"),
        (["provider", "nope", "--reason", "r"], "(fake, other)"),
        (["project", "nope", "--reason", "r"], "(p1)"),
        (["user", "nobody@acme.test", "--reason", "r"], "no user"),
        (["model", "chat", "--reason", " "], "needs a reason"),
        (["model", "chat", "--reason", f"key {FAKE_AWS_KEY}"], "1 aws_access_key"),
        (["model", "chat", "--reason", "call ana.martin@acme.fr"], "1 email"),
    ],
)
def test_kill_is_validated(config: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config), "kill", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert FAKE_AWS_KEY not in result.output
    assert orjson.loads(run(config, "kill", "list", "--all", "--format", "json")) == []


def test_kill_needs_a_reason(config: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config), "kill", "model", "chat"])
    assert result.exit_code == 2 and "--reason" in result.output


def test_feedback_list_and_summary(config: Path) -> None:
    db = open_database(load_config(config))
    records = [
        AuditRecord(
            record_id=f"req_{n}",
            kind="request",
            ts_us=now_us(),
            actor="ana@acme.test",
            team=None,
            project="p1",
            client="acme",
            model="chat",
            provider="fake",
            status=200,
            details={"route_model": "m"},
        )
        for n in range(3)
    ]
    append_now(db, records)
    store = FeedbackStore(db)
    for n, (rating, reason) in enumerate([(1, "helpful"), (-1, "wrong"), (-1, "slow")]):
        store.rate(
            f"req_{n}",
            actor="ana@acme.test",
            key_id="k",
            rating=rating,
            reason=reason,
            comment="see [REDACTED:email]" if n == 1 else None,
        )
    listed = orjson.loads(
        run(
            config,
            "feedback",
            "list",
            "--model",
            "chat",
            "--since",
            "2000-01-01",
            "--format",
            "json",
        )
    )
    assert {item["request_id"] for item in listed} == {"req_0", "req_1", "req_2"}
    downs = run(config, "feedback", "list", "--rating", "down", "--project", "p1")
    assert "req_1" in downs and "req_2" in downs and "req_0" not in downs
    assert "[REDACTED:email]" in downs
    assert "(no ratings match)" in run(config, "feedback", "list", "--since", "2999-01-01")
    run(config, "feedback", "list", "--since", "yesterday", code=2)

    summary = run(config, "feedback", "summary")
    assert "chat" in summary and "66.7%" in summary
    routes = orjson.loads(run(config, "feedback", "summary", "--by", "route", "--format", "json"))
    assert routes == [
        {
            "model": "chat",
            "provider": "fake",
            "route_model": "m",
            "up": 1,
            "down": 2,
            "total": 3,
            "negative_ratio": 0.6667,
        }
    ]
    db.dispose()


def test_no_unaudited_kill_switch_when_the_audit_key_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "passerelle.yaml"
    path.write_text("audit: {key: env:CONTROLS_AUDIT_KEY}\n" + CONFIG)
    monkeypatch.delenv("CONTROLS_AUDIT_KEY", raising=False)
    out = run(path, "kill", "model", "chat", "--reason", "wrong answers", code=2)
    assert "CONTROLS_AUDIT_KEY" in out
    monkeypatch.setenv("CONTROLS_AUDIT_KEY", "k" * 32)
    assert "(no kill switches)" in run(path, "kill", "list", "--all")  # nothing was changed
