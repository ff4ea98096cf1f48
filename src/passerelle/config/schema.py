"""The configuration file's schema: policy as code.

Every model forbids unknown keys, so a typo is an error with its line instead of a setting
silently ignored. Secrets are never written in the file: only ``env:NAME`` references, resolved
when the gateway starts.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""Identifiers of providers, models, clients, projects, teams: lowercase, digits, ``._-``."""

_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


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
    headers: dict[str, str] = Field(default_factory=dict, description="extra non-secret headers")

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


class ModelKind(StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class ModelAlias(Strict):
    kind: ModelKind = ModelKind.CHAT
    description: str = ""
    routes: Annotated[list[Route], Field(min_length=1)] = Field(
        description="tried in order: the first is preferred, the others are fallbacks"
    )


class Team(Strict):
    name: str


class Client(Strict):
    name: str
    data_class: Name
    terms: list[str] = Field(
        default_factory=list, description="names and code words that identify this client"
    )


class Retention(Strict):
    store_bodies: bool = Field(False, description="keep redacted prompt and response bodies")
    body_days: int = Field(30, ge=1, le=3650)


class Project(Strict):
    name: str = ""
    client: Name
    data_class: Name | None = Field(None, description="defaults to the client's class")
    models: list[str] = Field(
        default_factory=list, description="model aliases this project may use; '*' for all"
    )
    regions: list[Name] = Field(default_factory=list, description="empty: any region")
    retention: Retention | None = None


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
        default_factory=list,
        description="detector types to switch off, e.g. ipv4 (see 'passerelle scan' output)",
    )
    allow: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list,
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
        default_factory=dict,
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
    teams: dict[Name, Team] = Field(default_factory=dict)
    clients: dict[Name, Client] = Field(default_factory=dict)
    projects: dict[Name, Project] = Field(default_factory=dict)
    dlp: DlpConfig = DlpConfig()
    policy: PolicySettings = PolicySettings()
    prices: dict[str, PriceOverride] = Field(
        default_factory=dict, description="keys are '<provider kind>/<model id>'"
    )
