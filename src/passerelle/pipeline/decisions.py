"""What a pipeline step may decide. Steps return one of these; they never raise to say no."""

from __future__ import annotations

from dataclasses import dataclass

from passerelle.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Continue:
    """Go on to the next step."""


@dataclass(frozen=True, slots=True)
class Block:
    """Stop here: the caller receives ``error`` (in its own wire format) and it is audited."""

    error: GatewayError
    rule: str


Decision = Continue | Block
CONTINUE = Continue()
