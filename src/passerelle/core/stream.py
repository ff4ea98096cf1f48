"""Canonical stream events, and two helpers every stream codec leans on.

A translated stream is: one :class:`MessageStart`; then parts, each opened by
:class:`PartStart`, grown by deltas, closed by :class:`PartStop`; then :class:`MessageDelta`
(stop reason and cumulative usage; possibly several, the last one wins); then
:class:`MessageStop`. A :class:`StreamError` may end the stream at any point instead.

Part ``index`` values number parts in the order they start. Parts may overlap (OpenAI Chat
Completions can interleave the argument deltas of parallel tool calls), which formats with one
open block at a time cannot express: :class:`PartSequencer` rewrites an overlapping stream into a
sequential one, holding back only the events of the parts that are not yet their turn.
:class:`ResponseAssembler` folds a stream into a :class:`~passerelle.core.canonical.Response`
(for audit, caching, and the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

from passerelle.core.canonical import (
    ErrorInfo,
    Part,
    ReasoningPart,
    Response,
    StopReason,
    TextPart,
    ToolCallPart,
    Usage,
)


class EventKind(StrEnum):
    MESSAGE_START = "message_start"
    PART_START = "part_start"
    TEXT_DELTA = "text_delta"
    TOOL_ARGS_DELTA = "tool_args_delta"
    REASONING_DELTA = "reasoning_delta"
    SIGNATURE_DELTA = "signature_delta"
    PART_STOP = "part_stop"
    MESSAGE_DELTA = "message_delta"
    MESSAGE_STOP = "message_stop"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage | None = None
    created: int | None = None
    kind: ClassVar[EventKind] = EventKind.MESSAGE_START


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part opens. ``part`` holds what is known up front: an empty text, a tool call's id and
    name with empty arguments, a reasoning part's origin and any opaque data already known."""

    index: int
    part: Part
    kind: ClassVar[EventKind] = EventKind.PART_START


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str
    kind: ClassVar[EventKind] = EventKind.TEXT_DELTA


@dataclass(frozen=True, slots=True)
class ToolArgsDelta:
    """A fragment of a tool call's JSON arguments, forwarded as soon as it arrives."""

    index: int
    json: str
    kind: ClassVar[EventKind] = EventKind.TOOL_ARGS_DELTA


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    index: int
    text: str
    kind: ClassVar[EventKind] = EventKind.REASONING_DELTA


@dataclass(frozen=True, slots=True)
class SignatureDelta:
    """Opaque reasoning state for a reasoning part, usually known only at its end."""

    index: int
    signature: str | None = None
    encrypted: str | None = None
    kind: ClassVar[EventKind] = EventKind.SIGNATURE_DELTA


@dataclass(frozen=True, slots=True)
class PartStop:
    index: int
    kind: ClassVar[EventKind] = EventKind.PART_STOP


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """End-of-message facts. ``usage`` is cumulative: the latest value replaces earlier ones."""

    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    kind: ClassVar[EventKind] = EventKind.MESSAGE_DELTA


@dataclass(frozen=True, slots=True)
class MessageStop:
    kind: ClassVar[EventKind] = EventKind.MESSAGE_STOP


@dataclass(frozen=True, slots=True)
class StreamError:
    error: ErrorInfo
    kind: ClassVar[EventKind] = EventKind.ERROR


PartEvent = PartStart | TextDelta | ToolArgsDelta | ReasoningDelta | SignatureDelta | PartStop
StreamEvent = PartEvent | MessageStart | MessageDelta | MessageStop | StreamError


def _with_index(event: PartEvent, index: int) -> PartEvent:
    return replace(event, index=index)


class PartSequencer:
    """Turns a stream whose parts may overlap into one where each part starts, grows and stops
    before the next starts, renumbering parts in the order they are emitted.

    Events of the part being emitted pass straight through; events of a part that started while
    another was open wait until that one stops. Well-behaved upstreams never overlap, so in
    practice nothing waits. A message-level event closes every part still open, so no part is
    ever left without its stop.
    """

    __slots__ = ("_active", "_closed", "_next", "_numbers", "_waiting")

    def __init__(self) -> None:
        self._active: int | None = None
        self._waiting: dict[int, list[PartEvent]] = {}
        self._numbers: dict[int, int] = {}
        self._closed: set[int] = set()
        self._next = 0

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        if isinstance(event, MessageStart):
            return [event]
        if isinstance(event, MessageDelta | MessageStop | StreamError):
            out = self._flush()
            out.append(event)
            return out
        return self._part_event(event)

    def _part_event(self, event: PartEvent) -> list[StreamEvent]:
        index = event.index
        if index in self._closed:
            return []
        if isinstance(event, PartStart):
            if index == self._active or index in self._waiting:
                return []
            if self._active is None and not self._waiting:
                return self._activate([event])
            self._waiting[index] = [event]
            return []
        if index == self._active:
            if isinstance(event, PartStop):
                out = self._emit(event)
                self._closed.add(index)
                self._active = None
                out.extend(self._promote())
                return out
            return self._emit(event)
        if index in self._waiting:
            self._waiting[index].append(event)
            return []
        start = _implicit_start(event)
        if start is None:
            return []
        return self._part_event(start) + self._part_event(event)

    def _activate(self, events: list[PartEvent]) -> list[StreamEvent]:
        index = events[0].index
        self._numbers[index] = self._next
        self._next += 1
        self._active = index
        out: list[StreamEvent] = []
        for event in events:
            out.extend(self._emit(event))
            if isinstance(event, PartStop):
                self._closed.add(index)
                self._active = None
        return out

    def _promote(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        while self._active is None and self._waiting:
            index = next(iter(self._waiting))
            out.extend(self._activate(self._waiting.pop(index)))
        return out

    def _emit(self, event: PartEvent) -> list[StreamEvent]:
        return [_with_index(event, self._numbers[event.index])]

    def _flush(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        while self._active is not None or self._waiting:
            if self._active is not None:
                out.extend(self._part_event(PartStop(self._active)))
            else:
                out.extend(self._promote())
        return out


def _implicit_start(event: PartEvent) -> PartStart | None:
    """The start a sloppy upstream forgot, when the delta says what kind of part it is."""
    if isinstance(event, TextDelta):
        return PartStart(event.index, TextPart(""))
    if isinstance(event, ReasoningDelta | SignatureDelta):
        return PartStart(event.index, ReasoningPart())
    return None


@dataclass(slots=True)
class _Draft:
    header: Part
    chunks: list[str]
    signature: str | None = None
    encrypted: str | None = None


class ResponseAssembler:
    """Folds canonical stream events into the :class:`Response` they describe."""

    __slots__ = (
        "_drafts",
        "created",
        "error",
        "id",
        "model",
        "stop_reason",
        "stop_sequence",
        "usage",
    )

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created: int | None = None
        self.usage = Usage()
        self.stop_reason: StopReason | None = None
        self.stop_sequence: str | None = None
        self.error: ErrorInfo | None = None
        self._drafts: dict[int, _Draft] = {}

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, MessageStart):
            self.id, self.model, self.created = event.id, event.model, event.created
            if event.usage is not None:
                self.usage = event.usage
        elif isinstance(event, PartStart):
            self._drafts[event.index] = _Draft(event.part, [])
            if isinstance(event.part, ReasoningPart):
                self._drafts[event.index].signature = event.part.signature
                self._drafts[event.index].encrypted = event.part.encrypted
        elif isinstance(event, TextDelta | ReasoningDelta):
            self._draft(event.index).chunks.append(event.text)
        elif isinstance(event, ToolArgsDelta):
            self._draft(event.index).chunks.append(event.json)
        elif isinstance(event, SignatureDelta):
            draft = self._draft(event.index)
            if event.signature is not None:
                draft.signature = (draft.signature or "") + event.signature
            if event.encrypted is not None:
                draft.encrypted = event.encrypted
        elif isinstance(event, MessageDelta):
            if event.stop_reason is not None:
                self.stop_reason = event.stop_reason
                self.stop_sequence = event.stop_sequence
            if event.usage is not None:
                self.usage = event.usage
        elif isinstance(event, StreamError):
            self.error = event.error

    def _draft(self, index: int) -> _Draft:
        if index not in self._drafts:
            self._drafts[index] = _Draft(TextPart(""), [])
        return self._drafts[index]

    def response(self) -> Response:
        parts: list[Part] = []
        for index in sorted(self._drafts):
            draft = self._drafts[index]
            joined = "".join(draft.chunks)
            header = draft.header
            if isinstance(header, TextPart):
                parts.append(replace(header, text=header.text + joined))
            elif isinstance(header, ToolCallPart):
                parts.append(replace(header, arguments=(header.arguments + joined) or "{}"))
            elif isinstance(header, ReasoningPart):
                parts.append(
                    replace(
                        header,
                        text=header.text + joined,
                        signature=draft.signature,
                        encrypted=draft.encrypted,
                    )
                )
            else:
                parts.append(header)
        stop = self.stop_reason
        if stop is None:
            stop = StopReason.ERROR if self.error is not None else StopReason.END_TURN
        return Response(
            id=self.id,
            model=self.model,
            parts=tuple(parts),
            stop_reason=stop,
            usage=self.usage,
            stop_sequence=self.stop_sequence,
            created=self.created,
        )
