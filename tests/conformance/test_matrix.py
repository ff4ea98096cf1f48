"""Every surface, every provider family, five scenarios, through the running gateway.

Each cell drives the surface's official SDK against a gateway alias served by one provider
family, so that what the SDK parses is exactly what the gateway produced: a passthrough when
the formats match, a translation otherwise. The upstream fakes speak each provider's own wire
format and refuse what the real APIs refuse.
"""

from __future__ import annotations

import pytest

from .clients import SURFACES
from .conftest import Gateway

PROVIDERS = [
    "openai-chat",
    "openai",
    "mistral",
    "anthropic",
    "gemini",
    "bedrock",
    "bedrock-converse",
    "vertex-gemini",
    "vertex-claude",
]
CELLS = [(surface, provider) for surface in SURFACES for provider in PROVIDERS]


def _ids(cell: tuple[str, str]) -> str:
    return f"{cell[0]}->{cell[1]}"


@pytest.fixture(autouse=True)
def _reset(gateway: Gateway) -> None:
    for upstream in gateway.upstreams.values():
        upstream.reset()


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_plain_reply(gateway: Gateway, cell: tuple[str, str]) -> None:
    surface, provider = cell
    text = SURFACES[surface](gateway.url, gateway.key).plain(provider)
    assert "fake" in text.lower()


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_streamed_reply(gateway: Gateway, cell: tuple[str, str]) -> None:
    surface, provider = cell
    text, output_tokens = SURFACES[surface](gateway.url, gateway.key).stream(provider)
    assert "fake" in text.lower()
    assert output_tokens > 0


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_tool_call_round_trip(gateway: Gateway, cell: tuple[str, str]) -> None:
    surface, provider = cell
    name, final = SURFACES[surface](gateway.url, gateway.key).tool_round_trip(provider)
    assert name == "get_weather"
    assert final  # the fake answers with text once it has the tool's result


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_image_input(gateway: Gateway, cell: tuple[str, str]) -> None:
    surface, provider = cell
    assert SURFACES[surface](gateway.url, gateway.key).image(provider)
    sent = gateway.upstreams[provider].requests()[-1]
    assert "iVBORw0KGgo" in str(sent["body"])  # the PNG reached the provider, base64


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_upstream_error(gateway: Gateway, cell: tuple[str, str]) -> None:
    surface, provider = cell
    gateway.upstreams[provider].fail_next(400)
    status = SURFACES[surface](gateway.url, gateway.key).error_status(provider)
    assert status == 400
