"""What a pipeline step may decide. Steps return one of these; they never raise to say no.

::

    Continue   go on to the next step
    Offer      go on, offering this request other routes than the model's configured ones (a
               canary roll-out's new version first, the stable routes as its fallbacks); later
               steps choose among those
    Reroute    go on, with only these routes of the model (in this order); a later step can
               narrow the routes further, never bring back one an earlier step removed
    Rewrite    go on with this body instead of the caller's (findings replaced), maybe with
               fewer routes, and with the pseudonyms to put back in the answer
    Block      stop: the caller gets the error in its own format
    Hold       stop for now: the request is queued for a human reviewer
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from passerelle.errors import GatewayError

if TYPE_CHECKING:
    from passerelle.dlp.actions import Vault
    from passerelle.pipeline.routing import RouteTarget


@dataclass(frozen=True, slots=True)
class Continue:
    """Go on to the next step."""


@dataclass(frozen=True, slots=True)
class Offer:
    """Go on, with ``targets`` as the routes the model offers this request, in order, instead
    of its configured routes: what later steps choose from (the data policy filters them by
    clearance and region). An offer cannot widen what an earlier step narrowed, so the step
    that offers runs first."""

    targets: tuple[RouteTarget, ...]
    rule: str


@dataclass(frozen=True, slots=True)
class Reroute:
    """Go on, with only ``targets`` as the model's routes: the first is tried first, the others
    are its fallbacks."""

    targets: tuple[RouteTarget, ...]
    rule: str
    why: str | None = None
    """Why the other routes were removed, in words the caller may read: the error message if
    a later step leaves no route (a kill switch's reason, say)."""


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Go on with ``body`` instead of the caller's body."""

    body: dict[str, Any]
    rule: str
    targets: tuple[RouteTarget, ...] | None = None
    """When the rewrite changes where the request may go (it lowered its data class)."""
    vault: Vault | None = None
    """The pseudonyms the body holds, to put the originals back in the answer."""


@dataclass(frozen=True, slots=True)
class Block:
    """Stop here: the caller receives ``error`` (in its own wire format) and it is audited."""

    error: GatewayError
    rule: str


@dataclass(frozen=True, slots=True)
class HoldTicket:
    """What the review queue keeps about a held request: names, types and counts, and the
    request's text with every finding replaced by a placeholder. Never a value found."""

    data_class: str
    findings: Mapping[str, int]
    reason: str
    """Why the request is held, in words (no values)."""
    preview: str
    """The request's text, every finding pseudonymized, for the reviewer to judge."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Stop for now: a reviewer decides. An approved resend of the same request goes to
    ``targets`` (the model's routes in the project's regions) once."""

    ticket: HoldTicket
    rule: str
    targets: tuple[RouteTarget, ...] = field(default=())


Decision = Continue | Offer | Reroute | Rewrite | Block | Hold
CONTINUE = Continue()
