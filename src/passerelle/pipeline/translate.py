"""The gateway's view of the codecs: one table from a wire format to its functions.

The codecs in ``passerelle.formats`` are pure and each speaks one format; the gateway only ever
needs "decode this wire's request", "encode for that wire", "a stream decoder for the upstream's
wire", and so on. :func:`codec` answers those by :class:`~passerelle.providers.base.Wire`, so the
gateway code never branches on a format by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from passerelle.core.canonical import ErrorInfo, Request, Response, Usage
from passerelle.core.stream import MessageDelta, MessageStart, StreamEvent
from passerelle.core.translation import Loss, Translated
from passerelle.formats import anthropic, bedrock_converse, gemini, openai_chat, openai_responses
from passerelle.formats._common import WireEvent
from passerelle.formats.anthropic_stream import AnthropicStreamDecoder, AnthropicStreamEncoder
from passerelle.formats.bedrock_converse import ModelFamily
from passerelle.formats.bedrock_converse_stream import ConverseStreamDecoder
from passerelle.formats.gemini_stream import GeminiStreamDecoder, GeminiStreamEncoder
from passerelle.formats.openai_chat_stream import ChatStreamDecoder, ChatStreamEncoder
from passerelle.formats.openai_responses_stream import (
    ResponsesStreamDecoder,
    ResponsesStreamEncoder,
)
from passerelle.providers.base import Wire

JSON = dict[str, Any]


class StreamDecoder(Protocol):
    @property
    def losses(self) -> tuple[Loss, ...]: ...

    def feed(self, event: Mapping[str, Any]) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class StreamEncoder(Protocol):
    @property
    def losses(self) -> tuple[Loss, ...]: ...

    def feed(self, event: StreamEvent) -> list[WireEvent]: ...

    def finish(self) -> list[WireEvent]: ...


@dataclass(frozen=True, slots=True)
class Codec:
    decode_request: Callable[[Mapping[str, Any], str, bool], Translated[Request]]
    encode_request: Callable[[Request], Translated[JSON]]
    decode_response: Callable[[Mapping[str, Any]], Translated[Response]]
    encode_response: Callable[[Response], Translated[JSON]]
    decode_error: Callable[[int | None, Any], ErrorInfo]
    encode_error: Callable[[ErrorInfo], JSON]
    stream_decoder: Callable[[], StreamDecoder]
    # (model shown to the caller, whether the caller asked for usage in the stream)
    stream_encoder: Callable[[str, bool], StreamEncoder]


def _responses_error(error: ErrorInfo) -> JSON:
    # A failed Responses call answers with OpenAI's usual error body.
    return openai_chat.encode_error(error)


_CODECS: dict[Wire, Codec] = {
    Wire.OPENAI_CHAT: Codec(
        decode_request=lambda body, model, stream: openai_chat.decode_request(body),
        encode_request=lambda request: openai_chat.encode_request(request),
        decode_response=openai_chat.decode_response,
        encode_response=openai_chat.encode_response,
        decode_error=openai_chat.decode_error,
        encode_error=openai_chat.encode_error,
        stream_decoder=ChatStreamDecoder,
        stream_encoder=lambda model, usage: ChatStreamEncoder(include_usage=usage, model=model),
    ),
    Wire.OPENAI_RESPONSES: Codec(
        decode_request=lambda body, model, stream: openai_responses.decode_request(body),
        encode_request=openai_responses.encode_request,
        decode_response=openai_responses.decode_response,
        encode_response=openai_responses.encode_response,
        decode_error=openai_chat.decode_error,
        encode_error=_responses_error,
        stream_decoder=ResponsesStreamDecoder,
        stream_encoder=lambda model, usage: ResponsesStreamEncoder(model=model),
    ),
    Wire.ANTHROPIC: Codec(
        decode_request=lambda body, model, stream: anthropic.decode_request(body),
        encode_request=lambda request: anthropic.encode_request(request),
        decode_response=anthropic.decode_response,
        encode_response=anthropic.encode_response,
        decode_error=anthropic.decode_error,
        encode_error=anthropic.encode_error,
        stream_decoder=AnthropicStreamDecoder,
        stream_encoder=lambda model, usage: AnthropicStreamEncoder(model=model),
    ),
    Wire.GEMINI: Codec(
        decode_request=lambda body, model, stream: gemini.decode_request(
            body, model=model, stream=stream
        ),
        encode_request=lambda request: gemini.encode_request(request),
        decode_response=gemini.decode_response,
        encode_response=gemini.encode_response,
        decode_error=gemini.decode_error,
        encode_error=gemini.encode_error,
        stream_decoder=GeminiStreamDecoder,
        stream_encoder=lambda model, usage: GeminiStreamEncoder(model=model),
    ),
}


def _no_converse_surface(model: str, usage: bool) -> StreamEncoder:
    raise AssertionError("no surface speaks Bedrock Converse: nothing is encoded into its streams")


_CODECS[Wire.BEDROCK_CONVERSE] = Codec(
    decode_request=lambda body, model, stream: bedrock_converse.decode_request(
        body, model=model, stream=stream
    ),
    # Claude on Bedrock goes through InvokeModel with Anthropic's own body; Converse serves the
    # other families, whose extra request fields are not Anthropic's.
    encode_request=lambda request: bedrock_converse.encode_request(
        request, model_family=ModelFamily.OTHER
    ),
    decode_response=lambda body: bedrock_converse.decode_response(body),
    encode_response=lambda response: bedrock_converse.encode_response(response),
    decode_error=lambda status, body: bedrock_converse.decode_error(status, body),
    encode_error=bedrock_converse.encode_error,
    stream_decoder=ConverseStreamDecoder,
    stream_encoder=_no_converse_surface,
)


def codec(wire: Wire) -> Codec:
    return _CODECS[wire]


class UsageWatch:
    """Follows a stream relayed untouched (same format both sides) for what accounting needs:
    the usage and the model that answered. It decodes the events the format reports them in,
    and skips the others after a byte search, so a passthrough stream costs little."""

    __slots__ = ("_decoder", "_needles", "model", "usage")

    _NEEDLES: Mapping[Wire, tuple[bytes, ...]] = {
        Wire.OPENAI_CHAT: (b'"usage"',),
        Wire.OPENAI_RESPONSES: (b'"response.completed"', b'"response.incomplete"'),
        Wire.ANTHROPIC: (b'"message_start"', b'"message_delta"'),
        Wire.GEMINI: (b'"usageMetadata"',),
    }

    def __init__(self, wire: Wire) -> None:
        self._decoder = codec(wire).stream_decoder()
        self._needles = self._NEEDLES[wire]
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, raw: bytes, parsed: Callable[[], Mapping[str, Any] | None]) -> None:
        if not any(needle in raw for needle in self._needles):
            return
        event = parsed()
        if event is None:
            return
        for item in self._decoder.feed(event):
            if isinstance(item, MessageStart):
                self.model = item.model or self.model
                if item.usage is not None:
                    self.usage = item.usage
            elif isinstance(item, MessageDelta) and item.usage is not None:
                self.usage = item.usage
