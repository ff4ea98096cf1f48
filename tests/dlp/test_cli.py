"""``passerelle scan``: exit codes, output formats, configuration, and never printing values."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from passerelle.cli.main import cli
from tests.dlp._samples import TOKENS

CONFIG = """\
version: 1
providers:
  fake: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
         clearance: restricted}
models:
  chat: {routes: [{provider: fake, model: m}]}
clients:
  acme: {name: Acme Industries, data_class: restricted, terms: [Projet Orion]}
"""


@pytest.fixture
def token() -> str:
    return TOKENS["github_pat"](random.Random(21))


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    environment: dict[str, str | None] = {"PASSERELLE_CONFIG": None}
    environment.update(env or {})
    result = runner.invoke(cli, list(args), input=input, env=environment)
    return result.exit_code, result.output


def test_clean_files_exit_zero(tmp_path: Path) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("def add(a, b):\n    return a + b\n")
    code, output = run("scan", str(clean))
    assert code == 0
    assert "0 finding(s) in 1 file(s)" in output


def test_findings_exit_one_with_location_and_no_value(tmp_path: Path, token: str) -> None:
    leaky = tmp_path / "settings.py"
    leaky.write_text(f'import os\n\nGITHUB_TOKEN = "{token}"\nowner = "anne.roux@solvel.fr"\n')
    code, output = run("scan", str(leaky))
    assert code == 1
    assert f"{leaky}:3:17: github_pat (secret)" in output
    assert f"{leaky}:4:10: email (personal)" in output
    assert token not in output and "anne.roux" not in output


def test_json_output(tmp_path: Path, token: str) -> None:
    leaky = tmp_path / "a.env"
    leaky.write_text(f"TOKEN={token}\n")
    code, output = run("scan", "--format", "json", str(leaky), str(tmp_path / "missing"))
    assert code == 2  # an unreadable file is an error, whatever else was found
    report = orjson.loads(output)
    assert report["findings"] == [
        {
            "path": str(leaky),
            "line": 1,
            "column": 7,
            "start": 6,
            "end": 6 + len(token),
            "rule": "github_pat",
            "category": "secret",
            "data_class": "restricted",
            "client": None,
        }
    ]
    assert report["errors"] == [
        {"path": str(tmp_path / "missing"), "error": "No such file or directory"}
    ]
    assert report["summary"] == {"files": 2, "findings": 1, "by_rule": {"github_pat": 1}}
    assert token not in output


def test_standard_input_and_fail_on(token: str) -> None:
    code, output = run("scan", "-", input=f"mail anne.roux@solvel.fr\n{token}\n")
    assert code == 1
    assert "<stdin>:1:6: email (personal)" in output
    code, _ = run("scan", "--fail-on", "injection", input="mail anne.roux@solvel.fr\n")
    assert code == 0
    code, _ = run("scan", "--fail-on", "secret,personal", input="mail anne.roux@solvel.fr\n")
    assert code == 1
    code, output = run("scan", "--fail-on", "nonsense", input="x")
    assert code == 2 and "--fail-on" in output


def test_directories_skip_tool_state_and_binaries(tmp_path: Path, token: str) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.txt").write_text("rien\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"token = {token}\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\0\0" + token.encode())
    code, output = run("scan", "--format", "json", str(tmp_path))
    assert code == 0
    assert orjson.loads(output)["summary"]["files"] == 2


def test_works_without_a_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no passerelle.yaml here
    code, output = run("scan", input="Projet Orion démarre lundi.\n")
    assert code == 0, output


def test_client_terms_come_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "passerelle.yaml"
    config.write_text(CONFIG)
    code, output = run("-c", str(config), "scan", input="Projet Orion démarre lundi.\n")
    assert code == 1
    assert "<stdin>:1:1: client_term (client_term)" in output
    code, output = run("scan", input="ACME INDUSTRIES\n", env={"PASSERELLE_CONFIG": str(config)})
    assert code == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nnope: true\n")
    code, output = run("-c", str(broken), "scan", input="x")
    assert code == 2 and "broken.yaml" in output


def test_names_tier_is_opt_in() -> None:
    text = "Réunion avec Marie Dupont demain.\n"
    assert run("scan", input=text)[0] == 0
    code, output = run("scan", "--names", input=text)
    assert code == 1 and "person_name" in output
