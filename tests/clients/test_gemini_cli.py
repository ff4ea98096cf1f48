"""Gemini CLI (``gemini -p``) through the gateway's Gemini surface, with the README's settings.

The fake model asks for the ``read_file`` tool with ``{"file_path": "fake"}``; Gemini CLI reads
that file of the working directory (it holds ``TOOL_OUTPUT``), sends it back as a
``functionResponse``, and prints the fake's answer, which quotes it.

Test-only settings: ``tools.core: ["read_file"]`` makes it the only tool offered (the fake calls the
first one), and ``GEMINI_CLI_TRUST_WORKSPACE=true`` trusts the temporary working directory, as its
documentation says headless runs need.
"""

from __future__ import annotations

import json

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
def test_gemini_cli_tool_turn(gateway: Gateway, workspace: Workspace, route: Route) -> None:
    gemini = client(NODE_BIN / "gemini")
    seq = gateway.begin()
    config = workspace.home / ".gemini"
    config.mkdir()
    test_settings = {**settings.gemini_settings(), "tools": {"core": ["read_file"]}}
    (config / "settings.json").write_text(json.dumps(test_settings))
    env = settings.gemini_env(gateway.url, gateway.key, route.alias)
    result = run(
        [gemini, "-p", "Read the fake file."],
        cwd=workspace.work,
        env=workspace.env({**env, "GEMINI_CLI_TRUST_WORKSPACE": "true"}),
    )
    assert result.returncode == 0, result
    assert f"This is a fake reply using the tool results: {TOOL_OUTPUT}" in result.stdout, result
    endpoint = f"/v1beta/models/{route.alias}:streamGenerateContent"
    assert_tool_round_trip(gateway, route, seq, endpoint)
