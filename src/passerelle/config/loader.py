"""Reading a configuration file once, strictly, into a resolved :class:`Config` with a hash.

YAML is composed into nodes first so that every error can name the line it comes from: pydantic
says *what* is wrong and where in the tree, the node map says on which line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from passerelle.config.schema import ConfigFile, ModelAlias, Project, ProviderConfig
from passerelle.errors import ConfigError

Path_ = tuple[str | int, ...]


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML into plain data plus a map from each value's path to its 1-based line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"not valid YAML: {exc.problem}", source=source, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from exc
    lines: dict[Path_, int] = {}
    constructor = yaml.SafeLoader("")

    def build(node: yaml.Node, path: Path_) -> Any:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node)
                if not isinstance(key, str):
                    raise ConfigError(
                        f"keys must be strings, found {key!r}",
                        source=source,
                        line=key_node.start_mark.line + 1,
                    )
                if key in result:
                    raise ConfigError(
                        f"duplicate key {key!r}", source=source, line=key_node.start_mark.line + 1
                    )
                result[key] = build(value_node, (*path, key))
                lines[(*path, key)] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, index)) for index, item in enumerate(node.value)]
        return constructor.construct_object(node)

    if root is None:
        raise ConfigError("the file is empty", source=source, line=1)
    return build(root, ()), lines


def _line_for(lines: Mapping[Path_, int], path: Path_) -> int | None:
    """The line of the deepest existing prefix of ``path``."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def _dotted(path: Path_) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


@dataclass(frozen=True)
class Config:
    """A parsed, cross-checked configuration. Build it with :func:`load_config`."""

    file: ConfigFile
    source: str
    base_dir: Path
    hash: str
    database_url: str
    spool_dir: Path
    _class_rank: dict[str, int] = field(repr=False)

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        return self.file.providers

    @property
    def models(self) -> Mapping[str, ModelAlias]:
        return self.file.models

    def class_rank(self, data_class: str) -> int:
        return self._class_rank[data_class]

    def project(self, name: str) -> Project | None:
        return self.file.projects.get(name)

    def project_data_class(self, name: str) -> str:
        project = self.file.projects[name]
        return project.data_class or self.file.clients[project.client].data_class

    def models_for_project(self, name: str | None) -> list[str]:
        """Model aliases a key bound to this project may use (none for an unknown project)."""
        if name is None:
            return []
        project = self.file.projects.get(name)
        if project is None:
            return []
        if "*" in project.models:
            return list(self.file.models)
        return [alias for alias in project.models if alias in self.file.models]

    def secret(self, env_name: str, environ: Mapping[str, str] | None = None) -> str:
        """The value of a referenced secret, or a ConfigError naming the variable."""
        value = (os.environ if environ is None else environ).get(env_name)
        if not value:
            raise ConfigError(
                f"environment variable {env_name} is referenced as env:{env_name} but is not set",
                source=self.source,
            )
        return value


def _cross_check(cfg: ConfigFile, lines: Mapping[Path_, int], source: str) -> None:
    """References between sections: every name used must be defined, in the right order."""

    def fail(message: str, path: Path_) -> None:
        raise ConfigError(message, source=source, line=_line_for(lines, path))

    classes = set(cfg.data_classes)
    if len(classes) != len(cfg.data_classes):
        fail("data_classes lists a class twice", ("data_classes",))
    for name, provider in cfg.providers.items():
        if provider.clearance not in classes:
            fail(
                f"clearance {provider.clearance!r} is not one of data_classes {cfg.data_classes}",
                ("providers", name, "clearance"),
            )
    for alias, model in cfg.models.items():
        for index, route in enumerate(model.routes):
            if route.provider not in cfg.providers:
                fail(
                    f"route to unknown provider {route.provider!r}; defined providers: "
                    f"{sorted(cfg.providers)}",
                    ("models", alias, "routes", index, "provider"),
                )
        if model.canary is not None:
            stable = {(route.provider, route.model) for route in model.routes}
            for index, route in enumerate(model.canary.routes):
                path: Path_ = ("models", alias, "canary", "routes", index)
                if route.provider not in cfg.providers:
                    fail(
                        f"canary route to unknown provider {route.provider!r}; defined "
                        f"providers: {sorted(cfg.providers)}",
                        (*path, "provider"),
                    )
                if (route.provider, route.model) in stable:
                    # Requests, errors and ratings are told apart by deployment.
                    fail(
                        f"canary route {route.provider}/{route.model} is also a stable route of "
                        f"{alias!r}: a canary must be a different deployment",
                        path,
                    )
    for name, client in cfg.clients.items():
        if client.data_class not in classes:
            fail(
                f"data_class {client.data_class!r} is not one of data_classes {cfg.data_classes}",
                ("clients", name, "data_class"),
            )
    for name, project in cfg.projects.items():
        if project.client not in cfg.clients:
            fail(
                f"unknown client {project.client!r}; defined clients: {sorted(cfg.clients)}",
                ("projects", name, "client"),
            )
        if project.data_class is not None and project.data_class not in classes:
            fail(
                f"data_class {project.data_class!r} is not one of data_classes {cfg.data_classes}",
                ("projects", name, "data_class"),
            )
        for index, alias in enumerate(project.models):
            if alias != "*" and alias not in cfg.models:
                fail(
                    f"unknown model alias {alias!r}; defined models: {sorted(cfg.models)}",
                    ("projects", name, "models", index),
                )
    for data_class in cfg.policy.not_cleared:
        if data_class not in classes:
            fail(
                f"policy.not_cleared names {data_class!r}, which is not one of data_classes "
                f"{cfg.data_classes}",
                ("policy", "not_cleared", data_class),
            )
    if cfg.dlp.disabled_rules:
        known = _dlp_rule_types()
        for index, rule in enumerate(cfg.dlp.disabled_rules):
            if rule not in known:
                fail(
                    f"unknown DLP rule {rule!r}; 'passerelle scan' reports rule names, "
                    "e.g. ipv4, email, phone_intl",
                    ("dlp", "disabled_rules", index),
                )
    names_of: dict[str, Mapping[str, object]] = {
        "team": cfg.teams,
        "project": cfg.projects,
        "client": cfg.clients,
        "model": cfg.models,
    }
    for index, budget in enumerate(cfg.budgets):
        defined = names_of.get(budget.scope.value)
        if defined is not None and budget.match != "*" and budget.match not in defined:
            fail(
                f"budget on unknown {budget.scope.value} {budget.match!r}; defined: "
                f"{sorted(defined)}",
                ("budgets", index, "match"),
            )
        downgrade = budget.downgrade_to
        if isinstance(downgrade, dict):
            named = [alias for pair in downgrade.items() for alias in pair]
        else:
            named = [downgrade] if downgrade is not None else []
        for alias in named:
            if alias not in cfg.models:
                fail(
                    f"downgrade_to names unknown model alias {alias!r}",
                    ("budgets", index, "downgrade_to"),
                )
    for index, limit in enumerate(cfg.rate_limits):
        defined = names_of.get(limit.scope.value)
        if defined is not None and limit.match != "*" and limit.match not in defined:
            fail(
                f"rate limit on unknown {limit.scope.value} {limit.match!r}; defined: "
                f"{sorted(defined)}",
                ("rate_limits", index, "match"),
            )
    for key in cfg.prices:
        if "/" not in key:
            fail(
                f"price key {key!r} must be '<provider kind>/<model id>', e.g. 'openai/gpt-4o'",
                ("prices", key),
            )
    cached = cfg.cache.enabled or any(p.cache for p in cfg.projects.values())
    if cached and cfg.state.backend == "redis" and cfg.audit.key is None:
        # Shared entries are keyed and sealed with a secret every instance holds: the audit key.
        fail(
            "a response cache in Redis needs audit.key (env:NAME): its entries are keyed with it, "
            "so that Redis never holds a prompt hash that could confirm a guess",
            ("cache",) if cfg.cache.enabled else ("projects",),
        )


def _dlp_rule_types() -> frozenset[str]:
    """Every detector type a scanner may be built with (imported only when rules are named)."""
    from passerelle.dlp.rules.catalog import builtin_rules, rule_types
    from passerelle.dlp.settings import DlpSettings

    rules = builtin_rules(DlpSettings(person_names=True))
    return frozenset(rule_types(rules)) | {"client_term"}


def _resolve_path(base_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def _resolve_database_url(base_dir: Path, url: str, source: str) -> str:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            "storage.url is not a database URL; expected e.g. sqlite:///var/passerelle.db or "
            "postgresql://user@host/db",
            source=source,
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = str(_resolve_path(base_dir, parsed.database or ""))
        return parsed.set(database=database).render_as_string(hide_password=False)
    return url


def _from_validation(exc: ValidationError, lines: Mapping[Path_, int], source: str) -> ConfigError:
    """One error naming every problem (up to five), unknown keys first: a misspelt key also
    makes the key it was meant to be look missing, and the misspelling is the real mistake."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    described: list[tuple[int | None, str]] = []
    for error in errors[:5]:
        path: Path_ = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}; check its spelling and where it is indented"
        elif error["type"] == "missing":
            message = f"missing required key {path[-1]!r}"
        described.append((_line_for(lines, path), f"{_dotted(path)}: {message}"))
    first_line, first = described[0]
    others = [f"{source}:{line}: {text}" for line, text in described[1:]]
    if len(errors) > 5:
        others.append(f"… and {len(errors) - 5} more")
    message = first + "".join("\n  " + other for other in others)
    return ConfigError(message, source=source, line=first_line)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Parse configuration text. Raises :class:`ConfigError` naming the line of any mistake."""
    data, lines = _compose(text, source)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", source=source, line=1)
    try:
        cfg = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, lines, source) from None
    _cross_check(cfg, lines, source)
    base = base_dir if base_dir is not None else Path.cwd()
    canonical = orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return Config(
        file=cfg,
        source=source,
        base_dir=base,
        hash=hashlib.sha256(canonical).hexdigest(),
        database_url=_resolve_database_url(base, cfg.storage.url, source),
        spool_dir=_resolve_path(base, cfg.storage.spool_dir),
        _class_rank={name: rank for rank, name in enumerate(cfg.data_classes)},
    )


def load_config(path: str | Path) -> Config:
    """Read and parse a configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(file)) from exc
    return parse_config(text, source=str(file), base_dir=file.absolute().parent)
