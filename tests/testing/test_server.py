"""serve_in_thread starts any fake upstream, by app or by provider name."""

from __future__ import annotations

import httpx
import pytest

from passerelle.testing import fake_anthropic, fake_gemini
from passerelle.testing.server import FAKES, create_fake, serve_in_thread


@pytest.mark.parametrize("provider", sorted(FAKES))
def test_every_fake_can_be_served_by_name(provider: str) -> None:
    with serve_in_thread(provider) as url:
        faults = httpx.get(f"{url}/_fake/faults")
        assert faults.status_code == 200 and faults.json() == {"faults": []}
        assert httpx.get(f"{url}/_fake/requests").json() == {"requests": []}


def test_settings_are_passed_to_the_named_fake() -> None:
    settings = fake_anthropic.FakeSettings(api_key="right", models=("claude-x",))
    with serve_in_thread("anthropic", settings=settings) as url:
        listed = httpx.get(f"{url}/v1/models", headers={"x-api-key": "right"}).json()
        refused = httpx.get(f"{url}/v1/models", headers={"x-api-key": "wrong"})
    assert [model["id"] for model in listed["data"]] == ["claude-x"]
    assert refused.status_code == 401


def test_mistakes_are_reported() -> None:
    with pytest.raises(ValueError, match="no fake upstream named 'mistral'"):
        create_fake("mistral")
    with pytest.raises(TypeError, match="FakeSettings"):
        create_fake("anthropic", fake_gemini.FakeSettings())
    app = create_fake("gemini")
    with (
        pytest.raises(TypeError, match="only for a fake named"),
        serve_in_thread(app, settings=fake_gemini.FakeSettings()),
    ):
        pass  # pragma: no cover
