"""aider through the gateway, with the README's settings: the OpenAI Chat surface
(``openai/<alias>``) and the Anthropic surface (``anthropic/<alias>``).

aider has no tool calls: it edits files from the text of the reply ("whole" edit format: the new
content of the file in a fenced block). The fake model answers "This is a fake reply to: " and the
first 60 characters of the prompt, so a prompt that is itself a blank line and a fenced block
makes the reply an edit of the one file in the chat. The test checks that aider sent the file's
content up, and wrote the content the reply carried down.

Test-only flags: ``--edit-format whole`` (the format the prompt is shaped for), ``--no-git``,
``--yes-always``, ``--no-show-release-notes``, ``--no-pretty`` and ``--message`` (one prompt, no
terminal).
"""

from __future__ import annotations

import pytest

from . import settings
from .conftest import (
    AIDER_BIN,
    ANTHROPIC,
    OPENAI_COMPATIBLE,
    TOOL_OUTPUT,
    USER,
    Gateway,
    Route,
    Workspace,
    client,
    run,
)

pytestmark = pytest.mark.clients

ORIGINAL = "original content of the note"
PROMPT = f"Replace it:\n\n```\n{TOOL_OUTPUT}\n```"
assert len(PROMPT) <= 60  # what the fake echoes of a prompt


@pytest.mark.parametrize(
    ("route", "provider_prefix", "endpoint"),
    [
        (ANTHROPIC, "anthropic", "/v1/messages"),
        (OPENAI_COMPATIBLE, "openai", "/v1/chat/completions"),
    ],
    ids=["anthropic", "openai-compatible"],
)
def test_aider_edits_a_file(
    gateway: Gateway, workspace: Workspace, route: Route, provider_prefix: str, endpoint: str
) -> None:
    aider = client(AIDER_BIN / "aider")
    seq = gateway.begin()
    model = f"{provider_prefix}/{route.alias}"
    if provider_prefix == "openai":
        env = settings.aider_openai_env(gateway.url, gateway.key)
    else:
        env = settings.aider_anthropic_env(gateway.url, gateway.key)
    (workspace.work / ".aider.model.metadata.json").write_text(
        settings.aider_model_metadata({model: 200_000})
    )
    note = workspace.work / "note.txt"
    note.write_text(f"{ORIGINAL}\n")
    result = run(
        [
            aider,
            *settings.aider_args(model),
            "--edit-format",
            "whole",
            "--no-git",
            "--yes-always",
            "--no-show-release-notes",
            "--no-pretty",
            "--message",
            PROMPT,
            note.name,
        ],
        cwd=workspace.work,
        env=workspace.env(env),
    )
    assert result.returncode == 0, result
    assert "Applied edit to note.txt" in result.stdout, result
    assert note.read_text() == f"{TOOL_OUTPUT}\n"
    sent = gateway.upstreams[route.provider].requests()
    assert sent and all(ORIGINAL in str(request["body"]) for request in sent)
    records = [r for r in gateway.audit_since(seq) if r["kind"] == "request"]
    assert [(r["status"], r["actor"], r["model"], r["provider"]) for r in records] == [
        (200, USER, route.alias, route.provider)
    ]
    assert records[0]["details"]["endpoint"] == endpoint
