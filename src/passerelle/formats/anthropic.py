"""Anthropic Messages API ⇄ canonical.

Anthropic is the richest of the four formats for what agents need (thinking with signatures,
prompt-cache breakpoints, tool results with images), so most of the canonical model maps one to
one. What it lacks: seeds, penalties, ``json_object`` mode and request metadata beyond a user id.
Its streams allow one open content block at a time, numbered in order; the stream encoder runs
canonical events through a :class:`~passerelle.core.stream.PartSequencer` to keep that promise
whatever the source interleaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from passerelle.core.canonical import (
    CacheControl,
    DocumentPart,
    ErrorInfo,
    ImagePart,
    Media,
    Message,
    Part,
    ReasoningConfig,
    ReasoningPart,
    Request,
    Response,
    ResponseFormat,
    ResponseFormatKind,
    ResultContent,
    Role,
    Sampling,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    ToolResultPart,
    Usage,
    Vendor,
    budget_for_effort,
    error_type_for_status,
    status_for_error_type,
)
from passerelle.core.opaque import outgoing_token, received_state
from passerelle.core.translation import LossLog, Translated
from passerelle.formats._common import (
    ERROR_NAMES,
    JSON,
    arr,
    as_obj,
    b64_to_text,
    count,
    error_type_named,
    invalid,
    json_text,
    obj,
    opt_bool,
    opt_float,
    opt_int,
    opt_str,
    parse_json_object,
    req,
    str_list,
    string,
    text_of,
    text_to_b64,
)

VENDOR = Vendor.ANTHROPIC
DEFAULT_MAX_TOKENS = 8192
"""``max_tokens`` is required by Anthropic; used when the source format left it unset."""
MIN_THINKING_BUDGET = 1024

STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "tool_use": StopReason.TOOL_USE,
    "pause_turn": StopReason.PAUSE_TURN,
    "refusal": StopReason.REFUSAL,
    "model_context_window_exceeded": StopReason.CONTEXT_WINDOW,
}
WIRE_STOP_REASONS = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
    StopReason.PAUSE_TURN: "pause_turn",
    StopReason.REFUSAL: "refusal",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.CONTEXT_WINDOW: "model_context_window_exceeded",
    StopReason.ERROR: "end_turn",
}

# Request fields that have no canonical meaning; anything else unknown is reported by its name.
_KNOWN_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "output_config",
    "cache_control",
}


# -- requests: wire → canonical -----------------------------------------------------------------


def decode_request(body: Mapping[str, Any]) -> Translated[Request]:
    """A Messages API request body as a canonical request."""
    losses = LossLog()
    body = obj(body, "body")
    for key in body:
        if key not in _KNOWN_FIELDS:
            losses.add(f"anthropic.{key}", key)
    model = string(req(body, "model", ""), "model")
    max_tokens = opt_int(req(body, "max_tokens", ""), "max_tokens")
    messages = [
        _decode_message(item, f"messages[{i}]", losses)
        for i, item in enumerate(arr(req(body, "messages", ""), "messages"))
    ]
    top_cache = _cache(body.get("cache_control"), "cache_control")
    if top_cache is not None and messages and messages[-1].parts:
        last = messages[-1]
        tail = last.parts[-1]
        if not isinstance(tail, ReasoningPart) and tail.cache is None:
            messages[-1] = replace(last, parts=(*last.parts[:-1], replace(tail, cache=top_cache)))
    tools = _decode_tools(body.get("tools"), losses)
    tool_choice, parallel = _decode_tool_choice(body.get("tool_choice"))
    metadata = obj(body.get("metadata") or {}, "metadata")
    for key in metadata:
        if key != "user_id":
            losses.add(f"anthropic.metadata.{key}", f"metadata.{key}")
    output_config = obj(body.get("output_config") or {}, "output_config")
    request = Request(
        model=model,
        messages=tuple(messages),
        system=_decode_system(body.get("system")),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        sampling=Sampling(
            max_tokens=max_tokens,
            temperature=opt_float(body.get("temperature"), "temperature"),
            top_p=opt_float(body.get("top_p"), "top_p"),
            top_k=opt_int(body.get("top_k"), "top_k"),
            stop=str_list(body.get("stop_sequences"), "stop_sequences"),
        ),
        response_format=_decode_output_format(output_config.get("format")),
        reasoning=_decode_thinking(body.get("thinking"), output_config.get("effort")),
        stream=bool(opt_bool(body.get("stream"), "stream")),
        user=opt_str(metadata.get("user_id"), "metadata.user_id"),
    )
    return Translated(request, losses.losses())


def _cache(value: Any, path: str) -> CacheControl | None:
    if value is None:
        return None
    value = obj(value, path)
    return CacheControl(ttl=opt_str(value.get("ttl"), f"{path}.ttl"))


def _decode_system(value: Any) -> tuple[TextPart, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextPart(value),) if value else ()
    parts = []
    for i, block in enumerate(arr(value, "system")):
        path = f"system[{i}]"
        block = obj(block, path)
        if block.get("type") != "text":
            raise invalid(f"{path}.type", "must be 'text'")
        parts.append(
            TextPart(
                string(req(block, "text", path), f"{path}.text"),
                cache=_cache(block.get("cache_control"), f"{path}.cache_control"),
            )
        )
    return tuple(parts)


def _decode_message(value: Any, path: str, losses: LossLog) -> Message:
    value = obj(value, path)
    role = req(value, "role", path)
    # Claude Code puts instructions mid-conversation as role "system"; the canonical model has
    # a place for them, and each encoder puts them where its format can carry them.
    if role not in ("user", "assistant", "system"):
        raise invalid(f"{path}.role", "must be 'user', 'assistant' or 'system'")
    content = req(value, "content", path)
    if isinstance(content, str):
        return Message(Role(role), (TextPart(content),))
    parts: list[Part] = []
    for j, block in enumerate(arr(content, f"{path}.content")):
        part = _decode_block(block, f"{path}.content[{j}]", losses)
        if part is not None:
            parts.append(part)
    return Message(Role(role), tuple(parts))


def _decode_block(value: Any, path: str, losses: LossLog) -> Part | None:
    block = obj(value, path)
    kind = req(block, "type", path)
    cache = _cache(block.get("cache_control"), f"{path}.cache_control")
    if kind == "text":
        if block.get("citations"):
            losses.add("anthropic.citations", f"{path}.citations")
        return TextPart(string(req(block, "text", path), f"{path}.text"), cache=cache)
    if kind == "image":
        media = _decode_source(req(block, "source", path), f"{path}.source", image=True)
        return ImagePart(media, cache=cache)
    if kind == "document":
        source = obj(req(block, "source", path), f"{path}.source")
        if source.get("type") == "content":
            media = _content_document(source, f"{path}.source", losses)
        else:
            media = _decode_source(source, f"{path}.source", image=False)
        return DocumentPart(media, title=opt_str(block.get("title"), f"{path}.title"), cache=cache)
    if kind == "tool_use":
        arguments = obj(req(block, "input", path), f"{path}.input")
        return ToolCallPart(
            id=string(req(block, "id", path), f"{path}.id"),
            name=string(req(block, "name", path), f"{path}.name"),
            arguments=json_text(arguments),
            cache=cache,
        )
    if kind == "tool_result":
        return _decode_tool_result(block, path, cache, losses)
    if kind == "thinking":
        state = received_state(
            VENDOR, signature=opt_str(block.get("signature"), f"{path}.signature")
        )
        return replace(state, text=string(req(block, "thinking", path), f"{path}.thinking"))
    if kind == "redacted_thinking":
        return received_state(VENDOR, encrypted=string(req(block, "data", path), f"{path}.data"))
    losses.add(f"anthropic.{kind}", path)
    return None


def _decode_source(value: Any, path: str, *, image: bool) -> Media:
    source = obj(value, path)
    kind = req(source, "type", path)
    if kind == "base64":
        return Media(
            media_type=string(req(source, "media_type", path), f"{path}.media_type"),
            data=string(req(source, "data", path), f"{path}.data"),
        )
    if kind == "url":
        return Media(
            media_type=None if image else "application/pdf",
            url=string(req(source, "url", path), f"{path}.url"),
        )
    if kind == "file":
        return Media(file_id=string(req(source, "file_id", path), f"{path}.file_id"))
    if kind == "text" and not image:
        text = string(req(source, "data", path), f"{path}.data")
        return Media(media_type="text/plain", data=text_to_b64(text))
    raise invalid(f"{path}.type", "must be 'base64', 'url', 'file', 'text' or 'content'")


def _content_document(source: Mapping[str, Any], path: str, losses: LossLog) -> Media:
    """A document given as content blocks, kept as plain text (its images are dropped)."""
    content = req(source, "content", path)
    if isinstance(content, str):
        return Media(media_type="text/plain", data=text_to_b64(content))
    texts = []
    for i, item in enumerate(arr(content, f"{path}.content")):
        block = obj(item, f"{path}.content[{i}]")
        if block.get("type") == "text":
            texts.append(string(req(block, "text", f"{path}.content[{i}]"), f"{path}.content"))
        else:
            losses.add("anthropic.document.content", f"{path}.content[{i}]")
    return Media(media_type="text/plain", data=text_to_b64("\n\n".join(texts)))


def _decode_tool_result(
    block: Mapping[str, Any], path: str, cache: CacheControl | None, losses: LossLog
) -> ToolResultPart:
    content = block.get("content")
    parts: list[ResultContent] = []
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif content is not None:
        for k, item in enumerate(arr(content, f"{path}.content")):
            part = _decode_block(item, f"{path}.content[{k}]", losses)
            if isinstance(part, TextPart | ImagePart | DocumentPart):
                parts.append(part)
            elif part is not None:
                raise invalid(f"{path}.content[{k}].type", "must be 'text', 'image' or 'document'")
    return ToolResultPart(
        tool_call_id=string(req(block, "tool_use_id", path), f"{path}.tool_use_id"),
        content=tuple(parts),
        is_error=bool(opt_bool(block.get("is_error"), f"{path}.is_error")),
        cache=cache,
    )


def _decode_tools(value: Any, losses: LossLog) -> tuple[ToolDefinition, ...]:
    if value is None:
        return ()
    tools = []
    for i, item in enumerate(arr(value, "tools")):
        path = f"tools[{i}]"
        tool = obj(item, path)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            losses.add(f"anthropic.tools.{kind}", path)
            continue
        tools.append(
            ToolDefinition(
                name=string(req(tool, "name", path), f"{path}.name"),
                description=opt_str(tool.get("description"), f"{path}.description"),
                parameters=obj(req(tool, "input_schema", path), f"{path}.input_schema"),
                strict=opt_bool(tool.get("strict"), f"{path}.strict"),
                cache=_cache(tool.get("cache_control"), f"{path}.cache_control"),
            )
        )
    return tuple(tools)


def _decode_tool_choice(value: Any) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = obj(value, "tool_choice")
    kind = req(choice, "type", "tool_choice")
    disable = opt_bool(
        choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use"
    )
    parallel = None if disable is None else not disable
    if kind == "auto":
        return ToolChoice(ToolChoiceMode.AUTO), parallel
    if kind == "any":
        return ToolChoice(ToolChoiceMode.REQUIRED), parallel
    if kind == "none":
        return ToolChoice(ToolChoiceMode.NONE), parallel
    if kind == "tool":
        name = string(req(choice, "name", "tool_choice"), "tool_choice.name")
        return ToolChoice(ToolChoiceMode.TOOL, name), parallel
    raise invalid("tool_choice.type", "must be 'auto', 'any', 'tool' or 'none'")


def _decode_thinking(value: Any, effort: Any) -> ReasoningConfig | None:
    effort = opt_str(effort, "output_config.effort")
    if value is None:
        return ReasoningConfig(effort=effort) if effort else None
    thinking = obj(value, "thinking")
    kind = req(thinking, "type", "thinking")
    display = thinking.get("display")
    summary = False if display == "omitted" else None
    if kind == "enabled":
        budget = opt_int(req(thinking, "budget_tokens", "thinking"), "thinking.budget_tokens")
        return ReasoningConfig(effort=effort, budget_tokens=budget, summary=summary)
    if kind == "disabled":
        return ReasoningConfig(effort="none")
    if kind == "adaptive":
        return ReasoningConfig(effort=effort, summary=summary)
    raise invalid("thinking.type", "must be 'enabled', 'adaptive' or 'disabled'")


def _decode_output_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    fmt = obj(value, "output_config.format")
    if fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type", "must be 'json_schema'")
    schema = obj(req(fmt, "schema", "output_config.format"), "output_config.format.schema")
    return ResponseFormat(ResponseFormatKind.JSON_SCHEMA, schema=schema)


# -- requests: canonical → wire -----------------------------------------------------------------


def claude_sampling(
    sampling: Sampling, thinking_on: bool, losses: LossLog
) -> tuple[float | None, float | None]:
    """Temperature and top_p as Claude accepts them, wherever its body goes (Anthropic's API,
    Bedrock Converse): temperature at most 1 and none while thinking, top_p at least 0.95 while
    thinking. What does not fit is dropped and recorded."""
    temperature: float | None = None
    top_p: float | None = None
    if sampling.temperature is not None:
        if thinking_on:
            losses.add("temperature", "temperature")
        else:
            if sampling.temperature > 1.0:
                losses.add("temperature", "temperature")
            temperature = min(sampling.temperature, 1.0)
    if sampling.top_p is not None:
        if thinking_on and sampling.top_p < 0.95:
            losses.add("top_p", "top_p")
        else:
            top_p = sampling.top_p
    return temperature, top_p


def encode_request(
    request: Request, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> Translated[JSON]:
    """A canonical request as a Messages API body for an Anthropic upstream."""
    losses = LossLog()
    body: JSON = {"model": request.model}
    sampling = request.sampling
    max_tokens = sampling.max_tokens if sampling.max_tokens is not None else default_max_tokens
    body["max_tokens"] = max_tokens
    system = [_encode_text(part) for part in request.system]
    body["messages"] = _encode_messages(request.messages, system, losses)
    if system:
        body["system"] = system
    thinking = _encode_thinking(request.reasoning, max_tokens, losses)
    if thinking is not None and thinking["type"] != "disabled" and _unsigned_tool_turn(body):
        # Anthropic requires the tool-calling turn being continued to open with its own
        # thinking; history from another vendor has none, so this request cannot think.
        losses.add("reasoning", "reasoning")
        thinking = None
    if thinking is not None:
        body["thinking"] = thinking
    thinking_on = thinking is not None and thinking["type"] != "disabled"
    temperature, top_p = claude_sampling(sampling, thinking_on, losses)
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    if sampling.top_k is not None:
        if thinking_on:
            losses.add("top_k", "top_k")
        else:
            body["top_k"] = sampling.top_k
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)
    for name in ("seed", "presence_penalty", "frequency_penalty"):
        if getattr(sampling, name) is not None:
            losses.add(name, name)
    if request.tools:
        body["tools"] = [_encode_tool(tool) for tool in request.tools]
    tool_choice = _encode_tool_choice(request.tool_choice, request.parallel_tool_calls)
    if tool_choice is not None and (request.tools or tool_choice["type"] == "none"):
        body["tool_choice"] = tool_choice
    output_format = request.response_format
    if output_format is not None:
        if (
            output_format.kind is ResponseFormatKind.JSON_SCHEMA
            and output_format.schema is not None
        ):
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": dict(output_format.schema)}
            }
        elif output_format.kind is ResponseFormatKind.JSON_OBJECT:
            losses.add("response_format.json_object", "response_format")
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.metadata:
        losses.add("metadata", "metadata")
    if request.stream:
        body["stream"] = True
    return Translated(body, losses.losses())


def _unsigned_tool_turn(body: JSON) -> bool:
    """Whether the last assistant turn calls tools without opening with a thinking block."""
    for message in reversed(body["messages"]):
        if message["role"] == "assistant":
            blocks = message["content"]
            calls = any(block["type"] == "tool_use" for block in blocks)
            return calls and blocks[0]["type"] not in ("thinking", "redacted_thinking")
    return False


def _encode_thinking(
    reasoning: ReasoningConfig | None, max_tokens: int, losses: LossLog
) -> JSON | None:
    if reasoning is None:
        return None
    if reasoning.disabled:
        return {"type": "disabled"}
    budget = reasoning.budget_tokens
    if budget is None and reasoning.effort is None:
        return {"type": "adaptive"}
    if budget is None:
        budget = budget_for_effort(reasoning.effort or "medium")
    budget = max(budget, MIN_THINKING_BUDGET)
    if budget >= max_tokens:
        budget = max_tokens - 1
    if budget < MIN_THINKING_BUDGET:
        losses.add("reasoning", "reasoning")
        return None
    thinking: JSON = {"type": "enabled", "budget_tokens": budget}
    if reasoning.summary is False:
        thinking["display"] = "omitted"
    return thinking


def _with_cache(block: JSON, cache: CacheControl | None) -> JSON:
    if cache is not None:
        block["cache_control"] = {"type": "ephemeral"}
        if cache.ttl is not None:
            block["cache_control"]["ttl"] = cache.ttl
    return block


def _encode_text(part: TextPart) -> JSON:
    return _with_cache({"type": "text", "text": part.text}, part.cache)


def _encode_messages(
    messages: tuple[Message, ...], system: list[JSON], losses: LossLog
) -> list[JSON]:
    out: list[JSON] = []
    for i, message in enumerate(messages):
        if message.role is Role.SYSTEM:
            losses.add("system_position", f"messages[{i}]")
            system.extend(_encode_text(p) for p in message.parts if isinstance(p, TextPart))
            continue
        blocks: list[JSON] = []
        for j, part in enumerate(message.parts):
            block = _encode_part(part, f"messages[{i}].parts[{j}]", losses)
            if block is not None:
                blocks.append(block)
        if not blocks:
            continue
        role = message.role.value
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        if turn["role"] == "user":
            # Anthropic wants a turn's tool results before anything else the user says.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return out


def _encode_part(part: Part, where: str, losses: LossLog) -> JSON | None:
    if isinstance(part, TextPart):
        # Anthropic refuses empty text blocks; other formats send them beside tool calls.
        return _encode_text(part) if part.text else None
    if isinstance(part, ImagePart | DocumentPart):
        return _encode_media(part, where, losses)
    if isinstance(part, ToolCallPart):
        arguments = parse_json_object(part.arguments)
        if arguments is None:
            losses.add("tool_arguments", where)
            arguments = {}
        block: JSON = {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
        return _with_cache(block, part.cache)
    if isinstance(part, ToolResultPart):
        content = []
        for k, item in enumerate(part.content):
            encoded = _encode_part(item, f"{where}.content[{k}]", losses)
            if encoded is not None:
                content.append(encoded)
        result: JSON = {"type": "tool_result", "tool_use_id": part.tool_call_id, "content": content}
        if part.is_error:
            result["is_error"] = True
        return _with_cache(result, part.cache)
    return _encode_reasoning(part, where, losses)


def _encode_reasoning(part: ReasoningPart, where: str, losses: LossLog) -> JSON | None:
    if part.origin is VENDOR and part.signature is not None:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if part.origin is VENDOR and part.encrypted is not None:
        return {"type": "redacted_thinking", "data": part.encrypted}
    # Anthropic rejects thinking it did not sign; another vendor's reasoning cannot be replayed.
    if part.text or part.opaque:
        losses.add(_reasoning_loss(part), where)
    return None


def _reasoning_loss(part: ReasoningPart) -> str:
    if part.origin is Vendor.GEMINI:
        return "gemini.thought"
    if part.origin is Vendor.OPENAI:
        return "openai.reasoning"
    return "anthropic.thinking"


def _encode_media(part: ImagePart | DocumentPart, where: str, losses: LossLog) -> JSON | None:
    media = part.media
    source: JSON
    if media.file_id is not None:
        source = {"type": "file", "file_id": media.file_id}
    elif media.url is not None:
        source = {"type": "url", "url": media.url}
    elif isinstance(part, DocumentPart) and media.media_type == "text/plain":
        text = b64_to_text(media.data or "")
        if text is None:
            losses.add("document", where)
            return None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        source = {"type": "base64", "media_type": media.media_type, "data": media.data}
    if isinstance(part, ImagePart):
        if part.detail is not None:
            losses.add("openai.image_detail", where)
        return _with_cache({"type": "image", "source": source}, part.cache)
    if source["type"] == "base64" and media.media_type != "application/pdf":
        losses.add("document", where)
        return None
    block: JSON = {"type": "document", "source": source}
    if part.title is not None:
        block["title"] = part.title
    return _with_cache(block, part.cache)


def _encode_tool(tool: ToolDefinition) -> JSON:
    out: JSON = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = dict(tool.parameters)
    if tool.strict is not None:
        out["strict"] = tool.strict
    return _with_cache(out, tool.cache)


def _encode_tool_choice(choice: ToolChoice | None, parallel: bool | None) -> JSON | None:
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice is not None else ToolChoiceMode.AUTO
    out: JSON
    if mode is ToolChoiceMode.TOOL and choice is not None:
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": {"auto": "auto", "none": "none", "required": "any"}[mode.value]}
    if parallel is False and mode is not ToolChoiceMode.NONE:
        out["disable_parallel_tool_use"] = True
    return out


# -- responses ----------------------------------------------------------------------------------


def decode_usage(value: Any) -> Usage:
    """Anthropic counts cache reads and writes beside ``input_tokens``; canonical inside."""
    usage = value if isinstance(value, Mapping) else {}
    cache_read = count(usage.get("cache_read_input_tokens"))
    cache_write = count(usage.get("cache_creation_input_tokens"))
    details = usage.get("output_tokens_details")
    thinking = count(details.get("thinking_tokens")) if isinstance(details, Mapping) else 0
    return Usage(
        input_tokens=count(usage.get("input_tokens")) + cache_read + cache_write,
        output_tokens=count(usage.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=thinking,
    )


def encode_usage(usage: Usage) -> JSON:
    uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    out: JSON = {
        "input_tokens": max(uncached, 0),
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def decode_response(body: Mapping[str, Any]) -> Translated[Response]:
    """An Anthropic Message (upstream answer) as a canonical response."""
    losses = LossLog()
    parts: list[Part] = []
    for i, block in enumerate(body.get("content") or []):
        if not isinstance(block, Mapping):
            continue
        part = decode_content_block(block, f"content[{i}]", losses)
        if part is not None:
            parts.append(part)
    response = Response(
        id=text_of(body.get("id")),
        model=text_of(body.get("model")),
        parts=tuple(parts),
        stop_reason=STOP_REASONS.get(text_of(body.get("stop_reason")), StopReason.END_TURN),
        usage=decode_usage(body.get("usage")),
        stop_sequence=body.get("stop_sequence")
        if isinstance(body.get("stop_sequence"), str)
        else None,
    )
    return Translated(response, losses.losses())


def decode_content_block(block: Mapping[str, Any], where: str, losses: LossLog) -> Part | None:
    kind = block.get("type")
    if kind == "text":
        if block.get("citations"):
            losses.add("anthropic.citations", where)
        return TextPart(text_of(block.get("text")))
    if kind == "thinking":
        return ReasoningPart(
            text=text_of(block.get("thinking")),
            signature=block.get("signature") or None,
            origin=VENDOR,
        )
    if kind == "redacted_thinking":
        return ReasoningPart(encrypted=text_of(block.get("data")), origin=VENDOR)
    if kind == "tool_use":
        arguments = block.get("input")
        return ToolCallPart(
            id=text_of(block.get("id")),
            name=text_of(block.get("name")),
            arguments=json_text(arguments if isinstance(arguments, Mapping) else {}),
        )
    losses.add(f"anthropic.{kind}", where)
    return None


def encode_response(response: Response) -> Translated[JSON]:
    """A canonical response as an Anthropic Message for a client."""
    losses = LossLog()
    content: list[JSON] = []
    for i, part in enumerate(response.parts):
        block = _encode_output_part(part, f"content[{i}]", losses)
        if block is not None:
            content.append(block)
    body: JSON = {
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": WIRE_STOP_REASONS[response.stop_reason],
        "stop_sequence": response.stop_sequence,
        "usage": encode_usage(response.usage),
    }
    return Translated(body, losses.losses())


def _encode_output_part(part: Part, where: str, losses: LossLog) -> JSON | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCallPart):
        arguments = parse_json_object(part.arguments)
        if arguments is None:
            losses.add("tool_arguments", where)
            arguments = {}
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
    if isinstance(part, ReasoningPart):
        return _encode_output_reasoning(part)
    losses.add(part.kind.value, where)
    return None


def _encode_output_reasoning(part: ReasoningPart) -> JSON:
    if part.origin is VENDOR and part.signature is None and part.encrypted is not None:
        return {"type": "redacted_thinking", "data": part.encrypted}
    return {
        "type": "thinking",
        "thinking": part.text,
        "signature": outgoing_token(part, VENDOR) or "",
    }


# -- errors -------------------------------------------------------------------------------------


def decode_error(status: int | None, body: Any) -> ErrorInfo:
    """An Anthropic error body (``{"type": "error", "error": {...}}``) as a canonical error.
    ``status`` is None for an error event inside a stream; the error type then implies one."""
    error = as_obj(as_obj(body).get("error"))
    name = text_of(error.get("type"))
    error_type = error_type_named(name, 1)
    if error_type is None:
        error_type = error_type_for_status(status or 500)
    message = text_of(error.get("message")) or "The upstream reported an error."
    return ErrorInfo(
        status or status_for_error_type(error_type), error_type, message, code=name or None
    )


def encode_error(error: ErrorInfo) -> JSON:
    """The Anthropic error body for a client; send it with ``error.status``."""
    return {
        "type": "error",
        "error": {"type": ERROR_NAMES[error.type][1], "message": error.message},
    }
