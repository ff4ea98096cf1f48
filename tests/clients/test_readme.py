"""The README's "Connect your tools" section shows exactly the settings the client tests use."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import settings
from .settings import README_KEY, README_URL

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Connect your tools")
    return text[start : text.index("\n## ", start + 1)]


def _aider(model: str) -> str:
    return " ".join(["aider", *settings.aider_args(model)])


SNIPPETS = {
    "claude code": settings.shell_exports(
        settings.claude_code_env(README_URL, README_KEY, "claude-sonnet", "claude-haiku", 200_000)
    ),
    "codex config": settings.codex_config(README_URL, "gpt-4o"),
    "codex key": settings.shell_exports(settings.codex_env(README_KEY)),
    "gemini cli": settings.shell_exports(
        settings.gemini_env(README_URL, README_KEY, "gemini-flash")
    ),
    "gemini settings": settings.gemini_settings_json(),
    "aider openai": settings.shell_exports(settings.aider_openai_env(README_URL, README_KEY))
    + _aider("openai/gpt-4o-mini"),
    "aider anthropic": settings.shell_exports(settings.aider_anthropic_env(README_URL, README_KEY))
    + _aider("anthropic/claude-sonnet"),
    "aider metadata": settings.aider_model_metadata({"openai/gpt-4o-mini": 128_000}),
}


@pytest.mark.parametrize("name", SNIPPETS)
def test_readme_shows_the_tested_settings(name: str) -> None:
    assert SNIPPETS[name] in _section(), f"README is out of step with settings.py for {name}"
