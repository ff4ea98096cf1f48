"""A streamed answer, from the upstream's bytes to the caller's events, one event at a time.

:class:`StreamRelay` is pure: it is fed the upstream's body as it arrives and returns what to
send to the caller. It cuts the body into events by the upstream's framing (server-sent events,
or the AWS event stream Bedrock uses), then either passes each event through untouched (same
wire format on both sides: unknown fields and event types survive) or translates it through the
canonical stream events (different formats). On the way it follows what accounting needs, the
usage and the model, and whether the stream reached its proper end; and, when given an
:class:`~passerelle.pipeline.answers.AnswerFilter`, it lets the data policy restore pseudonyms
and collect the answer's text (in the passthrough events, or in the canonical events of a
translation).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from passerelle.core.canonical import ErrorInfo, ErrorType, Usage
from passerelle.core.stream import MessageDelta, MessageStart, MessageStop, StreamError
from passerelle.formats import openai_responses
from passerelle.formats.aws_eventstream import EventStreamDecoder, EventStreamError
from passerelle.formats.bedrock_converse_stream import event_from_frame
from passerelle.formats.sse import SSEDecoder, event_data
from passerelle.pipeline.answers import AnswerFilter
from passerelle.pipeline.translate import UsageWatch, codec
from passerelle.providers.base import Framing, Wire

_TERMINAL: Mapping[Wire, tuple[bytes, ...]] = {
    Wire.ANTHROPIC: (b'"message_stop"',),
    Wire.OPENAI_RESPONSES: (
        b'"response.completed"',
        b'"response.incomplete"',
        b'"response.failed"',
    ),
    Wire.GEMINI: (b'"finishReason"',),
}


class RelayError(Exception):
    """The upstream's stream cannot be read (bad framing, an exception frame)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class StreamRelay:
    def __init__(
        self,
        upstream: Wire,
        surface: Wire,
        framing: Framing,
        alias: str,
        *,
        caller_wants_usage: bool,
        answer: AnswerFilter | None = None,
    ) -> None:
        self.upstream = upstream
        self.answer = answer
        self.surface = surface
        self.passthrough = upstream is surface
        self._framing = framing
        self._sse = SSEDecoder()
        self._aws = EventStreamDecoder() if framing is Framing.AWS_EVENTSTREAM else None
        self._wants_usage = caller_wants_usage
        self._watch = UsageWatch(upstream) if self.passthrough else None
        self._decoder = None if self.passthrough else codec(upstream).stream_decoder()
        self._encoder = (
            None if self.passthrough else codec(surface).stream_encoder(alias, caller_wants_usage)
        )
        self._terminal = _TERMINAL.get(upstream, ())
        self._decoder_done = False
        self.complete = False
        self.last_chunk: bytes | None = None
        self.relayed_chars = 0
        self._events = 0
        self._usage: Usage | None = None
        self._model: str | None = None

    # -- what accounting reads -------------------------------------------------------------

    @property
    def usage(self) -> Usage | None:
        return self._watch.usage if self._watch is not None else self._usage

    @property
    def model(self) -> str | None:
        return self._watch.model if self._watch is not None else self._model

    @property
    def losses(self) -> tuple[Any, ...]:
        losses: tuple[Any, ...] = ()
        if self._decoder is not None:
            losses += self._decoder.losses
        if self._encoder is not None:
            losses += self._encoder.losses
        return losses

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[bytes]:
        """What to send the caller for this piece of the upstream body (maybe nothing)."""
        out: list[bytes] = []
        was_complete = self.complete
        for name, data in self._events_of(chunk):
            out.extend(self._one(name, data))
        if self.complete and not was_complete and out:
            self.last_chunk = out[-1]
        for piece in out:
            self.relayed_chars += len(piece)
        return out

    def _events_of(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        if self._aws is None:
            events: list[tuple[bytes | None, bytes]] = []
            for event in self._sse.feed(chunk):
                data = event_data(event)
                if data is not None:
                    events.append((_event_name(event), data))
            return events
        try:
            messages = self._aws.feed(chunk)
        except EventStreamError as exc:
            raise RelayError(f"unreadable event stream: {exc}", "upstream_stream_framing") from exc
        found: list[tuple[bytes | None, bytes]] = []
        if self.upstream is Wire.BEDROCK_CONVERSE:
            # Converse frames carry their event (or exception) as JSON named by a header; the
            # decoder takes {name: payload} and turns exceptions into stream errors.
            for message in messages:
                named = event_from_frame(message)
                if named is not None:
                    found.append((None, orjson.dumps(named)))
            return found
        for message in messages:
            kind = message.headers.get(":message-type")
            if kind != "event":
                raise RelayError(
                    "the provider's stream reported an exception: "
                    f"{message.headers.get(':exception-type')!r}",
                    "upstream_stream_exception",
                )
            if message.headers.get(":event-type") != "chunk":
                continue
            try:
                wrapped = orjson.loads(message.payload)
                data = base64.b64decode(wrapped["bytes"], validate=True)
            except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
                raise RelayError(
                    "an event stream chunk is not the expected {bytes} payload",
                    "upstream_stream_framing",
                ) from exc
            found.append((None, data))
        return found

    def _one(self, name: bytes | None, data: bytes) -> list[bytes]:
        self._events += 1
        if data == b"[DONE]":
            if self.passthrough:
                self.complete = self.upstream is Wire.OPENAI_CHAT
                return [b"data: [DONE]\n\n"]
            return self._finish_decoder()
        if self.passthrough:
            return self._pass(name, data)
        return self._translate(data)

    def _pass(self, name: bytes | None, data: bytes) -> list[bytes]:
        parsed: list[Any] = []

        def parse() -> Mapping[str, Any] | None:
            if not parsed:
                parsed.append(_loads(data))
            value = parsed[0]
            return value if isinstance(value, Mapping) else None

        assert self._watch is not None
        self._watch.feed(data, parse)
        if any(needle in data for needle in self._terminal):
            self.complete = True
        if (
            self.upstream is Wire.OPENAI_CHAT
            and not self._wants_usage
            and b'"usage"' in data
            and (event := parse()) is not None
            and event.get("choices") == []
        ):
            return []  # the usage chunk the gateway asked for on the caller's behalf
        if name is None and self.surface is Wire.ANTHROPIC:
            # Re-framed from Bedrock's event stream: Anthropic streams name every event.
            event = parse()
            kind = event.get("type") if event is not None else None
            name = kind.encode() if isinstance(kind, str) else None
        if self.answer is None:
            return [_frame(name, data)]
        return [_frame(n, d) for n, d in self.answer.passthrough(self.upstream, name, data)]

    def _translate(self, data: bytes) -> list[bytes]:
        assert self._decoder is not None and self._encoder is not None
        event = _loads(data)
        if not isinstance(event, Mapping):
            raise RelayError("the provider sent an event that is not JSON", "upstream_stream_json")
        out: list[bytes] = []
        for item in self._decoder.feed(event):
            out.extend(self._filtered(item))
        return out

    def _filtered(self, item: Any) -> list[bytes]:
        if self.answer is None:
            return self._encode(item)
        out: list[bytes] = []
        for restored in self.answer.canonical(item):
            out.extend(self._encode(restored))
        return out

    def _encode(self, item: Any) -> list[bytes]:
        assert self._encoder is not None
        if isinstance(item, MessageStart):
            self._model = item.model or self._model
            if item.usage is not None:
                self._usage = item.usage
        elif isinstance(item, MessageDelta) and item.usage is not None:
            self._usage = item.usage
        elif isinstance(item, MessageStop):
            self.complete = True
        return [wire.encode() for wire in self._encoder.feed(item)]

    def _finish_decoder(self) -> list[bytes]:
        """The upstream said it is done: close what its decoder holds open (once)."""
        if self._decoder is None or self._decoder_done:
            return []
        self._decoder_done = True
        out: list[bytes] = []
        for item in self._decoder.finish():
            out.extend(self._filtered(item))
        return out

    # -- the end ---------------------------------------------------------------------------

    def end(self) -> list[bytes]:
        """The upstream's body ended normally: what its decoder still holds (a Gemini stream,
        say, just stops; its decoder then closes the message). May set ``complete``."""
        if self.passthrough and self.answer is not None:
            return [_frame(n, d) for n, d in self.answer.passthrough_end(self.upstream)]
        return self._finish_decoder()

    def close(self, error_code: str | None) -> list[bytes]:
        """The last events for the caller: an error event in the caller's format when the
        stream failed, and whatever the translation must still say to end its stream."""
        out: list[bytes] = []
        if self._decoder is not None and self._encoder is not None:
            if error_code is not None:
                out.extend(self._encode(StreamError(_stream_error(error_code))))
            out.extend(wire.encode() for wire in self._encoder.finish())
            return out
        if error_code is not None:
            out.append(self._error_event(_stream_error(error_code)))
        return out

    def _error_event(self, info: ErrorInfo) -> bytes:
        surface = self.surface
        if surface is Wire.OPENAI_RESPONSES:
            payload = openai_responses.error_event(info, self._events)
            return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
        body = codec(surface).encode_error(info)
        if surface is Wire.ANTHROPIC:
            return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
        return b"data: " + orjson.dumps(body) + b"\n\n"


def _stream_error(code: str) -> ErrorInfo:
    return ErrorInfo(
        status=502,
        type=ErrorType.SERVER,
        message="The provider's stream ended before it was complete.",
        code=code,
    )


def _frame(name: bytes | None, data: bytes) -> bytes:
    if name is not None:
        return b"event: " + name + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def _event_name(event: bytes) -> bytes | None:
    if not event.startswith(b"event:"):
        return None
    line = event.split(b"\n", 1)[0]
    return line[6:].strip() or None


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
