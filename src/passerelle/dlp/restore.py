"""Putting pseudonymized values back into a model's answer, including a streamed answer.

A stream arrives in chunks cut anywhere: ``[EMA`` in one event, ``IL_1]`` in the next. The
:class:`Restorer` emits everything it can as soon as it can and holds back only the shortest
suffix that could still become a placeholder: the text from the last ``[`` if, and only if, it
is a proper prefix of one of the vault's placeholders. Every placeholder starts with ``[`` and
holds no other bracket, so no longer suffix can be one, and the held text is at most one
placeholder long. ``flush()`` at the end of the stream releases what is held.

Only placeholders issued by the request's vault are replaced; any other bracketed text, such as a
``[EMAIL_7]`` the model made up, passes through untouched.

Text that is itself JSON (a tool call's arguments, streamed as fragments of a JSON document) needs
the originals JSON-escaped, so that a value holding a quote, a backslash or a line break leaves
the arguments valid JSON: ``Restorer(vault, json_escaped=True)``.
"""

from __future__ import annotations

import json
import re

from passerelle.dlp.actions import Vault


class Restorer:
    """Restores one response: ``feed(chunk) -> str`` for each chunk, then ``flush() -> str``."""

    def __init__(self, vault: Vault, *, json_escaped: bool = False) -> None:
        originals = vault.mapping()
        if json_escaped:
            originals = {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in originals.items()}
        self._originals = originals
        self.json_escaped = json_escaped
        self.restored = 0
        """How many placeholders were put back so far."""
        self._prefixes = frozenset(
            placeholder[:cut]
            for placeholder in self._originals
            for cut in range(1, len(placeholder))
        )
        self._pending = ""
        self._placeholder = re.compile(r"\[[A-Z][A-Z0-9_]*_[0-9]+\]")

    def restore(self, text: str) -> str:
        """Placeholders replaced in a complete text."""
        if not self._originals or "[" not in text:
            return text
        return self._placeholder.sub(self._original, text)

    def _original(self, match: re.Match[str]) -> str:
        original = self._originals.get(match.group(0))
        if original is None:
            return match.group(0)
        self.restored += 1
        return original

    def feed(self, chunk: str) -> str:
        buffer = self._pending + chunk
        cut = buffer.rfind("[")
        if cut >= 0 and buffer[cut:] in self._prefixes:
            self._pending = buffer[cut:]
            buffer = buffer[:cut]
        else:
            self._pending = ""
        return self.restore(buffer)

    def flush(self) -> str:
        """What is still held back (an incomplete placeholder is returned as it is)."""
        pending, self._pending = self._pending, ""
        return pending

    @property
    def pending(self) -> str:
        """The held-back suffix: empty or a proper prefix of a placeholder."""
        return self._pending
