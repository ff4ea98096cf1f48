"""The answer side of the data policy: put pseudonyms back, and note what the answer holds.

**Restoring.** A request whose findings were pseudonymized reached the model as ``[EMAIL_1]``;
the model's answer uses the placeholders, and the caller must get the originals back. Answers
come in three shapes, each handled where its text is plain to see:

- a complete body (not streamed): every text of the parsed answer, in the caller's format;
- a translated stream: the canonical :class:`TextDelta` and :class:`ToolArgsDelta` events,
  between the upstream's decoder and the caller's encoder;
- a passthrough stream: the text deltas inside each upstream event, per wire format (OpenAI
  Chat ``delta.content`` and ``function.arguments``, Responses ``*.delta`` and their ``*.done``
  summaries, Anthropic ``text_delta`` and ``input_json_delta``, Gemini ``parts[].text``), the
  other strings of each event (``response.completed``'s output, a Gemini ``functionCall``'s
  arguments) restored whole.

A placeholder cut across two events (``[EMA`` + ``IL_1]``) is completed by a
:class:`~passerelle.dlp.restore.Restorer` per text channel (a content block, a choice, a tool
call), which holds back at most one placeholder's length. What is still held when the channel
ends is sent just before its end event (added to OpenAI's finishing chunk, or as one more delta
event for Anthropic and Responses, one more part for Gemini). Tool call arguments are JSON, so
originals put back into them are JSON-escaped. Reasoning (thinking) text is left as the model
wrote it: Anthropic signs it, and it is sent back as is in the next turn.

**Scanning.** The answer's text (the model's own words, before restoring) is collected, up to
:data:`MAX_COLLECTED` characters, and scanned once when the answer is complete; the findings go
to the audit record by type and count. Answers are not otherwise rewritten: they go back to the
person whose request was cleared to produce them, and a stream cannot be redacted without
holding it back. The audit shows which answers carried secrets or personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from passerelle.core.stream import PartStop, StreamEvent, TextDelta, ToolArgsDelta
from passerelle.dlp.actions import Vault
from passerelle.dlp.body import scan_texts, text_slots
from passerelle.dlp.restore import Restorer
from passerelle.dlp.scanner import Scanner
from passerelle.providers.base import Wire

MAX_COLLECTED = 1_000_000
"""The most characters of one answer kept for the answer scan; the rest is not scanned."""

Event = dict[str, Any]
Channel = tuple[Any, ...]


class AnswerFilter:
    """One answer's restorers and collected text. Pure: fed values, returns values."""

    def __init__(self, vault: Vault | None, *, collect: bool) -> None:
        self._vault = vault if vault is not None and len(vault) else None
        self._collect = collect
        self._texts: list[str] = []
        self._size = 0
        self._channels: dict[Channel, Restorer] = {}
        self._whole = Restorer(self._vault) if self._vault is not None else None
        self._whole_json = (
            Restorer(self._vault, json_escaped=True) if self._vault is not None else None
        )

    @property
    def restoring(self) -> bool:
        return self._vault is not None

    @property
    def restored(self) -> int:
        count = sum(r.restored for r in self._channels.values())
        if self._whole is not None and self._whole_json is not None:
            count += self._whole.restored + self._whole_json.restored
        return count

    # -- collecting and scanning --------------------------------------------------------------

    def _note(self, text: str) -> None:
        if self._collect and text and self._size < MAX_COLLECTED:
            self._texts.append(text[: MAX_COLLECTED - self._size])
            self._size += len(text)

    def findings(self, scanner: Scanner) -> dict[str, int]:
        """The collected text's findings by type. Raises ScanError."""
        if not self._texts:
            return {}
        per_text, _ = scan_texts(scanner, ["".join(self._texts)])
        counts: dict[str, int] = {}
        for finding in per_text[0]:
            counts[finding.rule] = counts.get(finding.rule, 0) + 1
        return counts

    # -- restoring ----------------------------------------------------------------------------

    def _restorer(self, channel: Channel, json_text: bool) -> Restorer:
        restorer = self._channels.get(channel)
        if restorer is None:
            assert self._vault is not None
            restorer = Restorer(self._vault, json_escaped=json_text)
            self._channels[channel] = restorer
        return restorer

    def _feed(self, channel: Channel, text: str, json_text: bool = False) -> str:
        self._note(text)
        if self._vault is None:
            return text
        return self._restorer(channel, json_text).feed(text)

    def _flush(self, channel: Channel) -> str:
        restorer = self._channels.get(channel)
        return restorer.flush() if restorer is not None else ""

    def _restore_whole(self, value: Any) -> bool:
        """Restore every text of a parsed value in place (complete texts, not deltas)."""
        if self._whole is None or self._whole_json is None:
            return False
        changed = False
        for slot in text_slots(value):
            restorer = self._whole_json if slot.json_text else self._whole
            new = restorer.restore(slot.text)
            if new != slot.text:
                slot.container[slot.key] = new  # type: ignore[index]
                changed = True
        return changed

    # -- a complete body ------------------------------------------------------------------------

    def body(self, raw: bytes) -> bytes:
        """A complete answer in the caller's format: texts collected, pseudonyms restored. The
        bytes are returned untouched when there is nothing to restore."""
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        for slot in text_slots(answer):
            self._note(slot.text)
        if self._vault is None or b"[" not in raw:
            return raw
        return orjson.dumps(answer) if self._restore_whole(answer) else raw

    # -- canonical stream events (translated streams) -----------------------------------------

    def canonical(self, event: StreamEvent) -> list[StreamEvent]:
        if isinstance(event, TextDelta):
            text = self._feed(("part", event.index), event.text)
            return [TextDelta(event.index, text)] if text else []
        if isinstance(event, ToolArgsDelta):
            text = self._feed(("part", event.index), event.json, json_text=True)
            return [ToolArgsDelta(event.index, text)] if text else []
        if isinstance(event, PartStop):
            restorer = self._channels.get(("part", event.index))
            pending = self._flush(("part", event.index))
            if not pending or restorer is None:
                return [event]
            held: StreamEvent = (
                ToolArgsDelta(event.index, pending)
                if restorer.json_escaped
                else TextDelta(event.index, pending)
            )
            return [held, event]
        return [event]

    # -- passthrough stream events ---------------------------------------------------------------

    def passthrough(
        self, wire: Wire, name: bytes | None, data: bytes
    ) -> list[tuple[bytes | None, bytes]]:
        """One upstream event of a stream relayed in the caller's own format: the events to
        send instead (usually the same one, its deltas restored)."""
        if not self._collect and (
            self._vault is None or (b"[" not in data and not self._any_pending())
        ):
            return [(name, data)]
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [(name, data)]
        if not isinstance(event, dict):
            return [(name, data)]
        handler = _HANDLERS.get(wire)
        if handler is None:
            return [(name, data)]
        before, changed = handler(self, event)
        out: list[tuple[bytes | None, bytes]] = [(n, orjson.dumps(e)) for n, e in before]
        out.append((name, orjson.dumps(event) if changed else data))
        return out

    def passthrough_end(self, wire: Wire) -> list[tuple[bytes | None, bytes]]:
        """The upstream's stream ended: what is still held, as one last event (Gemini streams
        have no closing event to attach it to)."""
        if wire is not Wire.GEMINI:
            return []
        out: list[tuple[bytes | None, bytes]] = []
        for channel in list(self._channels):
            pending = self._flush(channel)
            if pending and channel[0] == "gemini":
                event = {
                    "candidates": [
                        {"content": {"parts": [{"text": pending}], "role": "model"},
                         "index": channel[1]}
                    ]
                }  # fmt: skip
                out.append((None, orjson.dumps(event)))
        return out

    def _any_pending(self) -> bool:
        return any(r.pending for r in self._channels.values())

    # -- per wire format ------------------------------------------------------------------------

    def _openai_chat(self, event: Event) -> tuple[list[tuple[bytes | None, Event]], bool]:
        changed = False
        for choice in _dicts(event.get("choices")):
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    new = self._feed(("chat", index, key), text)
                    changed = changed or new != text
                    delta[key] = new
            for call in _dicts(delta.get("tool_calls")):
                function = call.get("function")
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(function, dict) and isinstance(arguments, str) and arguments:
                    channel = ("chat", index, "tool", call.get("index", 0))
                    new = self._feed(channel, arguments, json_text=True)
                    changed = changed or new != arguments
                    function["arguments"] = new
            if choice.get("finish_reason") is not None:
                changed = self._chat_flush(index, delta) or changed
        return [], changed

    def _chat_flush(self, index: Any, delta: dict[str, Any]) -> bool:
        changed = False
        for channel in [c for c in self._channels if c[:2] == ("chat", index)]:
            pending = self._flush(channel)
            if not pending:
                continue
            changed = True
            if channel[2] == "tool":
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": channel[3], "function": {"arguments": pending}})
            else:
                delta[channel[2]] = (delta.get(channel[2]) or "") + pending
        return changed

    def _anthropic(self, event: Event) -> tuple[list[tuple[bytes | None, Event]], bool]:
        kind = event.get("type")
        index = event.get("index", 0)
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return [], False
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                text = delta["text"]
                delta["text"] = self._feed(("anthropic", index), text)
                return [], delta["text"] != text
            if delta.get("type") == "input_json_delta" and isinstance(
                delta.get("partial_json"), str
            ):
                text = delta["partial_json"]
                delta["partial_json"] = self._feed(("anthropic", index), text, json_text=True)
                return [], delta["partial_json"] != text
            if isinstance(delta.get("thinking"), str):
                self._note(delta["thinking"])
            return [], False
        if kind == "content_block_stop":
            restorer = self._channels.get(("anthropic", index))
            pending = self._flush(("anthropic", index))
            if not pending or restorer is None:
                return [], False
            delta_body = (
                {"type": "input_json_delta", "partial_json": pending}
                if restorer.json_escaped
                else {"type": "text_delta", "text": pending}
            )
            held = {"type": "content_block_delta", "index": index, "delta": delta_body}
            return [(b"content_block_delta", held)], False
        if kind in ("content_block_start", "message_start"):
            return [], self._restore_whole(event)
        return [], False

    def _responses(self, event: Event) -> tuple[list[tuple[bytes | None, Event]], bool]:
        kind = event.get("type")
        if not isinstance(kind, str):
            return [], False
        channel: Channel = ("responses", event.get("item_id"), event.get("content_index"))
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            text = event.get("delta")
            if isinstance(text, str):
                event["delta"] = self._feed(channel, text)
                return [], event["delta"] != text
            return [], False
        if kind == "response.function_call_arguments.delta":
            text = event.get("delta")
            if isinstance(text, str):
                event["delta"] = self._feed(channel, text, json_text=True)
                return [], event["delta"] != text
            return [], False
        if kind.endswith(".delta"):
            if isinstance(event.get("delta"), str):
                self._note(event["delta"])  # reasoning summaries: collected, not restored
            return [], False
        before: list[tuple[bytes | None, Event]] = []
        if kind in (
            "response.output_text.done",
            "response.refusal.done",
            "response.function_call_arguments.done",
        ):
            pending = self._flush(channel)
            if pending:
                held: Event = {
                    key: event[key]
                    for key in ("item_id", "output_index", "content_index", "sequence_number")
                    if key in event
                }
                held_type = kind.removesuffix(".done") + ".delta"
                held["type"] = held_type
                held["delta"] = pending
                if kind == "response.output_text.done":
                    held["logprobs"] = []
                before.append((held_type.encode(), held))
        return before, self._restore_whole(event)

    def _gemini(self, event: Event) -> tuple[list[tuple[bytes | None, Event]], bool]:
        changed = False
        for candidate in _dicts(event.get("candidates")):
            index = candidate.get("index", 0)
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            last_text: dict[str, Any] | None = None
            for part in _dicts(parts):
                text = part.get("text")
                if isinstance(text, str) and not part.get("thought"):
                    part["text"] = self._feed(("gemini", index), text)
                    changed = changed or part["text"] != text
                    last_text = part
                elif isinstance(text, str):
                    self._note(text)
                else:
                    for slot in text_slots(part):
                        self._note(slot.text)
                    changed = self._restore_whole(part) or changed
            if candidate.get("finishReason") is not None:
                pending = self._flush(("gemini", index))
                if pending:
                    changed = True
                    if last_text is not None:
                        last_text["text"] += pending
                    elif isinstance(parts, list):
                        parts.append({"text": pending})
                    else:
                        candidate["content"] = {"parts": [{"text": pending}], "role": "model"}
        return [], changed


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


_Handler = Any
_HANDLERS: Mapping[Wire, _Handler] = {
    Wire.OPENAI_CHAT: AnswerFilter._openai_chat,
    Wire.ANTHROPIC: AnswerFilter._anthropic,
    Wire.OPENAI_RESPONSES: AnswerFilter._responses,
    Wire.GEMINI: AnswerFilter._gemini,
}
