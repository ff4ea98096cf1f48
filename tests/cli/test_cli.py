"""The operator's commands, run as an operator would, against a real SQLite database."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from passerelle.audit.records import AuditRecord
from passerelle.audit.writer import append_now
from passerelle.cli.main import cli
from passerelle.config import load_config
from passerelle.runtime import open_database
from passerelle.storage.keys import KeyStatus, KeyStore

CONFIG = """\
version: 1
providers:
  fake: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
         clearance: restricted}
models:
  chat: {routes: [{provider: fake, model: m}]}
  big: {routes: [{provider: fake, model: m}]}
teams: {web: {name: Web}, data: {name: Data}}
clients:
  acme: {name: Acme, data_class: internal}
  umbrella: {name: Umbrella, data_class: internal}
projects:
  p1: {client: acme, models: [chat, big]}
  p2: {client: umbrella, models: [chat]}
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


def test_help_is_for_newcomers() -> None:
    output = CliRunner().invoke(cli, ["--help"]).output
    for command in ("demo", "serve", "config", "keys", "users", "spend", "audit"):
        assert command in output
    assert "passerelle demo" in output


def test_key_lifecycle(config: Path) -> None:
    run(config, "users", "add", "Alice@Acme.test", "--team", "web", "--profile", "dev")
    run(config, "users", "add", "alice@acme.test", code=2)  # same email, any case
    run(config, "users", "add", "bob@acme.test", "--team", "nope", code=2)
    key = run(
        config, "keys", "create", "--user", "alice@acme.test", "--project", "p1", "-q"
    ).strip()
    assert key.startswith("psk-") and len(key) > 40
    run(config, "keys", "create", "--user", "alice@acme.test", "--project", "nope", code=2)
    run(config, "keys", "create", "--user", "nobody@acme.test", "--project", "p1", code=2)

    store = KeyStore(open_database(load_config(config)))
    assert store.resolve(key).status is KeyStatus.VALID
    listing = run(config, "keys", "list")
    assert key[:12] in listing and key not in listing
    run(config, "keys", "revoke", key[:12])
    assert store.resolve(key).status is KeyStatus.REVOKED
    assert key[:12] not in run(config, "keys", "list")
    assert "revoked" in run(config, "keys", "list", "--all")

    # Every administrative action is in the audit trail, and the trail verifies.
    exported = run(config, "audit", "export", "--kind", "admin")
    actions = [orjson.loads(line)["details"]["action"] for line in exported.splitlines()]
    assert actions == ["user.add", "key.create", "key.revoke"]
    assert key not in exported
    assert "OK: 3 records" in run(config, "audit", "verify", "-q")


def _request(
    day: str,
    user: str,
    team: str,
    project: str,
    client: str,
    model: str,
    cost: int,
    tokens: int,
    n: int,
) -> AuditRecord:
    import datetime as dt

    ts = int(dt.datetime.fromisoformat(day + "T12:00:00+00:00").timestamp() * 1e6) + n
    return AuditRecord(
        record_id=f"req_{n}",
        kind="request",
        ts_us=ts,
        actor=user,
        team=team,
        project=project,
        client=client,
        model=model,
        provider="fake",
        status=200,
        input_tokens=tokens,
        output_tokens=tokens // 2,
        cost_micro_usd=cost,
        details={},
    )


def test_spend_groups_filters_and_csv(config: Path) -> None:
    db = open_database(load_config(config))
    append_now(
        db,
        [
            _request("2026-11-01", "a@x", "web", "p1", "acme", "chat", 1_500_000, 100, 1),
            _request("2026-11-01", "a@x", "web", "p1", "acme", "big", 2_000_001, 200, 2),
            _request("2026-11-02", "b@x", "data", "p2", "umbrella", "chat", 250, 10, 3),
            _request("2026-11-03", "b@x", "data", "p2", "umbrella", "chat", 750, 30, 4),
        ],
        key=None,
    )
    out = run(config, "spend", "--group-by", "client,day", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0] == {
        "client": "acme",
        "day": "2026-11-01",
        "requests": "2",
        "input_tokens": "300",
        "output_tokens": "150",
        "cost_usd": "3.500001",
    }
    assert {r["day"] for r in rows[1:]} == {"2026-11-02", "2026-11-03"}

    only = run(config, "spend", "--group-by", "user", "--since", "2026-11-02", "--format", "json")
    assert orjson.loads(only) == [
        {
            "user": "b@x",
            "requests": 2,
            "input_tokens": 40,
            "output_tokens": 20,
            "cost_usd": "0.001000",
        }
    ]
    by_model = run(config, "spend", "--group-by", "model", "--team", "web")
    assert "big" in by_model and "2.000001" in by_model
    total = run(config, "spend", "--group-by", "", "--format", "csv")
    assert total.splitlines()[1] == "4,340,170,3.501001"
    run(config, "spend", "--group-by", "colour", code=2)
    run(config, "spend", "--since", "yesterday", code=2)
