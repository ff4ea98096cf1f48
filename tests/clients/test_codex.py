"""Codex (``codex exec``) through the gateway's Responses surface, with the README's
``config.toml``.

The fake model asks for Codex's first tool, ``exec_command``, with ``{"cmd": "fake"}``; Codex runs
it (``fake`` is a command printing ``TOOL_OUTPUT``), sends the output back as a
``function_call_output``, and prints the fake's answer, which quotes it.

Test-only flags: ``--skip-git-repo-check`` (the working directory is no Git repository),
``--sandbox danger-full-access`` (Codex's Linux sandbox needs kernel features a container may not
have; exec mode never asks for approval), ``allow_login_shell=false`` (a login shell would reset
``PATH`` and lose the ``fake`` command), ``--ephemeral`` (no session files), and
``--strict-config``, which makes an unknown key in the README's configuration an error.
"""

from __future__ import annotations

import pytest

from . import settings
from .conftest import (
    NODE_BIN,
    OPENAI,
    ROUTES,
    TOOL_OUTPUT,
    Gateway,
    Route,
    Workspace,
    assert_tool_round_trip,
    client,
    run,
)

pytestmark = pytest.mark.clients


# Both translated routes, and OpenAI's own Responses API, which gets Codex's requests as they are.
@pytest.mark.parametrize("route", [*ROUTES, OPENAI], ids=lambda route: route.id)
def test_codex_tool_turn(gateway: Gateway, workspace: Workspace, route: Route) -> None:
    codex = client(NODE_BIN / "codex")
    seq = gateway.begin()
    codex_home = workspace.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(settings.codex_config(gateway.url, route.alias))
    result = run(
        [
            codex,
            "exec",
            "--strict-config",
            "--skip-git-repo-check",
            "--ephemeral",
            "--sandbox",
            "danger-full-access",
            "-c",
            "allow_login_shell=false",
            "Run the fake command.",
        ],
        cwd=workspace.work,
        env=workspace.env(settings.codex_env(gateway.key)),
    )
    assert result.returncode == 0, result
    # Codex's tool result is the command's output under a header (chunk id, exit code...).
    answer = result.stdout.partition("This is a fake reply using the tool results:")[2]
    assert TOOL_OUTPUT in answer, result
    assert_tool_round_trip(gateway, route, seq, "/v1/responses")
