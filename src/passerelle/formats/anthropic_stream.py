"""Anthropic Messages streams ⇄ canonical stream events.

Anthropic streams one content block at a time: ``content_block_start``, deltas,
``content_block_stop``, each block numbered in order; then one ``message_delta`` with the stop
reason and cumulative usage, and ``message_stop``. ``ping`` events carry nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from passerelle.core.canonical import ReasoningPart, StopReason, TextPart, ToolCallPart, Usage
from passerelle.core.opaque import outgoing_token
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
from passerelle.formats._common import JSON, as_obj, count, text_of
from passerelle.formats.anthropic import (
    STOP_REASONS,
    VENDOR,
    WIRE_STOP_REASONS,
    decode_content_block,
    decode_error,
    decode_usage,
    encode_error,
    encode_usage,
)
from passerelle.formats.wire import WireEvent


class AnthropicStreamDecoder:
    """Anthropic stream events (parsed ``data`` objects) → canonical events, one at a time."""

    __slots__ = ("_finished", "_indexes", "_losses", "_next", "_skipped", "_wire_usage")

    def __init__(self) -> None:
        self._indexes: dict[int, int] = {}
        self._skipped: set[int] = set()
        self._next = 0
        self._wire_usage: dict[str, Any] = {}
        self._finished = False
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        kind = event.get("type")
        if kind == "message_start":
            message = as_obj(event.get("message"))
            self._wire_usage = dict(as_obj(message.get("usage")))
            usage = decode_usage(self._wire_usage)
            return [MessageStart(text_of(message.get("id")), text_of(message.get("model")), usage)]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "content_block_stop":
            index = self._indexes.get(count(event.get("index")))
            return [] if index is None else [PartStop(index)]
        if kind == "message_delta":
            return [self._message_delta(event)]
        if kind == "message_stop":
            self._finished = True
            return [MessageStop()]
        if kind == "error":
            self._finished = True
            return [StreamError(decode_error(None, event))]
        return []

    def finish(self) -> list[StreamEvent]:
        """Call once the upstream stream has ended, however it ended."""
        if self._finished:
            return []
        self._finished = True
        return [MessageStop()]

    def _block_start(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        wire_index = count(event.get("index"))
        block = event.get("content_block")
        if not isinstance(block, Mapping):
            return []
        part = decode_content_block(block, f"content[{wire_index}]", self._losses)
        if part is None:
            self._skipped.add(wire_index)
            return []
        index = self._next
        self._next += 1
        self._indexes[wire_index] = index
        out: list[StreamEvent] = []
        if isinstance(part, TextPart):
            out.append(PartStart(index, TextPart("")))
            if part.text:
                out.append(TextDelta(index, part.text))
        elif isinstance(part, ToolCallPart):
            out.append(PartStart(index, replace(part, arguments="")))
            if part.arguments not in ("{}", ""):
                out.append(ToolArgsDelta(index, part.arguments))
        elif isinstance(part, ReasoningPart):
            out.append(PartStart(index, replace(part, text="", signature=None)))
            if part.text:
                out.append(ReasoningDelta(index, part.text))
            if part.signature:
                out.append(SignatureDelta(index, signature=part.signature))
        return out

    def _block_delta(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        index = self._indexes.get(count(event.get("index")))
        delta = event.get("delta")
        if index is None or not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(index, text_of(delta.get("text")))]
        if kind == "input_json_delta":
            fragment = text_of(delta.get("partial_json"))
            return [ToolArgsDelta(index, fragment)] if fragment else []
        if kind == "thinking_delta":
            return [ReasoningDelta(index, text_of(delta.get("thinking")))]
        if kind == "signature_delta":
            return [SignatureDelta(index, signature=text_of(delta.get("signature")))]
        if kind == "citations_delta":
            self._losses.add("anthropic.citations")
        return []

    def _message_delta(self, event: Mapping[str, Any]) -> MessageDelta:
        delta = as_obj(event.get("delta"))
        # Counts in message_delta are cumulative and override message_start's; input counts
        # only appear there in recent API versions, so absent ones keep their earlier value.
        for key, value in as_obj(event.get("usage")).items():
            if value is not None:
                self._wire_usage[key] = value
        stop = delta.get("stop_reason")
        sequence = delta.get("stop_sequence")
        return MessageDelta(
            stop_reason=STOP_REASONS.get(stop, StopReason.END_TURN)
            if isinstance(stop, str)
            else None,
            stop_sequence=sequence if isinstance(sequence, str) else None,
            usage=decode_usage(self._wire_usage),
        )


class AnthropicStreamEncoder:
    """Canonical events → Anthropic stream events for a client, one at a time.

    Blocks are numbered in the order they are emitted; a foreign vendor's reasoning state is
    sealed into the thinking block's signature just before the block stops. ``message_delta`` is
    emitted once, at the end, with the final stop reason and the cumulative usage.
    """

    __slots__ = (
        "_blocks",
        "_losses",
        "_model",
        "_sequencer",
        "_started",
        "_stop_reason",
        "_stop_sequence",
        "_stopped",
        "_usage",
    )

    def __init__(self, *, model: str | None = None) -> None:
        self._model = model
        self._sequencer = PartSequencer()
        self._blocks: dict[int, ReasoningPart | None] = {}
        self._started = False
        self._stopped = False
        self._usage = Usage()
        self._stop_reason: StopReason | None = None
        self._stop_sequence: str | None = None
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
        """Close a stream whose source ended without ``message_stop``."""
        if self._stopped:
            return []
        return self.feed(MessageStop())

    def _start(
        self, message_id: str = "", model: str = "", usage: Usage | None = None
    ) -> list[WireEvent]:
        self._started = True
        if usage is not None:
            self._usage = usage
        start_usage = encode_usage(usage or Usage())
        start_usage["output_tokens"] = 0
        message: JSON = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model or model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _encode(self, event: StreamEvent) -> list[WireEvent]:
        if self._stopped:
            return []
        if isinstance(event, MessageStart):
            return [] if self._started else self._start(event.id, event.model, event.usage)
        out = [] if self._started else self._start()
        if isinstance(event, PartStart):
            out.append(self._block_start(event))
        elif isinstance(event, TextDelta):
            out.append(_delta(event.index, {"type": "text_delta", "text": event.text}))
        elif isinstance(event, ToolArgsDelta):
            out.append(
                _delta(event.index, {"type": "input_json_delta", "partial_json": event.json})
            )
        elif isinstance(event, ReasoningDelta):
            out.append(_delta(event.index, {"type": "thinking_delta", "thinking": event.text}))
        elif isinstance(event, SignatureDelta):
            out.extend(self._signature(event))
        elif isinstance(event, PartStop):
            out.extend(self._block_stop(event.index))
        elif isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self._stop_reason = event.stop_reason
                self._stop_sequence = event.stop_sequence
            if event.usage is not None:
                self._usage = event.usage
        elif isinstance(event, MessageStop):
            self._stopped = True
            delta = {
                "stop_reason": WIRE_STOP_REASONS[self._stop_reason or StopReason.END_TURN],
                "stop_sequence": self._stop_sequence,
            }
            out.append(
                _event(
                    "message_delta",
                    {"type": "message_delta", "delta": delta, "usage": encode_usage(self._usage)},
                )
            )
            out.append(_event("message_stop", {"type": "message_stop"}))
        elif isinstance(event, StreamError):
            self._stopped = True
            out.append(_event("error", encode_error(event.error)))
        return out

    def _block_start(self, event: PartStart) -> WireEvent:
        part = event.part
        block: JSON
        self._blocks[event.index] = None
        if isinstance(part, ToolCallPart):
            block = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
        elif isinstance(part, ReasoningPart):
            if part.origin is VENDOR and part.encrypted is not None and part.signature is None:
                block = {"type": "redacted_thinking", "data": part.encrypted}
            else:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                self._blocks[event.index] = part
        else:
            if not isinstance(part, TextPart):
                self._losses.add(part.kind.value)
            block = {"type": "text", "text": ""}
        return _event(
            "content_block_start",
            {"type": "content_block_start", "index": event.index, "content_block": block},
        )

    def _signature(self, event: SignatureDelta) -> list[WireEvent]:
        part = self._blocks.get(event.index)
        if part is None:
            return []
        if part.origin is VENDOR and event.signature is not None:
            return [_delta(event.index, {"type": "signature_delta", "signature": event.signature})]
        signature = (part.signature or "") + (event.signature or "")
        self._blocks[event.index] = replace(
            part, signature=signature or None, encrypted=event.encrypted or part.encrypted
        )
        return []

    def _block_stop(self, index: int) -> list[WireEvent]:
        out: list[WireEvent] = []
        part = self._blocks.pop(index, None)
        if part is not None and part.origin is not VENDOR:
            token = outgoing_token(part, VENDOR)
            if token is not None:
                out.append(_delta(index, {"type": "signature_delta", "signature": token}))
        elif part is not None and part.signature:
            # Native state the source gave up front rather than as deltas.
            out.append(_delta(index, {"type": "signature_delta", "signature": part.signature}))
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return out


def _event(name: str, data: JSON) -> WireEvent:
    return WireEvent(data, event=name)


def _delta(index: int, delta: JSON) -> WireEvent:
    return _event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )
