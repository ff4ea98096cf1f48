"""OpenAI Responses API ⇄ canonical.

Responses flattens a conversation into *items*: ``message`` items, ``function_call`` and
``function_call_output`` items, and ``reasoning`` items that carry encrypted reasoning between
turns (Codex runs with ``store: false`` and sends them back each turn). The decoder regroups
consecutive items of one speaker into one canonical message; the encoder flattens them again.

Two defaults differ from Chat Completions and matter when translating: function tools are
*strict* unless told otherwise (a schema written for another vendor usually fails strict
validation, so the encoder always says ``strict``), and there is no ``stop`` parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passerelle.core.canonical import (
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
)
from passerelle.core.opaque import outgoing_token, received_state
from passerelle.core.translation import LossLog, Translated
from passerelle.formats._common import (
    JSON,
    arr,
    as_obj,
    b64_to_text,
    count,
    data_url,
    invalid,
    now,
    obj,
    opt_bool,
    opt_float,
    opt_int,
    opt_str,
    parse_data_url,
    req,
    string,
    text_of,
)
from passerelle.formats.openai_chat import (
    decode_error,
    decode_response_format,
    encode_error,
    wire_effort,
)

__all__ = [
    "ENCRYPTED_REASONING",
    "VENDOR",
    "decode_error",
    "decode_output_item",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_error",
    "encode_output_item",
    "encode_request",
    "encode_response",
    "encode_usage",
    "error_event",
    "item_id",
    "output_text",
    "reasoning_item",
    "response_object",
    "stop_reason_of",
]

VENDOR = Vendor.OPENAI
ENCRYPTED_REASONING = "reasoning.encrypted_content"

_KNOWN_FIELDS = {
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "include",
}


# -- requests: wire → canonical -----------------------------------------------------------------


def decode_request(body: Mapping[str, Any]) -> Translated[Request]:
    """A Responses API request body as a canonical request."""
    losses = LossLog()
    body = obj(body, "body")
    for key, value in body.items():
        if key in _KNOWN_FIELDS or value is None:
            continue
        if key == "store" and value is False:
            continue
        losses.add(f"openai.{key}", key)
    model = string(req(body, "model", ""), "model")
    system: list[TextPart] = []
    instructions = opt_str(body.get("instructions"), "instructions")
    if instructions:
        system.append(TextPart(instructions))
    items = req(body, "input", "")
    if isinstance(items, str):
        messages: tuple[Message, ...] = (Message(Role.USER, (TextPart(items),)),)
    else:
        messages = _decode_items(arr(items, "input"), system, losses)
    text = obj(body.get("text") or {}, "text")
    if text.get("verbosity") is not None:
        losses.add("openai.text.verbosity", "text.verbosity")
    metadata = obj(body.get("metadata") or {}, "metadata")
    user = opt_str(body.get("user"), "user") or opt_str(
        body.get("safety_identifier"), "safety_identifier"
    )
    request = Request(
        model=model,
        messages=messages,
        system=tuple(system),
        tools=_decode_tools(body.get("tools"), losses),
        tool_choice=_decode_tool_choice(body.get("tool_choice"), losses),
        parallel_tool_calls=opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls"),
        sampling=Sampling(
            max_tokens=opt_int(body.get("max_output_tokens"), "max_output_tokens"),
            temperature=opt_float(body.get("temperature"), "temperature"),
            top_p=opt_float(body.get("top_p"), "top_p"),
        ),
        response_format=decode_response_format(text.get("format"), "text.format"),
        reasoning=_decode_reasoning(body.get("reasoning")),
        stream=bool(opt_bool(body.get("stream"), "stream")),
        user=user,
        metadata={key: string(value, f"metadata.{key}") for key, value in metadata.items()},
    )
    return Translated(request, losses.losses())


def _decode_reasoning(value: Any) -> ReasoningConfig | None:
    if value is None:
        return None
    reasoning = obj(value, "reasoning")
    summary = reasoning.get("summary", reasoning.get("generate_summary"))
    return ReasoningConfig(
        effort=opt_str(reasoning.get("effort"), "reasoning.effort"),
        summary=None if summary is None else True,
    )


def _decode_items(items: Any, system: list[TextPart], losses: LossLog) -> tuple[Message, ...]:
    messages: list[Message] = []
    for i, value in enumerate(items):
        path = f"input[{i}]"
        item = obj(value, path)
        kind = item.get("type", "message")
        role: Role
        parts: tuple[Part, ...]
        if kind == "message":
            role_name = req(item, "role", path)
            if role_name not in ("user", "assistant", "system", "developer"):
                raise invalid(f"{path}.role", "must be user, assistant, system or developer")
            role = Role.SYSTEM if role_name in ("system", "developer") else Role(role_name)
            parts = _decode_content(req(item, "content", path), f"{path}.content", losses)
            if role is Role.SYSTEM and not messages:
                system.extend(p for p in parts if isinstance(p, TextPart))
                continue
        elif kind == "function_call":
            role, parts = Role.ASSISTANT, (_decode_call(item, path),)
        elif kind == "function_call_output":
            role, parts = Role.USER, (_decode_output(item, path, losses),)
        elif kind == "reasoning":
            role, parts = Role.ASSISTANT, (_decode_reasoning_item(item, path),)
        else:
            losses.add(f"openai.{kind}", path)
            continue
        if messages and messages[-1].role is role and role is not Role.SYSTEM:
            messages[-1] = Message(role, (*messages[-1].parts, *parts))
        else:
            messages.append(Message(role, parts))
    return tuple(messages)


def _decode_content(content: Any, path: str, losses: LossLog) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[Part] = []
    for j, value in enumerate(arr(content, path)):
        where = f"{path}[{j}]"
        item = obj(value, where)
        kind = req(item, "type", where)
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(string(req(item, "text", where), f"{where}.text")))
        elif kind == "refusal":
            parts.append(TextPart(string(req(item, "refusal", where), f"{where}.refusal")))
        elif kind == "input_image":
            parts.append(_decode_image(item, where))
        elif kind == "input_file":
            parts.append(_decode_file(item, where))
        else:
            losses.add(f"openai.{kind}", where)
    return tuple(parts)


def _decode_image(item: Mapping[str, Any], where: str) -> ImagePart:
    detail = opt_str(item.get("detail"), f"{where}.detail")
    file_id = opt_str(item.get("file_id"), f"{where}.file_id")
    if file_id is not None:
        return ImagePart(Media(file_id=file_id), detail=detail)
    url = string(req(item, "image_url", where), f"{where}.image_url")
    return ImagePart(parse_data_url(url) or Media(url=url), detail=detail)


def _decode_file(item: Mapping[str, Any], where: str) -> DocumentPart:
    filename = opt_str(item.get("filename"), f"{where}.filename")
    file_id = opt_str(item.get("file_id"), f"{where}.file_id")
    if file_id is not None:
        return DocumentPart(Media(file_id=file_id), title=filename)
    file_url = opt_str(item.get("file_url"), f"{where}.file_url")
    if file_url is not None:
        return DocumentPart(Media(media_type="application/pdf", url=file_url), title=filename)
    data = string(req(item, "file_data", where), f"{where}.file_data")
    media = parse_data_url(data) or Media(media_type="application/pdf", data=data)
    return DocumentPart(media, title=filename)


def _decode_call(item: Mapping[str, Any], path: str) -> ToolCallPart:
    return ToolCallPart(
        id=string(req(item, "call_id", path), f"{path}.call_id"),
        name=string(req(item, "name", path), f"{path}.name"),
        arguments=string(req(item, "arguments", path), f"{path}.arguments"),
    )


def _decode_output(item: Mapping[str, Any], path: str, losses: LossLog) -> ToolResultPart:
    output = req(item, "output", path)
    content: tuple[Part, ...] = _decode_content(output, f"{path}.output", losses)
    return ToolResultPart(
        tool_call_id=string(req(item, "call_id", path), f"{path}.call_id"),
        content=tuple(p for p in content if isinstance(p, TextPart | ImagePart | DocumentPart)),
    )


def _decode_reasoning_item(item: Mapping[str, Any], path: str) -> ReasoningPart:
    texts = []
    for j, summary in enumerate(arr(item.get("summary") or [], f"{path}.summary")):
        summary = obj(summary, f"{path}.summary[{j}]")
        texts.append(string(req(summary, "text", f"{path}.summary[{j}]"), f"{path}.summary"))
    if not texts:
        for j, content in enumerate(arr(item.get("content") or [], f"{path}.content")):
            content = obj(content, f"{path}.content[{j}]")
            texts.append(string(req(content, "text", f"{path}.content[{j}]"), f"{path}.content"))
    state = received_state(
        VENDOR,
        encrypted=opt_str(item.get("encrypted_content"), f"{path}.encrypted_content"),
        id=opt_str(item.get("id"), f"{path}.id"),
    )
    return ReasoningPart(
        text="\n\n".join(texts),
        signature=state.signature,
        encrypted=state.encrypted,
        origin=state.origin,
        id=state.id,
    )


def _decode_tools(value: Any, losses: LossLog) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, item in enumerate(arr(value or [], "tools")):
        path = f"tools[{i}]"
        tool = obj(item, path)
        if tool.get("type") != "function":
            losses.add(f"openai.tools.{tool.get('type')}", path)
            continue
        parameters = tool.get("parameters")
        tools.append(
            ToolDefinition(
                name=string(req(tool, "name", path), f"{path}.name"),
                description=opt_str(tool.get("description"), f"{path}.description"),
                parameters=obj(parameters, f"{path}.parameters")
                if parameters is not None
                else {"type": "object", "properties": {}},
                strict=opt_bool(tool.get("strict"), f"{path}.strict"),
            )
        )
    return tuple(tools)


def _decode_tool_choice(value: Any, losses: LossLog) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise invalid("tool_choice", "must be 'auto', 'none', 'required' or an object")
        return ToolChoice(ToolChoiceMode(value))
    choice = obj(value, "tool_choice")
    if choice.get("type") == "function":
        return ToolChoice(
            ToolChoiceMode.TOOL, string(req(choice, "name", "tool_choice"), "tool_choice.name")
        )
    losses.add(f"openai.tool_choice.{choice.get('type')}", "tool_choice")
    return None


# -- requests: canonical → wire -----------------------------------------------------------------


def encode_request(request: Request) -> Translated[JSON]:
    """A canonical request as a Responses API body for an OpenAI upstream."""
    losses = LossLog()
    body: JSON = {"model": request.model}
    if request.system:
        if any(part.cache is not None for part in request.system):
            losses.add("anthropic.cache_control", "system")
        body["instructions"] = "\n\n".join(part.text for part in request.system)
    items: list[JSON] = []
    for i, message in enumerate(request.messages):
        items.extend(_encode_message(message, f"messages[{i}]", losses))
    body["input"] = items
    sampling = request.sampling
    if sampling.max_tokens is not None:
        body["max_output_tokens"] = sampling.max_tokens
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    for name in ("top_k", "seed", "presence_penalty", "frequency_penalty"):
        if getattr(sampling, name) is not None:
            losses.add(name, name)
    if sampling.stop:
        losses.add("stop", "stop")
    if request.tools:
        body["tools"] = [_encode_tool(tool, losses) for tool in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "name": choice.name}
            if choice.mode is ToolChoiceMode.TOOL
            else choice.mode.value
        )
    if request.response_format is not None:
        body["text"] = {"format": _encode_format(request.response_format)}
    effort = wire_effort(request.reasoning)
    if effort is not None and request.reasoning is not None:
        reasoning: JSON = {"effort": effort}
        if request.reasoning.summary is not False:
            reasoning["summary"] = "auto"
        body["reasoning"] = reasoning
        # Stateless: the reasoning comes back encrypted and is replayed by the caller.
        body["include"] = [ENCRYPTED_REASONING]
        body["store"] = False
    if request.user is not None:
        body["user"] = request.user
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    if request.stream:
        body["stream"] = True
    return Translated(body, losses.losses())


def _encode_message(message: Message, where: str, losses: LossLog) -> list[JSON]:
    items: list[JSON] = []
    content: list[JSON] = []
    role = message.role.value

    def flush() -> None:
        if not content:
            return
        if message.role is Role.ASSISTANT:
            # Earlier assistant text goes back as a plain string: output_text parts would need
            # the id and status of an item this conversation may never have had.
            text = "".join(item["text"] for item in content)
            items.append({"type": "message", "role": role, "content": text})
        else:
            items.append({"type": "message", "role": role, "content": list(content)})
        content.clear()

    for j, part in enumerate(message.parts):
        path = f"{where}.parts[{j}]"
        if getattr(part, "cache", None) is not None:
            losses.add("anthropic.cache_control", path)
        if isinstance(part, TextPart):
            content.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart | DocumentPart):
            encoded = _encode_media(part, path, losses)
            if encoded is not None:
                content.append(encoded)
        else:
            flush()
            item = _encode_item(part, path, losses)
            if item is not None:
                items.append(item)
    flush()
    return items


def _encode_media(part: ImagePart | DocumentPart, where: str, losses: LossLog) -> JSON | None:
    media = part.media
    if isinstance(part, ImagePart):
        image: JSON = {"type": "input_image", "detail": part.detail or "auto"}
        if media.file_id is not None:
            image["file_id"] = media.file_id
        else:
            image["image_url"] = media.url if media.url is not None else data_url(media)
        return image
    if media.media_type == "text/plain" and media.data is not None:
        text = b64_to_text(media.data)
        if text is not None:
            return {"type": "input_text", "text": text}
    file: JSON = {"type": "input_file"}
    if media.file_id is not None:
        file["file_id"] = media.file_id
    elif media.url is not None:
        file["file_url"] = media.url
    else:
        file["file_data"] = data_url(media)
        file["filename"] = part.title or "document.pdf"
    if part.title is not None:
        file["filename"] = part.title
    return file


def _encode_item(part: Part, where: str, losses: LossLog) -> JSON | None:
    if isinstance(part, ToolCallPart):
        return {
            "type": "function_call",
            "call_id": part.id,
            "name": part.name,
            "arguments": part.arguments,
        }
    if isinstance(part, ToolResultPart):
        output: list[JSON] = []
        for k, item in enumerate(part.content):
            if isinstance(item, TextPart):
                output.append({"type": "input_text", "text": item.text})
            else:
                encoded = _encode_media(item, f"{where}.content[{k}]", losses)
                if encoded is not None:
                    output.append(encoded)
        if part.is_error:
            losses.add("tool_result.is_error", where)
        simple = all(item["type"] == "input_text" for item in output)
        return {
            "type": "function_call_output",
            "call_id": part.tool_call_id,
            "output": "".join(item["text"] for item in output) if simple else output,
        }
    if isinstance(part, ReasoningPart):
        if part.origin is VENDOR and part.id is not None and part.encrypted is not None:
            summary = [{"type": "summary_text", "text": part.text}] if part.text else []
            return {
                "type": "reasoning",
                "id": part.id,
                "summary": summary,
                "encrypted_content": part.encrypted,
            }
        if part.text or part.opaque:
            losses.add(_reasoning_loss(part), where)
        return None
    losses.add(part.kind.value, where)
    return None


def _reasoning_loss(part: ReasoningPart) -> str:
    if part.origin is Vendor.ANTHROPIC:
        return "anthropic.thinking"
    if part.origin is Vendor.GEMINI:
        return "gemini.thought"
    return "openai.reasoning"


def _encode_tool(tool: ToolDefinition, losses: LossLog) -> JSON:
    if tool.cache is not None:
        losses.add("anthropic.cache_control", f"tools.{tool.name}")
    out: JSON = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parameters"] = dict(tool.parameters)
    out["strict"] = bool(tool.strict)
    return out


def _encode_format(fmt: ResponseFormat) -> JSON:
    if fmt.kind is not ResponseFormatKind.JSON_SCHEMA:
        return {"type": fmt.kind.value}
    out: JSON = {
        "type": "json_schema",
        "name": fmt.name or "response",
        "schema": dict(fmt.schema or {}),
    }
    if fmt.description is not None:
        out["description"] = fmt.description
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


# -- responses ----------------------------------------------------------------------------------


def decode_usage(value: Any) -> Usage:
    usage = as_obj(value)
    details_in = as_obj(usage.get("input_tokens_details"))
    details_out = as_obj(usage.get("output_tokens_details"))
    return Usage(
        input_tokens=count(usage.get("input_tokens")),
        output_tokens=count(usage.get("output_tokens")),
        cached_input_tokens=count(details_in.get("cached_tokens")),
        cache_write_tokens=count(details_in.get("cache_write_tokens")),
        reasoning_tokens=count(details_out.get("reasoning_tokens")),
    )


def encode_usage(usage: Usage) -> JSON:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def stop_reason_of(response: Mapping[str, Any], has_calls: bool) -> StopReason:
    """The canonical stop reason of a Responses ``response`` object (status and details)."""
    status = response.get("status")
    if status == "incomplete":
        reason = as_obj(response.get("incomplete_details")).get("reason")
        if reason == "content_filter":
            return StopReason.CONTENT_FILTER
        return StopReason.MAX_TOKENS
    if status == "failed":
        return StopReason.ERROR
    return StopReason.TOOL_USE if has_calls else StopReason.END_TURN


def decode_output_item(item: Mapping[str, Any], where: str, losses: LossLog) -> list[Part]:
    """The canonical parts of one output item of an upstream response."""
    kind = item.get("type")
    if kind == "message":
        parts: list[Part] = []
        for content in item.get("content") or []:
            content = as_obj(content)
            if content.get("type") == "output_text":
                parts.append(TextPart(text_of(content.get("text"))))
            elif content.get("type") == "refusal":
                parts.append(TextPart(text_of(content.get("refusal"))))
        return parts
    if kind == "function_call":
        return [
            ToolCallPart(
                id=text_of(item.get("call_id")),
                name=text_of(item.get("name")),
                arguments=text_of(item.get("arguments")) or "{}",
            )
        ]
    if kind == "reasoning":
        texts = [text_of(as_obj(s).get("text")) for s in item.get("summary") or []]
        if not texts:
            texts = [text_of(as_obj(c).get("text")) for c in item.get("content") or []]
        encrypted = item.get("encrypted_content")
        return [
            ReasoningPart(
                text="\n\n".join(texts),
                encrypted=encrypted if isinstance(encrypted, str) and encrypted else None,
                origin=VENDOR,
                id=text_of(item.get("id")) or None,
            )
        ]
    losses.add(f"openai.{kind}", where)
    return []


def decode_response(body: Mapping[str, Any]) -> Translated[Response]:
    """A Responses ``response`` object (upstream answer) as a canonical response."""
    losses = LossLog()
    parts: list[Part] = []
    for i, item in enumerate(body.get("output") or []):
        parts.extend(decode_output_item(as_obj(item), f"output[{i}]", losses))
    has_calls = any(isinstance(part, ToolCallPart) for part in parts)
    created = body.get("created_at")
    response = Response(
        id=text_of(body.get("id")),
        model=text_of(body.get("model")),
        parts=tuple(parts),
        stop_reason=stop_reason_of(body, has_calls),
        usage=decode_usage(body.get("usage")),
        created=int(created) if isinstance(created, int | float) else None,
    )
    return Translated(response, losses.losses())


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    """A stable id for an output item the source did not name (``msg_…``, ``fc_…``, ``rs_…``)."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def encode_output_item(part: Part, response_id: str, output_index: int) -> JSON | None:
    """One canonical part as a completed Responses output item; None when it has none."""
    if isinstance(part, TextPart):
        return {
            "type": "message",
            "id": item_id("msg", response_id, output_index),
            "status": "completed",
            "role": "assistant",
            "content": [output_text(part.text)],
        }
    if isinstance(part, ToolCallPart):
        return {
            "type": "function_call",
            "id": item_id("fc", response_id, output_index),
            "call_id": part.id,
            "name": part.name,
            "arguments": part.arguments,
            "status": "completed",
        }
    if isinstance(part, ReasoningPart):
        return reasoning_item(part, response_id, output_index)
    return None


def output_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(part: ReasoningPart, response_id: str, output_index: int) -> JSON:
    native = part.origin is VENDOR and part.id is not None
    item: JSON = {
        "type": "reasoning",
        "id": part.id if native else item_id("rs", response_id, output_index),
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
    }
    token = outgoing_token(part, VENDOR)
    if token is not None:
        item["encrypted_content"] = token
    return item


def response_object(
    response_id: str,
    model: str,
    created: int,
    output: list[JSON],
    *,
    stop: StopReason | None,
    usage: Usage | None,
) -> JSON:
    """A Responses ``response`` object; ``stop`` None means still in progress."""
    status = "in_progress"
    incomplete = None
    if stop is StopReason.MAX_TOKENS or stop is StopReason.CONTEXT_WINDOW:
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif stop is StopReason.CONTENT_FILTER or stop is StopReason.REFUSAL:
        status, incomplete = "incomplete", {"reason": "content_filter"}
    elif stop is StopReason.ERROR:
        status = "failed"
    elif stop is not None:
        status = "completed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": None,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": encode_usage(usage) if usage is not None else None,
    }


def encode_response(response: Response) -> Translated[JSON]:
    """A canonical response as a Responses ``response`` object for a client."""
    losses = LossLog()
    output: list[JSON] = []
    for i, part in enumerate(response.parts):
        item = encode_output_item(part, response.id, len(output))
        if item is None:
            losses.add(part.kind.value, f"parts[{i}]")
        else:
            output.append(item)
    created = response.created if response.created is not None else now()
    body = response_object(
        response.id,
        response.model,
        created,
        output,
        stop=response.stop_reason,
        usage=response.usage,
    )
    return Translated(body, losses.losses())


def error_event(error: ErrorInfo, sequence_number: int) -> JSON:
    """A Responses stream ``error`` event."""
    body = encode_error(error)["error"]
    return {
        "type": "error",
        "code": body["code"] or body["type"],
        "message": body["message"],
        "param": body["param"],
        "sequence_number": sequence_number,
    }
