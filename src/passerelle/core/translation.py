"""What a translation produced, and what it had to leave out.

Formats do not all say the same things: Anthropic has prompt-cache breakpoints, OpenAI has log
probabilities, Gemini has safety settings. When one side cannot express something, the codec
drops it on purpose and records a :class:`Loss`; the gateway lists the names in the
``x-passerelle-dropped`` response header so that the caller learns what did not make it. Only
input that is wrong in its own format raises (``InvalidRequest``), never input that is merely
untranslatable.

A loss is named after what was dropped:

- ``<vendor>.<field>`` for a feature only one vendor has, spelt as that vendor spells it:
  ``anthropic.cache_control``, ``openai.logprobs``, ``gemini.safetySettings``;
- the canonical name for a feature several formats share but the target lacks: ``seed``,
  ``top_k``, ``stop``, ``metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

DROPPED_HEADER = "x-passerelle-dropped"

T = TypeVar("T")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-\[\]]")
_MAX_NAME = 80


def _safe(text: str) -> str:
    """Names and places are built from the client's field names, which end up in a response
    header and in logs: keep them short and to a harmless alphabet."""
    return _UNSAFE.sub("_", text[:_MAX_NAME])


@dataclass(frozen=True, slots=True)
class Loss:
    """One thing dropped: its ``name`` (for the header) and ``where`` it was (for logs)."""

    name: str
    where: str = ""


class LossLog:
    """Collects losses during one translation, once per name (the first place it was seen)."""

    __slots__ = ("_losses",)

    def __init__(self) -> None:
        self._losses: dict[str, Loss] = {}

    def add(self, name: str, where: str = "") -> None:
        name = _safe(name)
        if name not in self._losses:
            self._losses[name] = Loss(name, _safe(where))

    def extend(self, losses: Iterable[Loss]) -> None:
        for loss in losses:
            self.add(loss.name, loss.where)

    def losses(self) -> tuple[Loss, ...]:
        return tuple(self._losses.values())

    def __bool__(self) -> bool:
        return bool(self._losses)


@dataclass(frozen=True, slots=True)
class Translated(Generic[T]):
    """A translated value and what the translation dropped."""

    value: T
    losses: tuple[Loss, ...] = ()

    @property
    def loss_names(self) -> tuple[str, ...]:
        return tuple(loss.name for loss in self.losses)


def dropped_header_value(*groups: Iterable[Loss]) -> str:
    """The ``x-passerelle-dropped`` value for the losses of several translation steps (decoding
    the request, encoding it for the provider, …): distinct names, in order, comma-separated."""
    names: dict[str, None] = {}
    for group in groups:
        for loss in group:
            names.setdefault(loss.name, None)
    return ", ".join(names)
