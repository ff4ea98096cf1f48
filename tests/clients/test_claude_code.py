"""Claude Code (``claude -p``) through the gateway's Anthropic surface, with the README's settings.

One run asks a question; the fake model asks for the Bash tool with ``{"command": "fake"}``, Claude
Code runs it (``fake`` is a command printing ``TOOL_OUTPUT``), sends the result back, and prints
the fake's answer, which quotes that result.

Test-only flags: ``--tools Bash`` and ``ENABLE_TOOL_SEARCH=false`` make Bash the only tool offered
(the fake calls the first one; tool search would put a placeholder tool first), and
``--allowedTools Bash`` lets it run without a permission prompt.
"""

from __future__ import annotations

import pytest

from . import settings
from .conftest import (
    NODE_BIN,
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


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_claude_code_tool_turn(gateway: Gateway, workspace: Workspace, route: Route) -> None:
    claude = client(NODE_BIN / "claude")
    seq = gateway.begin()
    env = settings.claude_code_env(gateway.url, gateway.key, route.alias, route.alias, 200_000)
    result = run(
        [claude, "-p", "Run the fake command.", "--tools", "Bash", "--allowedTools", "Bash"],
        cwd=workspace.work,
        env=workspace.env({**env, "ENABLE_TOOL_SEARCH": "false"}),
    )
    assert result.returncode == 0, result
    assert f"This is a fake reply using the tool results: {TOOL_OUTPUT}" in result.stdout, result
    assert_tool_round_trip(gateway, route, seq, "/v1/messages")
