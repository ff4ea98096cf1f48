"""Bedrock Converse requests ⇄ canonical requests.

The request half of the Converse codec, apart only for size. The format, its quirks and the
losses recorded here are described in :mod:`passerelle.formats.bedrock_converse`, which
re-exports this module's public names: import them from there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from passerelle.core.canonical import (
    CacheControl,
    DocumentPart,
    ImagePart,
    Media,
    Message,
    Part,
    ReasoningConfig,
    ReasoningPart,
    Request,
    ResponseFormat,
    ResponseFormatKind,
    ResultContent,
    Role,
    Sampling,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    ToolResultPart,
    Vendor,
    budget_for_effort,
)
from passerelle.core.opaque import received_state
from passerelle.core.translation import LossLog, Translated
from passerelle.formats._common import (
    JSON,
    arr,
    b64_to_text,
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
    text_to_b64,
)
from passerelle.formats.anthropic import claude_sampling

VENDOR = Vendor.ANTHROPIC
"""Who minted the reasoning state Converse relays: only Claude produces signatures there."""
DEFAULT_MAX_TOKENS = 8192
"""``maxTokens`` sent when thinking needs a budget below it and the source left it unset."""
MIN_THINKING_BUDGET = 1024


class ModelFamily(StrEnum):
    """Whose keys ``additionalModelRequestFields`` speaks: the model behind Converse decides."""

    ANTHROPIC = "anthropic"
    """Claude: ``thinking`` (Anthropic's shape) and ``top_k``."""
    OTHER = "other"
    """Any other model: reasoning settings and ``top_k`` are dropped, as losses."""


_KNOWN_FIELDS = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "outputConfig",
    "requestMetadata",
}
_KNOWN_INFERENCE = {"maxTokens", "temperature", "topP", "stopSequences"}

_IMAGE_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
_IMAGE_WIRE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
# The first base64 characters of each image type's magic bytes, for inline data without a type.
_IMAGE_SNIFF = (("iVBORw0KGgo", "png"), ("/9j/", "jpeg"), ("R0lGOD", "gif"), ("UklGR", "webp"))
# Markdown is plain text to the model; keeping one text type lets every format carry it.
_DOCUMENT_FORMATS = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "txt": "text/plain",
    "md": "text/plain",
}
_DOCUMENT_WIRE_FORMATS = {
    media_type: name for name, media_type in _DOCUMENT_FORMATS.items() if name != "md"
} | {"text/markdown": "md"}
_DOCUMENT_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
_MAX_DOCUMENT_NAME = 200
_CACHE_TTLS = ("5m", "1h")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_USE_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def request_path(model: str, *, stream: bool = False) -> str:
    """The Converse path for a model id, percent-encoded as sent (and as SigV4 signs it)."""
    operation = "converse-stream" if stream else "converse"
    return f"/model/{quote(model, safe='')}/{operation}"


# -- requests: wire → canonical -----------------------------------------------------------------


def decode_request(
    body: Mapping[str, Any], *, model: str, stream: bool = False
) -> Translated[Request]:
    """A Converse request body as a canonical request; ``model`` and ``stream`` come from the
    URL (``/model/{modelId}/converse`` or ``/converse-stream``)."""
    losses = LossLog()
    body = obj(body, "body")
    for key in body:
        if key not in _KNOWN_FIELDS:
            losses.add(f"bedrock.{key}", key)
    messages = tuple(
        _decode_message(item, f"messages[{i}]", losses)
        for i, item in enumerate(arr(req(body, "messages", ""), "messages"))
    )
    config = obj(body.get("inferenceConfig") or {}, "inferenceConfig")
    for key in config:
        if key not in _KNOWN_INFERENCE:
            losses.add(f"bedrock.inferenceConfig.{key}", f"inferenceConfig.{key}")
    extra = obj(body.get("additionalModelRequestFields") or {}, "additionalModelRequestFields")
    reasoning, top_k = _decode_additional_fields(extra, losses)
    tools, tool_choice = _decode_tool_config(body.get("toolConfig"), losses)
    metadata = obj(body.get("requestMetadata") or {}, "requestMetadata")
    request = Request(
        model=model,
        messages=messages,
        system=_decode_system(body.get("system"), losses),
        tools=tools,
        tool_choice=tool_choice,
        sampling=Sampling(
            max_tokens=opt_int(config.get("maxTokens"), "inferenceConfig.maxTokens"),
            temperature=opt_float(config.get("temperature"), "inferenceConfig.temperature"),
            top_p=opt_float(config.get("topP"), "inferenceConfig.topP"),
            top_k=top_k,
            stop=str_list(config.get("stopSequences"), "inferenceConfig.stopSequences"),
        ),
        response_format=_decode_output_config(body.get("outputConfig"), losses),
        reasoning=reasoning,
        stream=stream,
        metadata={key: string(value, f"requestMetadata.{key}") for key, value in metadata.items()},
    )
    return Translated(request, losses.losses())


def _member(value: Any, path: str) -> tuple[str, Any]:
    """The one member of a union object (``{"text": …}``) and its value."""
    union = obj(value, path)
    if len(union) != 1:
        raise invalid(path, "must have exactly one member")
    return next(iter(union.items()))


def _cache_point(value: Any, path: str) -> CacheControl:
    point = obj(value, path)
    if point.get("type", "default") != "default":
        raise invalid(f"{path}.type", "must be 'default'")
    return CacheControl(ttl=opt_str(point.get("ttl"), f"{path}.ttl"))


def _cache_previous(parts: list[Any], cache: CacheControl, path: str, losses: LossLog) -> None:
    """Apply a cache point to the part before it (a cache point alone caches nothing)."""
    if parts and not isinstance(parts[-1], ReasoningPart):
        parts[-1] = replace(parts[-1], cache=cache)
    else:
        losses.add("bedrock.cachePoint", path)


def _decode_system(value: Any, losses: LossLog) -> tuple[TextPart, ...]:
    if value is None:
        return ()
    parts: list[TextPart] = []
    for i, block in enumerate(arr(value, "system")):
        path = f"system[{i}]"
        kind, content = _member(block, path)
        if kind == "text":
            parts.append(TextPart(string(content, f"{path}.text")))
        elif kind == "cachePoint":
            _cache_previous(parts, _cache_point(content, f"{path}.cachePoint"), path, losses)
        else:
            losses.add(f"bedrock.{kind}", path)
    return tuple(parts)


def _decode_message(value: Any, path: str, losses: LossLog) -> Message:
    message = obj(value, path)
    role = req(message, "role", path)
    if role not in ("user", "assistant"):
        raise invalid(f"{path}.role", "must be 'user' or 'assistant'")
    parts: list[Part] = []
    for j, block in enumerate(arr(req(message, "content", path), f"{path}.content")):
        where = f"{path}.content[{j}]"
        kind, content = _member(block, where)
        if kind == "cachePoint":
            _cache_previous(parts, _cache_point(content, f"{where}.cachePoint"), where, losses)
            continue
        part = _decode_block(kind, content, where, losses)
        if part is not None:
            parts.append(part)
    return Message(Role(role), tuple(parts))


def _decode_block(kind: str, value: Any, path: str, losses: LossLog) -> Part | None:
    where = f"{path}.{kind}"
    if kind == "text":
        return TextPart(string(value, where))
    if kind == "image":
        return _decode_image(value, where)
    if kind == "document":
        return _decode_document(value, where, losses)
    if kind == "toolUse":
        use = obj(value, where)
        return ToolCallPart(
            id=string(req(use, "toolUseId", where), f"{where}.toolUseId"),
            name=string(req(use, "name", where), f"{where}.name"),
            arguments=json_text(req(use, "input", where)),
        )
    if kind == "toolResult":
        return _decode_tool_result(value, where, losses)
    if kind == "reasoningContent":
        return _decode_reasoning(value, where)
    losses.add(f"bedrock.{kind}", path)
    return None


def _decode_image(value: Any, path: str) -> ImagePart:
    image = obj(value, path)
    fmt = req(image, "format", path)
    if fmt not in _IMAGE_FORMATS:
        raise invalid(f"{path}.format", "must be 'png', 'jpeg', 'gif' or 'webp'")
    return ImagePart(
        _decode_source(req(image, "source", path), f"{path}.source", _IMAGE_FORMATS[fmt])
    )


def _decode_source(value: Any, path: str, media_type: str) -> Media:
    kind, content = _member(value, path)
    if kind == "bytes":
        return Media(media_type=media_type, data=string(content, f"{path}.bytes"))
    if kind == "s3Location":
        location = obj(content, f"{path}.s3Location")
        uri = string(req(location, "uri", f"{path}.s3Location"), f"{path}.s3Location.uri")
        return Media(media_type=media_type, url=uri)
    if kind == "text":
        return Media(media_type="text/plain", data=text_to_b64(string(content, f"{path}.text")))
    if kind == "content":
        texts = []
        for i, item in enumerate(arr(content, f"{path}.content")):
            member, text = _member(item, f"{path}.content[{i}]")
            if member != "text":
                raise invalid(f"{path}.content[{i}]", "must be a text block")
            texts.append(string(text, f"{path}.content[{i}].text"))
        return Media(media_type="text/plain", data=text_to_b64("\n\n".join(texts)))
    raise invalid(path, "must have 'bytes', 's3Location', 'text' or 'content'")


def _decode_document(value: Any, path: str, losses: LossLog) -> DocumentPart:
    document = obj(value, path)
    fmt = document.get("format", "txt")
    if fmt not in _DOCUMENT_FORMATS:
        raise invalid(f"{path}.format", f"must be one of {', '.join(_DOCUMENT_FORMATS)}")
    for key in ("context", "citations"):
        if document.get(key) is not None:
            losses.add(f"bedrock.document.{key}", f"{path}.{key}")
    media = _decode_source(req(document, "source", path), f"{path}.source", _DOCUMENT_FORMATS[fmt])
    return DocumentPart(media, title=string(req(document, "name", path), f"{path}.name"))


def _decode_tool_result(value: Any, path: str, losses: LossLog) -> ToolResultPart:
    result = obj(value, path)
    content: list[ResultContent] = []
    for k, item in enumerate(arr(req(result, "content", path), f"{path}.content")):
        where = f"{path}.content[{k}]"
        kind, member = _member(item, where)
        if kind == "text":
            content.append(TextPart(string(member, f"{where}.text")))
        elif kind == "json":
            content.append(TextPart(json_text(member)))
        elif kind == "image":
            content.append(_decode_image(member, f"{where}.image"))
        elif kind == "document":
            content.append(_decode_document(member, f"{where}.document", losses))
        else:
            losses.add(f"bedrock.toolResult.{kind}", where)
    status = result.get("status")
    if status not in (None, "success", "error"):
        raise invalid(f"{path}.status", "must be 'success' or 'error'")
    return ToolResultPart(
        tool_call_id=string(req(result, "toolUseId", path), f"{path}.toolUseId"),
        content=tuple(content),
        is_error=status == "error",
    )


def _decode_reasoning(value: Any, path: str) -> ReasoningPart:
    kind, content = _member(value, path)
    if kind == "reasoningText":
        text = obj(content, f"{path}.reasoningText")
        signature = opt_str(text.get("signature"), f"{path}.reasoningText.signature")
        state = received_state(VENDOR, signature=signature)
        return replace(state, text=string(req(text, "text", path), f"{path}.reasoningText.text"))
    if kind == "redactedContent":
        return received_state(VENDOR, encrypted=string(content, f"{path}.redactedContent"))
    raise invalid(path, "must have 'reasoningText' or 'redactedContent'")


def _decode_tool_config(
    value: Any, losses: LossLog
) -> tuple[tuple[ToolDefinition, ...], ToolChoice | None]:
    if value is None:
        return (), None
    config = obj(value, "toolConfig")
    tools: list[ToolDefinition] = []
    for i, item in enumerate(arr(config.get("tools") or [], "toolConfig.tools")):
        path = f"toolConfig.tools[{i}]"
        kind, content = _member(item, path)
        if kind == "cachePoint":
            _cache_previous(tools, _cache_point(content, f"{path}.cachePoint"), path, losses)
        elif kind == "toolSpec":
            tools.append(_decode_tool_spec(content, f"{path}.toolSpec"))
        else:
            losses.add(f"bedrock.{kind}", path)
    choice: ToolChoice | None = None
    if config.get("toolChoice") is not None:
        kind, content = _member(config["toolChoice"], "toolConfig.toolChoice")
        if kind == "auto":
            choice = ToolChoice(ToolChoiceMode.AUTO)
        elif kind == "any":
            choice = ToolChoice(ToolChoiceMode.REQUIRED)
        elif kind == "tool":
            specific = obj(content, "toolConfig.toolChoice.tool")
            name = req(specific, "name", "toolConfig.toolChoice.tool")
            choice = ToolChoice(
                ToolChoiceMode.TOOL, string(name, "toolConfig.toolChoice.tool.name")
            )
        else:
            raise invalid("toolConfig.toolChoice", "must have 'auto', 'any' or 'tool'")
    return tuple(tools), choice


def _decode_tool_spec(value: Any, path: str) -> ToolDefinition:
    spec = obj(value, path)
    kind, schema = _member(req(spec, "inputSchema", path), f"{path}.inputSchema")
    if kind != "json":
        raise invalid(f"{path}.inputSchema", "must have 'json'")
    return ToolDefinition(
        name=string(req(spec, "name", path), f"{path}.name"),
        description=opt_str(spec.get("description"), f"{path}.description"),
        parameters=obj(schema, f"{path}.inputSchema.json"),
        strict=opt_bool(spec.get("strict"), f"{path}.strict"),
    )


def _decode_additional_fields(
    fields: Mapping[str, Any], losses: LossLog
) -> tuple[ReasoningConfig | None, int | None]:
    """Reasoning and ``top_k`` as the model families on Bedrock spell them: Anthropic's
    ``thinking`` and ``top_k``, Amazon Nova's ``reasoningConfig``, OpenAI's ``reasoning_effort``.
    """
    path = "additionalModelRequestFields"
    reasoning: ReasoningConfig | None = None
    top_k: int | None = None
    for key, value in fields.items():
        where = f"{path}.{key}"
        if key == "thinking":
            reasoning = _decode_thinking(value, where)
        elif key == "top_k":
            top_k = opt_int(value, where)
        elif key == "reasoningConfig":
            config = obj(value, where)
            if config.get("type") == "disabled":
                reasoning = ReasoningConfig(effort="none")
            else:
                effort = opt_str(config.get("maxReasoningEffort"), f"{where}.maxReasoningEffort")
                reasoning = ReasoningConfig(effort=effort)
        elif key == "reasoning_effort":
            reasoning = ReasoningConfig(effort=string(value, where))
        else:
            losses.add(f"bedrock.{where}", where)
    return reasoning, top_k


def _decode_thinking(value: Any, path: str) -> ReasoningConfig:
    thinking = obj(value, path)
    kind = req(thinking, "type", path)
    summary = False if thinking.get("display") == "omitted" else None
    if kind == "enabled":
        budget = opt_int(req(thinking, "budget_tokens", path), f"{path}.budget_tokens")
        return ReasoningConfig(budget_tokens=budget, summary=summary)
    if kind == "disabled":
        return ReasoningConfig(effort="none")
    if kind == "adaptive":
        return ReasoningConfig(summary=summary)
    raise invalid(f"{path}.type", "must be 'enabled', 'adaptive' or 'disabled'")


def _decode_output_config(value: Any, losses: LossLog) -> ResponseFormat | None:
    if value is None:
        return None
    config = obj(value, "outputConfig")
    for key in config:
        if key != "textFormat":
            losses.add(f"bedrock.outputConfig.{key}", f"outputConfig.{key}")
    if config.get("textFormat") is None:
        return None
    path = "outputConfig.textFormat"
    text_format = obj(config["textFormat"], path)
    if req(text_format, "type", path) != "json_schema":
        raise invalid(f"{path}.type", "must be 'json_schema'")
    kind, definition = _member(req(text_format, "structure", path), f"{path}.structure")
    if kind != "jsonSchema":
        raise invalid(f"{path}.structure", "must have 'jsonSchema'")
    where = f"{path}.structure.jsonSchema"
    definition = obj(definition, where)
    schema = parse_json_object(string(req(definition, "schema", where), f"{where}.schema"))
    if schema is None:
        raise invalid(f"{where}.schema", "must be a JSON object serialised as a string")
    return ResponseFormat(
        ResponseFormatKind.JSON_SCHEMA,
        schema=schema,
        name=opt_str(definition.get("name"), f"{where}.name"),
        description=opt_str(definition.get("description"), f"{where}.description"),
    )


# -- requests: canonical → wire -----------------------------------------------------------------


def encode_request(
    request: Request,
    *,
    model_family: ModelFamily = ModelFamily.ANTHROPIC,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Translated[JSON]:
    """A canonical request as a Converse body (the model and streaming go in the URL, see
    :func:`request_path`). ``model_family`` says which keys ``additionalModelRequestFields``
    may carry; ``default_max_tokens`` is sent when a thinking budget needs a ceiling."""
    losses = LossLog()
    claude = model_family is ModelFamily.ANTHROPIC
    system = _encode_system(request.system)
    messages = _encode_messages(request.messages, system, losses, claude=claude)
    body: JSON = {"messages": messages}
    if system:
        body["system"] = system
    sampling = request.sampling
    extra: JSON = {}
    max_tokens = sampling.max_tokens
    thinking: JSON | None = None
    if request.reasoning is not None:
        if claude:
            if max_tokens is None and _needs_budget(request.reasoning):
                max_tokens = default_max_tokens
            thinking = _encode_thinking(request.reasoning, max_tokens, losses)
        elif not request.reasoning.disabled:
            losses.add("reasoning", "reasoning")
    if thinking is not None and thinking["type"] != "disabled" and _unsigned_tool_turn(messages):
        # Claude requires the tool-calling turn being continued to open with its own thinking;
        # history from another vendor has none, so this request cannot think.
        losses.add("reasoning", "reasoning")
        thinking = None
    if thinking is not None:
        extra["thinking"] = thinking
    thinking_on = thinking is not None and thinking["type"] != "disabled"
    inference = _encode_inference(sampling, max_tokens, thinking_on, losses)
    if sampling.top_k is not None:
        if claude and not thinking_on:
            extra["top_k"] = sampling.top_k
        else:
            losses.add("top_k", "top_k")
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _encode_tool_config(request, messages, losses)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if extra:
        body["additionalModelRequestFields"] = extra
    output_config = _encode_output_config(request.response_format, losses)
    if output_config is not None:
        body["outputConfig"] = output_config
    if request.user is not None:
        losses.add("user", "user")
    if request.metadata:
        body["requestMetadata"] = dict(request.metadata)
    return Translated(body, losses.losses())


def _encode_inference(
    sampling: Sampling, max_tokens: int | None, thinking_on: bool, losses: LossLog
) -> JSON:
    inference: JSON = {}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    temperature, top_p = claude_sampling(sampling, thinking_on, losses)
    if temperature is not None:
        inference["temperature"] = temperature
    if top_p is not None:
        inference["topP"] = top_p
    if sampling.stop:
        inference["stopSequences"] = list(sampling.stop)
    for name in ("seed", "presence_penalty", "frequency_penalty"):
        if getattr(sampling, name) is not None:
            losses.add(name, name)
    return inference


def _needs_budget(reasoning: ReasoningConfig) -> bool:
    return not reasoning.disabled and (
        reasoning.budget_tokens is not None or reasoning.effort is not None
    )


def _encode_thinking(
    reasoning: ReasoningConfig, max_tokens: int | None, losses: LossLog
) -> JSON | None:
    """Anthropic's ``thinking`` for Claude on Bedrock, as the Anthropic codec writes it."""
    if reasoning.disabled:
        return {"type": "disabled"}
    budget = reasoning.budget_tokens
    if budget is None and reasoning.effort is None:
        return {"type": "adaptive"}
    if budget is None:
        budget = budget_for_effort(reasoning.effort or "medium")
    budget = max(budget, MIN_THINKING_BUDGET)
    if max_tokens is not None and budget >= max_tokens:
        budget = max_tokens - 1
    if budget < MIN_THINKING_BUDGET:
        losses.add("reasoning", "reasoning")
        return None
    thinking: JSON = {"type": "enabled", "budget_tokens": budget}
    if reasoning.summary is False:
        thinking["display"] = "omitted"
    return thinking


def _unsigned_tool_turn(messages: list[JSON]) -> bool:
    """Whether the last assistant turn calls tools without opening with reasoning."""
    for message in reversed(messages):
        if message["role"] == "assistant":
            blocks = message["content"]
            calls = any("toolUse" in block for block in blocks)
            return calls and "reasoningContent" not in blocks[0]
    return False


def _cache_block(cache: CacheControl) -> JSON:
    point: JSON = {"type": "default"}
    if cache.ttl in _CACHE_TTLS:
        point["ttl"] = cache.ttl
    return {"cachePoint": point}


def _with_cache(block: JSON, cache: CacheControl | None) -> list[JSON]:
    """A block and, when the part was a cache breakpoint, the cache point that follows it."""
    return [block] if cache is None else [block, _cache_block(cache)]


def _encode_system(parts: tuple[TextPart, ...]) -> list[JSON]:
    system: list[JSON] = []
    for part in parts:
        if not _blank(part.text):
            system.extend(_with_cache({"text": part.text}, part.cache))
    return system


def _blank(text: str) -> bool:
    """Whether Converse would refuse the text as blank (empty or only whitespace)."""
    return not text.strip()


class _Documents:
    """Converse names every document; names are made from titles, kept distinct."""

    __slots__ = ("_used",)

    def __init__(self) -> None:
        self._used: set[str] = set()

    def name(self, title: str | None) -> str:
        base = title or "document"
        for extension in _DOCUMENT_FORMATS:
            base = base.removesuffix(f".{extension}")
        base = " ".join(_DOCUMENT_NAME_UNSAFE.sub("-", base).split())[:_MAX_DOCUMENT_NAME]
        base = base or "document"
        name, number = base, 1
        while name in self._used:
            number += 1
            suffix = f" ({number})"
            name = base[: _MAX_DOCUMENT_NAME - len(suffix)] + suffix
        self._used.add(name)
        return name


def _encode_messages(
    messages: tuple[Message, ...], system: list[JSON], losses: LossLog, *, claude: bool
) -> list[JSON]:
    out: list[JSON] = []
    documents = _Documents()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            losses.add("system_position", where)
            texts = tuple(p for p in message.parts if isinstance(p, TextPart))
            system.extend(_encode_system(texts))
            continue
        # Each group is one block and the cache point after it: they move together.
        groups: list[list[JSON]] = []
        for j, part in enumerate(message.parts):
            group = _encode_part(part, f"{where}.parts[{j}]", losses, documents, claude=claude)
            if group:
                groups.append(group)
        if not groups:
            continue
        role = message.role.value
        if out and out[-1]["role"] == role:
            out[-1]["groups"].extend(groups)
        else:
            out.append({"role": role, "groups": groups})
    encoded: list[JSON] = []
    for turn in out:
        groups = turn["groups"]
        if turn["role"] == "user":
            # Claude wants a turn's tool results before anything else the user says.
            groups.sort(key=lambda group: "toolResult" not in group[0])
        content = [block for group in groups for block in group]
        encoded.append({"role": turn["role"], "content": content})
    return encoded


def _encode_part(
    part: Part, where: str, losses: LossLog, documents: _Documents, *, claude: bool
) -> list[JSON]:
    if isinstance(part, TextPart):
        # Converse refuses blank text blocks; other formats send empty text beside tool calls.
        return _with_cache({"text": part.text}, part.cache) if not _blank(part.text) else []
    if isinstance(part, ImagePart | DocumentPart):
        block = _encode_media(part, where, losses, documents)
        return [] if block is None else _with_cache(block, part.cache)
    if isinstance(part, ToolCallPart):
        arguments = parse_json_object(part.arguments)
        if arguments is None:
            losses.add("tool_arguments", where)
            arguments = {}
        use = {"toolUseId": tool_use_id(part.id), "name": part.name, "input": arguments}
        return _with_cache({"toolUse": use}, part.cache)
    if isinstance(part, ToolResultPart):
        return _with_cache(_encode_tool_result(part, where, losses, documents), part.cache)
    block = _encode_reasoning(part, where, losses, claude=claude)
    return [] if block is None else [block]


def _encode_tool_result(
    part: ToolResultPart, where: str, losses: LossLog, documents: _Documents
) -> JSON:
    content: list[JSON] = []
    for k, item in enumerate(part.content):
        path = f"{where}.content[{k}]"
        if isinstance(item, TextPart):
            if not _blank(item.text):
                content.append({"text": item.text})
            continue
        block = _encode_media(item, path, losses, documents)
        if block is not None:
            content.append(block)
    result: JSON = {"toolUseId": tool_use_id(part.tool_call_id), "content": content}
    if part.is_error:
        result["status"] = "error"
    return {"toolResult": result}


def tool_use_id(call_id: str) -> str:
    """A call id Bedrock accepts (``[a-zA-Z0-9_-]{1,64}``). Ids minted elsewhere may hold other
    characters; they are rewritten the same way in every request, so a call and its result still
    match, and a hash of the original keeps two rewritten ids apart."""
    if _TOOL_USE_ID.fullmatch(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:8]
    return f"{_TOOL_USE_ID_UNSAFE.sub('_', call_id)[:55]}_{digest}"


def _encode_reasoning(
    part: ReasoningPart, where: str, losses: LossLog, *, claude: bool
) -> JSON | None:
    if claude and part.origin is VENDOR and part.signature is not None:
        text = {"text": part.text, "signature": part.signature}
        return {"reasoningContent": {"reasoningText": text}}
    if claude and part.origin is VENDOR and part.encrypted is not None:
        return {"reasoningContent": {"redactedContent": part.encrypted}}
    # Claude refuses reasoning it did not sign; another vendor's reasoning cannot be replayed.
    if part.text or part.opaque:
        losses.add(_reasoning_loss(part), where)
    return None


def _reasoning_loss(part: ReasoningPart) -> str:
    if part.origin is Vendor.GEMINI:
        return "gemini.thought"
    if part.origin is Vendor.OPENAI:
        return "openai.reasoning"
    return "anthropic.thinking"


def _image_format(media: Media) -> str | None:
    if media.media_type is not None:
        return _IMAGE_WIRE_FORMATS.get(media.media_type.lower())
    for prefix, fmt in _IMAGE_SNIFF:
        if (media.data or "").startswith(prefix):
            return fmt
    return None


def _encode_media(
    part: ImagePart | DocumentPart, where: str, losses: LossLog, documents: _Documents
) -> JSON | None:
    media = part.media
    kind = "image" if isinstance(part, ImagePart) else "document"
    if media.file_id is not None:
        losses.add("file_id", where)
        return None
    if media.url is not None and not media.url.startswith("s3://"):
        losses.add(f"{kind}.url", where)
        return None
    source: JSON = (
        {"bytes": media.data} if media.data is not None else {"s3Location": {"uri": media.url}}
    )
    if isinstance(part, ImagePart):
        fmt = _image_format(media)
        if fmt is None:
            losses.add("image", where)
            return None
        if part.detail is not None:
            losses.add("openai.image_detail", where)
        return {"image": {"format": fmt, "source": source}}
    media_type = (media.media_type or "application/pdf").lower()
    fmt = _DOCUMENT_WIRE_FORMATS.get(media_type)
    if fmt is None:
        losses.add("document", where)
        return None
    if fmt == "txt" and media.data is not None and b64_to_text(media.data) is None:
        losses.add("document", where)
        return None
    document = {"format": fmt, "name": documents.name(part.title), "source": source}
    return {"document": document}


def _encode_tool_config(request: Request, messages: list[JSON], losses: LossLog) -> JSON | None:
    if not request.tools:
        return None
    choice = request.tool_choice
    if request.parallel_tool_calls is False:
        losses.add("parallel_tool_calls", "parallel_tool_calls")
    if choice is not None and choice.mode is ToolChoiceMode.NONE:
        uses_tools = any(
            "toolUse" in block or "toolResult" in block
            for message in messages
            for block in message["content"]
        )
        if not uses_tools:
            # Without tools the model cannot call one: "none" kept by offering none.
            return None
        # Converse needs the tools to read a history with tool calls, and has no "none".
        losses.add("tool_choice", "tool_choice")
        choice = None
    tools: list[JSON] = []
    for tool in request.tools:
        spec: JSON = {"name": tool.name}
        if tool.description:
            spec["description"] = tool.description
        spec["inputSchema"] = {"json": dict(tool.parameters)}
        if tool.strict is not None:
            spec["strict"] = tool.strict
        tools.extend(_with_cache({"toolSpec": spec}, tool.cache))
    config: JSON = {"tools": tools}
    if choice is not None:
        if choice.mode is ToolChoiceMode.TOOL:
            config["toolChoice"] = {"tool": {"name": choice.name}}
        elif choice.mode is ToolChoiceMode.REQUIRED:
            config["toolChoice"] = {"any": {}}
        else:
            config["toolChoice"] = {"auto": {}}
    return config


def _encode_output_config(fmt: ResponseFormat | None, losses: LossLog) -> JSON | None:
    if fmt is None or fmt.kind is ResponseFormatKind.TEXT:
        return None
    if fmt.kind is ResponseFormatKind.JSON_OBJECT or fmt.schema is None:
        losses.add("response_format.json_object", "response_format")
        return None
    definition: JSON = {"schema": json_text(fmt.schema)}
    if fmt.name is not None:
        definition["name"] = fmt.name
    if fmt.description is not None:
        definition["description"] = fmt.description
    text_format = {"type": "json_schema", "structure": {"jsonSchema": definition}}
    return {"textFormat": text_format}
