"""The configuration file's schema: policy as code.

Every model forbids unknown keys, so a typo is an error with its line instead of a setting
silently ignored. Secrets are never written in the file: only ``env:NAME`` references, resolved
when the gateway starts.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""Identifiers of providers, models, clients, projects, teams: lowercase, digits, ``._-``."""

_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def _new_dict() -> dict[Any, Any]:
    """``default_factory=dict`` made pydantic inspect ``dict``'s signature, and inspecting a
    builtin's signature compiles the tokenizer's regular expressions: 50 ms of start-up."""
    return {}


def _new_list() -> list[Any]:
    """See :func:`_new_dict`."""
    return []


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SecretRef(str):
    """A reference to a secret held in the environment: ``env:NAME``."""

    @property
    def env_name(self) -> str:
        match = _ENV_REF.match(self)
        assert match is not None  # guaranteed by validate_secret_ref
        return match.group(1)


def validate_secret_ref(value: object) -> SecretRef:
    if not isinstance(value, str) or not _ENV_REF.match(value):
        raise ValueError(
            "secrets are never written in the configuration: write env:NAME and set the "
            "environment variable NAME where Passerelle runs"
        )
    return SecretRef(value)


Secret = Annotated[
    SecretRef,
    PlainValidator(validate_secret_ref),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "pattern": _ENV_REF.pattern}),
]


class ProviderKind(StrEnum):
    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    OPENAI_COMPATIBLE = "openai_compatible"
    MISTRAL = "mistral"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    VERTEX = "vertex"
    BEDROCK = "bedrock"


# Where each vendor's API lives when ``base_url`` is not given. Azure and self-hosted servers
# have no default: their address is the deployment's own.
DEFAULT_BASE_URLS: dict[ProviderKind, str] = {
    ProviderKind.OPENAI: "https://api.openai.com/v1",
    ProviderKind.MISTRAL: "https://api.mistral.ai/v1",
    ProviderKind.ANTHROPIC: "https://api.anthropic.com",
    ProviderKind.GEMINI: "https://generativelanguage.googleapis.com",
}


class Profile(StrEnum):
    """The job profiles of the maturity grid."""

    DEV = "dev"
    DEVOPS = "devops"
    TEST = "test"
    ARCHITECT = "architect"
    OPS = "ops"
    MANAGER = "manager"


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0, le=120, description="seconds to open a connection")
    read: float = Field(
        120.0, gt=0, le=3600, description="seconds to wait for the first byte and between chunks"
    )


class RetryPolicy(Strict):
    max_attempts: int = Field(3, ge=1, le=10, description="attempts per route, first included")
    backoff_initial_ms: int = Field(200, ge=0, le=60_000)
    backoff_max_ms: int = Field(4_000, ge=0, le=120_000)
    max_retry_after_s: float = Field(
        10.0, ge=0, le=600, description="longest upstream retry-after honoured before falling back"
    )


class CircuitBreaker(Strict):
    """When to stop sending to a deployment (one provider and model id) that keeps failing.

    Each gateway process keeps its own breakers: every instance learns on its own, as Envoy's
    outlier detection does. See ``passerelle.pipeline.breakers`` for the state machine."""

    enabled: bool = Field(
        True,
        description="off: the deployment is always tried, even while it fails or rate limits",
    )
    failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="consecutive failures (refused or reset connections, timeouts, 5xx) "
        "that open the breaker",
    )
    cooldown_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how long an open breaker skips the deployment before letting a probe through",
    )
    max_cooldown_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="the cooldown doubles each time a probe fails, up to this; also the longest "
        "upstream retry-after (429) during which the deployment is skipped",
    )
    half_open_probes: int = Field(
        1,
        ge=1,
        le=100,
        description="requests let through at once after the cooldown, to test the deployment",
    )

    @model_validator(mode="after")
    def _cooldowns(self) -> CircuitBreaker:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        return self


class ProviderConfig(Strict):
    kind: ProviderKind
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = Field(
        None, description="the API's address; defaults to the vendor's public endpoint"
    )
    api_key: Secret | None = None
    api_version: str | None = Field(
        None,
        description="Azure OpenAI api-version (without it the Azure v1 API is used); "
        "for Anthropic, the anthropic-version sent when the caller sends none",
    )
    aws_region: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="Bedrock: the AWS region, e.g. eu-west-3",
    )
    aws_profile: str | None = Field(
        None, description="Bedrock: a profile of the shared AWS files; default: the standard chain"
    )
    gcp_project: str | None = Field(None, description="Vertex AI: the Google Cloud project id")
    gcp_location: str | None = Field(
        None, description="Vertex AI: the location, e.g. europe-west1, or global"
    )
    gcp_credentials: Secret | None = Field(
        None,
        description="Vertex AI: env:NAME holding a credentials JSON or its path; "
        "default: Application Default Credentials",
    )
    region: Name = Field(description="where the deployment runs: eu, us, on-prem…")
    clearance: Name = Field(description="the highest data class this destination may receive")
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    headers: dict[str, str] = Field(
        default_factory=_new_dict, description="extra non-secret headers"
    )

    @model_validator(mode="after")
    def _kind_settings(self) -> ProviderConfig:
        kind = self.kind
        if self.base_url is None and kind in (
            ProviderKind.AZURE_OPENAI,
            ProviderKind.OPENAI_COMPATIBLE,
        ):
            raise ValueError(f"a provider of kind {kind.value} needs base_url: its own address")
        if kind is ProviderKind.BEDROCK:
            if not self.aws_region:
                raise ValueError("a bedrock provider needs aws_region, e.g. eu-west-3")
        elif self.aws_region or self.aws_profile:
            raise ValueError("aws_region and aws_profile are for bedrock providers only")
        if kind is ProviderKind.VERTEX:
            if not self.gcp_project or not self.gcp_location:
                raise ValueError("a vertex provider needs gcp_project and gcp_location")
        elif self.gcp_project or self.gcp_location or self.gcp_credentials:
            raise ValueError("gcp_project, gcp_location and gcp_credentials are for vertex only")
        if kind in (ProviderKind.BEDROCK, ProviderKind.VERTEX) and self.api_key is not None:
            raise ValueError(
                f"{kind.value} providers authenticate with cloud credentials, not api_key"
            )
        cloud_keyed = (
            ProviderKind.OPENAI,
            ProviderKind.AZURE_OPENAI,
            ProviderKind.MISTRAL,
            ProviderKind.ANTHROPIC,
            ProviderKind.GEMINI,
        )
        if kind in cloud_keyed and self.api_key is None:
            raise ValueError(f"a provider of kind {kind.value} needs api_key: env:NAME")
        return self

    @property
    def url(self) -> str:
        """``base_url``, or the vendor's default address, without a trailing slash."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        if self.kind is ProviderKind.BEDROCK:
            return f"https://bedrock-runtime.{self.aws_region}.amazonaws.com"
        if self.kind is ProviderKind.VERTEX:
            if self.gcp_location == "global":
                return "https://aiplatform.googleapis.com"
            return f"https://{self.gcp_location}-aiplatform.googleapis.com"
        return DEFAULT_BASE_URLS[self.kind]

    def secret_refs(self) -> list[SecretRef]:
        """Every env:NAME this provider reads at start-up."""
        return [ref for ref in (self.api_key, self.gcp_credentials) if ref is not None]


class Route(Strict):
    provider: Name
    model: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the model id at the provider (the deployment name on Azure OpenAI)"
    )
    pricing_model: str | None = Field(
        None, description="price this route as that model, e.g. when a deployment is renamed"
    )
    weight: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        strict=True,
        description="share of the traffic this route takes first; when a route of the model has "
        "a weight, the first route is drawn among the weighted ones and routes without a weight "
        "are fallbacks only",
    )


class ModelKind(StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class CanaryStart(StrEnum):
    AUTO = "auto"
    """The first gateway that sees this canary starts its roll-out."""
    MANUAL = "manual"
    """The roll-out waits for ``passerelle canary start ALIAS`` (or the admin API)."""


class CanaryGates(Strict):
    """What the new version must show at each stage to go on; see ``pipeline/canary_gates.py``.

    A gate left empty (null) is not checked. Errors are 5xx answers, transport failures, broken
    streams, and, for the new version, any request it did not answer itself (its stable fallback
    did); a caller's own mistakes (4xx) are not errors."""

    max_error_rate: float | None = Field(
        0.05, ge=0, le=1, description="highest share of the new version's requests that fail"
    )
    max_error_rate_increase: float | None = Field(
        0.02,
        ge=0,
        le=1,
        description="highest excess of the new version's error rate over the stable routes' "
        "in the same window, in absolute terms (0.02: two points)",
    )
    max_p95_ms: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description="highest 95th percentile latency in ms: time to the first byte of a stream, "
        "to the whole answer otherwise",
    )
    max_p95_ratio: float | None = Field(
        1.5,
        ge=1,
        le=100,
        description="highest ratio of the new version's 95th percentile latency to the stable "
        "routes' in the same window",
    )
    p95_tolerance_ms: float = Field(
        100.0,
        ge=0,
        le=600_000,
        description="a p95 at most this much above the stable one never fails max_p95_ratio: "
        "for fast answers a ratio is noise",
    )
    max_negative_ratio: float | None = Field(
        0.3,
        ge=0,
        le=1,
        description="highest share of thumbs-down ratings of the new version's answers since "
        "the roll-out started",
    )
    min_ratings: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="ratings of the new version needed before max_negative_ratio is checked",
    )


class Canary(Strict):
    """A new version of a model rolled out behind its alias, stage by stage: each stage sends
    a share of the requests to the new routes (the stable routes stay their fallbacks), and the
    gates decide to go on or to roll back. See ``pipeline/canary.py``."""

    routes: Annotated[list[Route], Field(min_length=1)] = Field(
        description="the new version's routes, tried in order (or by weight) before the stable "
        "routes, which stay its fallbacks"
    )
    stages: Annotated[
        list[Annotated[float, Field(gt=0, le=100)]], Field(min_length=1, max_length=20)
    ] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="percentages of the requests sent to the new version, strictly "
        "increasing, ending at 100",
    )
    min_duration_s: float = Field(
        600.0,
        ge=0,
        le=30 * 86_400,
        description="shortest time a stage lasts before the gates may promote it",
    )
    min_requests: int = Field(
        100,
        ge=1,
        le=100_000_000,
        description="requests served by the new version in a stage before its error and "
        "latency gates decide (a failing gate rolls back as soon as this is met)",
    )
    start: CanaryStart = Field(
        CanaryStart.AUTO,
        description="auto: the roll-out starts when a gateway first sees this canary; "
        "manual: with 'passerelle canary start'",
    )
    gates: CanaryGates = CanaryGates()

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[float]) -> list[float]:
        points = [round(stage * 100) for stage in stages]
        if any(abs(round(stage * 100) - stage * 100) > 1e-6 for stage in stages):
            raise ValueError("stages are percentages with at most two decimals, e.g. 0.5 or 25")
        if any(later <= earlier for earlier, later in itertools.pairwise(points)):
            raise ValueError("stages must be strictly increasing, e.g. [5, 25, 50, 100]")
        if points[-1] != 10_000:
            raise ValueError("the last stage must be 100: the roll-out ends with every request")
        return stages


class ModelAlias(Strict):
    kind: ModelKind = ModelKind.CHAT
    description: str = ""
    routes: Annotated[list[Route], Field(min_length=1)] = Field(
        description="tried in order: the first is preferred, the others are fallbacks "
        "(unless routes carry a weight)"
    )
    canary: Canary | None = Field(
        None, description="a new version rolled out in stages behind this alias"
    )


class Team(Strict):
    name: str


class Client(Strict):
    name: str
    data_class: Name
    terms: list[str] = Field(
        default_factory=_new_list, description="names and code words that identify this client"
    )


class Retention(Strict):
    store_bodies: bool = Field(False, description="keep redacted prompt and response bodies")
    body_days: int = Field(30, ge=1, le=3650)


class Project(Strict):
    name: str = ""
    client: Name
    data_class: Name | None = Field(None, description="defaults to the client's class")
    models: list[str] = Field(
        default_factory=_new_list, description="model aliases this project may use; '*' for all"
    )
    regions: list[Name] = Field(default_factory=_new_list, description="empty: any region")
    retention: Retention | None = None
    cache: bool | None = Field(
        None, description="reuse this project's answers (response cache); default: cache.enabled"
    )


class PriceOverride(Strict):
    input: int = Field(ge=0, description="micro-USD per million input tokens")
    output: int = Field(ge=0, description="micro-USD per million output tokens")
    cached_input: int | None = Field(None, ge=0)
    cache_write: int | None = Field(None, ge=0)
    reasoning: int | None = Field(None, ge=0)


class GatewaySettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=1, le=65535)
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024, description="largest request accepted"
    )


class StorageSettings(Strict):
    url: str = Field(
        "sqlite:///var/passerelle.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to this file",
    )
    spool_dir: str = Field("var/spool", description="audit spool; relative to this file")


class AuditSettings(Strict):
    key: Secret | None = Field(
        None, description="HMAC key for the hash chain; without it the chain is plain SHA-256"
    )
    # Records are durable in the spool before a response completes, so waiting longer for
    # company costs callers nothing; it only delays when reports see a record. 20 ms turns
    # hundreds of commits a second into fifty, and frees the CPU they took for requests.
    group_commit_ms: float = Field(
        20.0,
        ge=0,
        le=10_000,
        description="how long the writer waits for more records before committing a batch",
    )


class StateBackend(StrEnum):
    MEMORY = "memory"
    """Counters, limits and cache in this process: right for one instance."""
    REDIS = "redis"
    """Shared through Redis: required as soon as several instances serve the same users."""


class StateSettings(Strict):
    """Where budgets, rate limits and the response cache keep their shared state."""

    backend: StateBackend = Field(
        StateBackend.MEMORY,
        description="memory for one instance; redis when several instances run",
    )
    redis_url: str | None = Field(
        None,
        pattern=r"^rediss?://[^\s]+$",
        description="redis://host:port/db (no password here: see redis_password)",
    )
    redis_password: Secret | None = Field(None, description="env:NAME holding Redis's password")
    redis_timeout_s: float = Field(
        0.5,
        gt=0,
        le=10,
        description="longest wait for Redis before the request fails closed",
    )
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9:._-]{1,40}$")] = Field(
        "passerelle:", description="prefix of every Redis key, to share a server safely"
    )

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateSettings:
        if self.backend is StateBackend.REDIS and not self.redis_url:
            raise ValueError("state.backend redis needs redis_url, e.g. redis://127.0.0.1:6379/0")
        if "@" in (self.redis_url or ""):
            raise ValueError(
                "credentials are never written in the configuration: put Redis's password in "
                "redis_password as env:NAME"
            )
        return self


class BudgetScope(StrEnum):
    KEY = "key"
    USER = "user"
    TEAM = "team"
    PROJECT = "project"
    CLIENT = "client"


class BudgetPeriod(StrEnum):
    DAY = "day"
    MONTH = "month"


class BudgetAction(StrEnum):
    BLOCK = "block"
    """Past the soft threshold: alert. At the hard cap: refuse."""
    DOWNGRADE = "downgrade"
    """Past the soft threshold: alert and send requests to ``downgrade_to`` instead. At the hard
    cap: refuse (a downgraded request must fit under the cap too)."""


Usd = Annotated[float, Field(ge=0, le=10_000_000)]


class Budget(Strict):
    """A spending cap on one scope, per UTC day or month. Money is kept in integer micro-USD;
    amounts here are in USD for people to read."""

    scope: BudgetScope
    match: Annotated[str, Field(min_length=1, max_length=320)] = Field(
        "*",
        description="the key prefix, user e-mail, team, project or client it applies to; "
        "'*' gives each one of the scope a budget of its own",
    )
    period: BudgetPeriod
    soft_usd: Usd | None = Field(None, description="alert threshold")
    hard_usd: Usd = Field(description="cap: spend never goes past it by more than one request")
    action: BudgetAction = BudgetAction.BLOCK
    downgrade_to: Name | dict[Name, Name] | None = Field(
        None,
        description="with action downgrade: the cheaper model alias to use past soft_usd, or a "
        "map from the alias asked for to its cheaper one (aliases not in the map are not "
        "downgraded)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Budget:
        if self.soft_usd is not None and self.soft_usd > self.hard_usd:
            raise ValueError("soft_usd must not exceed hard_usd")
        if self.action is BudgetAction.DOWNGRADE:
            if self.downgrade_to is None:
                raise ValueError("action downgrade needs downgrade_to: a cheaper model alias")
            if self.soft_usd is None:
                raise ValueError("action downgrade needs soft_usd: where downgrading starts")
        elif self.downgrade_to is not None:
            raise ValueError("downgrade_to is only for action downgrade")
        return self

    def downgrade_for(self, alias: str) -> str | None:
        """The alias a request for ``alias`` is downgraded to, if any."""
        if isinstance(self.downgrade_to, dict):
            return self.downgrade_to.get(alias)
        return self.downgrade_to

    @property
    def soft_micro_usd(self) -> int | None:
        return None if self.soft_usd is None else round(self.soft_usd * 1_000_000)

    @property
    def hard_micro_usd(self) -> int:
        return round(self.hard_usd * 1_000_000)

    @property
    def label(self) -> str:
        """How messages, alerts and the admin API name this budget."""
        return f"{self.scope.value}:{self.match}/{self.period.value}"


class RateLimitScope(StrEnum):
    KEY = "key"
    USER = "user"
    PROJECT = "project"
    MODEL = "model"


class RateLimit(Strict):
    """Requests and tokens per minute, over a sliding window of the last 60 seconds."""

    scope: RateLimitScope
    match: Annotated[str, Field(min_length=1, max_length=320)] = Field(
        "*",
        description="the key prefix, user e-mail, project or model alias it applies to; "
        "'*' gives each one of the scope a limit of its own",
    )
    rpm: int | None = Field(None, ge=1, le=10_000_000, description="requests per minute")
    tpm: int | None = Field(None, ge=1, le=10_000_000_000, description="tokens per minute")

    @model_validator(mode="after")
    def _something(self) -> RateLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs rpm, tpm or both")
        return self


class LimitSettings(Strict):
    default_output_tokens: int = Field(
        4096,
        ge=1,
        le=1_000_000,
        description="output tokens reserved for a request that does not set max_tokens",
    )
    alert_webhook: Secret | None = Field(
        None,
        description="env:NAME holding a URL that receives budget alerts as JSON (a chat "
        "webhook URL is a credential, hence not written here)",
    )


class DlpConfig(Strict):
    """What the DLP scan looks for. Findings raise a request's data class (see ``policy``)."""

    enabled: bool = Field(
        True,
        description="scan every request (and answer) for secrets, personal data, client terms "
        "and prompt injections; off means requests are classified by their project alone",
    )
    person_names: bool = Field(
        False,
        description="also look for person names: a heuristic, far less precise than the "
        "other detectors",
    )
    disabled_rules: list[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]] = Field(
        default_factory=_new_list,
        description="detector types to switch off, e.g. ipv4 (see 'passerelle scan' output)",
    )
    allow: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=_new_list,
        description="exact values that are never findings: a published test card, a shared "
        "support address",
    )
    scan_responses: bool = Field(
        True,
        description="scan answers too: their findings are audited by type (answers are not "
        "rewritten except to restore pseudonyms)",
    )


class PolicyAction(StrEnum):
    """What to do with a request that no route of its model is cleared to receive."""

    PSEUDONYMIZE = "pseudonymize"
    """Replace the findings above the best available clearance with placeholders such as
    ``[EMAIL_1]``, send, and put the originals back in the answer."""
    REDACT = "redact"
    """Replace those findings with ``[REDACTED:<type>]`` for good."""
    HOLD = "hold"
    """Refuse for now and queue the request for a human reviewer."""
    BLOCK = "block"
    """Refuse, naming the rule and what was found."""


class InjectionAction(StrEnum):
    BLOCK = "block"
    FLAG = "flag"
    """Let the request through and record the signature type in the audit trail."""


class PolicySettings(Strict):
    """Data classification and routing: what happens when data may not go where it was sent."""

    not_cleared: dict[Name, PolicyAction] = Field(
        default_factory=_new_dict,
        description="per data class, what to do when no route of the requested model is cleared "
        "for the request's class; a class not listed blocks",
    )
    injection: InjectionAction = Field(
        InjectionAction.FLAG, description="what a prompt-injection signature does"
    )
    review_hours: int = Field(
        24,
        ge=1,
        le=24 * 30,
        description="how long a held request waits for a reviewer, and an approval for its resend",
    )


class CacheSettings(Strict):
    """The exact response cache: a project sending the very same request again gets the answer
    it got before, without a provider call. Entries are scoped per project and encrypted with a
    key only the same request can derive; with ``state.backend: redis`` they are shared by every
    instance (and ``audit.key`` is required, to key the entries)."""

    enabled: bool = Field(
        False,
        description="cache the answers of every project that does not say otherwise "
        "(projects.<name>.cache)",
    )
    ttl_s: int = Field(3600, ge=1, le=7 * 24 * 3600, description="how long an answer is reused")
    max_entry_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="larger answers are not cached (a stream counts every chunk it sent)",
    )
    memory_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        le=64 * 1024 * 1024 * 1024,
        description="memory backend: the cache's total size; the least recently used answers "
        "go first",
    )

    @model_validator(mode="after")
    def _entry_fits(self) -> CacheSettings:
        if self.max_entry_bytes > self.memory_max_bytes:
            raise ValueError("max_entry_bytes must not exceed memory_max_bytes")
        return self


class ConfigFile(Strict):
    """The top level of ``passerelle.yaml``."""

    version: Literal[1]
    gateway: GatewaySettings = GatewaySettings()
    storage: StorageSettings = StorageSettings()
    audit: AuditSettings = AuditSettings()
    data_classes: Annotated[list[Name], Field(min_length=1)] = Field(
        default_factory=lambda: ["public", "internal", "confidential", "restricted"],
        description="ordered from least to most sensitive",
    )
    retention: Retention = Retention()
    providers: dict[Name, ProviderConfig]
    models: dict[Name, ModelAlias]
    teams: dict[Name, Team] = Field(default_factory=_new_dict)
    clients: dict[Name, Client] = Field(default_factory=_new_dict)
    projects: dict[Name, Project] = Field(default_factory=_new_dict)
    state: StateSettings = StateSettings()
    budgets: list[Budget] = Field(default_factory=_new_list)
    rate_limits: list[RateLimit] = Field(default_factory=_new_list)
    limits: LimitSettings = LimitSettings()
    cache: CacheSettings = CacheSettings()
    dlp: DlpConfig = DlpConfig()
    policy: PolicySettings = PolicySettings()
    prices: dict[str, PriceOverride] = Field(
        default_factory=_new_dict, description="keys are '<provider kind>/<model id>'"
    )
