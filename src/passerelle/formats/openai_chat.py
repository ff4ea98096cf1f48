"""OpenAI Chat Completions ⇄ canonical.

Chat Completions is the lowest common denominator most OpenAI-compatible servers (vLLM, Ollama,
llama.cpp, Mistral) speak, and the poorest format for agents: an assistant message is one string
plus tool calls, tool results are text-only ``tool`` messages, and there is no field for
reasoning. Canonical tool results (inside user messages) become one ``tool`` message each;
reasoning parts are dropped with a loss. Leading ``system``/``developer`` messages are the system
prompt; later ones stay in place as canonical system messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.core.canonical import (
    CacheControl,
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
    effort_for_budget,
    error_type_for_status,
    status_for_error_type,
)
from passerelle.core.translation import LossLog, Translated
from passerelle.formats._common import (
    ERROR_NAMES,
    JSON,
    arr,
    as_obj,
    b64_to_text,
    count,
    data_url,
    error_type_named,
    invalid,
    now,
    obj,
    opt_bool,
    opt_float,
    opt_int,
    opt_str,
    parse_data_url,
    req,
    str_list,
    string,
    text_of,
)

VENDOR = Vendor.OPENAI

STOP_REASONS = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
    "content_filter": StopReason.CONTENT_FILTER,
}
WIRE_STOP_REASONS = {
    StopReason.END_TURN: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "tool_calls",
    StopReason.CONTENT_FILTER: "content_filter",
    StopReason.REFUSAL: "content_filter",
    StopReason.PAUSE_TURN: "stop",
    StopReason.CONTEXT_WINDOW: "length",
    StopReason.ERROR: "stop",
}

_KNOWN_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "functions",
    "function_call",
}


# -- requests: wire → canonical -----------------------------------------------------------------


def decode_request(body: Mapping[str, Any]) -> Translated[Request]:
    """A Chat Completions request body as a canonical request."""
    losses = LossLog()
    body = obj(body, "body")
    for key, value in body.items():
        if key in _KNOWN_FIELDS or value is None:
            continue
        if key == "n" and value == 1:
            continue
        if key == "logprobs" and value is False:
            continue
        losses.add(f"openai.{key}", key)
    model = string(req(body, "model", ""), "model")
    system, messages = _decode_messages(arr(req(body, "messages", ""), "messages"), losses)
    max_tokens = opt_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = opt_int(body.get("max_tokens"), "max_tokens")
    tools = _decode_tools(body.get("tools"), body.get("functions"), losses)
    effort = opt_str(body.get("reasoning_effort"), "reasoning_effort")
    metadata = obj(body.get("metadata") or {}, "metadata")
    request = Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_decode_tool_choice(body.get("tool_choice"), body.get("function_call"), losses),
        parallel_tool_calls=opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls"),
        sampling=Sampling(
            max_tokens=max_tokens,
            temperature=opt_float(body.get("temperature"), "temperature"),
            top_p=opt_float(body.get("top_p"), "top_p"),
            stop=str_list(body.get("stop"), "stop"),
            seed=opt_int(body.get("seed"), "seed"),
            presence_penalty=opt_float(body.get("presence_penalty"), "presence_penalty"),
            frequency_penalty=opt_float(body.get("frequency_penalty"), "frequency_penalty"),
        ),
        response_format=decode_response_format(body.get("response_format"), "response_format"),
        reasoning=ReasoningConfig(effort=effort) if effort is not None else None,
        stream=bool(opt_bool(body.get("stream"), "stream")),
        user=opt_str(body.get("user"), "user"),
        metadata={key: string(value, f"metadata.{key}") for key, value in metadata.items()},
    )
    return Translated(request, losses.losses())


def wants_stream_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streaming client asked for the final usage chunk (``stream_options``)."""
    return as_obj(body.get("stream_options")).get("include_usage") is True


def _decode_messages(
    items: Any, losses: LossLog
) -> tuple[tuple[TextPart, ...], tuple[Message, ...]]:
    system: list[TextPart] = []
    messages: list[Message] = []
    legacy_calls: list[tuple[str, str]] = []  # (id, name) of function_call messages
    for i, item in enumerate(items):
        path = f"messages[{i}]"
        message = obj(item, path)
        role = req(message, "role", path)
        if message.get("name") is not None and role != "function":
            losses.add("openai.name", f"{path}.name")
        if role in ("system", "developer"):
            parts = _decode_text_content(req(message, "content", path), f"{path}.content")
            if messages:
                messages.append(Message(Role.SYSTEM, parts))
            else:
                system.extend(parts)
        elif role == "user":
            content = _decode_user_content(req(message, "content", path), path, losses)
            messages.append(Message(Role.USER, content))
        elif role == "assistant":
            messages.append(_decode_assistant(message, path, legacy_calls, losses))
        elif role in ("tool", "function"):
            result = _decode_tool_message(message, path, role, legacy_calls)
            if (
                messages
                and messages[-1].role is Role.USER
                and all(isinstance(part, ToolResultPart) for part in messages[-1].parts)
            ):
                messages[-1] = Message(Role.USER, (*messages[-1].parts, result))
            else:
                messages.append(Message(Role.USER, (result,)))
        else:
            raise invalid(f"{path}.role", "must be one of system, developer, user, assistant, tool")
    return tuple(system), tuple(messages)


def _decode_text_content(content: Any, path: str) -> tuple[TextPart, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts = []
    for j, item in enumerate(arr(content, path)):
        item = obj(item, f"{path}[{j}]")
        if item.get("type") not in ("text", "refusal"):
            raise invalid(f"{path}[{j}].type", "must be 'text'")
        key = "text" if item.get("type") == "text" else "refusal"
        parts.append(TextPart(string(req(item, key, f"{path}[{j}]"), f"{path}[{j}].{key}")))
    return tuple(parts)


def _decode_user_content(content: Any, path: str, losses: LossLog) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[Part] = []
    for j, item in enumerate(arr(content, f"{path}.content")):
        where = f"{path}.content[{j}]"
        item = obj(item, where)
        kind = req(item, "type", where)
        if kind == "text":
            parts.append(TextPart(string(req(item, "text", where), f"{where}.text")))
        elif kind == "image_url":
            image = obj(req(item, "image_url", where), f"{where}.image_url")
            url = string(req(image, "url", f"{where}.image_url"), f"{where}.image_url.url")
            detail = opt_str(image.get("detail"), f"{where}.image_url.detail")
            parts.append(ImagePart(parse_data_url(url) or Media(url=url), detail=detail))
        elif kind == "file":
            parts.append(_decode_file(obj(req(item, "file", where), f"{where}.file"), where))
        else:
            losses.add(f"openai.{kind}", where)
    return tuple(parts)


def _decode_file(file: Mapping[str, Any], where: str) -> DocumentPart:
    filename = opt_str(file.get("filename"), f"{where}.file.filename")
    file_id = opt_str(file.get("file_id"), f"{where}.file.file_id")
    if file_id is not None:
        return DocumentPart(Media(file_id=file_id), title=filename)
    data = string(req(file, "file_data", f"{where}.file"), f"{where}.file.file_data")
    media = parse_data_url(data) or Media(media_type="application/pdf", data=data)
    return DocumentPart(media, title=filename)


def _decode_assistant(
    message: Mapping[str, Any], path: str, legacy_calls: list[tuple[str, str]], losses: LossLog
) -> Message:
    parts: list[Part] = []
    content = message.get("content")
    if content is not None:
        # Clients send "" beside tool calls; an empty text part would be refused elsewhere.
        texts = _decode_text_content(content, f"{path}.content")
        parts.extend(part for part in texts if part.text)
    refusal = opt_str(message.get("refusal"), f"{path}.refusal")
    if refusal:
        parts.append(TextPart(refusal))
    for k, call in enumerate(arr(message.get("tool_calls") or [], f"{path}.tool_calls")):
        where = f"{path}.tool_calls[{k}]"
        call = obj(call, where)
        if call.get("type", "function") != "function":
            losses.add(f"openai.tool_calls.{call.get('type')}", where)
            continue
        function = obj(req(call, "function", where), f"{where}.function")
        parts.append(
            ToolCallPart(
                id=string(req(call, "id", where), f"{where}.id"),
                name=string(req(function, "name", f"{where}.function"), f"{where}.function.name"),
                arguments=string(
                    req(function, "arguments", f"{where}.function"), f"{where}.function.arguments"
                ),
            )
        )
    legacy = message.get("function_call")
    if legacy is not None:
        where = f"{path}.function_call"
        legacy = obj(legacy, where)
        name = string(req(legacy, "name", where), f"{where}.name")
        call_id = f"call_{len(legacy_calls)}_{name}"
        legacy_calls.append((call_id, name))
        arguments = string(req(legacy, "arguments", where), f"{where}.arguments")
        parts.append(ToolCallPart(id=call_id, name=name, arguments=arguments))
    return Message(Role.ASSISTANT, tuple(parts))


def _decode_tool_message(
    message: Mapping[str, Any], path: str, role: str, legacy_calls: list[tuple[str, str]]
) -> ToolResultPart:
    content = _decode_text_content(req(message, "content", path), f"{path}.content")
    if role == "tool":
        call_id = string(req(message, "tool_call_id", path), f"{path}.tool_call_id")
        return ToolResultPart(tool_call_id=call_id, content=content)
    name = string(req(message, "name", path), f"{path}.name")
    for index, (call_id, call_name) in enumerate(legacy_calls):
        if call_name == name:
            del legacy_calls[index]
            return ToolResultPart(tool_call_id=call_id, content=content, name=name)
    raise invalid(f"{path}.name", "must name a function called by an earlier assistant message")


def _decode_tools(value: Any, functions: Any, losses: LossLog) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, item in enumerate(arr(value or [], "tools")):
        path = f"tools[{i}]"
        tool = obj(item, path)
        if tool.get("type") != "function":
            losses.add(f"openai.tools.{tool.get('type')}", path)
            continue
        tools.append(_decode_function(obj(req(tool, "function", path), f"{path}.function"), path))
    for i, item in enumerate(arr(functions or [], "functions")):
        tools.append(_decode_function(obj(item, f"functions[{i}]"), f"functions[{i}]"))
    return tuple(tools)


def _decode_function(function: Mapping[str, Any], path: str) -> ToolDefinition:
    parameters = function.get("parameters")
    return ToolDefinition(
        name=string(req(function, "name", path), f"{path}.name"),
        description=opt_str(function.get("description"), f"{path}.description"),
        parameters=obj(parameters, f"{path}.parameters")
        if parameters is not None
        else {"type": "object", "properties": {}},
        strict=opt_bool(function.get("strict"), f"{path}.strict"),
    )


def _decode_tool_choice(value: Any, legacy: Any, losses: LossLog) -> ToolChoice | None:
    if value is None and legacy is not None:
        if isinstance(legacy, str):
            value = legacy
        else:
            name = string(req(obj(legacy, "function_call"), "name", "function_call"), "name")
            return ToolChoice(ToolChoiceMode.TOOL, name)
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise invalid("tool_choice", "must be 'auto', 'none', 'required' or an object")
        return ToolChoice(ToolChoiceMode(value))
    choice = obj(value, "tool_choice")
    if choice.get("type") == "function":
        function = obj(req(choice, "function", "tool_choice"), "tool_choice.function")
        name = string(req(function, "name", "tool_choice.function"), "tool_choice.function.name")
        return ToolChoice(ToolChoiceMode.TOOL, name)
    losses.add(f"openai.tool_choice.{choice.get('type')}", "tool_choice")
    return None


def decode_response_format(value: Any, path: str) -> ResponseFormat | None:
    """Chat's ``response_format`` (Responses nests the same under ``text.format``, flattened)."""
    if value is None:
        return None
    fmt = obj(value, path)
    kind = req(fmt, "type", path)
    if kind == "text":
        return ResponseFormat(ResponseFormatKind.TEXT)
    if kind == "json_object":
        return ResponseFormat(ResponseFormatKind.JSON_OBJECT)
    if kind != "json_schema":
        raise invalid(f"{path}.type", "must be 'text', 'json_object' or 'json_schema'")
    spec = obj(fmt.get("json_schema", fmt), f"{path}.json_schema")
    return ResponseFormat(
        ResponseFormatKind.JSON_SCHEMA,
        schema=obj(req(spec, "schema", path), f"{path}.schema"),
        name=opt_str(spec.get("name"), f"{path}.name"),
        strict=opt_bool(spec.get("strict"), f"{path}.strict"),
        description=opt_str(spec.get("description"), f"{path}.description"),
    )


# -- requests: canonical → wire -----------------------------------------------------------------


def encode_request(
    request: Request, *, max_tokens_field: str = "max_completion_tokens"
) -> Translated[JSON]:
    """A canonical request as a Chat Completions body.

    ``max_tokens_field`` is ``max_completion_tokens`` for OpenAI itself (its reasoning models
    refuse ``max_tokens``); some compatible servers only know ``max_tokens``.
    """
    losses = LossLog()
    body: JSON = {"model": request.model}
    messages: list[JSON] = []
    if request.system:
        messages.append({"role": "system", "content": _text_content(request.system, losses)})
    for i, message in enumerate(request.messages):
        messages.extend(_encode_message(message, f"messages[{i}]", losses))
    body["messages"] = messages
    sampling = request.sampling
    if sampling.max_tokens is not None:
        body[max_tokens_field] = sampling.max_tokens
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(sampling, name)
        if value is not None:
            body[name] = value
    if sampling.top_k is not None:
        losses.add("top_k", "top_k")
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if request.tools:
        body["tools"] = [encode_tool(tool, losses) for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = _encode_tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["response_format"] = encode_response_format(request.response_format)
    effort = wire_effort(request.reasoning)
    if effort is not None:
        body["reasoning_effort"] = effort
    if request.user is not None:
        body["user"] = request.user
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return Translated(body, losses.losses())


def wire_effort(reasoning: ReasoningConfig | None) -> str | None:
    """OpenAI's ``reasoning_effort`` for a canonical config; None leaves the model's default
    (non-reasoning models refuse the field, so it is only sent when reasoning was asked for)."""
    if reasoning is None or reasoning.disabled:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    if reasoning.budget_tokens is not None:
        return effort_for_budget(reasoning.budget_tokens)
    return None


def _note_cache(cache: CacheControl | None, where: str, losses: LossLog) -> None:
    if cache is not None:
        losses.add("anthropic.cache_control", where)


def _text_content(parts: tuple[TextPart, ...], losses: LossLog) -> str | list[JSON]:
    for part in parts:
        _note_cache(part.cache, "system", losses)
    if len(parts) == 1:
        return parts[0].text
    return [{"type": "text", "text": part.text} for part in parts]


def _encode_message(message: Message, where: str, losses: LossLog) -> list[JSON]:
    if message.role is Role.ASSISTANT:
        return [_encode_assistant(message, where, losses)]
    out: list[JSON] = []
    rest: list[JSON] = []
    for j, part in enumerate(message.parts):
        path = f"{where}.parts[{j}]"
        if isinstance(part, ToolResultPart):
            out.append(_encode_tool_result(part, path, losses))
            continue
        encoded = _encode_user_part(part, path, losses)
        if encoded is not None:
            rest.append(encoded)
    if rest:
        role = "system" if message.role is Role.SYSTEM else "user"
        if all(item["type"] == "text" for item in rest) and len(rest) == 1:
            out.append({"role": role, "content": rest[0]["text"]})
        else:
            out.append({"role": role, "content": rest})
    return out


def _encode_user_part(part: Part, where: str, losses: LossLog) -> JSON | None:
    if isinstance(part, TextPart):
        _note_cache(part.cache, where, losses)
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        _note_cache(part.cache, where, losses)
        media = part.media
        if media.file_id is not None:
            losses.add("file_id", where)
            return None
        image: JSON = {"url": media.url if media.url is not None else data_url(media)}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, DocumentPart):
        _note_cache(part.cache, where, losses)
        return _encode_document(part, where, losses)
    if isinstance(part, ReasoningPart):
        if part.text or part.opaque:
            losses.add("reasoning", where)
        return None
    losses.add(part.kind.value, where)
    return None


def _encode_document(part: DocumentPart, where: str, losses: LossLog) -> JSON | None:
    media = part.media
    if media.media_type == "text/plain" and media.data is not None:
        text = b64_to_text(media.data)
        if text is not None:
            return {"type": "text", "text": text}
    file: JSON = {}
    if media.file_id is not None:
        file["file_id"] = media.file_id
    elif media.data is not None:
        file["file_data"] = data_url(media)
        file["filename"] = part.title or "document.pdf"
    else:
        losses.add("document.url", where)
        return None
    if part.title is not None:
        file["filename"] = part.title
    return {"type": "file", "file": file}


def _encode_tool_result(part: ToolResultPart, where: str, losses: LossLog) -> JSON:
    _note_cache(part.cache, where, losses)
    texts: list[str] = []
    for item in part.content:
        if isinstance(item, TextPart):
            texts.append(item.text)
        else:
            losses.add(f"tool_result.{item.kind.value}", where)
    if part.is_error:
        losses.add("tool_result.is_error", where)
    return {"role": "tool", "tool_call_id": part.tool_call_id, "content": "".join(texts)}


def _encode_assistant(message: Message, where: str, losses: LossLog) -> JSON:
    texts: list[str] = []
    calls: list[JSON] = []
    for j, part in enumerate(message.parts):
        path = f"{where}.parts[{j}]"
        if isinstance(part, TextPart):
            _note_cache(part.cache, path, losses)
            texts.append(part.text)
        elif isinstance(part, ToolCallPart):
            _note_cache(part.cache, path, losses)
            calls.append(encode_tool_call(part))
        elif isinstance(part, ReasoningPart):
            if part.text or part.opaque:
                losses.add("reasoning", path)
        else:
            losses.add(part.kind.value, path)
    # OpenAI accepts a null content only beside tool calls.
    out: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = calls
    return out


def encode_tool_call(part: ToolCallPart) -> JSON:
    return {
        "id": part.id,
        "type": "function",
        "function": {"name": part.name, "arguments": part.arguments},
    }


def encode_tool(tool: ToolDefinition, losses: LossLog) -> JSON:
    _note_cache(tool.cache, f"tools.{tool.name}", losses)
    function: JSON = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _encode_tool_choice(choice: ToolChoice) -> JSON | str:
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode.value


def encode_response_format(fmt: ResponseFormat) -> JSON:
    if fmt.kind is not ResponseFormatKind.JSON_SCHEMA:
        return {"type": fmt.kind.value}
    spec: JSON = {"name": fmt.name or "response", "schema": dict(fmt.schema or {})}
    if fmt.description is not None:
        spec["description"] = fmt.description
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


# -- responses ----------------------------------------------------------------------------------


def decode_usage(value: Any) -> Usage:
    usage = as_obj(value)
    prompt = as_obj(usage.get("prompt_tokens_details"))
    completion = as_obj(usage.get("completion_tokens_details"))
    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
        cached_input_tokens=count(prompt.get("cached_tokens")),
        cache_write_tokens=count(prompt.get("cache_write_tokens")),
        reasoning_tokens=count(completion.get("reasoning_tokens")),
    )


def encode_usage(usage: Usage) -> JSON:
    prompt: JSON = {"cached_tokens": usage.cached_input_tokens}
    if usage.cache_write_tokens:
        prompt["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def decode_response(body: Mapping[str, Any]) -> Translated[Response]:
    """A chat completion (upstream answer) as a canonical response."""
    losses = LossLog()
    choices = body.get("choices")
    choices = choices if isinstance(choices, list) else []
    if len(choices) > 1:
        losses.add("openai.n", "choices")
    choice = as_obj(choices[0]) if choices else {}
    message = as_obj(choice.get("message"))
    parts: list[Part] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ReasoningPart(text=reasoning))
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(TextPart(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(TextPart(message["refusal"]))
    for call in message.get("tool_calls") or []:
        call = as_obj(call)
        function = as_obj(call.get("function"))
        parts.append(
            ToolCallPart(
                id=text_of(call.get("id")),
                name=text_of(function.get("name")),
                arguments=text_of(function.get("arguments")) or "{}",
            )
        )
    stop = STOP_REASONS.get(text_of(choice.get("finish_reason")), StopReason.END_TURN)
    if stop is StopReason.END_TURN and any(isinstance(p, ToolCallPart) for p in parts):
        stop = StopReason.TOOL_USE
    created = body.get("created")
    response = Response(
        id=text_of(body.get("id")),
        model=text_of(body.get("model")),
        parts=tuple(parts),
        stop_reason=stop,
        usage=decode_usage(body.get("usage")),
        created=created if isinstance(created, int) else None,
    )
    return Translated(response, losses.losses())


def encode_response(response: Response) -> Translated[JSON]:
    """A canonical response as a chat completion for a client."""
    losses = LossLog()
    texts: list[str] = []
    calls: list[JSON] = []
    for i, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolCallPart):
            calls.append(encode_tool_call(part))
        elif isinstance(part, ReasoningPart):
            losses.add("reasoning", f"parts[{i}]")
        else:
            losses.add(part.kind.value, f"parts[{i}]")
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    body: JSON = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created if response.created is not None else now(),
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(response.stop_reason, bool(calls)),
                "logprobs": None,
            }
        ],
        "usage": encode_usage(response.usage),
    }
    return Translated(body, losses.losses())


def finish_reason(stop: StopReason, has_calls: bool) -> str:
    """Chat's ``finish_reason``; ``tool_calls`` only when there are tool calls to go with it."""
    if stop is StopReason.TOOL_USE and not has_calls:
        return "stop"
    return WIRE_STOP_REASONS[stop]


# -- errors -------------------------------------------------------------------------------------


def decode_error(status: int | None, body: Any) -> ErrorInfo:
    """An OpenAI error body (``{"error": {...}}``) as a canonical error. ``status`` is None for
    an error inside a stream."""
    error = as_obj(as_obj(body).get("error"))
    if status is not None:
        error_type = error_type_for_status(status)
    else:
        error_type = error_type_named(text_of(error.get("type")), 0) or ErrorType.SERVER
    code = error.get("code")
    return ErrorInfo(
        status or status_for_error_type(error_type),
        error_type,
        text_of(error.get("message")) or "The upstream reported an error.",
        code=str(code) if code is not None else None,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
    )


def encode_error(error: ErrorInfo) -> JSON:
    """The OpenAI error body for a client (both OpenAI APIs); send it with ``error.status``."""
    return {
        "error": {
            "message": error.message,
            "type": ERROR_NAMES[error.type][0],
            "param": error.param,
            "code": error.code,
        }
    }
