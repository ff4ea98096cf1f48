"""Gemini ``generateContent`` ⇄ canonical.

Gemini differs from the others in ways that bite when translating:

- the model name and streaming are in the URL, not the body (``decode_request`` takes them);
- a function call is a whole part with parsed ``args`` (no argument streaming), matched to its
  ``functionResponse`` by name and position; ids are optional and some Gemini endpoints (Vertex)
  refuse them, so ids are never sent upstream and are synthesised when missing;
- a ``functionResponse.response`` is an object: text results travel as ``{"output": …}`` (or
  ``{"error": …}``), as Google documents;
- ``thoughtSignature`` may sit on any part. A signature on a function call or text part becomes a
  canonical reasoning part with empty text just before it, and goes back onto the next part;
- Gemini 3 refuses a function-calling step without its signature. History from a client that
  could not keep it (Chat Completions) gets Google's documented placeholder on the first call of
  each step of the current turn;
- token counts: ``thoughtsTokenCount`` is *beside* ``candidatesTokenCount``.

The REST API accepts both camelCase and snake_case field names; the decoder does too, the encoder
writes camelCase.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.core.canonical import (
    DocumentPart,
    ErrorInfo,
    ErrorType,
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
    error_type_for_status,
    status_for_error_type,
)
from passerelle.core.opaque import outgoing_token, received_state
from passerelle.core.translation import LossLog, Translated
from passerelle.errors import InvalidRequest
from passerelle.formats._common import (
    ERROR_NAMES,
    JSON,
    arr,
    as_obj,
    count,
    error_type_named,
    guess_media_type,
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
)

VENDOR = Vendor.GEMINI
SIGNATURE_PLACEHOLDER = "skip_thought_signature_validator"
"""Google's documented stand-in for a thought signature that was not kept."""

STOP_REASONS = {
    "STOP": StopReason.END_TURN,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.CONTENT_FILTER,
    "RECITATION": StopReason.CONTENT_FILTER,
    "BLOCKLIST": StopReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": StopReason.CONTENT_FILTER,
    "SPII": StopReason.CONTENT_FILTER,
    "IMAGE_SAFETY": StopReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": StopReason.CONTENT_FILTER,
    "IMAGE_RECITATION": StopReason.CONTENT_FILTER,
    "MODEL_ARMOR": StopReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": StopReason.ERROR,
    "UNEXPECTED_TOOL_CALL": StopReason.ERROR,
    "TOO_MANY_TOOL_CALLS": StopReason.ERROR,
    "MISSING_THOUGHT_SIGNATURE": StopReason.ERROR,
    "MALFORMED_RESPONSE": StopReason.ERROR,
}
WIRE_STOP_REASONS = {
    StopReason.END_TURN: "STOP",
    StopReason.STOP_SEQUENCE: "STOP",
    StopReason.TOOL_USE: "STOP",
    StopReason.PAUSE_TURN: "STOP",
    StopReason.MAX_TOKENS: "MAX_TOKENS",
    StopReason.CONTEXT_WINDOW: "MAX_TOKENS",
    StopReason.CONTENT_FILTER: "SAFETY",
    StopReason.REFUSAL: "SAFETY",
    StopReason.ERROR: "OTHER",
}
_LEVELS = {
    "minimal": "LOW",
    "low": "LOW",
    "medium": "HIGH",
    "high": "HIGH",
    "xhigh": "HIGH",
    "max": "HIGH",
}
_KNOWN_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "model",
}
_KNOWN_CONFIG = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _fields(value: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini object with snake_case keys rewritten to camelCase (both are accepted)."""
    return {(_camel(key) if "_" in key else key): item for key, item in value.items()}


# -- requests: wire → canonical -----------------------------------------------------------------


def standard_base64(data: str) -> str:
    """Google's JSON carries bytes as base64 in either alphabet (its SDK writes the URL-safe
    one, unpadded); the canonical model and every other vendor use the standard, padded one."""
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    missing = -len(data) % 4
    return data + "=" * missing if missing in (1, 2) else data


def decode_request(
    body: Mapping[str, Any], *, model: str, stream: bool = False
) -> Translated[Request]:
    """A ``generateContent`` body as a canonical request; ``model`` and ``stream`` come from
    the URL (``models/{model}:generateContent`` or ``:streamGenerateContent``)."""
    losses = LossLog()
    body = _fields(obj(body, "body"))
    for key in body:
        if key not in _KNOWN_FIELDS:
            losses.add(f"gemini.{key}", key)
    system: tuple[TextPart, ...] = ()
    if body.get("systemInstruction") is not None:
        content = _fields(obj(body["systemInstruction"], "systemInstruction"))
        system = tuple(
            TextPart(
                string(req(_fields(obj(p, "part")), "text", "systemInstruction.parts"), "text")
            )
            for p in arr(req(content, "parts", "systemInstruction"), "systemInstruction.parts")
        )
    messages = _decode_contents(arr(req(body, "contents", ""), "contents"), losses)
    config = _fields(obj(body.get("generationConfig") or {}, "generationConfig"))
    for key, value in config.items():
        if key in _KNOWN_CONFIG or value is None:
            continue
        if key == "candidateCount" and value == 1:
            continue
        losses.add(f"gemini.generationConfig.{key}", f"generationConfig.{key}")
    tools = _decode_tools(body.get("tools"), losses)
    request = Request(
        model=model.removeprefix("models/"),
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_decode_tool_config(body.get("toolConfig")),
        sampling=Sampling(
            max_tokens=opt_int(config.get("maxOutputTokens"), "generationConfig.maxOutputTokens"),
            temperature=opt_float(config.get("temperature"), "generationConfig.temperature"),
            top_p=opt_float(config.get("topP"), "generationConfig.topP"),
            top_k=opt_int(config.get("topK"), "generationConfig.topK"),
            stop=str_list(config.get("stopSequences"), "generationConfig.stopSequences"),
            seed=opt_int(config.get("seed"), "generationConfig.seed"),
            presence_penalty=opt_float(
                config.get("presencePenalty"), "generationConfig.presencePenalty"
            ),
            frequency_penalty=opt_float(
                config.get("frequencyPenalty"), "generationConfig.frequencyPenalty"
            ),
        ),
        response_format=_decode_format(config),
        reasoning=_decode_thinking(config.get("thinkingConfig")),
        stream=stream,
    )
    return Translated(request, losses.losses())


def _decode_contents(contents: Any, losses: LossLog) -> tuple[Message, ...]:
    messages: list[Message] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for i, value in enumerate(contents):
        path = f"contents[{i}]"
        content = _fields(obj(value, path))
        role = Role.ASSISTANT if content.get("role") == "model" else Role.USER
        parts: list[Part] = []
        for j, item in enumerate(arr(req(content, "parts", path), f"{path}.parts")):
            where = f"{path}.parts[{j}]"
            part = _fields(obj(item, where))
            parts.extend(_decode_part(part, where, losses, pending, f"call_{i}_{j}"))
        messages.append(Message(role, tuple(parts)))
    return tuple(messages)


def _decode_part(
    part: Mapping[str, Any],
    path: str,
    losses: LossLog,
    pending: list[tuple[str, str]] | None,
    default_call_id: str,
) -> list[Part]:
    """One Gemini part as canonical parts (a leading reasoning part carries its signature).
    ``pending`` matches calls to responses in requests; None reads an upstream answer.
    ``default_call_id`` names a function call that came without an id."""
    signature = opt_str(part.get("thoughtSignature"), f"{path}.thoughtSignature")
    if part.get("thought") is True:
        state = received_state(VENDOR, signature=signature)
        text = opt_str(part.get("text"), f"{path}.text") or ""
        return [ReasoningPart(text, state.signature, state.encrypted, state.origin, state.id)]
    out: list[Part] = []
    if signature:
        out.append(received_state(VENDOR, signature=signature))
    if "text" in part:
        text = string(part["text"], f"{path}.text")
        if text or not signature:
            out.append(TextPart(text))
    elif "functionCall" in part:
        call = _fields(obj(part["functionCall"], f"{path}.functionCall"))
        name = string(req(call, "name", f"{path}.functionCall"), f"{path}.functionCall.name")
        call_id = opt_str(call.get("id"), f"{path}.functionCall.id")
        call_id = call_id or default_call_id
        args = obj(call.get("args") or {}, f"{path}.functionCall.args")
        if pending is not None:
            pending.append((call_id, name))
        out.append(ToolCallPart(id=call_id, name=name, arguments=json_text(args)))
    elif "functionResponse" in part:
        out.append(_decode_function_response(part["functionResponse"], path, losses, pending))
    elif "inlineData" in part or "fileData" in part:
        media_part = _decode_media(part, path, losses)
        if media_part is not None:
            out.append(media_part)
    else:
        kind = next((key for key in part if key not in ("thoughtSignature", "thought")), "part")
        losses.add(f"gemini.{kind}", path)
    return out


def _decode_media(part: Mapping[str, Any], path: str, losses: LossLog) -> ResultContent | None:
    if "inlineData" in part:
        blob = _fields(obj(part["inlineData"], f"{path}.inlineData"))
        mime = string(req(blob, "mimeType", f"{path}.inlineData"), f"{path}.inlineData.mimeType")
        data = string(req(blob, "data", f"{path}.inlineData"), "data")
        media = Media(media_type=mime, data=standard_base64(data))
    else:
        file = _fields(obj(part["fileData"], f"{path}.fileData"))
        uri = string(req(file, "fileUri", f"{path}.fileData"), f"{path}.fileData.fileUri")
        mime = opt_str(file.get("mimeType"), f"{path}.fileData.mimeType") or ""
        if _is_gemini_file(uri):
            media = Media(media_type=mime or None, file_id=uri)
        else:
            media = Media(media_type=mime or None, url=uri)
    if mime.startswith("image/"):
        return ImagePart(media)
    if mime in ("application/pdf", "text/plain") or (not mime and media.url is not None):
        return DocumentPart(media)
    losses.add("gemini.media", path)
    return None


def _is_gemini_file(uri: str) -> bool:
    return uri.startswith("gs://") or uri.startswith("https://generativelanguage.googleapis.com/")


def _decode_function_response(
    value: Any, path: str, losses: LossLog, pending: list[tuple[str, str]] | None
) -> ToolResultPart:
    where = f"{path}.functionResponse"
    result = _fields(obj(value, where))
    name = string(req(result, "name", where), f"{where}.name")
    call_id = opt_str(result.get("id"), f"{where}.id")
    if pending is not None:
        match = next((i for i, (cid, n) in enumerate(pending) if cid == call_id), None)
        if match is None and call_id is None:
            match = next((i for i, (_, n) in enumerate(pending) if n == name), None)
        if match is not None:
            call_id = pending.pop(match)[0]
    if call_id is None:
        raise invalid(f"{where}.name", "must answer a functionCall of an earlier model turn")
    response = obj(result.get("response") or {}, f"{where}.response")
    is_error = set(response) == {"error"}
    if set(response) in ({"output"}, {"error"}) and isinstance(next(iter(response.values())), str):
        content: list[ResultContent] = [TextPart(next(iter(response.values())))]
    else:
        content = [TextPart(json_text(response))] if response else []
    for k, item in enumerate(arr(result.get("parts") or [], f"{where}.parts")):
        media = _decode_media(
            _fields(obj(item, f"{where}.parts[{k}]")), f"{where}.parts[{k}]", losses
        )
        if media is not None:
            content.append(media)
    return ToolResultPart(
        tool_call_id=call_id, content=tuple(content), is_error=is_error, name=name
    )


def _decode_tools(value: Any, losses: LossLog) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, item in enumerate(arr(value or [], "tools")):
        path = f"tools[{i}]"
        tool = _fields(obj(item, path))
        for key in tool:
            if key != "functionDeclarations":
                losses.add(f"gemini.tools.{key}", path)
        for j, decl in enumerate(
            arr(tool.get("functionDeclarations") or [], f"{path}.functionDeclarations")
        ):
            where = f"{path}.functionDeclarations[{j}]"
            decl = _fields(obj(decl, where))
            schema = decl.get("parametersJsonSchema", decl.get("parameters"))
            tools.append(
                ToolDefinition(
                    name=string(req(decl, "name", where), f"{where}.name"),
                    description=opt_str(decl.get("description"), f"{where}.description"),
                    parameters=_json_schema(obj(schema, f"{where}.parameters"))
                    if schema is not None
                    else {"type": "object", "properties": {}},
                )
            )
    return tuple(tools)


def _json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini's OpenAPI-style schema (``"type": "OBJECT"``) as JSON Schema (lower-case types)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif isinstance(value, Mapping):
            out[key] = _json_schema(value)
        elif isinstance(value, list):
            out[key] = [_json_schema(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = value
    return out


def _decode_tool_config(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    config = _fields(
        obj(
            _fields(obj(value, "toolConfig")).get("functionCallingConfig") or {},
            "toolConfig.functionCallingConfig",
        )
    )
    mode = config.get("mode")
    names = str_list(config.get("allowedFunctionNames"), "toolConfig.functionCallingConfig")
    if mode in (None, "MODE_UNSPECIFIED", "AUTO"):
        return ToolChoice(ToolChoiceMode.AUTO) if mode else None
    if mode == "NONE":
        return ToolChoice(ToolChoiceMode.NONE)
    if mode in ("ANY", "VALIDATED"):
        if len(names) == 1:
            return ToolChoice(ToolChoiceMode.TOOL, names[0])
        return ToolChoice(ToolChoiceMode.REQUIRED)
    raise invalid("toolConfig.functionCallingConfig.mode", "must be AUTO, ANY or NONE")


def _decode_format(config: Mapping[str, Any]) -> ResponseFormat | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if mime != "application/json":
        return None
    if schema is None:
        return ResponseFormat(ResponseFormatKind.JSON_OBJECT)
    return ResponseFormat(
        ResponseFormatKind.JSON_SCHEMA,
        schema=_json_schema(obj(schema, "generationConfig.responseJsonSchema")),
    )


def _decode_thinking(value: Any) -> ReasoningConfig | None:
    if value is None:
        return None
    config = _fields(obj(value, "generationConfig.thinkingConfig"))
    budget = opt_int(config.get("thinkingBudget"), "generationConfig.thinkingConfig.thinkingBudget")
    level = opt_str(config.get("thinkingLevel"), "generationConfig.thinkingConfig.thinkingLevel")
    include = opt_bool(
        config.get("includeThoughts"), "generationConfig.thinkingConfig.includeThoughts"
    )
    return ReasoningConfig(
        effort=level.lower() if level and level != "THINKING_LEVEL_UNSPECIFIED" else None,
        budget_tokens=budget if budget is not None and budget >= 0 else None,
        summary=include,
    )


# -- requests: canonical → wire -----------------------------------------------------------------


def encode_request(
    request: Request, *, signature_placeholder: str | None = SIGNATURE_PLACEHOLDER
) -> Translated[JSON]:
    """A canonical request as a ``generateContent`` body (the model and ``stream`` go in the
    URL). ``signature_placeholder`` (None to disable) fills the thought signature Gemini 3
    requires on the current turn's function calls when the history lost it."""
    losses = LossLog()
    body: JSON = {}
    system = [{"text": part.text} for part in request.system]
    if any(part.cache is not None for part in request.system):
        losses.add("anthropic.cache_control", "system")
    names = {
        part.id: part.name
        for message in request.messages
        for part in message.parts
        if isinstance(part, ToolCallPart)
    }
    contents: list[JSON] = []
    current_turn = _current_turn_start(request.messages)
    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            losses.add("system_position", where)
            system.extend({"text": p.text} for p in message.parts if isinstance(p, TextPart))
            continue
        parts = encode_parts(message.parts, where, losses, names=names, for_client=False)
        if message.role is Role.ASSISTANT and i >= current_turn and signature_placeholder:
            _ensure_step_signature(parts, signature_placeholder)
        if not parts:
            continue
        role = "model" if message.role is Role.ASSISTANT else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    body["contents"] = contents
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_encode_tool(t, losses) for t in request.tools]}]
        if request.parallel_tool_calls is False:
            losses.add("parallel_tool_calls", "parallel_tool_calls")
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _encode_tool_choice(request.tool_choice)}
    config = _encode_config(request, losses)
    if config:
        body["generationConfig"] = config
    if request.user is not None:
        losses.add("user", "user")
    if request.metadata:
        losses.add("metadata", "metadata")
    return Translated(body, losses.losses())


def _current_turn_start(messages: tuple[Message, ...]) -> int:
    """Index after the last user message that says something other than tool results: the
    function-calling steps after it are the ones Gemini validates signatures for."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role is Role.USER and any(
            not isinstance(part, ToolResultPart) for part in message.parts
        ):
            return i + 1
    return 0


def _ensure_step_signature(parts: list[JSON], placeholder: str) -> None:
    for part in parts:
        if "functionCall" in part:
            part.setdefault("thoughtSignature", placeholder)
            return


def encode_parts(
    parts: tuple[Part, ...],
    where: str,
    losses: LossLog,
    *,
    names: Mapping[str, str],
    for_client: bool,
) -> list[JSON]:
    """Canonical parts as Gemini parts. A reasoning part with empty text and a signature hands
    its signature to the next part. ``for_client`` writes function call ids and seals other
    vendors' reasoning state; otherwise that state is dropped (Gemini could not read it)."""
    out: list[JSON] = []
    signature: str | None = None
    for j, part in enumerate(parts):
        path = f"{where}.parts[{j}]"
        if isinstance(part, ReasoningPart):
            token = _reasoning_token(part, path, losses, for_client=for_client)
            if not part.text:
                signature = token or signature
                continue
            if token is None and part.origin not in (None, VENDOR) and not for_client:
                continue
            thought: JSON = {"text": part.text, "thought": True}
            if token is not None:
                thought["thoughtSignature"] = token
            out.append(thought)
            continue
        if isinstance(part, TextPart) and not part.text and signature is None and not for_client:
            continue
        encoded = _encode_part(part, path, losses, names=names, for_client=for_client)
        if encoded is None:
            continue
        if signature is not None:
            encoded["thoughtSignature"] = signature
            signature = None
        out.append(encoded)
    if signature is not None:
        out.append({"text": "", "thoughtSignature": signature})
    return out


def _reasoning_token(
    part: ReasoningPart, where: str, losses: LossLog, *, for_client: bool
) -> str | None:
    if for_client:
        return outgoing_token(part, VENDOR)
    if part.origin is VENDOR:
        return part.signature
    if part.text or part.opaque:
        losses.add(
            "anthropic.thinking" if part.origin is Vendor.ANTHROPIC else "openai.reasoning", where
        )
    return None


def _encode_part(
    part: Part, where: str, losses: LossLog, *, names: Mapping[str, str], for_client: bool
) -> JSON | None:
    cache = getattr(part, "cache", None)
    if cache is not None:
        losses.add("anthropic.cache_control", where)
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart | DocumentPart):
        return _encode_media(part, where, losses)
    if isinstance(part, ToolCallPart):
        args = parse_json_object(part.arguments)
        if args is None:
            losses.add("tool_arguments", where)
            args = {}
        call: JSON = {"name": part.name, "args": args}
        if for_client:
            call["id"] = part.id
        return {"functionCall": call}
    if isinstance(part, ToolResultPart):
        return {"functionResponse": _encode_result(part, where, losses, names, for_client)}
    return None


def _encode_result(
    part: ToolResultPart,
    where: str,
    losses: LossLog,
    names: Mapping[str, str],
    for_client: bool,
) -> JSON:
    name = part.name or names.get(part.tool_call_id)
    if name is None:
        raise invalid(where, "answers no earlier tool call; send the call it answers first")
    texts: list[str] = []
    media: list[JSON] = []
    for k, item in enumerate(part.content):
        if isinstance(item, TextPart):
            texts.append(item.text)
        else:
            encoded = _encode_media(item, f"{where}.content[{k}]", losses)
            if encoded is not None:
                media.append(encoded)
    out: JSON = {"name": name, "response": {"error" if part.is_error else "output": "".join(texts)}}
    if media:
        out["parts"] = media
    if for_client:
        out["id"] = part.tool_call_id
    return out


def _encode_media(part: ImagePart | DocumentPart, where: str, losses: LossLog) -> JSON | None:
    media = part.media
    if isinstance(part, ImagePart) and part.detail is not None:
        losses.add("openai.image_detail", where)
    default = "image/jpeg" if isinstance(part, ImagePart) else "application/pdf"
    if media.data is not None:
        return {"inlineData": {"mimeType": media.media_type or default, "data": media.data}}
    uri = media.url if media.url is not None else media.file_id
    assert uri is not None
    if media.file_id is not None and not _is_gemini_file(media.file_id):
        losses.add("file_id", where)
        return None
    return {
        "fileData": {"mimeType": media.media_type or guess_media_type(uri, default), "fileUri": uri}
    }


def _encode_tool(tool: ToolDefinition, losses: LossLog) -> JSON:
    if tool.cache is not None:
        losses.add("anthropic.cache_control", f"tools.{tool.name}")
    if tool.strict:
        losses.add("tools.strict", f"tools.{tool.name}")
    out: JSON = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parametersJsonSchema"] = dict(tool.parameters)
    return out


def _encode_tool_choice(choice: ToolChoice) -> JSON:
    if choice.mode is ToolChoiceMode.TOOL:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode.value]}


def _encode_config(request: Request, losses: LossLog) -> JSON:
    sampling = request.sampling
    config: JSON = {}
    for name, key in (
        ("max_tokens", "maxOutputTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(sampling, name)
        if value is not None:
            config[key] = value
    if sampling.stop:
        config["stopSequences"] = list(sampling.stop)
    fmt = request.response_format
    if fmt is not None and fmt.kind is not ResponseFormatKind.TEXT:
        config["responseMimeType"] = "application/json"
        if fmt.kind is ResponseFormatKind.JSON_SCHEMA and fmt.schema is not None:
            config["responseJsonSchema"] = dict(fmt.schema)
    reasoning = request.reasoning
    if reasoning is not None:
        thinking: JSON = {}
        if reasoning.disabled:
            thinking["thinkingBudget"] = 0
        else:
            if reasoning.budget_tokens is not None:
                thinking["thinkingBudget"] = reasoning.budget_tokens
            elif reasoning.effort is not None:
                thinking["thinkingLevel"] = _LEVELS.get(reasoning.effort, "HIGH")
            thinking["includeThoughts"] = reasoning.summary is not False
        config["thinkingConfig"] = thinking
    return config


# -- responses ----------------------------------------------------------------------------------


def decode_usage(value: Any) -> Usage:
    usage = as_obj(value)
    thoughts = count(usage.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=count(usage.get("promptTokenCount"))
        + count(usage.get("toolUsePromptTokenCount")),
        output_tokens=count(usage.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=count(usage.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def encode_usage(usage: Usage) -> JSON:
    out: JSON = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def decode_candidate_parts(
    value: Any, losses: LossLog, call_ids: list[str], response_id: str
) -> list[Part]:
    """The canonical parts of an upstream candidate's content; ``call_ids`` collects the ids
    given to function calls (synthesised from the response id when Gemini gave none)."""
    out: list[Part] = []
    for j, item in enumerate(as_obj(value).get("parts") or []):
        out.extend(
            decode_candidate_part(as_obj(item), f"parts[{j}]", losses, call_ids, response_id)
        )
    return out


def decode_candidate_part(
    item: Mapping[str, Any], where: str, losses: LossLog, call_ids: list[str], response_id: str
) -> list[Part]:
    """One part of an upstream candidate, as :func:`decode_candidate_parts` reads it."""
    default_id = synthetic_call_id(response_id, len(call_ids))
    try:
        decoded = _decode_part(_fields(item), where, losses, None, default_id)
    except InvalidRequest:
        # An upstream part we cannot read is reported and skipped, not fatal.
        losses.add("gemini.part", where)
        return []
    call_ids.extend(part.id for part in decoded if isinstance(part, ToolCallPart))
    return decoded


def synthetic_call_id(response_id: str, number: int) -> str:
    """An id for the ``number``-th function call of a response that gave it none."""
    return f"call_{response_id}_{number}" if response_id else f"call_{number}"


def stop_reason_of(name: str, has_calls: bool) -> StopReason:
    stop = STOP_REASONS.get(name, StopReason.END_TURN)
    if stop is StopReason.END_TURN and has_calls:
        return StopReason.TOOL_USE
    return stop


def decode_response(body: Mapping[str, Any]) -> Translated[Response]:
    """A ``GenerateContentResponse`` (upstream answer) as a canonical response."""
    losses = LossLog()
    candidates = body.get("candidates")
    candidates = candidates if isinstance(candidates, list) else []
    if len(candidates) > 1:
        losses.add("gemini.candidateCount", "candidates")
    candidate = _fields(as_obj(candidates[0])) if candidates else {}
    response_id = text_of(body.get("responseId"))
    call_ids: list[str] = []
    parts = decode_candidate_parts(candidate.get("content"), losses, call_ids, response_id)
    if not candidates and as_obj(body.get("promptFeedback")).get("blockReason"):
        stop = StopReason.CONTENT_FILTER
    else:
        stop = stop_reason_of(text_of(candidate.get("finishReason")), bool(call_ids))
    response = Response(
        id=response_id,
        model=text_of(body.get("modelVersion")),
        parts=tuple(parts),
        stop_reason=stop,
        usage=decode_usage(body.get("usageMetadata")),
    )
    return Translated(response, losses.losses())


def encode_response(response: Response) -> Translated[JSON]:
    """A canonical response as a ``GenerateContentResponse`` for a client."""
    losses = LossLog()
    parts = encode_parts(response.parts, "content", losses, names={}, for_client=True)
    candidate: JSON = {
        "content": {"role": "model", "parts": parts},
        "finishReason": WIRE_STOP_REASONS[response.stop_reason],
        "index": 0,
    }
    body: JSON = {
        "candidates": [candidate],
        "usageMetadata": encode_usage(response.usage),
        "modelVersion": response.model,
        "responseId": response.id,
    }
    return Translated(body, losses.losses())


# -- errors -------------------------------------------------------------------------------------


def decode_error(status: int | None, body: Any) -> ErrorInfo:
    """A Google error body (``{"error": {"code", "message", "status"}}``) as a canonical error."""
    error = as_obj(as_obj(body).get("error"))
    code = error.get("code")
    status = status or (code if isinstance(code, int) and code >= 400 else None)
    name = text_of(error.get("status"))
    error_type: ErrorType | None = error_type_for_status(status) if status else None
    if error_type is None:
        error_type = error_type_named(name, 2) or ErrorType.SERVER
    return ErrorInfo(
        status or status_for_error_type(error_type),
        error_type,
        text_of(error.get("message")) or "The upstream reported an error.",
        code=name or None,
    )


def encode_error(error: ErrorInfo) -> JSON:
    """The Google error body for a client; send it with ``error.status``."""
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "status": ERROR_NAMES[error.type][2],
        }
    }
