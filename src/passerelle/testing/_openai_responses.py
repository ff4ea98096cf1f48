"""The fake OpenAI model behind ``POST /v1/responses``: request checks, answer and wire shapes.

``fake_openai`` owns the HTTP side (routes, authentication, faults, the request log); this module
is plain data in, plain data out, so the Responses logic reads on its own.

The model is deterministic and says what the fake's Chat Completions says:

* it calls a function tool whenever function tools are offered, ``tool_choice`` allows it and the
  input does not end with tool outputs (two calls when the prompt says "parallel" and
  ``parallel_tool_calls`` is not false); arguments are a placeholder that satisfies the tool's
  ``parameters``. Other tool types (``custom``, ``local_shell``, hosted tools) are accepted and
  echoed but never called;
* after tool outputs it answers "This is a fake reply using the tool results: ...";
* otherwise it answers "This is a fake reply to: <the last user text>", shaped by ``text.format``
  (``json_object``, ``json_schema``) as Chat Completions shapes it by ``response_format``;
* with ``reasoning`` (an effort other than ``none``) a reasoning item comes first; it carries a
  summary when ``reasoning.summary`` is set, and ``encrypted_content`` when ``include`` asks for
  ``reasoning.encrypted_content``. That content is checkable by the fake: a reasoning item sent
  back with content the fake did not make is refused, as the API refuses tampered content;
* ``max_output_tokens`` (reasoning tokens count against it) cuts the text and makes the response
  ``incomplete``;
* with ``store`` (the default) the response is kept, bounded, so ``previous_response_id`` and
  ``item_reference`` items resolve; with ``store: false`` nothing is kept, as Codex runs it.

Checks mirror the API's where a gateway is likely to get them wrong: Chat Completions parameters
(``messages``, ``max_tokens``...) are unknown parameters here, content parts must be Responses
types (``input_text``, not ``text``), strict function schemas (the default) must close every
object, a ``function_call_output`` needs its ``function_call``. Other unknown fields are accepted,
so newer clients keep working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from passerelle.testing._fake_common import (
    estimate_tokens,
    pad_with_filler,
    placeholder,
    split_fixed,
    split_text,
    split_words,
    text_of,
    truncate_to_tokens,
)

__all__ = [
    "Answer",
    "InvalidRequest",
    "ResponseStore",
    "ResponsesRequest",
    "answer",
    "new_id",
    "parse_request",
    "response_object",
    "seal_reasoning",
    "sse",
    "stream_events",
]

ENCRYPTED_REASONING = "reasoning.encrypted_content"
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    ENCRYPTED_REASONING,
    "message.output_text.logprobs",
)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SUMMARIES = ("auto", "concise", "detailed")
MIN_OUTPUT_TOKENS = 16
# Parameters of Chat Completions that the Responses API does not know: a gateway that sends one
# has mixed up the two formats, and the API says so.
_CHAT_ONLY = (
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "functions",
    "function_call",
    "n",
    "stop",
)
_ROLES = ("user", "assistant", "system", "developer")
_INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
_ASSISTANT_PARTS = ("output_text", "refusal")
_TEXT_FORMATS = ("text", "json_object", "json_schema")
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ARGUMENT_FRAGMENT = 12  # characters of function-call arguments per streamed delta
_REASONING_TAG = b"passerelle-fake-reasoning\x00"
_DIGEST_BYTES = 16
_SUMMARY_TITLE = "**Answering deterministically**\n\n"
_T = TypeVar("_T")
Item = dict[str, object]  # one input or output item, as decoded JSON
Items = tuple[Item, ...]


class InvalidRequest(Exception):
    """A request the API would refuse, with the fields of OpenAI's error body."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A checked request: the whole conversation and what shapes the answer."""

    conversation: Items  # previous response's, then this input
    instructions: str | None
    functions: Items  # the function tools the model may call
    tools: list[object]  # every tool as the response echoes it
    tool_choice: object
    forced: str | None  # the function tool_choice names, if any
    calls_allowed: bool  # False for tool_choice "none" or a tool the fake cannot call
    parallel: bool
    effort: str | None  # None when not asked for; the model reasons unless it is None or "none"
    summary: str | None
    encrypted: bool
    max_output_tokens: int | None
    text: dict[str, object]
    store: bool
    input_tokens: int
    echo: dict[str, object]  # request fields the response object repeats


@dataclass(frozen=True, slots=True)
class Answer:
    output: Items
    usage: dict[str, object]
    incomplete: bool  # cut by max_output_tokens


class ResponseStore:
    """Stored responses, so ``previous_response_id`` and ``item_reference`` work (bounded, LRU)."""

    def __init__(self, size: int) -> None:
        self._size = max(0, size)
        self._responses: OrderedDict[str, Items] = OrderedDict()
        self._items: dict[str, Item] = {}

    def save(self, response_id: str, conversation: Sequence[Item], output: Sequence[Item]) -> None:
        if not self._size:
            return
        self._responses[response_id] = (*conversation, *output)
        self._items.update((str(item["id"]), item) for item in output if "id" in item)
        while len(self._responses) > self._size:
            _, dropped = self._responses.popitem(last=False)
            for item in dropped:
                self._items.pop(str(item.get("id")), None)

    def conversation(self, response_id: str) -> Items | None:
        """The input and output of a stored response: the context of the next turn."""
        items = self._responses.get(response_id)
        if items is not None:
            self._responses.move_to_end(response_id)
        return items

    def item(self, item_id: str) -> Item | None:
        return self._items.get(item_id)


# -- request ---------------------------------------------------------------------------------


def parse_request(body: Mapping[str, object], store: ResponseStore) -> ResponsesRequest:
    """Check a request as the API does and resolve its conversation; raises ``InvalidRequest``."""
    for name in _CHAT_ONLY:
        if name in body:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    history: Items = ()
    previous = _optional(body, "previous_response_id", str)
    if previous is not None:
        found = store.conversation(previous)
        if found is None:
            message = f"Previous response with id '{previous}' not found."
            raise InvalidRequest(message, "previous_response_id", "previous_response_not_found")
        history = found
    conversation_ref = body.get("conversation")
    if conversation_ref is not None:
        ref = conversation_ref.get("id") if isinstance(conversation_ref, dict) else conversation_ref
        raise InvalidRequest(f"Conversation with id '{ref}' not found.", "conversation", None, 404)
    wants_store = _optional(body, "store", bool) is not False
    items = _input_items(body.get("input"), previous is not None, store, wants_store)
    conversation = (*history, *items)
    _check_tool_outputs(conversation)
    instructions = _optional(body, "instructions", str)

    tools, functions = _tools(body.get("tools"))
    tool_choice = body.get("tool_choice", "auto")
    forced, calls_allowed, functions = _tool_choice(tool_choice, functions)
    parallel = _optional(body, "parallel_tool_calls", bool) is not False
    effort, summary = _reasoning(body.get("reasoning"))
    include = _include(body.get("include"))
    max_output_tokens = _optional(body, "max_output_tokens", int)
    if max_output_tokens is not None and max_output_tokens < MIN_OUTPUT_TOKENS:
        raise InvalidRequest(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {max_output_tokens} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    chars = len(instructions or "") + sum(_item_chars(item) for item in conversation)
    return ResponsesRequest(
        conversation=conversation,
        instructions=instructions,
        functions=functions,
        tools=tools,
        tool_choice=tool_choice,
        forced=forced,
        calls_allowed=calls_allowed,
        parallel=parallel,
        effort=effort,
        summary=summary,
        encrypted=ENCRYPTED_REASONING in include,
        max_output_tokens=max_output_tokens,
        text=_text_config(body.get("text")),
        store=wants_store,
        input_tokens=estimate_tokens(chars),
        echo=_echo(body, previous, instructions, effort, summary),
    )


def _optional(body: Mapping[str, object], name: str, kind: type[_T]) -> _T | None:
    """``body[name]`` when present and of the right type; None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", bool: "a boolean", int: "an integer"}
        raise _wrong_type(name, expected.get(kind, kind.__name__))
    return value


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _wrong_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}.", param, "invalid_type"
    )


def _invalid_value(param: str, value: object, supported: Sequence[str]) -> InvalidRequest:
    names = [f"'{name}'" for name in supported]
    listed = ", ".join(names[:-1]) + f", and {names[-1]}" if len(names) > 1 else names[0]
    message = f"Invalid value: '{value}'. Supported values are: {listed}."
    return InvalidRequest(message, param, "invalid_value")


def _input_items(raw: object, continuing: bool, store: ResponseStore, storing: bool) -> list[Item]:
    """The input as items: a string is one user message; references are resolved."""
    if raw is None:
        if continuing:
            return []
        raise _missing("input")
    if isinstance(raw, str):
        part: dict[str, object] = {"type": "input_text", "text": raw}
        return [{"type": "message", "role": "user", "content": [part]}]
    if not isinstance(raw, list):
        raise _wrong_type("input", "a string or an array of input items")
    items = []
    for index, item in enumerate(raw):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise _wrong_type(where, "an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind is None:
            raise _missing(f"{where}.type")
        if kind == "message":
            _check_message(where, item)
        elif kind == "item_reference":
            item = _stored_item(where, item.get("id"), store, storing)
        elif kind == "reasoning":
            _check_reasoning(where, item, store, storing)
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                if not isinstance(item.get(field), str):
                    raise _missing(f"{where}.{field}")
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _missing(f"{where}.call_id")
            if "output" not in item:
                raise _missing(f"{where}.output")
        items.append(item)
    return items


def _check_message(where: str, item: Mapping[str, object]) -> None:
    role = item.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in _ROLES:
        raise _invalid_value(f"{where}.role", role, _ROLES)
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _wrong_type(f"{where}.content", "a string or an array of content parts")
    supported = _ASSISTANT_PARTS if role == "assistant" else _INPUT_PARTS
    for position, part in enumerate(content):
        path = f"{where}.content[{position}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or kind is None:
            raise _missing(f"{path}.type")
        if kind not in supported:
            raise _invalid_value(f"{path}.type", kind, supported)
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise _missing(f"{path}.text")
        if kind == "input_image" and not (
            isinstance(part.get("image_url"), str) or isinstance(part.get("file_id"), str)
        ):
            raise _missing(f"{path}.image_url")


def _stored_item(where: str, item_id: object, store: ResponseStore, storing: bool) -> Item:
    if not isinstance(item_id, str):
        raise _missing(f"{where}.id")
    found = store.item(item_id)
    if found is None:
        raise _item_not_found(item_id, storing)
    return found


def _item_not_found(item_id: str, storing: bool) -> InvalidRequest:
    message = f"Item with id '{item_id}' not found."
    if not storing:
        message += (
            " Items are not persisted when `store` is set to false. Try again with `store` set"
            " to true, or remove this item from your input."
        )
    return InvalidRequest(message, "input", None, 404)


def _check_reasoning(
    where: str, item: Mapping[str, object], store: ResponseStore, storing: bool
) -> None:
    """A reasoning item comes back either with the encrypted content the fake made, or by the
    id of an item the fake stored."""
    if not isinstance(item.get("summary"), list):
        raise _missing(f"{where}.summary")
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str):
        if unseal_reasoning(encrypted) is None:
            shown = f"{encrypted[:4]}...{encrypted[-4:]}" if len(encrypted) > 8 else encrypted
            message = f"The encrypted content {shown} could not be verified."
            raise InvalidRequest(message, None, "invalid_encrypted_content")
        return
    item_id = item.get("id")
    if not isinstance(item_id, str):
        raise _missing(f"{where}.id")
    if store.item(item_id) is None:
        raise _item_not_found(item_id, storing)


def _check_tool_outputs(conversation: Sequence[Mapping[str, object]]) -> None:
    """Every function_call_output answers a function_call made earlier in the conversation."""
    calls: set[object] = set()
    for item in conversation:
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            message = f"No tool call found for function call output with call_id {item['call_id']}."
            raise InvalidRequest(message, "input")


def _tools(raw: object) -> tuple[list[object], Items]:
    """Every tool as the response echoes it, and the function tools among them."""
    if raw is None:
        return [], ()
    if not isinstance(raw, list):
        raise _wrong_type("tools", "an array")
    echoed: list[object] = []
    functions = []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise _missing(f"{where}.type")
        if tool["type"] != "function":
            echoed.append(tool)  # custom, local_shell, web_search...: accepted, never called
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            raise _missing(f"{where}.name")
        if not _FUNCTION_NAME.fullmatch(name):
            raise InvalidRequest(
                f"Invalid '{where}.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.name",
                "invalid_value",
            )
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _wrong_type(f"{where}.parameters", "an object")
        strict = tool.get("strict")
        strict = True if strict is None else strict  # strict unless told otherwise
        if strict is True and parameters is not None:
            problem = _strict_schema_problem(parameters)
            if problem is not None:
                raise InvalidRequest(
                    f"Invalid schema for function '{name}': {problem}",
                    f"{where}.parameters",
                    "invalid_function_parameters",
                )
        function = {
            **tool,
            "description": tool.get("description"),
            "name": name,
            "parameters": parameters,
            "strict": strict,
        }
        echoed.append(function)
        functions.append(function)
    return echoed, tuple(functions)


def _strict_schema_problem(schema: object, context: tuple[str | int, ...] = ()) -> str | None:
    """Why a schema fails strict mode: every object closed, every property required."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={context}, 'additionalProperties' is required to be supplied and "
                "to be false."
            )
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        missing = [name for name in properties if name not in required]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            problem = _strict_schema_problem(sub, (*context, "properties", name))
            if problem is not None:
                return problem
    children: list[tuple[tuple[str | int, ...], object]] = [
        ((*context, "items"), schema.get("items"))
    ]
    for combinator in ("anyOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list):
            children += [((*context, combinator, i), sub) for i, sub in enumerate(options)]
    for definitions in ("$defs", "definitions"):
        defined = schema.get(definitions)
        if isinstance(defined, dict):
            children += [((*context, definitions, name), sub) for name, sub in defined.items()]
    for where, sub in children:
        problem = _strict_schema_problem(sub, where)
        if problem is not None:
            return problem
    return None


def _tool_choice(raw: object, functions: Items) -> tuple[str | None, bool, Items]:
    """The function a choice forces (if any), whether the fake may call one, and which."""
    if raw in ("auto", "required"):
        return None, True, functions
    if raw == "none":
        return None, False, functions
    if not isinstance(raw, dict):
        raise _invalid_value("tool_choice", raw, ("none", "auto", "required"))
    kind = raw.get("type")
    if kind == "function":
        name = raw.get("name")
        if not any(function["name"] == name for function in functions):
            message = (
                f"Tool choice 'function' not found in 'tools' parameter: no function {name!r}."
            )
            raise InvalidRequest(message, "tool_choice")
        return str(name), True, functions
    if kind == "allowed_tools":
        allowed = raw.get("tools")
        names = {
            tool.get("name")
            for tool in (allowed if isinstance(allowed, list) else [])
            if isinstance(tool, dict) and tool.get("type") == "function"
        }
        kept = tuple(function for function in functions if function["name"] in names)
        return None, raw.get("mode") != "none", kept
    return None, False, functions  # a custom or hosted tool: nothing the fake can call


def _reasoning(raw: object) -> tuple[str | None, str | None]:
    """The effort (None when reasoning is not configured) and the summary asked for."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise _wrong_type("reasoning", "an object")
    effort = raw.get("effort")
    if effort is None:
        effort = "medium"
    elif effort not in EFFORTS:
        raise _invalid_value("reasoning.effort", effort, EFFORTS)
    summary = raw.get("summary", raw.get("generate_summary"))
    if summary is not None and summary not in SUMMARIES:
        raise _invalid_value("reasoning.summary", summary, SUMMARIES)
    return str(effort), None if summary is None else str(summary)


def _include(raw: object) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _wrong_type("include", "an array")
    for index, value in enumerate(raw):
        if value not in INCLUDABLE:
            raise _invalid_value(f"include[{index}]", value, INCLUDABLE)
    return [str(value) for value in raw]


def _text_config(raw: object) -> dict[str, object]:
    """``text`` as the response echoes it: the format (plain text by default) and verbosity."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _wrong_type("text", "an object")
    text_format = raw.get("format") or {"type": "text"}
    if not isinstance(text_format, dict):
        raise _wrong_type("text.format", "an object")
    kind = text_format.get("type")
    if kind not in _TEXT_FORMATS:
        raise _invalid_value("text.format.type", kind, _TEXT_FORMATS)
    if kind == "json_schema":
        for field in ("name", "schema"):
            if field not in text_format:
                raise _missing(f"text.format.{field}")
    return {**raw, "format": text_format, "verbosity": raw.get("verbosity") or "medium"}


def _echo(
    body: Mapping[str, object],
    previous: str | None,
    instructions: str | None,
    effort: str | None,
    summary: str | None,
) -> dict[str, object]:
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise _wrong_type(name, "a number")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _wrong_type("metadata", "an object")
    tier = body.get("service_tier")
    return {
        "instructions": instructions,
        "max_output_tokens": _optional(body, "max_output_tokens", int),
        "max_tool_calls": _optional(body, "max_tool_calls", int),
        "previous_response_id": previous,
        "prompt_cache_key": _optional(body, "prompt_cache_key", str),
        "prompt_cache_retention": _optional(body, "prompt_cache_retention", str),
        "reasoning": {"effort": effort, "summary": summary},
        "safety_identifier": _optional(body, "safety_identifier", str),
        "service_tier": tier if tier in ("flex", "priority", "scale") else "default",
        "temperature": float(temperature) if isinstance(temperature, int | float) else 1.0,
        "top_logprobs": _optional(body, "top_logprobs", int) or 0,
        "top_p": float(top_p) if isinstance(top_p, int | float) else 1.0,
        "truncation": "auto" if body.get("truncation") == "auto" else "disabled",
        "user": _optional(body, "user", str),
        "metadata": metadata or {},
    }


def _item_chars(item: Mapping[str, object]) -> int:
    kind = item.get("type", "message")
    if kind == "message":
        return len(text_of(item.get("content")))
    if kind == "function_call":
        return len(str(item.get("name", ""))) + len(str(item.get("arguments", "")))
    if kind == "reasoning":
        return len(text_of(item.get("summary")))
    if isinstance(kind, str) and kind.endswith("_output"):
        return len(_output_text(item.get("output")))
    return 0


def _output_text(output: object) -> str:
    return output if isinstance(output, str) else text_of(output)


# -- answer ----------------------------------------------------------------------------------


def answer(request: ResponsesRequest, reply_words: int | None = None) -> Answer:
    """What the fake model outputs for a checked request (see the module docstring)."""
    conversation = request.conversation
    results = []
    for item in reversed(conversation):
        kind = item.get("type")
        if not (isinstance(kind, str) and kind.endswith("_call_output")):
            break
        results.append(_output_text(item.get("output")))
    results.reverse()
    messages = [item for item in conversation if item.get("type", "message") == "message"]
    prompt = next(
        (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        text_of(messages[-1].get("content")) if messages else request.instructions or "",
    )

    output: list[Item] = []
    reasoning_tokens = 0
    if request.effort not in (None, "none"):
        if results:
            thought = f'The tools returned "{" | ".join(results)[:60]}"; a fake model answers.'
        else:
            thought = f'The user wrote "{prompt[:60]}"; a fake model answers deterministically.'
        reasoning_tokens = estimate_tokens(len(thought))
        reasoning: dict[str, object] = {"id": new_id("rs_"), "type": "reasoning"}
        if request.encrypted:
            reasoning["encrypted_content"] = seal_reasoning(thought)
        summary = [{"type": "summary_text", "text": _SUMMARY_TITLE + thought}]
        reasoning["summary"] = summary if request.summary is not None else []
        output.append(reasoning)

    functions = request.functions
    if functions and request.calls_allowed and not results:
        chosen = list(functions[:1])
        if request.forced is not None:
            chosen = [f for f in functions if f["name"] == request.forced]
        elif request.parallel and len(functions) >= 2 and "parallel" in prompt.lower():
            chosen = list(functions[:2])
        chars = 0
        for function in chosen:
            arguments = orjson.dumps(placeholder(function.get("parameters") or {})).decode()
            chars += len(str(function["name"])) + len(arguments)
            output.append(_function_call(str(function["name"]), arguments))
        usage = _usage(request.input_tokens, estimate_tokens(chars), reasoning_tokens)
        return Answer(tuple(output), usage, incomplete=False)

    if results:
        text = "This is a fake reply using the tool results: " + " | ".join(results)
    else:
        text = "This is a fake reply to: " + prompt[:60]
    text = _shape(pad_with_filler(text, reply_words), request.text.get("format"))
    budget = request.max_output_tokens
    if budget is not None:
        budget -= reasoning_tokens
        if budget <= 0:  # the reasoning used up every token: no message at all
            usage = _usage(request.input_tokens, 0, reasoning_tokens)
            return Answer(tuple(output), usage, incomplete=True)
    text, truncated = truncate_to_tokens(text, budget)
    output.append(_message(text, "incomplete" if truncated else "completed"))
    usage = _usage(request.input_tokens, estimate_tokens(len(text)), reasoning_tokens)
    return Answer(tuple(output), usage, incomplete=truncated)


def _shape(text: str, text_format: object) -> str:
    """The reply in the asked format: JSON for ``json_object``, a placeholder for a schema."""
    if not isinstance(text_format, dict):
        return text
    if text_format.get("type") == "json_object":
        return orjson.dumps({"reply": text}).decode()
    if text_format.get("type") == "json_schema":
        return orjson.dumps(placeholder(text_format.get("schema") or {"type": "object"})).decode()
    return text


def _function_call(name: str, arguments: str) -> Item:
    return {
        "id": new_id("fc_"),
        "type": "function_call",
        "status": "completed",
        "arguments": arguments,
        "call_id": new_id("call_"),
        "name": name,
    }


def _message(text: str, status: str) -> Item:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "status": status,
        "content": [_output_text_part(text)],
        "role": "assistant",
    }


def _output_text_part(text: str) -> dict[str, object]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _usage(input_tokens: int, visible: int, reasoning: int) -> dict[str, object]:
    output_tokens = visible + reasoning
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def seal_reasoning(thought: str) -> str:
    """Encrypted reasoning as the fake hands it out: opaque to clients, checkable by the fake."""
    raw = thought.encode("utf-8")
    digest = hashlib.sha256(_REASONING_TAG + raw).digest()[:_DIGEST_BYTES]
    return base64.b64encode(_REASONING_TAG + digest + raw).decode("ascii")


def unseal_reasoning(token: str) -> str | None:
    """The reasoning inside content made by :func:`seal_reasoning`, or None if it was not."""
    try:
        data = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    head = len(_REASONING_TAG)
    if not data.startswith(_REASONING_TAG) or len(data) < head + _DIGEST_BYTES:
        return None
    digest, raw = data[head : head + _DIGEST_BYTES], data[head + _DIGEST_BYTES :]
    if hashlib.sha256(_REASONING_TAG + raw).digest()[:_DIGEST_BYTES] != digest:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def new_id(prefix: str) -> str:
    """A random id with the API's prefix (``resp_``, ``msg_``, ``fc_``...), marked fake."""
    return f"{prefix}fake{os.urandom(12).hex()}"


# -- wire shapes -----------------------------------------------------------------------------


def response_object(
    request: ResponsesRequest,
    response_id: str,
    model: str,
    created_at: int,
    reply: Answer | None,
    completed_at: int | None = None,
) -> dict[str, object]:
    """The response object, fields in the API's order; ``reply`` None means still in progress."""
    echo = request.echo
    if reply is None:
        status, output, usage = "in_progress", [], None
    else:
        status = "incomplete" if reply.incomplete else "completed"
        output, usage = list(reply.output), reply.usage
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": completed_at if status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "max_tool_calls": echo["max_tool_calls"],
        "model": model,
        "output": output,
        "parallel_tool_calls": request.parallel,
        "previous_response_id": echo["previous_response_id"],
        "prompt_cache_key": echo["prompt_cache_key"],
        "prompt_cache_retention": echo["prompt_cache_retention"],
        "reasoning": echo["reasoning"],
        "safety_identifier": echo["safety_identifier"],
        "service_tier": echo["service_tier"],
        "store": request.store,
        "temperature": echo["temperature"],
        "text": request.text,
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_logprobs": echo["top_logprobs"],
        "top_p": echo["top_p"],
        "truncation": echo["truncation"],
        "usage": usage,
        "user": echo["user"],
        "metadata": echo["metadata"],
    }


Event = tuple[str, dict[str, object]]


def stream_events(
    request: ResponsesRequest,
    reply: Answer,
    response_id: str,
    model: str,
    created_at: int,
    *,
    words_per_chunk: int = 3,
    chunk_chars: int = 0,
) -> Iterator[Event]:
    """The stream's ``(event name, data)`` pairs, made lazily, in the API's order:
    response.created, response.in_progress, each output item's events, then response.completed
    (or response.incomplete). Every event carries the next ``sequence_number``."""
    numbers = itertools.count()

    def event(kind: str, **fields: object) -> Event:
        return kind, {"type": kind, "sequence_number": next(numbers), **fields}

    pending = response_object(request, response_id, model, created_at, None)
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(reply.output):
        yield from _item_events(event, index, item, words_per_chunk, chunk_chars)
    done = response_object(request, response_id, model, created_at, reply, created_at)
    final = "response.incomplete" if reply.incomplete else "response.completed"
    yield event(final, response=done)


def _item_events(
    event: Callable[..., Event], index: int, item: Item, words_per_chunk: int, chunk_chars: int
) -> Iterator[Event]:
    item_id = item["id"]
    at = {"item_id": item_id, "output_index": index}
    kind = item["type"]
    if kind == "reasoning":
        yield event(
            "response.output_item.added",
            output_index=index,
            item={"id": item_id, "type": "reasoning", "summary": []},
        )
        parts = item["summary"]
        for number, part in enumerate(parts if isinstance(parts, list) else []):
            text = str(part["text"])
            empty = {"type": "summary_text", "text": ""}
            yield event(
                "response.reasoning_summary_part.added", **at, summary_index=number, part=empty
            )
            for piece in split_words(text, words_per_chunk):
                yield event(
                    "response.reasoning_summary_text.delta", **at, summary_index=number, delta=piece
                )
            yield event(
                "response.reasoning_summary_text.done", **at, summary_index=number, text=text
            )
            yield event(
                "response.reasoning_summary_part.done", **at, summary_index=number, part=part
            )
    elif kind == "message":
        opening = {**item, "status": "in_progress", "content": []}
        yield event("response.output_item.added", output_index=index, item=opening)
        content = item["content"]
        for number, part in enumerate(content if isinstance(content, list) else []):
            text = str(part["text"])
            where = {**at, "content_index": number}
            yield event("response.content_part.added", **where, part=_output_text_part(""))
            for piece in split_text(text, words_per_chunk, chunk_chars):
                yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
            yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part=part)
    else:
        opening = {**item, "status": "in_progress", "arguments": ""}
        yield event("response.output_item.added", output_index=index, item=opening)
        arguments = str(item["arguments"])
        for fragment in split_fixed(arguments, _ARGUMENT_FRAGMENT):
            yield event("response.function_call_arguments.delta", **at, delta=fragment)
        yield event("response.function_call_arguments.done", **at, arguments=arguments)
    yield event("response.output_item.done", output_index=index, item=item)


def sse(event: str, data: object) -> bytes:
    """One server-sent event as the Responses API writes it: an ``event:`` line, then ``data:``."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
