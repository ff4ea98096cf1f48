"""Budgets, rate limits and shared state in the configuration: strict, with errors that say
what to write instead."""

from __future__ import annotations

import pytest

from passerelle.config import parse_config

from .test_config import MINIMAL, error_of


def test_budgets_limits_and_state_parse() -> None:
    config = parse_config(
        MINIMAL
        + """\
state: {backend: redis, redis_url: "redis://cache.internal:6379/2", redis_password: env:REDIS_PW}
budgets:
  - {scope: project, match: p1, period: month, soft_usd: 80, hard_usd: 100}
  - {scope: user, period: day, soft_usd: 5, hard_usd: 10, action: downgrade, downgrade_to: m1}
rate_limits:
  - {scope: key, rpm: 60, tpm: 100000}
  - {scope: model, match: m1, tpm: 2000000}
limits: {alert_webhook: env:ALERT_URL, default_output_tokens: 2048}
"""
    )
    project, user = config.file.budgets
    assert project.hard_micro_usd == 100_000_000 and project.soft_micro_usd == 80_000_000
    assert project.label == "project:p1/month"
    assert user.match == "*" and user.label == "user:*/day"
    assert config.file.rate_limits[0].rpm == 60
    assert config.file.state.redis_password == "env:REDIS_PW"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "budgets: [{scope: project, match: p1, period: day, soft_usd: 20, hard_usd: 10}]",
            "soft_usd must not exceed hard_usd",
        ),
        (
            "budgets: [{scope: project, period: day, hard_usd: 10, action: downgrade}]",
            "action downgrade needs downgrade_to",
        ),
        (
            "budgets: [{scope: project, match: nope, period: day, hard_usd: 10}]",
            "budget on unknown project 'nope'",
        ),
        (
            "budgets: [{scope: project, period: week, hard_usd: 10}]",
            "'day' or 'month'",
        ),
        (
            "budgets: [{scope: team, period: day, hard_usd: 1, soft_usd: 0.5, action: downgrade,"
            " downgrade_to: gone}]",
            "downgrade_to names unknown model alias 'gone'",
        ),
        ("rate_limits: [{scope: user}]", "a rate limit needs rpm, tpm or both"),
        ("rate_limits: [{scope: model, match: m9, rpm: 5}]", "rate limit on unknown model 'm9'"),
        ("state: {backend: redis}", "state.backend redis needs redis_url"),
        (
            'state: {backend: redis, redis_url: "redis://:hunter2@host:6379/0"}',
            "put Redis's password in redis_password as env:NAME",
        ),
        ("limits: {alert_webhook: https://hooks.example/T0/B0/xyz}", "env:NAME"),
    ],
)
def test_mistakes_are_named(section: str, expected: str) -> None:
    error = error_of(MINIMAL + section + "\n")
    assert expected in str(error)
    assert "hunter2" not in str(error)


def test_downgrade_may_map_each_model_to_its_cheaper_one() -> None:
    config = parse_config(
        MINIMAL.replace(
            "models:\n", "models:\n  small: {routes: [{provider: up, model: small}]}\n", 1
        )
        + "budgets: [{scope: user, period: day, soft_usd: 1, hard_usd: 2, action: downgrade,"
        " downgrade_to: {m1: small}}]\n"
    )
    budget = config.file.budgets[0]
    assert budget.downgrade_for("m1") == "small"
    assert budget.downgrade_for("small") is None  # not in the map: blocked at the cap only
