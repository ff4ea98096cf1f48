"""The fake Gemini: what it answers to a ``generateContent`` request, as plain data.

Served by ``fake_gemini`` under both the Gemini API paths and the Vertex AI ones; the two differ in
authentication and in a few response fields (Vertex adds ``createTime`` and ``trafficType``), not in
what the model says. Deterministic, like the other fakes:

* a ``functionCall`` whenever function declarations are offered, the calling mode is not ``NONE``
  and the last turn is not a function response (two calls when the prompt says "parallel");
  ``args`` satisfy the declaration's schema;
* after function responses, "This is a fake reply using the tool results: ...";
* otherwise "This is a fake reply to: <the last user text>";
* with a ``thinkingConfig`` that asks for thinking, ``thoughtsTokenCount`` is reported, and the
  thought itself is a ``{"thought": true}`` part when ``includeThoughts`` is set;
* ``cachedContent`` adds ``cachedContentTokenCount`` (counted in ``promptTokenCount`` too, as the
  API does); an image costs ``IMAGE_TOKENS``, reported under the ``IMAGE`` modality.

The checks mirror the API's own errors: contents present and non-empty, valid roles, exactly one
data field per part, base64 inline data, and function responses that answer the function call turn
right before them, one for one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import orjson

from passerelle.testing._fake_common import (
    estimate_tokens,
    pad_with_filler,
    placeholder,
    split_text,
    truncate_to_tokens,
)

IMAGE_TOKENS = 258  # what Gemini counts for an image of up to 384 x 384 pixels
_DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_CALLING_MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"})


class InvalidGeminiRequest(Exception):
    """The request breaks one of the API's rules; ``message`` is what the API would say."""

    def __init__(self, message: str, status: int = 400, status_name: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.status_name = status_name


@dataclass(frozen=True, slots=True)
class GeminiRequest:
    contents: list[dict[str, object]]
    functions: list[dict[str, object]]
    calling_mode: str
    allowed_functions: tuple[str, ...]
    max_output_tokens: int | None
    candidate_count: int
    stop_sequences: tuple[str, ...]
    response_mime_type: str | None
    response_schema: object
    thinking: bool
    include_thoughts: bool
    text_tokens: int
    image_tokens: int
    cached_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + self.image_tokens + self.cached_tokens


@dataclass(frozen=True, slots=True)
class Candidate:
    parts: list[dict[str, object]]
    finish_reason: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Reply:
    candidates: list[Candidate]
    usage: dict[str, object]


def json_field(obj: Mapping[str, object], camel: str) -> object:
    """A field by its JSON name, or by its proto name (the API accepts both spellings)."""
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


def parse_request(
    body: Mapping[str, object], *, vertex: bool, cached_content_tokens: int
) -> GeminiRequest:
    """Check a GenerateContentRequest as the API does."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidGeminiRequest("* GenerateContentRequest.contents: contents is not specified\n")
    text_chars = 0
    images = 0
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, dict):
            raise InvalidGeminiRequest(f"Invalid value at '{where}': expected an object")
        role = content.get("role")
        if (role is None and vertex) or role not in (None, "user", "model", "function"):
            raise InvalidGeminiRequest("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidGeminiRequest(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n"
            )
        for position, part in enumerate(parts):
            chars, image = _check_part(f"{where}.parts[{position}]", part)
            text_chars += chars
            images += image
    _check_function_turns(contents)
    system = json_field(body, "systemInstruction")
    if system is not None:
        if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
            raise InvalidGeminiRequest("Invalid value at 'system_instruction': expected Content")
        text_chars += sum(len(str(part.get("text", ""))) for part in _parts(system))
    functions = _functions(body.get("tools"))
    text_chars += sum(len(orjson.dumps(function)) for function in functions)
    mode, allowed = _calling_config(json_field(body, "toolConfig"))
    config = json_field(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise InvalidGeminiRequest("Invalid value at 'generation_config': expected an object")
    max_output = _int(config, "maxOutputTokens", 1)
    count = _int(config, "candidateCount", 1, 8) or 1
    stops = json_field(config, "stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise InvalidGeminiRequest("Invalid value at 'generation_config.stop_sequences'")
    if len(stops) > 5:
        raise InvalidGeminiRequest("generation_config.stop_sequences: at most 5 are allowed")
    mime = json_field(config, "responseMimeType")
    schema = json_field(config, "responseJsonSchema") or json_field(config, "responseSchema")
    thinking_config = json_field(config, "thinkingConfig")
    thinking = include = False
    if isinstance(thinking_config, dict):
        include = json_field(thinking_config, "includeThoughts") is True
        budget = json_field(thinking_config, "thinkingBudget")
        thinking = (
            include
            or json_field(thinking_config, "thinkingLevel") is not None
            or (budget is not None and budget != 0)
        )
    cached = cached_content_tokens if json_field(body, "cachedContent") else 0
    return GeminiRequest(
        contents=contents,
        functions=functions,
        calling_mode=mode,
        allowed_functions=allowed,
        max_output_tokens=max_output,
        candidate_count=count,
        stop_sequences=tuple(stops),
        response_mime_type=mime if isinstance(mime, str) else None,
        response_schema=schema,
        thinking=thinking,
        include_thoughts=include,
        text_tokens=estimate_tokens(text_chars),
        image_tokens=images * IMAGE_TOKENS,
        cached_tokens=cached,
    )


def answer(request: GeminiRequest, *, reply_words: int | None = None) -> Reply:
    prompt = _prompt_text(request.contents)
    last = request.contents[-1]
    after_tool = any(
        json_field(part, "functionResponse") is not None for part in _parts(last)
    ) and last.get("role") in (None, "user", "function")
    thoughts = ""
    if request.thinking:
        thoughts = f'The user wrote "{prompt[:60]}"; a fake model answers deterministically.'
    functions = request.functions
    if request.allowed_functions and request.calling_mode == "ANY":
        functions = [f for f in functions if f.get("name") in request.allowed_functions]
    candidates = []
    for _ in range(request.candidate_count):
        parts: list[dict[str, object]] = []
        if request.include_thoughts:
            parts.append({"text": thoughts, "thought": True})
        if functions and not after_tool and request.calling_mode != "NONE":
            chosen = (
                functions[:2]
                if len(functions) >= 2 and "parallel" in prompt.lower()
                else functions[:1]
            )
            tokens = 0
            for position, function in enumerate(chosen):
                call = {"name": function["name"], "args": _arguments(function)}
                part: dict[str, object] = {"functionCall": call}
                if request.thinking and position == 0:
                    part["thoughtSignature"] = thought_signature(thoughts)
                parts.append(part)
                tokens += estimate_tokens(len(orjson.dumps(call)))
            candidates.append(Candidate(parts, "STOP", tokens))
            continue
        if after_tool:
            results = [
                orjson.dumps(json_field(response, "response")).decode()
                for part in _parts(last)
                if isinstance(response := json_field(part, "functionResponse"), dict)
            ]
            text = "This is a fake reply using the tool results: " + " | ".join(results)
        else:
            text = "This is a fake reply to: " + prompt[:60]
            images = request.image_tokens // IMAGE_TOKENS
            if images:
                text += f" (with {images} image{'s' if images > 1 else ''})"
        text = pad_with_filler(text, reply_words)
        if request.response_mime_type == "application/json":
            if request.response_schema is not None:
                text = orjson.dumps(placeholder(_lower_types(request.response_schema))).decode()
            else:
                text = orjson.dumps({"reply": text}).decode()
        finish = "STOP"
        for stop in request.stop_sequences:
            position = text.find(stop)
            if position >= 0:
                text = text[:position]
                break
        text, truncated = truncate_to_tokens(text, request.max_output_tokens)
        if truncated:
            finish = "MAX_TOKENS"
        parts.append({"text": text})
        candidates.append(Candidate(parts, finish, estimate_tokens(len(text))))
    output = sum(candidate.tokens for candidate in candidates)
    thought_tokens = estimate_tokens(len(thoughts)) * request.candidate_count
    usage: dict[str, object] = {"promptTokenCount": request.prompt_tokens}
    usage["candidatesTokenCount"] = output
    usage["totalTokenCount"] = request.prompt_tokens + output + thought_tokens
    if request.cached_tokens:
        usage["cachedContentTokenCount"] = request.cached_tokens
    usage["promptTokensDetails"] = prompt_details(request)
    if request.cached_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": request.cached_tokens}]
    if thought_tokens:
        usage["thoughtsTokenCount"] = thought_tokens
    return Reply(candidates, usage)


def prompt_details(request: GeminiRequest) -> list[dict[str, object]]:
    details: list[dict[str, object]] = [
        {"modality": "TEXT", "tokenCount": request.text_tokens + request.cached_tokens}
    ]
    if request.image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": request.image_tokens})
    return details


def response(
    reply: Reply, model_version: str, response_id: str, *, vertex: bool, create_time: str
) -> dict[str, object]:
    """The non-streamed GenerateContentResponse."""
    candidates = [
        {
            "content": _content(candidate.parts, vertex),
            "finishReason": candidate.finish_reason,
            "index": index,
        }
        for index, candidate in enumerate(reply.candidates)
    ]
    return _envelope(candidates, reply.usage, model_version, response_id, vertex, create_time)


def stream_chunks(
    reply: Reply,
    request: GeminiRequest,
    model_version: str,
    response_id: str,
    *,
    vertex: bool,
    create_time: str,
    words_per_chunk: int,
    chunk_chars: int = 0,
) -> Iterator[dict[str, object]]:
    """The chunks of a streamed answer: text a few words at a time, a function call whole; the
    finish reason and the full usage come with each candidate's last chunk."""
    running: dict[str, object] = {
        "promptTokenCount": request.prompt_tokens,
        "totalTokenCount": request.prompt_tokens,
        "promptTokensDetails": prompt_details(request),
    }
    last_index = len(reply.candidates) - 1
    for index, candidate in enumerate(reply.candidates):
        pieces: list[list[dict[str, object]]] = []
        for part in candidate.parts:
            if "text" in part and not part.get("thought"):
                pieces.extend(
                    [{"text": piece}]
                    for piece in split_text(str(part["text"]), words_per_chunk, chunk_chars)
                )
            elif pieces and "functionCall" in part and "functionCall" in pieces[-1][-1]:
                pieces[-1].append(part)
            else:
                pieces.append([part])
        for position, parts in enumerate(pieces):
            entry: dict[str, object] = {"content": _content(parts, vertex)}
            final = position == len(pieces) - 1
            if final:
                entry["finishReason"] = candidate.finish_reason
            entry["index"] = index
            usage = reply.usage if final and index == last_index else running
            yield _envelope([entry], usage, model_version, response_id, vertex, create_time)


def count_tokens_response(request: GeminiRequest, *, vertex: bool) -> dict[str, object]:
    payload: dict[str, object] = {"totalTokens": request.prompt_tokens}
    if request.cached_tokens:
        payload["cachedContentTokenCount"] = request.cached_tokens
    if vertex:
        payload["totalBillableCharacters"] = request.text_tokens * 4
    payload["promptTokensDetails"] = prompt_details(request)
    return payload


def thought_signature(thoughts: str) -> str:
    digest = hashlib.sha256(b"passerelle-fake-thought\x00" + thoughts.encode()).digest()
    return base64.b64encode(digest).decode()


def new_response_id() -> str:
    return "fake" + base64.urlsafe_b64encode(os.urandom(15)).decode()


# -- helpers ---------------------------------------------------------------------------------


def _envelope(
    candidates: list[dict[str, object]],
    usage: Mapping[str, object],
    model_version: str,
    response_id: str,
    vertex: bool,
    create_time: str,
) -> dict[str, object]:
    if vertex:
        return {
            "candidates": candidates,
            "usageMetadata": {**usage, "trafficType": "ON_DEMAND"},
            "modelVersion": model_version,
            "createTime": create_time,
            "responseId": response_id,
        }
    return {
        "candidates": candidates,
        "usageMetadata": dict(usage),
        "modelVersion": model_version,
        "responseId": response_id,
    }


def _content(parts: list[dict[str, object]], vertex: bool) -> dict[str, object]:
    return {"role": "model", "parts": parts} if vertex else {"parts": parts, "role": "model"}


def _parts(content: object) -> list[dict[str, object]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []


def _check_part(where: str, part: object) -> tuple[int, int]:
    """The part's text length and image count, once its one data field has been checked."""
    if not isinstance(part, dict):
        raise InvalidGeminiRequest(f"Invalid value at '{where}': expected an object")
    present = [name for name in _DATA_FIELDS if json_field(part, name) is not None]
    if len(present) != 1:
        raise InvalidGeminiRequest(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
            "initialized field\n"
        )
    kind = present[0]
    value = json_field(part, kind)
    if kind == "text":
        return len(str(value)), 0
    if kind == "inlineData":
        if not isinstance(value, dict) or not isinstance(json_field(value, "mimeType"), str):
            raise InvalidGeminiRequest(
                f"* GenerateContentRequest.{where}.inline_data.mime_type: required\n"
            )
        data = value.get("data")
        if not isinstance(data, str) or not _base64(data):
            shown = str(data)[:20]
            raise InvalidGeminiRequest(
                f"Invalid value at '{where}.inline_data.data' "
                f'(TYPE_BYTES), Base64 decoding failed for "{shown}"'
            )
        return 0, 1 if str(json_field(value, "mimeType")).startswith("image/") else 0
    if kind == "functionCall":
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise InvalidGeminiRequest(
                f"* GenerateContentRequest.{where}.function_call.name: name is not specified\n"
            )
        return len(orjson.dumps(value)), 0
    if kind == "functionResponse":
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise InvalidGeminiRequest(
                f"* GenerateContentRequest.{where}.function_response.name: name is not specified\n"
            )
        return len(orjson.dumps(value)), 0
    return len(orjson.dumps(value)), 0


def _base64(data: str) -> bool:
    """Whether ``data`` is base64, in the standard or the URL-safe alphabet (both are accepted)."""
    for altchars in (None, b"-_"):
        try:
            base64.b64decode(data, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        return True
    return False


def _check_function_turns(contents: Sequence[dict[str, object]]) -> None:
    """Function responses come right after the function call turn, one response per call."""
    for index, content in enumerate(contents):
        responses = [p for p in _parts(content) if json_field(p, "functionResponse") is not None]
        if not responses:
            continue
        previous = contents[index - 1] if index else None
        calls = [p for p in _parts(previous) if json_field(p, "functionCall") is not None]
        if not calls or (previous is not None and previous.get("role") != "model"):
            raise InvalidGeminiRequest(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        if len(calls) != len(responses):
            raise InvalidGeminiRequest(
                "Please ensure that the number of function response parts is equal to the number "
                "of function call parts of the function call turn."
            )


def _functions(tools: object) -> list[dict[str, object]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidGeminiRequest("Invalid value at 'tools': expected a list")
    found = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidGeminiRequest(f"Invalid value at 'tools[{index}]': expected an object")
        declarations = json_field(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise InvalidGeminiRequest(f"Invalid value at 'tools[{index}].function_declarations'")
        for position, declaration in enumerate(declarations):
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise InvalidGeminiRequest(
                    f"* GenerateContentRequest.tools[{index}].function_declarations[{position}]"
                    ".name: Invalid function name.\n"
                )
            found.append(declaration)
    return found


def _calling_config(tool_config: object) -> tuple[str, tuple[str, ...]]:
    if not isinstance(tool_config, dict):
        return "AUTO", ()
    config = json_field(tool_config, "functionCallingConfig")
    if not isinstance(config, dict):
        return "AUTO", ()
    mode = config.get("mode", "AUTO")
    if mode not in _CALLING_MODES:
        raise InvalidGeminiRequest(
            "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "{mode}"'
        )
    allowed = json_field(config, "allowedFunctionNames") or []
    names = tuple(str(name) for name in allowed) if isinstance(allowed, list) else ()
    return str(mode), names


def _int(config: Mapping[str, object], name: str, low: int, high: int | None = None) -> int | None:
    value = json_field(config, name)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        limit = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidGeminiRequest(f"generation_config.{name}: must be an integer {limit}")
    return value


def _arguments(function: Mapping[str, object]) -> dict[str, object]:
    schema = json_field(function, "parametersJsonSchema")
    if schema is None:
        schema = _lower_types(function.get("parameters") or {"type": "object"})
    value = placeholder(schema)
    return value if isinstance(value, dict) else {}


def _lower_types(schema: object) -> object:
    """An OpenAPI schema as Gemini writes it (``"type": "OBJECT"``) with JSON Schema's types."""
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    lowered = {key: _lower_types(value) for key, value in schema.items()}
    if isinstance(lowered.get("type"), str):
        lowered["type"] = str(lowered["type"]).lower()
    return lowered


def _prompt_text(contents: Sequence[dict[str, object]]) -> str:
    for content in reversed(contents):
        if content.get("role") not in (None, "user"):
            continue
        texts = [str(part["text"]) for part in _parts(content) if isinstance(part.get("text"), str)]
        if texts:
            return " ".join(texts)
    return ""
