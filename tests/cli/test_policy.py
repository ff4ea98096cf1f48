"""``passerelle policy explain``: the class a text gets and where it may go, without values."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from passerelle.cli.main import cli
from passerelle.storage.tables import reviews

from ..dlp._samples import TOKENS

CONFIG = """\
version: 1
providers:
  eu: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
       clearance: confidential}
  us: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: us,
       clearance: internal}
  onprem: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
           clearance: restricted}
models:
  general: {routes: [{provider: eu, model: m}, {provider: us, model: m}]}
  coder: {routes: [{provider: eu, model: c}, {provider: onprem, model: c}]}
clients:
  bank: {name: Bank, data_class: confidential, terms: [Banque Horizon]}
  health: {name: Health, data_class: restricted, terms: [Project Helios]}
projects:
  mobile: {client: bank, models: [general, coder], regions: [eu, on-prem]}
policy:
  not_cleared: {restricted: pseudonymize}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "passerelle.yaml"
    path.write_text(CONFIG)
    return path


def explain(config: Path, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, ["-c", str(config), "policy", "explain", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_shows_the_class_and_where_it_may_go(config: Path) -> None:
    secret = TOKENS["aws_access_key"](random.Random(1))
    output = explain(config, "--project", "mobile", f"Project Helios key {secret}")
    assert secret not in output
    assert "1 aws_access_key, 1 client_term" in output
    assert "class      restricted" in output
    assert "coder   reroute -> onprem" in output
    assert "general   pseudonymize -> eu (class after pseudonymize: confidential)" in output
    assert "not in the project's regions" in output  # the US route


def test_explain_as_json_from_standard_input(config: Path) -> None:
    report = orjson.loads(
        explain(config, "-p", "mobile", "--format", "json", stdin="Banque Horizon update")
    )
    assert report["found"] == {"client_term": 1}
    assert report["class"] == "confidential"
    general = report["models"][0]
    assert general["action"] == "allow" and general["routes_used"] == ["eu"]
    assert [route["status"] for route in general["routes"]] == [
        "cleared",
        "not in the project's regions",
    ]


def test_explain_names_an_unknown_project(config: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(config), "policy", "explain", "-p", "nope", "x"])
    assert result.exit_code == 2 and "unknown project 'nope'" in result.output


def test_review_commands(config: Path) -> None:
    from passerelle.audit.export import iter_records
    from passerelle.config import load_config
    from passerelle.runtime import open_database
    from passerelle.storage.reviews import HeldRequest, ReviewStore

    db = open_database(load_config(config))
    review = ReviewStore(db).hold(
        HeldRequest(
            request_id="req_1",
            actor="dev@acme.test",
            key_id="key-1",
            project="mobile",
            model="general",
            endpoint="/v1/chat/completions",
            data_class="restricted",
            rule="policy.not_cleared.restricted",
            findings={"aws_access_key": 1},
            reason="classified 'restricted'",
            preview="deploy with [AWS_ACCESS_KEY_1]",
            request_hash="h" * 64,
        )
    )

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["-c", str(config), "review", *args])
        assert result.exit_code == code, result.output
        return result.output

    listed = run("list")
    assert review.id in listed and "1 aws_access_key" in listed
    shown = run("show", review.id)
    assert "deploy with [AWS_ACCESS_KEY_1]" in shown and "policy.not_cleared.restricted" in shown
    assert "may send that same request again, once" in run("approve", review.id, "--note", "ok")
    assert "approved, not pending" in run("reject", review.id, code=2)
    assert review.id in run("list", "--status", "approved")
    assert orjson.loads(run("list", "--status", "all", "--format", "json"))[0]["note"] == "ok"
    actions = [r for r in iter_records(db) if r["details"].get("action") == "review.approve"]
    assert actions[0]["actor"].startswith("cli:") and actions[0]["details"]["target"] == review.id
    assert run("purge") == "dropped the previews of 0 expired reviews\n"  # approved, not expired
    with db.begin() as conn:
        conn.execute(update(reviews).values(expires_at=0))
    assert run("purge") == "dropped the previews of 1 expired reviews\n"
    assert "deploy with" not in run("show", review.id)
