"""The rules a scanner is built from, chosen by :class:`~passerelle.dlp.settings.DlpSettings`."""

from __future__ import annotations

from passerelle.dlp.rules import Rule
from passerelle.dlp.rules.injection import injection_rules
from passerelle.dlp.rules.names import name_rules
from passerelle.dlp.rules.personal import personal_rules
from passerelle.dlp.rules.secrets import secret_rules
from passerelle.dlp.rules.terms import term_rules
from passerelle.dlp.settings import DlpSettings


def builtin_rules(settings: DlpSettings) -> tuple[Rule, ...]:
    """Secrets, personal data and injection signatures; person names if switched on; then each
    client's term sets. Rules whose id is in ``settings.disabled_rules`` are left out."""
    rules = secret_rules() + personal_rules() + injection_rules()
    if settings.person_names:
        rules += name_rules()
    rules += term_rules(settings.term_sets)
    return tuple(rule for rule in rules if rule.id not in settings.disabled_rules)


def rule_types(rules: tuple[Rule, ...]) -> list[str]:
    """The distinct detector types in ``rules``, sorted."""
    return sorted({rule.id for rule in rules})
