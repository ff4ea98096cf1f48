"""Bedrock ConverseStream ⇄ canonical stream events.

On the wire a ConverseStream answer is AWS event-stream framing (see
:mod:`passerelle.formats.aws_eventstream`): one binary message per event, its JSON payload
typed by a header. The codecs here work on one plain dict per message instead, the **event
dict**, ``{"<type>": {…payload}}``:

- an ``event`` message gives ``{message.headers[":event-type"]: json.loads(message.payload)}``,
  for instance ``{"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hi"}}}``;
- an ``exception`` message gives ``{message.headers[":exception-type"]: json.loads(payload)}``,
  for instance ``{"throttlingException": {"message": "Too many requests…"}}``.

:func:`event_from_frame` builds it from a decoded message, :func:`frame_from_event` frames one
for a client. Payloads may carry a ``p`` field of padding, which is ignored.

The events, in order: ``messageStart`` {role}; per content block ``contentBlockStart`` (only for
tool use: ``start.toolUse`` {toolUseId, name}), ``contentBlockDelta`` (``delta`` is ``text``,
``toolUse.input`` (a fragment of JSON text) or ``reasoningContent`` {``text`` | ``signature`` |
``redactedContent``}), ``contentBlockStop``; ``messageStop`` {stopReason}; ``metadata``
{usage, metrics}. Text and reasoning blocks start with their first delta. Usage arrives in
``metadata``, after ``messageStop``, so the canonical :class:`MessageStop` is emitted once both
have arrived (or by :meth:`ConverseStreamDecoder.finish`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from passerelle.core.canonical import (
    ErrorInfo,
    ErrorType,
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
from passerelle.formats.aws_eventstream import EventStreamMessage, encode_message
from passerelle.formats.bedrock_converse import (
    STOP_REASONS,
    VENDOR,
    WIRE_STOP_REASONS,
    decode_usage,
    encode_usage,
    error_from_exception,
)

# The exceptions a ConverseStream may end with, as event types, for each canonical error.
STREAM_EXCEPTIONS = {
    ErrorType.INVALID_REQUEST: "validationException",
    ErrorType.AUTHENTICATION: "validationException",
    ErrorType.PERMISSION: "validationException",
    ErrorType.NOT_FOUND: "validationException",
    ErrorType.REQUEST_TOO_LARGE: "validationException",
    ErrorType.RATE_LIMIT: "throttlingException",
    ErrorType.OVERLOADED: "serviceUnavailableException",
    ErrorType.TIMEOUT: "modelStreamErrorException",
    ErrorType.SERVER: "internalServerException",
}


def is_exception(event_type: str) -> bool:
    """Whether an event type names an exception (``throttlingException``…)."""
    return event_type.endswith("Exception")


def event_from_frame(message: EventStreamMessage) -> JSON | None:
    """The event dict of one decoded event-stream message; None for a message that carries no
    JSON object. An ``error`` message (``:error-code``, ``:error-message``) reads as an
    exception of that name."""
    if message.message_type == "error":
        code = message.headers.get(":error-code")
        text = message.headers.get(":error-message")
        error = code if isinstance(code, str) and code else "internalServerException"
        return {error: {"message": text if isinstance(text, str) else ""}}
    exception = message.message_type == "exception"
    name = message.exception_type if exception else message.event_type
    if not name:
        return None
    try:
        payload = orjson.loads(message.payload) if message.payload else {}
    except orjson.JSONDecodeError:
        return None
    return {name: payload} if isinstance(payload, dict) else None


def frame_from_event(event: Mapping[str, Any]) -> bytes:
    """One event dict as the event-stream message a Converse client reads."""
    ((name, payload),) = event.items()
    if is_exception(name):
        headers = {
            ":message-type": "exception",
            ":exception-type": name,
            ":content-type": "application/json",
        }
    else:
        headers = {
            ":message-type": "event",
            ":event-type": name,
            ":content-type": "application/json",
        }
    return encode_message(headers, orjson.dumps(payload))


class ConverseStreamDecoder:
    """ConverseStream event dicts → canonical events, one at a time.

    ConverseStream names neither the model nor the answer: pass the model id of the URL and
    the ``x-amzn-RequestId`` header, for :class:`MessageStart`.
    """

    __slots__ = (
        "_finished",
        "_id",
        "_indexes",
        "_losses",
        "_metadata_seen",
        "_model",
        "_next",
        "_open",
        "_skipped",
        "_started",
        "_stop_seen",
    )

    def __init__(self, *, model: str = "", response_id: str = "") -> None:
        self._model = model
        self._id = response_id
        self._indexes: dict[int, int] = {}
        self._skipped: set[int] = set()
        self._open: dict[int, int] = {}
        self._next = 0
        self._started = False
        self._stop_seen = False
        self._metadata_seen = False
        self._finished = False
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        """The canonical events for one event dict ``{"<type>": payload}``."""
        out: list[StreamEvent] = []
        for name, payload in event.items():
            out.extend(self._event(name, as_obj(payload)))
        return out

    def finish(self) -> list[StreamEvent]:
        """Call once the upstream stream has ended, however it ended."""
        if self._finished:
            return []
        out = self._start()
        out.extend(self._close_parts())
        self._finished = True
        out.append(MessageStop())
        return out

    def _event(self, name: str, payload: Mapping[str, Any]) -> list[StreamEvent]:
        if self._finished:
            return []
        out = self._start()
        if name == "messageStart":
            return out
        if name == "contentBlockStart":
            out.extend(self._block_start(payload))
        elif name == "contentBlockDelta":
            out.extend(self._block_delta(payload))
        elif name == "contentBlockStop":
            out.extend(self._block_stop(count(payload.get("contentBlockIndex"))))
        elif name == "messageStop":
            out.extend(self._close_parts())
            self._stop_seen = True
            stop = payload.get("stopReason")
            sequence = as_obj(payload.get("additionalModelResponseFields")).get("stop_sequence")
            out.append(
                MessageDelta(
                    stop_reason=STOP_REASONS.get(stop, StopReason.END_TURN)
                    if isinstance(stop, str)
                    else None,
                    stop_sequence=sequence if isinstance(sequence, str) else None,
                )
            )
            out.extend(self._maybe_stop())
        elif name == "metadata":
            out.extend(self._close_parts())
            self._metadata_seen = True
            if payload.get("usage") is not None:
                out.append(MessageDelta(usage=decode_usage(payload.get("usage"))))
            out.extend(self._maybe_stop())
        elif is_exception(name):
            out.extend(self._close_parts())
            self._finished = True
            error = error_from_exception(name, text_of(payload.get("message")))
            out.append(StreamError(error))
        else:
            self._losses.add(f"bedrock.{name}")
        return out

    def _start(self) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        return [MessageStart(self._id, self._model)]

    def _maybe_stop(self) -> list[StreamEvent]:
        """Converse ends with ``messageStop`` then ``metadata``; both are needed."""
        if self._stop_seen and self._metadata_seen:
            self._finished = True
            return [MessageStop()]
        return []

    def _new_part(self, wire_index: int) -> int:
        index = self._next
        self._next += 1
        self._indexes[wire_index] = index
        self._open[wire_index] = index
        return index

    def _block_start(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        wire_index = count(payload.get("contentBlockIndex"))
        if wire_index in self._indexes or wire_index in self._skipped:
            return []
        start = as_obj(payload.get("start"))
        if "toolUse" not in start:
            kind = next(iter(start), "start")
            self._losses.add(f"bedrock.contentBlockStart.{kind}")
            self._skipped.add(wire_index)
            return []
        use = as_obj(start["toolUse"])
        call = ToolCallPart(text_of(use.get("toolUseId")), text_of(use.get("name")), "")
        return [PartStart(self._new_part(wire_index), call)]

    def _block_delta(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        wire_index = count(payload.get("contentBlockIndex"))
        delta = as_obj(payload.get("delta"))
        if wire_index in self._skipped:
            return []
        index = self._indexes.get(wire_index)
        if index is not None and wire_index not in self._open:
            return []  # a delta after its block stopped
        out: list[StreamEvent] = []
        if "text" in delta:
            if index is None:
                index = self._new_part(wire_index)
                out.append(PartStart(index, TextPart("")))
            text = text_of(delta["text"])
            if text:
                out.append(TextDelta(index, text))
            return out
        if "toolUse" in delta:
            fragment = text_of(as_obj(delta["toolUse"]).get("input"))
            if index is None:
                self._losses.add("bedrock.toolUse")  # arguments of a call never started
                return []
            return [ToolArgsDelta(index, fragment)] if fragment else []
        if "reasoningContent" in delta:
            return self._reasoning_delta(wire_index, index, as_obj(delta["reasoningContent"]))
        kind = next(iter(delta), "delta")
        self._losses.add(f"bedrock.contentBlockDelta.{kind}")
        return []

    def _reasoning_delta(
        self, wire_index: int, index: int | None, reasoning: Mapping[str, Any]
    ) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        redacted = reasoning.get("redactedContent")
        if index is None:
            index = self._new_part(wire_index)
            if isinstance(redacted, str):
                # Redacted reasoning arrives whole: the part starts knowing it.
                return [PartStart(index, ReasoningPart(encrypted=redacted, origin=VENDOR))]
            out.append(PartStart(index, ReasoningPart(origin=VENDOR)))
        if isinstance(redacted, str):
            out.append(SignatureDelta(index, encrypted=redacted))
        text = reasoning.get("text")
        if isinstance(text, str) and text:
            out.append(ReasoningDelta(index, text))
        signature = reasoning.get("signature")
        if isinstance(signature, str) and signature:
            out.append(SignatureDelta(index, signature=signature))
        return out

    def _block_stop(self, wire_index: int) -> list[StreamEvent]:
        index = self._open.pop(wire_index, None)
        return [] if index is None else [PartStop(index)]

    def _close_parts(self) -> list[StreamEvent]:
        """Stops for the parts still open when the message ends (a sloppy or cut upstream)."""
        out: list[StreamEvent] = [PartStop(index) for index in self._open.values()]
        self._open.clear()
        return out


class ConverseStreamEncoder:
    """Canonical events → ConverseStream event dicts for a client, one at a time.

    Blocks are numbered in the order they are emitted and open with their first delta, as
    Converse does (only tool use has a ``contentBlockStart``); a block with nothing to say is
    not emitted. A foreign vendor's reasoning state is sealed into the block's ``signature``
    just before the block stops. ``messageStop`` and ``metadata`` end the stream with the final
    stop reason and the cumulative usage. Frame each dict with :func:`frame_from_event`.
    """

    __slots__ = (
        "_blocks",
        "_latency_ms",
        "_losses",
        "_next",
        "_reasoning",
        "_sequencer",
        "_skipped",
        "_started",
        "_stop_reason",
        "_stopped",
        "_usage",
    )

    def __init__(self, *, latency_ms: int = 0) -> None:
        self._latency_ms = latency_ms
        self._sequencer = PartSequencer()
        self._blocks: dict[int, int] = {}  # canonical index → contentBlockIndex, once emitted
        self._reasoning: dict[int, ReasoningPart] = {}
        self._skipped: set[int] = set()
        self._next = 0
        self._started = False
        self._stopped = False
        self._usage = Usage()
        self._stop_reason: StopReason | None = None
        self._losses = LossLog()

    @property
    def losses(self) -> tuple[Loss, ...]:
        return self._losses.losses()

    def feed(self, event: StreamEvent) -> list[JSON]:
        out: list[JSON] = []
        for item in self._sequencer.feed(event):
            out.extend(self._encode(item))
        return out

    def finish(self) -> list[JSON]:
        """Close a stream whose source ended without ``MessageStop``."""
        if self._stopped:
            return []
        return self.feed(MessageStop())

    def _encode(self, event: StreamEvent) -> list[JSON]:
        if self._stopped:
            return []
        out: list[JSON] = []
        if not self._started:
            self._started = True
            out.append({"messageStart": {"role": "assistant"}})
        if isinstance(event, MessageStart):
            if event.usage is not None:
                self._usage = event.usage
        elif isinstance(event, PartStart):
            out.extend(self._part_start(event))
        elif isinstance(event, TextDelta):
            if event.text:
                out.append(self._delta(event.index, {"text": event.text}))
        elif isinstance(event, ToolArgsDelta):
            if event.json and event.index not in self._skipped:
                out.append(self._delta(event.index, {"toolUse": {"input": event.json}}))
        elif isinstance(event, ReasoningDelta):
            if event.text:
                out.append(self._delta(event.index, {"reasoningContent": {"text": event.text}}))
        elif isinstance(event, SignatureDelta):
            out.extend(self._signature(event))
        elif isinstance(event, PartStop):
            out.extend(self._part_stop(event.index))
        elif isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self._stop_reason = event.stop_reason
            if event.usage is not None:
                self._usage = event.usage
        elif isinstance(event, MessageStop):
            self._stopped = True
            stop = WIRE_STOP_REASONS[self._stop_reason or StopReason.END_TURN]
            out.append({"messageStop": {"stopReason": stop}})
            metadata = {
                "usage": encode_usage(self._usage),
                "metrics": {"latencyMs": self._latency_ms},
            }
            out.append({"metadata": metadata})
        elif isinstance(event, StreamError):
            self._stopped = True
            out.append(exception_event(event.error))
        return out

    def _block(self, index: int) -> int:
        """The part's ``contentBlockIndex``, given when it first emits something."""
        if index not in self._blocks:
            self._blocks[index] = self._next
            self._next += 1
        return self._blocks[index]

    def _delta(self, index: int, delta: JSON) -> JSON:
        return {"contentBlockDelta": {"contentBlockIndex": self._block(index), "delta": delta}}

    def _part_start(self, event: PartStart) -> list[JSON]:
        part = event.part
        index = event.index
        if isinstance(part, ToolCallPart):
            start = {"toolUse": {"toolUseId": part.id, "name": part.name}}
            out = [{"contentBlockStart": {"contentBlockIndex": self._block(index), "start": start}}]
            if part.arguments:
                out.append(self._delta(index, {"toolUse": {"input": part.arguments}}))
            return out
        if isinstance(part, TextPart):
            return [self._delta(index, {"text": part.text})] if part.text else []
        if isinstance(part, ReasoningPart):
            if part.origin is VENDOR and part.signature is None and part.encrypted is not None:
                redacted = {"reasoningContent": {"redactedContent": part.encrypted}}
                return [self._delta(index, redacted)]
            self._reasoning[index] = part
            if not part.text:
                return []
            return [self._delta(index, {"reasoningContent": {"text": part.text}})]
        self._losses.add(part.kind.value)
        self._skipped.add(index)
        return []

    def _signature(self, event: SignatureDelta) -> list[JSON]:
        part = self._reasoning.get(event.index)
        if part is None:
            return []
        if part.origin is VENDOR and (event.signature or event.encrypted):
            out: list[JSON] = []
            if event.signature:
                signed = {"reasoningContent": {"signature": event.signature}}
                out.append(self._delta(event.index, signed))
            if event.encrypted:
                redacted = {"reasoningContent": {"redactedContent": event.encrypted}}
                out.append(self._delta(event.index, redacted))
            # Claude's state went out as it came: nothing is left to send when the block stops.
            self._reasoning[event.index] = replace(part, signature=None)
            return out
        signature = (part.signature or "") + (event.signature or "")
        self._reasoning[event.index] = replace(
            part, signature=signature or None, encrypted=event.encrypted or part.encrypted
        )
        return []

    def _part_stop(self, index: int) -> list[JSON]:
        out: list[JSON] = []
        part = self._reasoning.pop(index, None)
        if part is not None and part.origin is not VENDOR:
            token = outgoing_token(part, VENDOR)
            if token is not None:
                out.append(self._delta(index, {"reasoningContent": {"signature": token}}))
        elif part is not None and part.signature:
            # Native state the source gave up front rather than as deltas.
            out.append(self._delta(index, {"reasoningContent": {"signature": part.signature}}))
        if index in self._blocks:
            out.append({"contentBlockStop": {"contentBlockIndex": self._blocks[index]}})
        return out


def exception_event(error: ErrorInfo) -> JSON:
    """The exception event ending a stream: one of the five a ConverseStream may carry."""
    return {STREAM_EXCEPTIONS[error.type]: {"message": error.message}}
