"""Gemini ``streamGenerateContent`` ⇄ canonical stream events.

A Gemini stream (``?alt=sse``) is a series of whole ``GenerateContentResponse`` objects. Each
chunk's parts continue the answer: consecutive text parts are one text, consecutive thought parts
one reasoning run (a thought part with a signature ends its run), and a function call arrives
whole, arguments included, in one part. The last chunk carries ``finishReason``; usage comes with
every chunk, cumulative.

Going the other way, text and thought deltas go out as they arrive, while a tool call is held
until it is complete, since a Gemini function call cannot be sent in pieces.
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
from passerelle.core.opaque import outgoing_token
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
from passerelle.formats._common import JSON, as_obj, parse_json_object, text_of
from passerelle.formats.gemini import (
    VENDOR,
    WIRE_STOP_REASONS,
    decode_candidate_part,
    decode_error,
    decode_usage,
    encode_error,
    encode_usage,
    stop_reason_of,
)
from passerelle.formats.wire import WireEvent


class GeminiStreamDecoder:
    """Gemini stream chunks (parsed objects) → canonical events, one chunk at a time."""

    __slots__ = (
        "_call_ids",
        "_current",
        "_current_kind",
        "_finished",
        "_id",
        "_losses",
        "_next",
        "_started",
        "_stop",
        "_usage",
    )

    def __init__(self) -> None:
        self._started = False
        self._finished = False
        self._id = ""
        self._next = 0
        self._current: int | None = None
        self._current_kind = ""
        self._call_ids: list[str] = []
        self._stop: StopReason | None = None
        self._usage: Usage | None = None
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
        usage = chunk.get("usageMetadata")
        if isinstance(usage, Mapping):
            self._usage = decode_usage(usage)
        if not self._started:
            self._started = True
            self._id = text_of(chunk.get("responseId"))
            start_usage = replace(self._usage, output_tokens=0) if self._usage else None
            out.append(MessageStart(self._id, text_of(chunk.get("modelVersion")), start_usage))
        candidates = chunk.get("candidates")
        candidate = as_obj(candidates[0]) if isinstance(candidates, list) and candidates else {}
        raw_parts = as_obj(candidate.get("content")).get("parts")
        for j, raw in enumerate(raw_parts if isinstance(raw_parts, list) else []):
            raw = as_obj(raw)
            thought = raw.get("thought") is True
            where = f"parts[{j}]"
            for part in decode_candidate_part(raw, where, self._losses, self._call_ids, self._id):
                out.extend(self._part(part, thought=thought))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and self._stop is None:
            out.extend(self._close())
            self._stop = stop_reason_of(reason, bool(self._call_ids))
            out.append(MessageDelta(stop_reason=self._stop, usage=self._usage))
        elif self._stop is not None and isinstance(usage, Mapping):
            out.append(MessageDelta(usage=self._usage))
        elif not candidates and as_obj(chunk.get("promptFeedback")).get("blockReason"):
            self._stop = StopReason.CONTENT_FILTER
            out.append(MessageDelta(stop_reason=self._stop, usage=self._usage))
        return out

    def finish(self) -> list[StreamEvent]:
        """The upstream stream ended."""
        if self._finished:
            return []
        self._finished = True
        out = self._close()
        if self._stop is None:
            self._stop = StopReason.TOOL_USE if self._call_ids else StopReason.END_TURN
            out.append(MessageDelta(stop_reason=self._stop, usage=self._usage))
        out.append(MessageStop())
        return out

    def _close(self) -> list[StreamEvent]:
        if self._current is None:
            return []
        index, self._current, self._current_kind = self._current, None, ""
        return [PartStop(index)]

    def _open(self, part: Part, kind: str) -> list[StreamEvent]:
        out = self._close()
        index = self._next
        self._next += 1
        self._current, self._current_kind = index, kind
        out.append(PartStart(index, part))
        return out

    def _part(self, part: Part, *, thought: bool) -> list[StreamEvent]:
        if isinstance(part, TextPart):
            if not part.text:
                return []
            out = [] if self._current_kind == "text" else self._open(TextPart(""), "text")
            assert self._current is not None
            out.append(TextDelta(self._current, part.text))
            return out
        if isinstance(part, ReasoningPart):
            # A thought part continues the current thought run (an empty one just brings the
            # run's signature); a signature from another part's carrier stands alone.
            out = []
            if not thought or self._current_kind != "thought":
                out = self._open(
                    ReasoningPart(origin=part.origin), "thought" if thought else "signature"
                )
            assert self._current is not None
            if part.text:
                out.append(ReasoningDelta(self._current, part.text))
            if part.signature:
                out.append(SignatureDelta(self._current, signature=part.signature))
                out.extend(self._close())
            return out
        if isinstance(part, ToolCallPart):
            out = self._open(replace(part, arguments=""), "call")
            assert self._current is not None
            out.append(ToolArgsDelta(self._current, part.arguments))
            out.extend(self._close())
            return out
        self._losses.add(f"gemini.{part.kind.value}")
        return []


@dataclass(slots=True)
class _Pending:
    part: Part
    chunks: list[str] = field(default_factory=list)
    signature: str = ""
    encrypted: str | None = None


class GeminiStreamEncoder:
    """Canonical events → Gemini stream chunks for a client, one at a time."""

    __slots__ = (
        "_id",
        "_losses",
        "_model",
        "_parts",
        "_signature",
        "_stop",
        "_stopped",
        "_usage",
    )

    def __init__(self, *, model: str | None = None) -> None:
        self._model = model or ""
        self._id = ""
        self._parts: dict[int, _Pending] = {}
        self._signature: str | None = None
        self._stop: StopReason | None = None
        self._usage = Usage()
        self._stopped = False
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: StreamEvent) -> list[WireEvent]:
        if self._stopped:
            return []
        if isinstance(event, MessageStart):
            self._id = event.id
            self._model = self._model or event.model
            if event.usage is not None:
                self._usage = event.usage
            return []
        if isinstance(event, PartStart):
            self._parts[event.index] = _Pending(event.part)
            if not isinstance(event.part, TextPart | ReasoningPart | ToolCallPart):
                self._losses.add(event.part.kind.value)
            return []
        if isinstance(event, TextDelta):
            return self._chunk([{"text": event.text}]) if event.text else []
        if isinstance(event, ReasoningDelta):
            pending = self._parts.get(event.index)
            if pending is not None:
                pending.chunks.append(event.text)
            return self._chunk([{"text": event.text, "thought": True}]) if event.text else []
        if isinstance(event, ToolArgsDelta):
            pending = self._parts.get(event.index)
            if pending is not None:
                pending.chunks.append(event.json)
            return []
        if isinstance(event, SignatureDelta):
            pending = self._parts.get(event.index)
            if pending is not None:
                pending.signature += event.signature or ""
                pending.encrypted = event.encrypted or pending.encrypted
            return []
        if isinstance(event, PartStop):
            return self._part_stop(event.index)
        if isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self._stop = event.stop_reason
            if event.usage is not None:
                self._usage = event.usage
            return []
        if isinstance(event, MessageStop):
            return self._final()
        self._stopped = True
        return [WireEvent(encode_error(event.error))]

    def finish(self) -> list[WireEvent]:
        """Close a stream whose source ended without a stop event."""
        return [] if self._stopped else self._final()

    def _chunk(self, parts: list[JSON], finish: str | None = None) -> list[WireEvent]:
        if self._signature is not None and parts:
            parts[0]["thoughtSignature"] = self._signature
            self._signature = None
        candidate: JSON = {}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        chunk: JSON = {"candidates": [candidate]}
        if finish is not None:
            chunk["usageMetadata"] = encode_usage(self._usage)
        chunk["modelVersion"] = self._model
        chunk["responseId"] = self._id
        return [WireEvent(chunk)]

    def _part_stop(self, index: int) -> list[WireEvent]:
        pending = self._parts.pop(index, None)
        if pending is None:
            return []
        part = pending.part
        if isinstance(part, ToolCallPart):
            args = parse_json_object("".join(pending.chunks))
            if args is None:
                self._losses.add("tool_arguments")
                args = {}
            call = {"name": part.name, "args": args, "id": part.id}
            return self._chunk([{"functionCall": call}])
        if isinstance(part, ReasoningPart):
            state = replace(
                part,
                signature=(part.signature or "") + pending.signature or None,
                encrypted=pending.encrypted or part.encrypted,
            )
            token = outgoing_token(state, VENDOR)
            if token is None:
                return []
            if pending.chunks:
                return self._chunk([{"text": "", "thought": True, "thoughtSignature": token}])
            self._signature = token
        return []

    def _final(self) -> list[WireEvent]:
        self._stopped = True
        parts: list[JSON] = [{"text": ""}] if self._signature is not None else []
        stop = self._stop or StopReason.END_TURN
        return self._chunk(parts, WIRE_STOP_REASONS[stop])
