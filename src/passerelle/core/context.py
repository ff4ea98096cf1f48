"""Who is calling and what happened to their request, carried through the pipeline."""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from passerelle.errors import WireFormat


class KeyScope(StrEnum):
    """What a virtual key may do. Least privilege: inference keys cannot administer."""

    INFERENCE = "inference"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The person behind a request, resolved from their virtual key."""

    key_id: str
    key_prefix: str
    user_id: str
    email: str
    team: str | None
    profile: str | None
    project: str | None
    client: str | None
    scope: KeyScope


class RequestIds:
    """Request ids, also returned to the caller in ``x-request-id``.

    96 random bits from a generator seeded once from the operating system: collisions are out
    of reach across instances and years, without a system call per request. An id is a name,
    not a credential: whoever uses one (feedback, review) is authorised by their own key."""

    __slots__ = ("_rng",)

    def __init__(self) -> None:
        self._rng = random.Random(secrets.randbits(128))

    def new(self) -> str:
        return f"req_{self._rng.getrandbits(96):024x}"


@dataclass(slots=True)
class Attempt:
    """One call to one route, kept for the audit record."""

    provider: str
    model: str
    status: int | None
    error: str | None
    duration_ms: float


@dataclass(slots=True)
class DataPolicyRecord:
    """What the data policy saw and decided for one request, for its audit record.

    Types and counts only: never a value that was found."""

    data_class: str
    """The request's class as sent: after pseudonymization or redaction lowered it."""
    found_class: str
    """The class the request had as received: max(project class, what DLP found)."""
    findings: dict[str, int] = field(default_factory=dict)
    """Findings in the request by detector type, e.g. ``{"email": 2}``."""
    action: str = "allow"
    """allow, reroute, pseudonymize, redact, hold, block, or approved (a reviewed resend)."""
    rule: str | None = None
    """The configuration rule that decided, e.g. ``policy.not_cleared.restricted``."""
    injection: bool = False
    response_findings: dict[str, int] = field(default_factory=dict)
    """Findings in the answer by detector type (audited, not acted on)."""
    restored: int = 0
    """Pseudonyms the answer used and that were put back."""
    review_id: str | None = None

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "class": self.data_class,
            "found_class": self.found_class,
            "findings": dict(sorted(self.findings.items())),
            "action": self.action,
            "rule": self.rule,
        }
        if self.injection:
            out["injection"] = True
        if self.response_findings:
            out["response_findings"] = dict(sorted(self.response_findings.items()))
        if self.restored:
            out["restored"] = self.restored
        if self.review_id is not None:
            out["review_id"] = self.review_id
        return out


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request; the pipeline steps read and fill it."""

    request_id: str
    wire: WireFormat
    endpoint: str
    started_ns: int = field(default_factory=time.perf_counter_ns)
    started_us: int = field(default_factory=lambda: time.time_ns() // 1000)
    principal: Principal | None = None
    model_alias: str | None = None
    stream: bool = False
    provider: str | None = None
    provider_model: str | None = None
    status: int | None = None
    error_code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micro_usd: int = 0
    price_known: bool = True
    usage_reported: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    first_byte_ms: float | None = None
    client_disconnected: bool = False
    policy: DataPolicyRecord | None = None
    cache: str | None = None
    """What the response cache did: hit, store, miss, bypass, unavailable (None: not used)."""
    cache_source: str | None = None
    """On a hit, the id of the request whose answer was replayed."""
    budget_hold: Any = None
    """The budget reservation this request holds (``pipeline.budgets.BudgetHold``)."""
    limit_ticket: Any = None
    """The rate-limit windows it was counted in (``pipeline.limits.LimitTicket``)."""
    downgraded_from: str | None = None
    """The alias the caller asked for, when a budget sent the request to a cheaper one."""
    notes: dict[str, Any] = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        return (time.perf_counter_ns() - self.started_ns) / 1e6
