"""The fake Claude: what it answers to an Anthropic Messages request, as plain data.

Three fakes serve the Messages format: the Anthropic API itself (``fake_anthropic``), Claude on
Vertex AI (``rawPredict`` in ``fake_gemini``) and Claude on Bedrock (``invoke`` in
``fake_bedrock``). They differ in paths, authentication and error shapes, not in what the model
says, so the request checks and the answer live here, free of HTTP.

The model is deterministic, like the fake OpenAI one:

* it calls a tool whenever custom tools are offered, ``tool_choice`` is not ``none`` and the last
  user turn is not a tool result (two tools when the prompt says "parallel"); arguments are a
  placeholder that satisfies the tool's ``input_schema``;
* after tool results it answers "This is a fake reply using the tool results: ...";
* otherwise it answers "This is a fake reply to: <the last user text>";
* with ``thinking`` enabled, a thinking block comes first; its ``signature`` is a hash of the
  thinking text, and a thinking block sent back with a different signature is refused, as the real
  API refuses a modified one;
* ``cache_control`` breakpoints are honoured: the first request with a given prefix writes it
  (``cache_creation_input_tokens``), the next ones read it (``cache_read_input_tokens``).

Token counts use the shared estimate (four characters a token; an image counts ``IMAGE_TOKENS``).
Checks mirror the API's own: required fields, alternating tool use and tool results, image media
types that match the bytes, ``budget_tokens`` below ``max_tokens``; unknown fields are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from passerelle.testing._fake_common import (
    estimate_tokens,
    pad_with_filler,
    placeholder,
    split_fixed,
    split_text,
    split_words,
    truncate_to_tokens,
)

IMAGE_TOKENS = 1600  # what the largest image costs Claude; every image counts this much here
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
THINKING_MIN_BUDGET = 1024
_ARGUMENT_FRAGMENT = 12
_SIGNATURE_TAG = b"passerelle-fake-thinking\x00"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


class InvalidMessagesRequest(Exception):
    """The request breaks one of the API's rules; ``message`` is what the API would say."""

    def __init__(self, message: str, status: int = 400, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


def well_formed_version(value: object, platform_value: str | None = None) -> bool:
    """An ``anthropic-version`` the fake accepts: a dated version, or the platform's own value
    (``vertex-2023-10-16`` on Vertex AI, ``bedrock-2023-05-31`` on Bedrock)."""
    if not isinstance(value, str):
        return False
    return value == platform_value or _VERSION.fullmatch(value) is not None


# -- prompt cache ----------------------------------------------------------------------------


class PromptCache:
    """Prefixes seen so far, so a repeated ``cache_control`` prefix is read instead of written."""

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 1024) -> None:
        self._entries: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    def hit(self, key: bytes) -> bool:
        """Whether ``key`` was cached; caches it either way (most recently used last)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        self._entries[key] = None
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return False


# -- parsed request and answer ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A checked request: what the answer depends on, with the prompt already measured."""

    body: Mapping[str, object]
    messages: list[dict[str, object]]
    max_tokens: int | None
    tools: list[dict[str, object]]
    tool_choice: dict[str, object]
    thinking_budget: int | None  # None: thinking disabled
    stop_sequences: tuple[str, ...]
    prompt_tokens: int
    cache_key: bytes | None  # the prefix up to the last cache_control breakpoint
    cache_tokens: int
    cache_ttl: str  # "5m" or "1h"
    image_count: int


@dataclass(slots=True)
class Answer:
    """What the fake model says: content blocks in their wire shape, and the accounting."""

    content: list[dict[str, object]]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, object]
    output_tokens: int = 0
    input_tokens: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def parse_request(body: Mapping[str, object], *, for_count: bool = False) -> MessagesRequest:
    """Check a Messages request as the API does; ``for_count`` is count_tokens (no max_tokens)."""
    messages = body.get("messages")
    if messages is None:
        raise InvalidMessagesRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidMessagesRequest("messages: Input should be a valid list")
    if not messages:
        raise InvalidMessagesRequest("messages: at least one message is required")
    max_tokens = body.get("max_tokens")
    if for_count:
        max_tokens = None
    elif max_tokens is None:
        raise InvalidMessagesRequest("max_tokens: Field required")
    elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidMessagesRequest("max_tokens: Input should be greater than or equal to 1")
    checked = [_check_message(index, message) for index, message in enumerate(messages)]
    _check_tool_pairs(checked)
    _check_signatures(checked)
    tools = _check_tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    thinking_budget = _thinking(body.get("thinking"), max_tokens)
    if thinking_budget is not None:
        if tool_choice["type"] in ("any", "tool"):
            raise InvalidMessagesRequest(
                "Thinking may not be enabled when tool_choice forces tool use."
            )
        _check_thinking_before_tool_use(checked)
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidMessagesRequest("stop_sequences: Input should be a list of non-empty strings")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidMessagesRequest("system: Input should be a valid string or list of blocks")
    segments = _segments(body.get("tools"), system, checked)
    prompt_tokens = sum(tokens for tokens, _, _ in segments)
    cache_key, cache_tokens, ttl = _cache_prefix(segments)
    images = sum(
        1
        for message in checked
        for block in _blocks(message.get("content"))
        if block.get("type") == "image"
    )
    return MessagesRequest(
        body=body,
        messages=checked,
        max_tokens=max_tokens,
        tools=tools,
        tool_choice=tool_choice,
        thinking_budget=thinking_budget,
        stop_sequences=tuple(stops),
        prompt_tokens=prompt_tokens,
        cache_key=cache_key,
        cache_tokens=cache_tokens,
        cache_ttl=ttl,
        image_count=images,
    )


def answer(
    request: MessagesRequest,
    cache: PromptCache,
    *,
    reply_words: int | None = None,
    service_tier: bool = True,
) -> Answer:
    """The fake model's reply to a checked request."""
    content: list[dict[str, object]] = []
    output = 0
    prompt = _prompt_text(request.messages)
    if request.thinking_budget is not None:
        thinking = f'The user wrote "{prompt[:60]}"; a fake model answers deterministically.'
        content.append({"type": "thinking", "thinking": thinking, "signature": sign(thinking)})
        output += estimate_tokens(len(thinking))
    stop_reason, stop_sequence = "end_turn", None
    last = request.messages[-1]
    after_tool = last.get("role") == "user" and any(
        block.get("type") == "tool_result" for block in _blocks(last.get("content"))
    )
    choice = request.tool_choice
    if request.tools and not after_tool and choice["type"] != "none":
        chosen = request.tools[:1]
        if choice["type"] == "tool":
            chosen = [tool for tool in request.tools if tool["name"] == choice.get("name")]
        elif (
            choice.get("disable_parallel_tool_use") is not True
            and len(request.tools) >= 2
            and "parallel" in prompt.lower()
        ):
            chosen = request.tools[:2]
        if choice["type"] == "auto":
            names = " and ".join(str(tool["name"]) for tool in chosen)
            preamble = f"I will call {names}."
            content.append({"type": "text", "text": preamble})
            output += estimate_tokens(len(preamble))
        for tool in chosen:
            arguments = placeholder(tool.get("input_schema") or {"type": "object"})
            block = {"type": "tool_use", "id": new_tool_use_id(), "name": tool["name"]}
            block["input"] = arguments if isinstance(arguments, dict) else {}
            content.append(block)
            output += estimate_tokens(len(str(tool["name"])) + len(orjson.dumps(block["input"])))
        stop_reason = "tool_use"
    else:
        if after_tool:
            results = [
                _result_text(block)
                for block in _blocks(last.get("content"))
                if block.get("type") == "tool_result"
            ]
            text = "This is a fake reply using the tool results: " + " | ".join(results)
        else:
            text = "This is a fake reply to: " + prompt[:60]
            if request.image_count:
                plural = "s" if request.image_count > 1 else ""
                text += f" (with {request.image_count} image{plural})"
        text = pad_with_filler(text, reply_words)
        for stop in request.stop_sequences:
            position = text.find(stop)
            if position >= 0:
                text, stop_reason, stop_sequence = text[:position], "stop_sequence", stop
                break
        budget = None if request.max_tokens is None else max(0, request.max_tokens - output)
        text, truncated = truncate_to_tokens(text, budget)
        if truncated:
            stop_reason, stop_sequence = "max_tokens", None
        content.append({"type": "text", "text": text})
        output += estimate_tokens(len(text))
    output = max(output, 1)
    read = written = 0
    if request.cache_key is not None:
        if cache.hit(request.cache_key):
            read = request.cache_tokens
        else:
            written = request.cache_tokens
    input_tokens = request.prompt_tokens - read - written
    usage: dict[str, object] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written if request.cache_ttl == "5m" else 0,
            "ephemeral_1h_input_tokens": written if request.cache_ttl == "1h" else 0,
        },
        "output_tokens": output,
    }
    if service_tier:
        usage["service_tier"] = "standard"
    return Answer(content, stop_reason, stop_sequence, usage, output, input_tokens)


def message(answer: Answer, model: str, message_id: str) -> dict[str, object]:
    """The non-streamed response body, fields in the order the API writes them."""
    return {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": answer.content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": answer.stop_sequence,
        "usage": answer.usage,
    }


def stream_events(
    answer: Answer, model: str, message_id: str, *, words_per_chunk: int = 3, chunk_chars: int = 0
) -> Iterator[tuple[str, dict[str, object]]]:
    """The stream's ``(event name, data)`` pairs, made lazily, in the API's order: message_start,
    then per block start / deltas / stop (with a ping after the first start), message_delta,
    message_stop."""
    start_usage = {**answer.usage, "output_tokens": 1}
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "model": model,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    for index, block in enumerate(answer.content):
        kind = block["type"]
        if kind == "text":
            opening: dict[str, object] = {"type": "text", "text": ""}
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in _deltas(block, words_per_chunk, chunk_chars):
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    usage = answer.usage
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        },
    )
    yield "message_stop", {"type": "message_stop", **answer.extra}


def sse(event: str, data: object) -> bytes:
    """One server-sent event as Anthropic writes it: an ``event:`` line, then ``data:``."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sign(thinking: str) -> str:
    """The signature of a thinking block: opaque to clients, checkable by the fake."""
    digest = hashlib.sha256(thinking.encode("utf-8")).digest()
    return base64.b64encode(_SIGNATURE_TAG + digest).decode()


def new_message_id(prefix: str = "msg_") -> str:
    return f"{prefix}fake{os.urandom(10).hex()}"


def new_tool_use_id() -> str:
    return f"toolu_fake{os.urandom(10).hex()}"


# -- checks ----------------------------------------------------------------------------------


def _check_message(index: int, raw: object) -> dict[str, object]:
    where = f"messages.{index}"
    if not isinstance(raw, dict):
        raise InvalidMessagesRequest(f"{where}: Input should be a valid dictionary")
    if raw.get("role") not in ("user", "assistant"):
        raise InvalidMessagesRequest(f"{where}.role: Input should be 'user' or 'assistant'")
    content = raw.get("content")
    if isinstance(content, str):
        return raw
    if not isinstance(content, list):
        raise InvalidMessagesRequest(f"{where}.content: Field required")
    for position, block in enumerate(content):
        here = f"{where}.content.{position}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            kind = block.get("type") if isinstance(block, dict) else None
            raise InvalidMessagesRequest(
                f"{here}.type: Input tag {kind!r} found using 'type' does not match any of the "
                "expected tags"
            )
        if block["type"] == "image":
            _check_image(here, block.get("source"))
        elif block["type"] == "text" and not isinstance(block.get("text"), str):
            raise InvalidMessagesRequest(f"{here}.text: Field required")
        elif block["type"] == "tool_use" and raw["role"] != "assistant":
            raise InvalidMessagesRequest(
                f"{here}: tool_use blocks may only appear in assistant turns"
            )
    return raw


def _check_image(where: str, source: object) -> None:
    if not isinstance(source, dict):
        raise InvalidMessagesRequest(f"{where}.source: Field required")
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str):
            raise InvalidMessagesRequest(f"{where}.source.url: Field required")
        return
    if source.get("type") != "base64":
        raise InvalidMessagesRequest(f"{where}.source.type: Input should be 'base64' or 'url'")
    media_type = source.get("media_type")
    if media_type not in IMAGE_MEDIA_TYPES:
        expected = ", ".join(repr(t) for t in IMAGE_MEDIA_TYPES)
        raise InvalidMessagesRequest(f"{where}.source.media_type: Input should be {expected}")
    data = source.get("data")
    try:
        raw = base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        raise InvalidMessagesRequest(f"{where}.source.data: the image data is not valid base64")
    if not _matches(raw, str(media_type)):
        raise InvalidMessagesRequest(
            f"{where}.source: Image does not match the provided media type {media_type}"
        )


def _matches(raw: bytes, media_type: str) -> bool:
    if media_type == "image/webp":
        return raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    return raw.startswith(_MAGIC[media_type])


def _check_tool_pairs(messages: Sequence[dict[str, object]]) -> None:
    """Every tool_use is answered by a tool_result in the next turn, and no result dangles."""
    for index, current in enumerate(messages):
        results = [
            str(block.get("tool_use_id"))
            for block in _blocks(current.get("content"))
            if block.get("type") == "tool_result"
        ]
        previous = messages[index - 1] if index else None
        asked = (
            [
                str(block.get("id"))
                for block in _blocks(previous.get("content"))
                if block.get("type") == "tool_use"
            ]
            if previous is not None and previous.get("role") == "assistant"
            else []
        )
        unexpected = [tool_id for tool_id in results if tool_id not in asked]
        if unexpected:
            raise InvalidMessagesRequest(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {', '.join(unexpected)}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
        if current.get("role") == "assistant":
            asked_here = [
                str(block.get("id"))
                for block in _blocks(current.get("content"))
                if block.get("type") == "tool_use"
            ]
            following = messages[index + 1] if index + 1 < len(messages) else None
            answered = {
                str(block.get("tool_use_id"))
                for block in _blocks(following.get("content") if following else None)
                if block.get("type") == "tool_result"
            }
            missing = [tool_id for tool_id in asked_here if tool_id not in answered]
            if missing and following is not None:
                raise InvalidMessagesRequest(
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )


def _check_signatures(messages: Sequence[dict[str, object]]) -> None:
    for index, current in enumerate(messages):
        if current.get("role") != "assistant":
            continue
        for position, block in enumerate(_blocks(current.get("content"))):
            if block.get("type") != "thinking":
                continue
            thinking = block.get("thinking")
            if not isinstance(thinking, str) or block.get("signature") != sign(thinking):
                raise InvalidMessagesRequest(
                    f"messages.{index}.content.{position}: Invalid `signature` in `thinking` block"
                )


def _check_thinking_before_tool_use(messages: Sequence[dict[str, object]]) -> None:
    """With thinking on, the assistant turn whose tool use is being answered starts thinking."""
    last = messages[-1]
    if len(messages) < 2 or last.get("role") != "user":
        return
    if not any(block.get("type") == "tool_result" for block in _blocks(last.get("content"))):
        return
    index = len(messages) - 2
    blocks = _blocks(messages[index].get("content"))
    first = blocks[0].get("type") if blocks else None
    if first not in ("thinking", "redacted_thinking"):
        raise InvalidMessagesRequest(
            f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
            f"found `{first}`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block (preceding the lastmost set of `tool_use` and `tool_result` "
            "blocks). To avoid this requirement, disable `thinking`."
        )


def _check_tools(raw: object) -> list[dict[str, object]]:
    """The custom tools offered (server tools such as web search are accepted and ignored)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidMessagesRequest("tools: Input should be a valid list")
    tools = []
    for index, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidMessagesRequest(f"tools.{index}.name: Field required")
        if tool.get("type") not in (None, "custom"):
            continue
        if not isinstance(tool.get("input_schema"), dict):
            raise InvalidMessagesRequest(f"tools.{index}.custom.input_schema: Field required")
        tools.append(tool)
    return tools


def _tool_choice(raw: object, tools: Sequence[dict[str, object]]) -> dict[str, object]:
    if raw is None:
        return {"type": "auto"}
    if not isinstance(raw, dict) or raw.get("type") not in ("auto", "any", "tool", "none"):
        raise InvalidMessagesRequest(
            "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        )
    if raw["type"] == "tool" and not any(tool["name"] == raw.get("name") for tool in tools):
        raise InvalidMessagesRequest(f"tool_choice: Tool '{raw.get('name')}' not found in tools")
    return raw


def _thinking(raw: object, max_tokens: int | None) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("enabled", "disabled", "adaptive"):
        raise InvalidMessagesRequest(
            "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"
        )
    if raw["type"] == "disabled":
        return None
    if raw["type"] == "adaptive":
        return max_tokens or THINKING_MIN_BUDGET
    budget = raw.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise InvalidMessagesRequest("thinking.enabled.budget_tokens: Field required")
    if budget < THINKING_MIN_BUDGET:
        raise InvalidMessagesRequest(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{THINKING_MIN_BUDGET}"
        )
    if max_tokens is not None and max_tokens <= budget:
        raise InvalidMessagesRequest(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )
    return budget


# -- measuring -------------------------------------------------------------------------------


def _blocks(content: object) -> list[dict[str, object]]:
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return []


def _segments(
    tools: object, system: object, messages: Sequence[dict[str, object]]
) -> list[tuple[int, bytes, object]]:
    """The prompt in cache order (tools, system, messages), one entry per block: its tokens, its
    bytes (for the cache key) and its ``cache_control``."""
    items: list[object] = []
    items.extend(tools if isinstance(tools, list) else [])
    items.extend(_blocks(system) if system is not None else [])
    for current in messages:
        items.extend(_blocks(current.get("content")))
    segments = []
    for item in items:
        raw = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        control = item.get("cache_control") if isinstance(item, dict) else None
        segments.append((_tokens(item), raw, control))
    return segments


def _tokens(item: object) -> int:
    if not isinstance(item, dict):
        return 0
    kind = item.get("type")
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "text":
        return estimate_tokens(len(str(item.get("text", ""))))
    if kind == "thinking":
        return estimate_tokens(len(str(item.get("thinking", ""))))
    if kind == "tool_use":
        return estimate_tokens(
            len(str(item.get("name", ""))) + len(orjson.dumps(item.get("input")))
        )
    if kind == "tool_result":
        return estimate_tokens(len(_result_text(item)))
    if "input_schema" in item or "name" in item:  # a tool definition
        described = str(item.get("description", ""))
        return estimate_tokens(
            len(str(item.get("name")))
            + len(described)
            + len(orjson.dumps(item.get("input_schema")))
        )
    return estimate_tokens(len(orjson.dumps(item)))


def _cache_prefix(segments: Sequence[tuple[int, bytes, object]]) -> tuple[bytes | None, int, str]:
    last = None
    for index, (_, _, control) in enumerate(segments):
        if isinstance(control, dict):
            last = index
    if last is None:
        return None, 0, "5m"
    digest = hashlib.sha256()
    for _, raw, _ in segments[: last + 1]:
        digest.update(raw)
    control = segments[last][2]
    ttl = control.get("ttl") if isinstance(control, dict) else None
    tokens = sum(tokens for tokens, _, _ in segments[: last + 1])
    return digest.digest(), tokens, "1h" if ttl == "1h" else "5m"


def _prompt_text(messages: Sequence[dict[str, object]]) -> str:
    """The text of the last user turn (its text blocks)."""
    for current in reversed(messages):
        if current.get("role") != "user":
            continue
        texts = [
            str(block["text"])
            for block in _blocks(current.get("content"))
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        if texts:
            return " ".join(texts)
    return ""


def _result_text(block: Mapping[str, object]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return " ".join(
        str(part["text"]) for part in _blocks(content) if isinstance(part.get("text"), str)
    )


def _deltas(
    block: Mapping[str, object], words_per_chunk: int, chunk_chars: int = 0
) -> Iterator[dict[str, object]]:
    kind = block["type"]
    if kind == "text":
        text = str(block["text"])
        for piece in split_text(text, words_per_chunk, chunk_chars) if text else []:
            yield {"type": "text_delta", "text": piece}
    elif kind == "thinking":
        for piece in split_words(str(block["thinking"]), words_per_chunk):
            yield {"type": "thinking_delta", "thinking": piece}
        yield {"type": "signature_delta", "signature": block["signature"]}
    else:
        yield {"type": "input_json_delta", "partial_json": ""}
        for fragment in split_fixed(orjson.dumps(block["input"]).decode(), _ARGUMENT_FRAGMENT):
            yield {"type": "input_json_delta", "partial_json": fragment}
