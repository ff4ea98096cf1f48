"""The settings each AI tool needs to go through Passerelle, defined once.

The README's "Connect your tools" section shows them (rendered with ``README_URL``, ``README_KEY``
and its example aliases) and the client tests run the real tools with them (rendered with the test
gateway's address, a fresh key and the alias under test). ``test_readme.py`` checks that the README
holds every rendered snippet word for word, so the two cannot drift apart.

Each function takes the gateway's base URL (scheme, host and port, no trailing slash), the key
and model aliases, and returns what the tool reads: environment variables, the text of a
configuration file, command-line arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

README_URL = "http://gateway:4000"
README_KEY = "psk-…"

# The name under which Codex finds the key in its environment (``env_key`` below).
CODEX_KEY_VARIABLE = "PASSERELLE_API_KEY"


def claude_code_env(
    url: str, key: str, model: str, small_model: str, context_window: int
) -> dict[str, str]:
    """Claude Code speaks the Anthropic surface.

    ``ANTHROPIC_AUTH_TOKEN`` travels as ``Authorization: Bearer`` and needs no approval, where
    ``ANTHROPIC_API_KEY`` (``x-api-key``) is accepted too but asked about once interactively.
    Every model setting names an alias: a model left to its default would be asked for by an
    Anthropic name the gateway does not know. ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` gives the window
    of the model behind the alias, which Claude Code cannot know (it assumes 1M and says so).
    """
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(context_window),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }


def codex_config(url: str, model: str) -> str:
    """``~/.codex/config.toml`` (or ``$CODEX_HOME/config.toml``): a provider on the Responses
    surface; the key is read from the variable named by ``env_key``."""
    return f"""\
model = "{model}"
model_provider = "passerelle"
check_for_update_on_startup = false

[model_providers.passerelle]
name = "Passerelle"
base_url = "{url}/v1"
env_key = "{CODEX_KEY_VARIABLE}"
wire_api = "responses"

[analytics]
enabled = false
"""


def codex_env(key: str) -> dict[str, str]:
    return {CODEX_KEY_VARIABLE: key}


def gemini_env(url: str, key: str, model: str) -> dict[str, str]:
    """Gemini CLI speaks the Gemini surface and sends the key as ``x-goog-api-key``. It refuses
    a plain-HTTP base URL unless the host is ``localhost``, ``127.0.0.1`` or ``[::1]``."""
    return {
        "GOOGLE_GEMINI_BASE_URL": url,
        "GEMINI_API_KEY": key,
        "GEMINI_MODEL": model,
    }


def gemini_settings() -> dict[str, object]:
    """``~/.gemini/settings.json``. ``selectedType`` is required: with a base URL set and no
    selected type, Gemini CLI picks its own "gateway" authentication, which its non-interactive
    mode then rejects ("Invalid auth method selected.")."""
    return {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    }


def gemini_settings_json() -> str:
    return json.dumps(gemini_settings(), indent=2) + "\n"


def aider_openai_env(url: str, key: str) -> dict[str, str]:
    """aider (through LiteLLM) on the OpenAI Chat surface: models are ``openai/<alias>``."""
    return {"OPENAI_API_BASE": f"{url}/v1", "OPENAI_API_KEY": key}


def aider_anthropic_env(url: str, key: str) -> dict[str, str]:
    """aider on the Anthropic surface: models are ``anthropic/<alias>``. aider has no option for
    this base URL; LiteLLM reads ``ANTHROPIC_API_BASE``."""
    return {"ANTHROPIC_API_BASE": url, "ANTHROPIC_API_KEY": key}


def aider_args(model: str) -> list[str]:
    """``model`` is ``openai/<alias>`` or ``anthropic/<alias>``. The metadata file tells aider
    the window of each alias; without it aider downloads LiteLLM's model list from the internet
    and warns that the model is unknown."""
    return [
        "--model",
        model,
        "--model-metadata-file",
        ".aider.model.metadata.json",
        "--analytics-disable",
        "--no-check-update",
    ]


def aider_model_metadata(windows: Mapping[str, int]) -> str:
    """``.aider.model.metadata.json``: each model's context window; costs are zero because the
    gateway accounts them."""
    metadata = {
        model: {
            "max_input_tokens": window,
            "max_output_tokens": 8192,
            "input_cost_per_token": 0,
            "output_cost_per_token": 0,
            "litellm_provider": model.split("/", 1)[0],
            "mode": "chat",
        }
        for model, window in windows.items()
    }
    return json.dumps(metadata, indent=2) + "\n"


def shell_exports(env: Mapping[str, str]) -> str:
    """Environment variables as the README shows them: one ``export`` a line."""
    return "".join(f"export {name}={value}\n" for name, value in env.items())
