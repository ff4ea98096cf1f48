"""Bedrock's Converse API mapped onto the fake Claude, and its answer mapped back.

The fake Bedrock serves Claude models, so a Converse request is rewritten as the Anthropic
Messages request Bedrock itself would send the model, answered by ``_anthropic_model``, and the
answer is written in Converse's shapes: ``output.message.content`` blocks (``text``, ``toolUse``,
``reasoningContent``), ``stopReason``, ``usage`` (``inputTokens``, ``outputTokens``,
``totalTokens``, ``cacheReadInputTokens``, ``cacheWriteInputTokens``) and ``metrics``. The stream
is Converse's event sequence: ``messageStart``, ``contentBlockStart`` (tool use only),
``contentBlockDelta``, ``contentBlockStop``, ``messageStop``, ``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

import orjson

from passerelle.testing._anthropic_model import Answer, InvalidMessagesRequest
from passerelle.testing._fake_common import split_fixed, split_words

_IMAGE_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
_DOCUMENT_FORMATS = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/plain"}
_ARGUMENT_FRAGMENT = 12


def to_messages_request(body: Mapping[str, object]) -> dict[str, object]:
    """The Anthropic Messages body for a Converse request (raises with Converse's messages)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidMessagesRequest("1 validation error detected: Value null at 'messages' failed")
    if messages and isinstance(messages[0], dict) and messages[0].get("role") != "user":
        raise InvalidMessagesRequest(
            "A conversation must start with a user message. Try again with a conversation that "
            "starts with a user message."
        )
    tool_config = body.get("toolConfig")
    converted: dict[str, object] = {"messages": [], "max_tokens": 4096}
    uses_tools = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            raise InvalidMessagesRequest(f"messages.{index}: a message needs a role and content")
        blocks: list[dict[str, object]] = []
        for block in message["content"]:
            if not isinstance(block, dict):
                raise InvalidMessagesRequest(f"messages.{index}: content blocks are objects")
            if "cachePoint" in block:
                if blocks:
                    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
                continue
            uses_tools = uses_tools or "toolUse" in block or "toolResult" in block
            blocks.append(_block(block))
        cast(list[object], converted["messages"]).append(
            {"role": message.get("role"), "content": blocks}
        )
    if uses_tools and not isinstance(tool_config, dict):
        raise InvalidMessagesRequest(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    system = _system(body.get("system"))
    if system:
        converted["system"] = system
    config = body.get("inferenceConfig")
    if isinstance(config, dict):
        if "maxTokens" in config:
            converted["max_tokens"] = config["maxTokens"]
        if "stopSequences" in config:
            converted["stop_sequences"] = config["stopSequences"]
    if isinstance(tool_config, dict):
        converted |= _tools(tool_config)
    extra = body.get("additionalModelRequestFields")
    if isinstance(extra, dict):
        converted |= {key: value for key, value in extra.items() if key == "thinking"}
    return converted


def response(answer: Answer, latency_ms: int) -> dict[str, object]:
    return {
        "output": {"message": {"role": "assistant", "content": _content(answer)}},
        "stopReason": answer.stop_reason,
        "usage": usage(answer),
        "metrics": {"latencyMs": latency_ms},
    }


def usage(answer: Answer) -> dict[str, int]:
    read = int(cast(int, answer.usage["cache_read_input_tokens"]))
    written = int(cast(int, answer.usage["cache_creation_input_tokens"]))
    return {
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": answer.input_tokens + answer.output_tokens + read + written,
        "cacheReadInputTokens": read,
        "cacheWriteInputTokens": written,
    }


def stream_events(
    answer: Answer, latency_ms: int, *, words_per_chunk: int
) -> Iterator[tuple[str, dict[str, object]]]:
    """``(event type, payload)`` pairs of a ConverseStream answer."""
    yield "messageStart", {"role": "assistant"}
    for index, block in enumerate(answer.content):
        kind = block["type"]
        deltas: list[dict[str, object]] = []
        if kind == "thinking":
            deltas = [
                {"reasoningContent": {"text": piece}}
                for piece in split_words(str(block["thinking"]), words_per_chunk)
            ]
            deltas.append({"reasoningContent": {"signature": block["signature"]}})
        elif kind == "text":
            deltas = [{"text": p} for p in split_words(str(block["text"]), words_per_chunk)]
        else:
            start = {"toolUse": {"toolUseId": block["id"], "name": block["name"]}}
            yield "contentBlockStart", {"contentBlockIndex": index, "start": start}
            arguments = orjson.dumps(block["input"]).decode()
            deltas = [
                {"toolUse": {"input": fragment}}
                for fragment in split_fixed(arguments, _ARGUMENT_FRAGMENT)
            ]
        for delta in deltas:
            yield "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
        yield "contentBlockStop", {"contentBlockIndex": index}
    yield "messageStop", {"stopReason": answer.stop_reason}
    yield "metadata", {"usage": usage(answer), "metrics": {"latencyMs": latency_ms}}


# -- helpers ---------------------------------------------------------------------------------


def _block(block: Mapping[str, object]) -> dict[str, object]:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if isinstance(image := block.get("image"), dict):
        fmt = str(image.get("format"))
        source = image.get("source")
        data = source.get("bytes") if isinstance(source, dict) else None
        if fmt not in _IMAGE_FORMATS or not isinstance(data, str):
            raise InvalidMessagesRequest(
                "The provided image must be png, jpeg, gif or webp, with its bytes in source."
            )
        media_type = _IMAGE_FORMATS[fmt]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if isinstance(document := block.get("document"), dict):
        source = document.get("source")
        data = source.get("bytes") if isinstance(source, dict) else ""
        media_type = _DOCUMENT_FORMATS.get(str(document.get("format")), "text/plain")
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if isinstance(use := block.get("toolUse"), dict):
        return {
            "type": "tool_use",
            "id": use.get("toolUseId"),
            "name": use.get("name"),
            "input": use.get("input", {}),
        }
    if isinstance(result := block.get("toolResult"), dict):
        parts = result.get("content")
        texts = []
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and "text" in part:
                texts.append(str(part["text"]))
            elif isinstance(part, dict) and "json" in part:
                texts.append(orjson.dumps(part["json"]).decode())
        converted: dict[str, object] = {
            "type": "tool_result",
            "tool_use_id": result.get("toolUseId"),
            "content": " ".join(texts),
        }
        if result.get("status") == "error":
            converted["is_error"] = True
        return converted
    if isinstance(reasoning := block.get("reasoningContent"), dict):
        text = reasoning.get("reasoningText")
        if isinstance(text, dict):
            return {
                "type": "thinking",
                "thinking": text.get("text"),
                "signature": text.get("signature"),
            }
        return {"type": "redacted_thinking", "data": reasoning.get("redactedContent")}
    raise InvalidMessagesRequest(f"Unsupported content block: {sorted(block)}")


def _system(system: object) -> list[dict[str, object]]:
    blocks: list[dict[str, object]] = []
    for item in system if isinstance(system, list) else []:
        if isinstance(item, dict) and "text" in item:
            blocks.append({"type": "text", "text": item["text"]})
        elif isinstance(item, dict) and "cachePoint" in item and blocks:
            blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return blocks


def _tools(config: Mapping[str, object]) -> dict[str, object]:
    tools: list[dict[str, object]] = []
    raw = config.get("tools")
    for item in raw if isinstance(raw, list) else []:
        spec = item.get("toolSpec") if isinstance(item, dict) else None
        if isinstance(spec, dict):
            schema = spec.get("inputSchema")
            tools.append(
                {
                    "name": spec.get("name"),
                    "description": spec.get("description", ""),
                    "input_schema": schema.get("json") if isinstance(schema, dict) else None,
                }
            )
        elif isinstance(item, dict) and "cachePoint" in item and tools:
            tools[-1] = {**tools[-1], "cache_control": {"type": "ephemeral"}}
    converted: dict[str, object] = {"tools": tools}
    choice = config.get("toolChoice")
    if isinstance(choice, dict):
        if "any" in choice:
            converted["tool_choice"] = {"type": "any"}
        elif isinstance(specific := choice.get("tool"), dict):
            converted["tool_choice"] = {"type": "tool", "name": specific.get("name")}
    return converted


def _content(answer: Answer) -> list[dict[str, object]]:
    content: list[dict[str, object]] = []
    for block in answer.content:
        if block["type"] == "thinking":
            reasoning = {"text": block["thinking"], "signature": block["signature"]}
            content.append({"reasoningContent": {"reasoningText": reasoning}})
        elif block["type"] == "text":
            content.append({"text": block["text"]})
        else:
            use = {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}
            content.append({"toolUse": use})
    return content
