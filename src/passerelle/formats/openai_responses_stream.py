"""OpenAI Responses streams ⇄ canonical stream events.

A Responses stream numbers every event (``sequence_number`` from 0) and addresses content by
``output_index`` (the item's place in ``response.output``) and ``content_index`` (the part's
place in a message item). The shape, per item:

- message: ``output_item.added``, ``content_part.added``, ``output_text.delta``…,
  ``output_text.done``, ``content_part.done``, ``output_item.done``;
- function call: ``output_item.added``, ``function_call_arguments.delta``…,
  ``function_call_arguments.done``, ``output_item.done``;
- reasoning: ``output_item.added``, ``reasoning_summary_part.added``,
  ``reasoning_summary_text.delta``…, ``reasoning_summary_text.done``,
  ``reasoning_summary_part.done``, ``output_item.done`` (with ``encrypted_content``);

framed by ``response.created`` and ``response.in_progress`` at the start and
``response.completed`` (or ``response.incomplete``/``response.failed``) at the end, which
carries the whole response with its usage. Items are emitted one after another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from passerelle.core.canonical import (
    Part,
    ReasoningPart,
    StopReason,
    TextPart,
    ToolCallPart,
    Usage,
)
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartSequencer,
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
from passerelle.formats._common import JSON, as_obj, count, now, text_of
from passerelle.formats.openai_responses import (
    VENDOR,
    decode_error,
    decode_usage,
    error_event,
    item_id,
    output_text,
    reasoning_item,
    response_object,
    stop_reason_of,
)
from passerelle.formats.wire import WireEvent


@dataclass(slots=True)
class _Item:
    """What the decoder knows of one upstream output item."""

    kind: str
    index: int | None = None  # canonical index of a call or reasoning part
    arguments: str = ""
    summaries: int = 0
    encrypted: bool = False
    texts: dict[int, int] = field(default_factory=dict)  # content_index → canonical index


class ResponsesStreamDecoder:
    """Responses stream events (parsed ``data`` objects) → canonical events, one at a time."""

    __slots__ = ("_calls", "_finished", "_items", "_losses", "_next", "_open", "_started")

    def __init__(self) -> None:
        self._started = False
        self._finished = False
        self._next = 0
        self._items: dict[int, _Item] = {}
        self._open: set[int] = set()
        self._calls = False
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        if self._finished:
            return []
        kind = text_of(event.get("type"))
        if kind in ("response.created", "response.in_progress", "response.queued"):
            return self._start(as_obj(event.get("response")))
        out = [] if self._started else self._start({})
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            out.extend(self._end(as_obj(event.get("response"))))
        elif kind == "error":
            self._finished = True
            out.append(StreamError(decode_error(None, {"error": event})))
        else:
            out.extend(self._item_event(kind, event))
        return out

    def finish(self) -> list[StreamEvent]:
        """The upstream stream ended; closes what a truncated stream left open."""
        if self._finished:
            return []
        return self._end({"status": "completed"})

    def _start(self, response: Mapping[str, Any]) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        created = response.get("created_at")
        return [
            MessageStart(
                text_of(response.get("id")),
                text_of(response.get("model")),
                created=int(created) if isinstance(created, int | float) else None,
            )
        ]

    def _end(self, response: Mapping[str, Any]) -> list[StreamEvent]:
        self._finished = True
        out: list[StreamEvent] = [PartStop(index) for index in sorted(self._open)]
        self._open.clear()
        if response.get("status") == "failed":
            error = as_obj(response.get("error"))
            out.append(StreamError(decode_error(None, {"error": error})))
            return out
        usage = response.get("usage")
        out.append(
            MessageDelta(
                stop_reason=stop_reason_of(response, self._calls),
                usage=decode_usage(usage) if isinstance(usage, Mapping) else None,
            )
        )
        out.append(MessageStop())
        return out

    def _new_part(self, part: Part) -> tuple[int, StreamEvent]:
        index = self._next
        self._next += 1
        self._open.add(index)
        return index, PartStart(index, part)

    def _stop(self, index: int | None) -> list[StreamEvent]:
        if index is None or index not in self._open:
            return []
        self._open.discard(index)
        return [PartStop(index)]

    def _item_event(self, kind: str, event: Mapping[str, Any]) -> list[StreamEvent]:
        position = count(event.get("output_index"))
        if kind == "response.output_item.added":
            return self._item_added(position, as_obj(event.get("item")))
        item = self._items.get(position)
        if item is None or item.kind == "skipped":
            return []
        if kind == "response.content_part.added":
            part = as_obj(event.get("part"))
            if part.get("type") not in ("output_text", "refusal"):
                self._losses.add(f"openai.{part.get('type')}")
                return []
            new_index, start = self._new_part(TextPart(""))
            item.texts[count(event.get("content_index"))] = new_index
            return [start]
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            text_index = item.texts.get(count(event.get("content_index")))
            delta = text_of(event.get("delta"))
            return [TextDelta(text_index, delta)] if text_index is not None and delta else []
        if kind == "response.content_part.done":
            return self._stop(item.texts.get(count(event.get("content_index"))))
        if kind == "response.function_call_arguments.delta" and item.index is not None:
            delta = text_of(event.get("delta"))
            item.arguments += delta
            return [ToolArgsDelta(item.index, delta)] if delta else []
        if kind == "response.function_call_arguments.done" and item.index is not None:
            return self._missing_arguments(item, text_of(event.get("arguments")))
        if kind == "response.reasoning_summary_part.added" and item.index is not None:
            item.summaries += 1
            return [ReasoningDelta(item.index, "\n\n")] if item.summaries > 1 else []
        if (
            kind
            in (
                "response.reasoning_summary_text.delta",
                "response.reasoning_text.delta",
            )
            and item.index is not None
        ):
            delta = text_of(event.get("delta"))
            return [ReasoningDelta(item.index, delta)] if delta else []
        if kind == "response.output_item.done":
            return self._item_done(item, as_obj(event.get("item")))
        return []

    def _item_added(self, position: int, wire: Mapping[str, Any]) -> list[StreamEvent]:
        kind = text_of(wire.get("type"))
        item = self._items[position] = _Item(kind)
        if kind == "message":
            return []
        if kind == "function_call":
            self._calls = True
            call = ToolCallPart(
                id=text_of(wire.get("call_id")), name=text_of(wire.get("name")), arguments=""
            )
            item.index, start = self._new_part(call)
            return [start, *self._missing_arguments(item, text_of(wire.get("arguments")))]
        if kind == "reasoning":
            encrypted = wire.get("encrypted_content")
            item.encrypted = isinstance(encrypted, str) and bool(encrypted)
            part = ReasoningPart(
                encrypted=encrypted if item.encrypted else None,
                origin=VENDOR,
                id=text_of(wire.get("id")) or None,
            )
            item.index, start = self._new_part(part)
            return [start]
        self._losses.add(f"openai.{kind}")
        item.kind = "skipped"
        return []

    def _missing_arguments(self, item: _Item, arguments: str) -> list[StreamEvent]:
        """Arguments a ``done`` event reports beyond what the deltas carried."""
        if item.index is None or not arguments.startswith(item.arguments):
            return []
        rest = arguments[len(item.arguments) :]
        item.arguments = arguments
        return [ToolArgsDelta(item.index, rest)] if rest else []

    def _item_done(self, item: _Item, wire: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if item.kind == "function_call":
            out.extend(self._missing_arguments(item, text_of(wire.get("arguments"))))
        elif item.kind == "reasoning" and item.index is not None:
            encrypted = wire.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted and not item.encrypted:
                out.append(SignatureDelta(item.index, encrypted=encrypted))
        elif item.kind == "message":
            for index in item.texts.values():
                out.extend(self._stop(index))
        out.extend(self._stop(item.index))
        return out


@dataclass(slots=True)
class _Open:
    """An output item the encoder has opened and not yet finished."""

    position: int
    id: str
    part: Part
    chunks: list[str] = field(default_factory=list)
    summary_open: bool = False


class ResponsesStreamEncoder:
    """Canonical events → Responses stream events for a client, one at a time.

    Items are emitted one after another (through a :class:`PartSequencer`); the final
    ``response.completed`` repeats every item, as OpenAI's does, with the usage.
    """

    __slots__ = (
        "_created",
        "_id",
        "_losses",
        "_model",
        "_open",
        "_output",
        "_sequence",
        "_sequencer",
        "_started",
        "_stop",
        "_stopped",
        "_usage",
    )

    def __init__(self, *, model: str | None = None) -> None:
        self._model = model or ""
        self._id = ""
        self._created = 0
        self._sequence = 0
        self._sequencer = PartSequencer()
        self._open: dict[int, _Open] = {}
        self._output: list[JSON] = []
        self._started = False
        self._stopped = False
        self._stop: StopReason | None = None
        self._usage = Usage()
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: StreamEvent) -> list[WireEvent]:
        out: list[WireEvent] = []
        for item in self._sequencer.feed(event):
            out.extend(self._encode(item))
        return out

    def finish(self) -> list[WireEvent]:
        """Close a stream whose source ended without a stop event."""
        return [] if self._stopped else self.feed(MessageStop())

    def _emit(self, data: JSON) -> WireEvent:
        data["sequence_number"] = self._sequence
        self._sequence += 1
        return WireEvent(data, event=data["type"])

    def _snapshot(self, stop: StopReason | None) -> JSON:
        usage = self._usage if stop is not None else None
        output = list(self._output) if stop is not None else []
        return response_object(self._id, self._model, self._created, output, stop=stop, usage=usage)

    def _start(self, event: MessageStart | None) -> list[WireEvent]:
        self._started = True
        if event is not None:
            self._id = event.id
            self._model = self._model or event.model
            self._created = event.created if event.created is not None else now()
        else:
            self._created = now()
        snapshot = self._snapshot(None)
        return [
            self._emit({"type": "response.created", "response": snapshot}),
            self._emit({"type": "response.in_progress", "response": snapshot}),
        ]

    def _encode(self, event: StreamEvent) -> list[WireEvent]:
        if self._stopped:
            return []
        if isinstance(event, MessageStart):
            return [] if self._started else self._start(event)
        out = [] if self._started else self._start(None)
        if isinstance(event, PartStart):
            out.extend(self._part_start(event))
        elif isinstance(event, TextDelta | ToolArgsDelta | ReasoningDelta):
            out.extend(self._delta(event))
        elif isinstance(event, SignatureDelta):
            item = self._open.get(event.index)
            if item is not None and isinstance(item.part, ReasoningPart):
                part = item.part
                signature = (part.signature or "") + (event.signature or "") or None
                item.part = replace(
                    part, signature=signature, encrypted=event.encrypted or part.encrypted
                )
        elif isinstance(event, PartStop):
            out.extend(self._part_stop(event.index))
        elif isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self._stop = event.stop_reason
            if event.usage is not None:
                self._usage = event.usage
        elif isinstance(event, MessageStop):
            self._stopped = True
            stop = self._stop or StopReason.END_TURN
            snapshot = self._snapshot(stop)
            name = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
                snapshot["status"], "response.failed"
            )
            out.append(self._emit({"type": name, "response": snapshot}))
        elif isinstance(event, StreamError):
            self._stopped = True
            out.append(self._emit(error_event(event.error, self._sequence)))
        return out

    def _part_start(self, event: PartStart) -> list[WireEvent]:
        part = event.part
        position = len(self._output) + len(self._open)
        if isinstance(part, TextPart):
            item = _Open(position, item_id("msg", self._id, position), part)
            wire: JSON = {
                "type": "message",
                "id": item.id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        elif isinstance(part, ToolCallPart):
            item = _Open(position, item_id("fc", self._id, position), part)
            wire = {
                "type": "function_call",
                "id": item.id,
                "call_id": part.id,
                "name": part.name,
                "arguments": "",
                "status": "in_progress",
            }
        elif isinstance(part, ReasoningPart):
            wire = reasoning_item(
                replace(part, text="", signature=None, encrypted=None), self._id, position
            )
            wire.pop("encrypted_content", None)
            item = _Open(position, wire["id"], part)
        else:
            self._losses.add(part.kind.value)
            return []
        self._open[event.index] = item
        out = [
            self._emit(
                {"type": "response.output_item.added", "output_index": position, "item": wire}
            )
        ]
        if isinstance(part, TextPart):
            out.append(
                self._emit(
                    {
                        "type": "response.content_part.added",
                        "item_id": item.id,
                        "output_index": position,
                        "content_index": 0,
                        "part": {
                            "type": "output_text",
                            "text": "",
                            "annotations": [],
                            "logprobs": [],
                        },
                    }
                )
            )
        return out

    def _delta(self, event: TextDelta | ToolArgsDelta | ReasoningDelta) -> list[WireEvent]:
        item = self._open.get(event.index)
        if item is None:
            return []
        address = {"item_id": item.id, "output_index": item.position}
        if isinstance(event, ToolArgsDelta):
            item.chunks.append(event.json)
            return [
                self._emit(
                    {
                        "type": "response.function_call_arguments.delta",
                        **address,
                        "delta": event.json,
                    }
                )
            ]
        if isinstance(event, TextDelta):
            item.chunks.append(event.text)
            return [
                self._emit(
                    {
                        "type": "response.output_text.delta",
                        **address,
                        "content_index": 0,
                        "delta": event.text,
                        "logprobs": [],
                    }
                )
            ]
        out: list[WireEvent] = []
        if not item.summary_open:
            item.summary_open = True
            out.append(
                self._emit(
                    {
                        "type": "response.reasoning_summary_part.added",
                        **address,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    }
                )
            )
        item.chunks.append(event.text)
        out.append(
            self._emit(
                {
                    "type": "response.reasoning_summary_text.delta",
                    **address,
                    "summary_index": 0,
                    "delta": event.text,
                }
            )
        )
        return out

    def _part_stop(self, index: int) -> list[WireEvent]:
        item = self._open.pop(index, None)
        if item is None:
            return []
        joined = "".join(item.chunks)
        address = {"item_id": item.id, "output_index": item.position}
        out: list[WireEvent] = []
        part = item.part
        wire: JSON
        if isinstance(part, TextPart):
            text = output_text(joined)
            out.append(
                self._emit(
                    {
                        "type": "response.output_text.done",
                        **address,
                        "content_index": 0,
                        "text": joined,
                        "logprobs": [],
                    }
                )
            )
            out.append(
                self._emit(
                    {
                        "type": "response.content_part.done",
                        **address,
                        "content_index": 0,
                        "part": text,
                    }
                )
            )
            wire = {
                "type": "message",
                "id": item.id,
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
        elif isinstance(part, ToolCallPart):
            arguments = joined or "{}"
            out.append(
                self._emit(
                    {
                        "type": "response.function_call_arguments.done",
                        **address,
                        "name": part.name,
                        "arguments": arguments,
                    }
                )
            )
            wire = {
                "type": "function_call",
                "id": item.id,
                "call_id": part.id,
                "name": part.name,
                "arguments": arguments,
                "status": "completed",
            }
        else:
            assert isinstance(part, ReasoningPart)
            if item.summary_open:
                summary = {"type": "summary_text", "text": joined}
                out.append(
                    self._emit(
                        {
                            "type": "response.reasoning_summary_text.done",
                            **address,
                            "summary_index": 0,
                            "text": joined,
                        }
                    )
                )
                out.append(
                    self._emit(
                        {
                            "type": "response.reasoning_summary_part.done",
                            **address,
                            "summary_index": 0,
                            "part": summary,
                        }
                    )
                )
            wire = reasoning_item(replace(part, text=joined), self._id, item.position)
            wire["id"] = item.id
        self._output.append(wire)
        out.append(
            self._emit(
                {"type": "response.output_item.done", "output_index": item.position, "item": wire}
            )
        )
        return out
