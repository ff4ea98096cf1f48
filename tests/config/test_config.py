"""The configuration is parsed strictly: every mistake is an error naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from passerelle.cli.main import cli
from passerelle.config import load_config, parse_config
from passerelle.errors import ConfigError
from passerelle.runtime import resolve_secrets

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "passerelle.yaml"

MINIMAL = """\
version: 1
providers:
  up:
    kind: openai_compatible
    base_url: http://127.0.0.1:9/v1
    api_key: env:UP_KEY
    region: on-prem
    clearance: restricted
models:
  m1:
    routes:
      - {provider: up, model: real-model}
clients:
  acme: {name: Acme, data_class: internal}
projects:
  p1: {client: acme, models: [m1]}
"""


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="test.yaml")
    return info.value


def test_example_configuration_is_valid_and_realistic() -> None:
    config = load_config(EXAMPLE)
    assert len(config.file.clients) >= 3
    assert len(config.file.projects) >= 4
    assert {p.kind.value for p in config.providers.values()} >= {
        "azure_openai",
        "openai",
        "mistral",
        "openai_compatible",
    }
    # The restricted project may only use the on-prem model.
    assert config.models_for_project("horizon-data") == ["local-coder"]
    assert config.project_data_class("helios") == "restricted"
    assert len(config.hash) == 64


def test_packaged_example_and_examples_dir_are_the_same_file() -> None:
    packaged = REPO / "src" / "passerelle" / "examples" / "company.yaml"
    assert EXAMPLE.read_bytes() == packaged.read_bytes()


def test_minimal_configuration_parses() -> None:
    config = parse_config(MINIMAL)
    assert config.models_for_project("p1") == ["m1"]
    assert config.models_for_project("nope") == []
    assert config.project_data_class("p1") == "internal"


def test_unknown_key_names_its_line() -> None:
    text = MINIMAL.replace("    region: on-prem\n", "    region: on-prem\n    regoin: eu\n")
    error = error_of(text)
    assert error.line == 8
    assert "regoin" in str(error) and "test.yaml:8" in str(error)


def test_bad_value_says_what_is_expected() -> None:
    error = error_of(MINIMAL.replace("kind: openai_compatible", "kind: openia"))
    assert error.line == 4
    assert "openai_compatible" in str(error)  # the message lists the accepted kinds


def test_literal_secret_is_refused() -> None:
    error = error_of(MINIMAL.replace("env:UP_KEY", "sk-live-abcdef0123456789"))
    assert error.line == 6
    assert "env:NAME" in str(error)
    assert "sk-live" not in str(error)


def test_duplicate_key_is_an_error() -> None:
    error = error_of(MINIMAL.replace("  m1:\n", "  m1:\n    kind: chat\n    kind: chat\n", 1))
    assert "duplicate key 'kind'" in str(error)
    assert error.line == 12


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{provider: up, model: real-model}", "{provider: down, model: x}", "unknown provider"),
        ("{client: acme, models: [m1]}", "{client: umbrella, models: [m1]}", "unknown client"),
        ("{client: acme, models: [m1]}", "{client: acme, models: [m2]}", "unknown model alias"),
        ("clearance: restricted", "clearance: secret", "not one of data_classes"),
    ],
)
def test_broken_references_are_errors(old: str, new: str, expected: str) -> None:
    error = error_of(MINIMAL.replace(old, new))
    assert expected in str(error)
    assert error.line is not None


def test_yaml_syntax_error_names_line() -> None:
    error = error_of(MINIMAL + "  bad: [unclosed\n")
    assert error.line is not None and "not valid YAML" in str(error)


def test_missing_version_and_empty_file() -> None:
    assert "version" in str(error_of(MINIMAL.replace("version: 1\n", "")))
    assert "empty" in str(error_of(""))


def test_hash_is_stable_and_tracks_policy() -> None:
    first = parse_config(MINIMAL).hash
    assert parse_config("# comment\n" + MINIMAL).hash == first  # formatting is not policy
    assert parse_config(MINIMAL.replace("models: [m1]", "models: ['*']")).hash != first


def test_missing_secret_names_the_variable_not_a_value() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(ConfigError, match="UP_KEY"):
        resolve_secrets(config, {})
    assert resolve_secrets(config, {"UP_KEY": "s3cret"}) == {"UP_KEY": "s3cret"}


def test_relative_sqlite_path_is_relative_to_the_file(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "passerelle.yaml"
    file.parent.mkdir()
    file.write_text(MINIMAL)
    config = load_config(file)
    assert config.database_url == f"sqlite:///{tmp_path}/conf/var/passerelle.db"
    assert config.spool_dir == tmp_path / "conf" / "var" / "spool"


def test_config_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli, ["config", "check", str(EXAMPLE)])
    assert good.exit_code == 0, good.output
    assert load_config(EXAMPLE).hash in good.output
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(MINIMAL.replace("    region: on-prem\n", "    regoin: eu\n"))
    bad = runner.invoke(cli, ["config", "check", str(bad_file)])
    assert bad.exit_code == 2
    assert f"{bad_file}:7: providers.up.regoin: unknown key" in bad.output
    assert "missing required key 'region'" in bad.output  # every problem is listed
    missing = runner.invoke(cli, ["config", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "file not found" in missing.output


# -- dlp and policy ------------------------------------------------------------------------------

POLICY = """\
dlp:
  person_names: true
  disabled_rules: [ipv4]
  allow: [support@acme.test]
policy:
  not_cleared: {confidential: pseudonymize, restricted: hold}
  injection: block
"""


def test_dlp_and_policy_sections_parse_with_safe_defaults() -> None:
    default = parse_config(MINIMAL).file
    assert default.dlp.enabled and not default.dlp.person_names
    assert default.policy.not_cleared == {}  # a class not listed blocks
    assert default.policy.injection.value == "flag"
    config = parse_config(MINIMAL + POLICY).file
    assert config.dlp.disabled_rules == ["ipv4"] and config.dlp.allow == ["support@acme.test"]
    assert config.policy.not_cleared["restricted"].value == "hold"
    assert parse_config(MINIMAL + POLICY).hash != parse_config(MINIMAL).hash


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        ("restricted: hold", "restricted: allow", 22, "'pseudonymize', 'redact', 'hold'"),
        ("restricted: hold", "secret: hold", 22, "not one of data_classes"),
        ("[ipv4]", "[ipv5]", 19, "unknown DLP rule 'ipv5'"),
        ("injection: block", "injection: warn", 23, "'block' or 'flag'"),
        ("person_names: true", "person_name: true", 18, "unknown key 'person_name'"),
    ],
)
def test_dlp_and_policy_mistakes_name_their_line(
    old: str, new: str, line: int, expected: str
) -> None:
    error = error_of(MINIMAL + POLICY.replace(old, new))
    assert expected in str(error)
    assert error.line == line
