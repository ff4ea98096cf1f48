"""OpenAI Chat Completions streams ⇄ canonical stream events.

A chat stream is a series of ``chat.completion.chunk`` objects: the first delta carries the
role, later ones ``content`` or ``tool_calls`` fragments (each tool call identified by its
``index``; its ``id`` and ``name`` come only in its first fragment), then a chunk with a
``finish_reason``, then, when asked with ``stream_options.include_usage``, a chunk with empty
``choices`` and the ``usage``, then ``data: [DONE]``.

Chunks have no "this part is finished" signal. The decoder closes a text part when something else
starts, and a tool call when something else starts *and* its arguments already form complete JSON
(no valid fragment can follow complete JSON); a tool call whose arguments are still incomplete
stays open, which is how interleaved parallel calls survive translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passerelle.core.canonical import ReasoningPart, StopReason, TextPart, ToolCallPart, Usage
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartStart,
    PartStop,
    ReasoningDelta,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
)
from passerelle.core.translation import Loss, LossLog
from passerelle.formats._common import JSON, as_obj, is_complete_json, now, text_of
from passerelle.formats.openai_chat import (
    STOP_REASONS,
    decode_error,
    decode_usage,
    encode_error,
    encode_usage,
    finish_reason,
)
from passerelle.formats.wire import WireEvent

DONE = "[DONE]"


@dataclass(slots=True)
class _ToolCall:
    index: int
    arguments: str = ""
    closed: bool = False


class ChatStreamDecoder:
    """Chat completion chunks (parsed ``data`` objects) → canonical events, one at a time.

    Feed every chunk; call :meth:`finish` at ``[DONE]`` or when the upstream stream ends.
    """

    __slots__ = (
        "_current",
        "_finished",
        "_losses",
        "_next",
        "_reasoning",
        "_started",
        "_stop",
        "_text",
        "_tools",
    )

    def __init__(self) -> None:
        self._started = False
        self._finished = False
        self._next = 0
        self._text: int | None = None
        self._reasoning: int | None = None
        self._tools: dict[int, _ToolCall] = {}
        self._current: int | None = None
        self._stop: StopReason | None = None
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        if self._finished:
            return []
        if "error" in chunk:
            self._finished = True
            return [StreamError(decode_error(None, chunk))]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            created = chunk.get("created")
            out.append(
                MessageStart(
                    text_of(chunk.get("id")),
                    text_of(chunk.get("model")),
                    created=created if isinstance(created, int) else None,
                )
            )
        choices = chunk.get("choices")
        stop_delta: MessageDelta | None = None
        for choice in choices if isinstance(choices, list) else []:
            choice = as_obj(choice)
            if choice.get("index", 0) != 0:
                self._losses.add("openai.n")
                continue
            delta = as_obj(choice.get("delta"))
            for key in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.extend(self._reasoning_delta(delta[key]))
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.extend(self._text_delta(delta[key]))
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else []):
                out.extend(self._tool_delta(as_obj(call), position))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and self._stop is None:
                out.extend(self._close_all())
                stop = STOP_REASONS.get(reason, StopReason.END_TURN)
                if stop is StopReason.END_TURN and self._tools:
                    stop = StopReason.TOOL_USE
                self._stop = stop
                stop_delta = MessageDelta(stop_reason=stop)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            decoded = decode_usage(usage)
            stop_delta = MessageDelta(
                stop_reason=stop_delta.stop_reason if stop_delta else None, usage=decoded
            )
        if stop_delta is not None:
            out.append(stop_delta)
        return out

    def finish(self) -> list[StreamEvent]:
        """The end of the stream (``[DONE]``, or the connection closing)."""
        if self._finished:
            return []
        self._finished = True
        out = self._close_all()
        if self._stop is None:
            self._stop = StopReason.TOOL_USE if self._tools else StopReason.END_TURN
            out.append(MessageDelta(stop_reason=self._stop))
        out.append(MessageStop())
        return out

    def _start(
        self, part: TextPart | ReasoningPart | ToolCallPart
    ) -> tuple[int, list[StreamEvent]]:
        out = self._leave_current()
        index = self._next
        self._next += 1
        self._current = index
        out.append(PartStart(index, part))
        return index, out

    def _leave_current(self) -> list[StreamEvent]:
        """Close the current part if nothing more can be added to it."""
        current = self._current
        if current is None:
            return []
        if current == self._text:
            self._text = None
        elif current == self._reasoning:
            self._reasoning = None
        else:
            call = next((c for c in self._tools.values() if c.index == current), None)
            if call is None or call.closed or not is_complete_json(call.arguments):
                self._current = None
                return []
            call.closed = True
        self._current = None
        return [PartStop(current)]

    def _text_delta(self, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._text is None:
            self._text, out = self._start(TextPart(""))
        elif self._current != self._text:
            out = self._leave_current()
            self._current = self._text
        out.append(TextDelta(self._text, text))
        return out

    def _reasoning_delta(self, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._reasoning is None:
            self._reasoning, out = self._start(ReasoningPart())
        elif self._current != self._reasoning:
            out = self._leave_current()
            self._current = self._reasoning
        out.append(ReasoningDelta(self._reasoning, text))
        return out

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> list[StreamEvent]:
        wire_index = call.get("index")
        if not isinstance(wire_index, int):
            wire_index = position if call.get("id") else max(self._tools, default=0)
        function = as_obj(call.get("function"))
        arguments = text_of(function.get("arguments"))
        out: list[StreamEvent] = []
        state = self._tools.get(wire_index)
        if state is None:
            call_id = text_of(call.get("id")) or f"call_{wire_index}"
            part = ToolCallPart(id=call_id, name=text_of(function.get("name")), arguments="")
            index, out = self._start(part)
            state = self._tools[wire_index] = _ToolCall(index)
        elif state.closed:
            if arguments.strip():
                self._losses.add("tool_arguments")
            return []
        elif self._current != state.index:
            out = self._leave_current()
            self._current = state.index
        if arguments:
            state.arguments += arguments
            out.append(ToolArgsDelta(state.index, arguments))
        return out

    def _close_all(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for index in sorted(self._open_indexes()):
            out.append(PartStop(index))
        for call in self._tools.values():
            call.closed = True
        self._text = self._reasoning = self._current = None
        return out

    def _open_indexes(self) -> set[int]:
        indexes = {call.index for call in self._tools.values() if not call.closed}
        for index in (self._text, self._reasoning):
            if index is not None:
                indexes.add(index)
        return indexes


class ChatStreamEncoder:
    """Canonical events → chat completion chunks for a client, one at a time.

    Tool calls are numbered 0, 1, … in the order they start; their ``id``, ``type`` and ``name``
    go in their first delta only. ``include_usage`` mirrors the client's
    ``stream_options.include_usage`` (see ``openai_chat.wants_stream_usage``): when set, a last
    chunk with empty ``choices`` carries the usage. The stream always ends with ``data: [DONE]``,
    except after an error.
    """

    __slots__ = (
        "_created",
        "_finished",
        "_id",
        "_include_usage",
        "_losses",
        "_model",
        "_started",
        "_stopped",
        "_tools",
        "_usage",
    )

    def __init__(self, *, include_usage: bool = True, model: str | None = None) -> None:
        self._include_usage = include_usage
        self._model = model or ""
        self._id = ""
        self._created = 0
        self._started = False
        self._finished = False
        self._stopped = False
        self._tools: dict[int, int] = {}
        self._usage = Usage()
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: StreamEvent) -> list[WireEvent]:
        if self._stopped:
            return []
        out: list[WireEvent] = []
        if isinstance(event, MessageStart):
            if not self._started:
                self._id = event.id
                self._model = self._model or event.model
                self._created = event.created if event.created is not None else now()
                out.append(self._first_chunk())
            return out
        if not self._started:
            self._created = now()
            out.append(self._first_chunk())
        if isinstance(event, PartStart):
            part = event.part
            if isinstance(part, ToolCallPart):
                ordinal = self._tools[event.index] = len(self._tools)
                call = {
                    "index": ordinal,
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": ""},
                }
                out.append(self._chunk({"tool_calls": [call]}))
            elif isinstance(part, ReasoningPart):
                self._losses.add("reasoning")
            elif not isinstance(part, TextPart):
                self._losses.add(part.kind.value)
        elif isinstance(event, TextDelta):
            if event.text:
                out.append(self._chunk({"content": event.text}))
        elif isinstance(event, ToolArgsDelta):
            position = self._tools.get(event.index)
            if position is not None and event.json:
                call = {"index": position, "function": {"arguments": event.json}}
                out.append(self._chunk({"tool_calls": [call]}))
        elif isinstance(event, ReasoningDelta | SignatureDelta):
            self._losses.add("reasoning")
        elif isinstance(event, MessageDelta):
            if event.usage is not None:
                self._usage = event.usage
            if event.stop_reason is not None and not self._finished:
                out.append(self._finish_chunk(event.stop_reason))
        elif isinstance(event, MessageStop):
            if not self._finished:
                out.append(self._finish_chunk(StopReason.END_TURN))
            if self._include_usage:
                out.append(self._usage_chunk())
            out.append(WireEvent(DONE))
            self._stopped = True
        elif isinstance(event, StreamError):
            out.append(WireEvent(encode_error(event.error)))
            self._stopped = True
        return out

    def finish(self) -> list[WireEvent]:
        """Close a stream whose source ended without a stop event."""
        return self.feed(MessageStop())

    def _base(self) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> WireEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return WireEvent(self._base() | {"choices": [choice]})

    def _first_chunk(self) -> WireEvent:
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def _finish_chunk(self, stop: StopReason) -> WireEvent:
        self._finished = True
        return self._chunk({}, finish_reason(stop, bool(self._tools)))

    def _usage_chunk(self) -> WireEvent:
        return WireEvent(self._base() | {"choices": [], "usage": encode_usage(self._usage)})
