"""Credentials: vendor tokens, private keys, JWTs, passwords and generic high-entropy secrets.

Each vendor rule follows the format the vendor publishes for its tokens (prefix, alphabet,
length), most of which were designed to be found by scanners: GitHub's ``ghp_``/``github_pat_``
family, GitLab's ``glpat-`` family, Slack's ``xox?-``, Stripe's ``sk_live_``, OpenAI's
``sk-proj-`` and ``T3BlbkFJ`` marker, Anthropic's ``sk-ant-api03-``, Azure DevOps' 84-character
PATs with the ``AZDO`` signature, Entra client secrets with ``Q~``, and so on. Formats without a
prefix (AWS secret keys, Datadog keys, Twilio auth tokens, Azure storage keys) are only accepted
next to the words or identifiers that give them away.
"""

from __future__ import annotations

import base64
import binascii
import re
import string

import orjson

from passerelle.dlp.allowlist import is_hex_hash, is_placeholder, is_uuid
from passerelle.dlp.findings import Category
from passerelle.dlp.rules import (
    HEURISTIC_SECRET,
    STRUCTURED_SECRET,
    VENDOR_SECRET,
    Rule,
    Span,
    Trigger,
    token,
)
from passerelle.dlp.validators import char_classes, shannon_entropy

_B64 = "A-Za-z0-9+/"
_URLSAFE = "A-Za-z0-9_\\-"
_ALNUM = "A-Za-z0-9"

# Words that name a credential in an assignment, a header or a flag (English and French).
_SECRET_WORDS = "|".join(
    (
        "secret", "token", r"api[_.\-]?key", "apikey", r"access[_.\-]?key", r"auth[_.\-]?key",
        r"private[_.\-]?key", r"client[_.\-]?secret", "credentials?", r"signing[_.\-]?key",
        r"encryption[_.\-]?key", r"master[_.\-]?key", r"session[_.\-]?key", "jeton",
        r"cl[eé][_.\-]?(?:api|secr[eè]te)",
    )
)  # fmt: skip
_PASSWORD_WORDS = r"passw(?:or)?d|passwd|passphrase|pwd|mot[_.\- ]?de[_.\- ]?passe|mdp"  # noqa: S105
# Names of credentials that are not AWS secret keys, even next to an AWS access key id.
_OTHER_CREDENTIALS = (
    "client", "token", "api", "pass", "private", "bearer", "session", "data", "hash", "digest",
    "checksum", "integrity", "blob", "payload", "content", "body", "image",
)  # fmt: skip
# Key names that contain a password word without holding a password.
_NOT_PASSWORD_KEYS = ("hash", "salt", "policy", "reset", "length", "field", "rule", "hint", "label")
# Key names whose high-entropy values are not secrets: digests, paging cursors, ids.
_NOT_SECRET_KEYS = (
    "hash",
    "sha",
    "md5",
    "digest",
    "checksum",
    "integrity",
    "fingerprint",
    "etag",
    "commit",
    "nonce",
    "page",
    "next",
    "cursor",
    "continuation",
    "sync",
    "_id",
    "count",
    "length",
    "max",
    "limit",
    "type",
    "name",
    "file",
    "path",
    "url",
    "uri",
    "endpoint",
    "header",
    "field",
    "env",
    "param",
    "expir",
    "ttl",
)


_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-+/=.~"


def _has_digit(value: str) -> bool:
    return any(digit in value for digit in "0123456789")


# Words that a generated credential does not spell out but names and references do.
_NAME_WORDS = ("token", "secret", "password", "apikey", "api_key", "credential")


def _camel_words(value: str) -> bool:
    """``PKCS7PrivateKeyTypes``: capitalised words run together, a type name. Most of it is
    made of words (a capital then two or more lower-case letters), with hardly any digits;
    random tokens are not."""
    if not value.isidentifier() or sum(char.isdigit() for char in value) > 2:
        return False
    covered = sum(len(word) for word in re.findall(r"[A-Z][a-z]{2,}", value))
    return covered >= 0.6 * len(value)


def _identifier_like(value: str) -> bool:
    """``settings.SECRET_KEY``, ``MY_TOKEN_VAR``: a name in code, not a literal value."""
    parts = value.split(".")
    if len(parts) >= 2 and all(part.isidentifier() for part in parts):
        return True
    return value.isidentifier() and (value.isupper() or value.islower()) and "_" in value


def _path_like(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~/")) or value.endswith(
        (".json", ".pem", ".key", ".txt", ".yaml", ".yml", ".env", ".crt", ".p12")
    )


def _strip_trailing(text: str, start: int, end: int, chars: str = ".,;:!?)]}'\"") -> Span | None:
    while end > start and text[end - 1] in chars:
        end -= 1
    return (start, end) if end > start else None


def _key_name(text: str, start: int) -> str:
    """The assignment's left-hand side just before a value, lower-cased (best effort)."""
    head = text[max(0, start - 80) : start].rstrip(" \t\"'`=:>-")
    cut = max(head.rfind(c) for c in " \t\n{,;(\"'[")
    return head[cut + 1 :].lower()


def _looks_random(value: str) -> bool:
    """Letters and digits mixed, with the entropy a generated credential has for its length."""
    if not _has_digit(value) or value.isdigit() or not any(c.isalpha() for c in value):
        return False
    floor = min(3.5, max(2.5, len(value).bit_length() - 1.7))
    return shannon_entropy(value) >= floor


def _generic_check(text: str, start: int, end: int) -> Span | None:
    span = _strip_trailing(text, start, end, ".,;")
    if span is None:
        return None
    value = text[span[0] : span[1]]
    if len(value) < 12 or value.strip(_TOKEN_ALPHABET) or not _has_digit(value):
        return None  # short, not a token (a sentence, a pattern, a URL), or no digit at all
    if is_uuid(value) or _identifier_like(value) or _path_like(value):
        return None
    if _camel_words(value) or any(word in value.lower() for word in _NAME_WORDS):
        return None  # PKCS7PrivateKeyTypes, auth_tokens/tok_123: names, not secrets
    key = _key_name(text, span[0])
    if any(word in key for word in _NOT_SECRET_KEYS):
        return None
    if is_hex_hash(value) and "key" not in key and "token" not in key and "secret" not in key:
        return None
    return span if _looks_random(value) else None


def _password_check(text: str, start: int, end: int) -> Span | None:
    """A quoted password literal: any value but placeholders, expressions and prose.

    Passwords made of letters only are not reported (``password = "IAmSensitive"`` is what
    documentation writes; policies make real ones mix in digits or symbols), nor values with
    spaces (sentences, not passwords).
    """
    span = _strip_trailing(text, start, end, "")
    if span is None:
        return None
    value = text[span[0] : span[1]]
    if len(value) < 4 or _identifier_like(value) or _path_like(value):
        return None
    if any(char.isspace() for char in value) or value.isalpha():
        return None
    if value.startswith(("{", "%", "$")) or is_placeholder(value, sequences=False):
        return None
    if set(value) <= set("*•●x.-_#?"):
        return None
    key = _key_name(text, span[0])
    if any(word in key for word in _NOT_PASSWORD_KEYS):
        return None
    return span


def _bare_password_check(text: str, start: int, end: int) -> Span | None:
    """An unquoted password (``.env``, YAML, prose, command flags): as for a quoted one, and it
    must not look like code (brackets, calls) and must mix two kinds of characters."""
    span = _strip_trailing(text, start, end, ".,;:)]}'\"")
    if span is None:
        return None
    value = text[span[0] : span[1]]
    if any(char in "()[]{}<>" for char in value):
        return None  # a call, an index or a type annotation, not a literal
    if char_classes(value) < 2 or (value.isidentifier() and not any(c.isdigit() for c in value)):
        return None  # PGresult_ptr, _PasswordType: a name in code
    return _password_check(text, *span)


def _aws_secret_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    if is_hex_hash(value) or value.isalpha():
        return None
    if text[max(0, start - 8) : start].lower().rstrip().endswith("bearer"):
        return None  # an HTTP bearer token that happens to be 40 characters long
    key = _key_name(text, start)
    if "aws" not in key and any(word in key for word in _OTHER_CREDENTIALS):
        return None  # assigned to another credential's name
    lower = any(c.islower() for c in value)
    upper = any(c.isupper() for c in value)
    digit = any(c.isdigit() for c in value)
    if not (lower and upper and digit):
        return None
    return (start, end) if shannon_entropy(value) >= 4.0 else None


def _b64url_json(part: str) -> object:
    padded = part + "=" * (-len(part) % 4)
    try:
        return orjson.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None


def _jwt_check(text: str, start: int, end: int) -> Span | None:
    header = _b64url_json(text[start:end].split(".", 1)[0])
    if isinstance(header, dict) and ("alg" in header or "typ" in header or "enc" in header):
        return (start, end)
    return None


def _basic_auth_check(text: str, start: int, end: int) -> Span | None:
    try:
        decoded = base64.b64decode(text[start:end], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, sep, password = decoded.partition(":")
    if not sep or not password or not decoded.isprintable():
        return None
    if is_placeholder(password, sequences=False):
        return None
    return (start, end)


def _pem_check(text: str, start: int, end: int) -> Span | None:
    body = text[start:end]
    first = body.find("-----", 10)
    inner = body[first + 5 :]
    stop = inner.find("-----END")
    if stop >= 0:
        inner = inner[:stop]
    inner = inner.replace("\\n", "")
    b64 = sum(1 for c in inner if c.isalnum() or c in "+/=")
    if b64 < 64 or "..." in inner or "<" in inner or "xxxxxxxx" in inner.lower():
        return None
    return (start, end)


def _url_password_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    user = text[max(0, start - 70) : start - 1].rsplit("/", 1)[-1]
    if "," in value or "[" in value or "]" in value:
        return None  # a multi-host URL (host:port,host:port), a [password] template
    if any(word in value.lower() for word in ("secret", "password", "passwd")):
        return None  # a%20secret, my_password: documentation
    if user.lower() == "scott" and value.lower().startswith("tiger"):
        return None  # Oracle's demo account, the example of SQLAlchemy's documentation
    if is_placeholder(value, sequences=False) or set(value) <= set("*x•."):
        return None
    if value.startswith(("$", "%", "{")) or (value.isdigit() and len(value) <= 5):
        return None  # a template variable, or host:port mistaken for user:password
    return (start, end)


_ASSIGN = r"[\w.\-]{0,30}[\"'`]?\]?\s*(?:=|:|:=|=>)\s*[\"'`]?"
"""Between a credential's name and its value: the rest of the name, then an assignment."""


def _hex_context(rule_id: str, length: int, words: str) -> Rule:
    """A bare hex key (Datadog, Twilio...) found only as the value assigned to its vendor's name."""
    return Rule(
        id=rule_id,
        category=Category.SECRET,
        triggers=(Trigger(words, before=40, after=160, caseless=True, anchored=True),),
        pattern=f"(?i)(?:{words}){_ASSIGN}(?P<v>[a-f0-9]{{{length}}})(?![A-Za-z0-9])",
        priority=HEURISTIC_SECRET + 1,
        min_entropy=3.0,
        reject_placeholders=True,
    )


def _vendor_rules() -> tuple[Rule, ...]:
    return (
        # Amazon Web Services: access key ids (long-term AKIA, temporary ASIA).
        token("aws_access_key", "(?:AKIA|ASIA)", "A-Z0-9", 16, guard=_ALNUM, min_entropy=2.5),
        token("aws_mws_token", r"amzn\.mws\.", "0-9a-f\\-", 36),
        # Google Cloud: API keys and OAuth client secrets / tokens.
        token("gcp_api_key", "AIza", _URLSAFE, 35),
        token("google_oauth_client_secret", "GOCSPX-", _URLSAFE, 28),
        token("google_oauth_token", r"ya29\.", _URLSAFE, 30, 2048),
        token("google_oauth_token", "1//0", _URLSAFE, 40, 512),
        # GitHub: classic tokens per kind, then fine-grained PATs.
        token("github_pat", "ghp_", "A-Za-z0-9_", 36, 251),
        token("github_oauth_token", "gho_", "A-Za-z0-9_", 36, 251),
        token("github_user_token", "ghu_", "A-Za-z0-9_", 36, 251),
        token("github_app_token", "ghs_", "A-Za-z0-9_", 36, 251),
        token("github_refresh_token", "ghr_", "A-Za-z0-9_", 36, 251),
        token("github_fine_grained_pat", "github_pat_", "A-Za-z0-9_", 82, 251),
        # GitLab: personal/project/group access tokens, then the other documented prefixes.
        token("gitlab_pat", "glpat-", "A-Za-z0-9_.\\-", 20, 300, check=_strip_dots),
        token(
            "gitlab_token",
            "(?:gldt|glrt|glptt|glcbt|gloas|glft|glimt|glagent|glsoat|glffct)-",
            "A-Za-z0-9_.\\-",
            20,
            300,
            check=_strip_dots,
        ),
        token("gitlab_token", "GR1348941", "A-Za-z0-9_\\-", 20, 40),
        # Slack: bot, user, app-level and other tokens; incoming webhooks.
        token("slack_bot_token", "xoxb-", "A-Za-z0-9\\-", 40, 120),
        token("slack_user_token", "xoxp-", "A-Za-z0-9\\-", 60, 160),
        token("slack_app_token", "xapp-", "A-Za-z0-9\\-", 80, 160),
        token("slack_token", r"(?:xox[aeors]|xoxe\.xox[bp])-", "A-Za-z0-9\\-", 20, 250),
        Rule(
            id="slack_webhook",
            category=Category.SECRET,
            triggers=(Trigger(r"hooks\.slack\.com/(?:services|workflows|triggers)/", 50, 180),),
            pattern=(
                r"https?://hooks\.slack\.com/(?:services|workflows|triggers)"
                r"(?:/[A-Za-z0-9]{6,48}){3,4}(?![A-Za-z0-9/])"
            ),
            priority=VENDOR_SECRET,
            reject_placeholders=True,
        ),
        Rule(
            id="discord_webhook",
            category=Category.SECRET,
            triggers=(Trigger(r"discord(?:app)?\.com/api/webhooks/", 50, 110),),
            pattern=(
                r"https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/"
                r"[0-9]{17,20}/[A-Za-z0-9_\-]{60,68}(?![A-Za-z0-9_\-])"
            ),
            priority=VENDOR_SECRET,
            reject_placeholders=True,
        ),
        Rule(
            id="teams_webhook",
            category=Category.SECRET,
            triggers=(Trigger(r"\.webhook\.office\.com/webhookb2/", 120, 320),),
            pattern=(
                r"https://[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/"
                r"[A-Za-z0-9@/\-]{40,300}(?![A-Za-z0-9@/\-])"
            ),
            priority=VENDOR_SECRET,
            reject_placeholders=True,
        ),
        # Stripe: live secret and restricted keys; webhook signing secrets.
        token("stripe_secret_key", "sk_live_", _ALNUM, 24, 247),
        token("stripe_restricted_key", "rk_live_", _ALNUM, 24, 247),
        token("stripe_webhook_secret", "whsec_", _B64 + "=", 32, 100),
        # OpenAI: project, service-account and admin keys; legacy keys with the T3BlbkFJ marker.
        token("openai_api_key", "sk-(?:proj|svcacct|admin)-", _URLSAFE, 40, 300),
        token("openai_api_key", "sk-", _ALNUM, 20, suffix="T3BlbkFJ[A-Za-z0-9]{20}", suffix_len=28),
        token("openai_api_key", "sk-", _ALNUM, 48, guard="A-Za-z0-9_\\-"),
        token("openrouter_api_key", "sk-or-v1-", "a-f0-9", 64),
        # Anthropic: API, admin and OAuth keys.
        token("anthropic_api_key", "sk-ant-(?:api|admin|oat|ort)[0-9]{2}-", _URLSAFE, 80, 120),
        # Package registries.
        token("npm_token", "npm_", _ALNUM, 36),
        token("pypi_token", "pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)", _URLSAFE, 50, 400),
        # Messaging, email and communication APIs.
        token("twilio_api_key", "SK", "0-9a-fA-F", 32, guard=_ALNUM),
        token(
            "sendgrid_api_key", r"SG\.", _URLSAFE, 22, suffix=r"\.[A-Za-z0-9_\-]{43}", suffix_len=44
        ),
        token("mailgun_api_key", "key-", "0-9a-f", 32),
        token("brevo_api_key", "xkeysib-", "0-9a-f", 64, suffix="-[A-Za-z0-9]{16}", suffix_len=17),
        token("telegram_bot_token", "[0-9]{8,10}:AA", _URLSAFE, 33, guard="0-9"),
        token(
            "mailchimp_api_key",
            "",
            "0-9a-f",
            32,
            suffix="-us[0-9]{1,2}",
            suffix_len=5,
            guard=_ALNUM,
        ),
        # AI platforms.
        token("huggingface_token", "(?:hf_|api_org_)", "A-Za-z", 34),
        token("groq_api_key", "gsk_", _ALNUM, 52),
        token("replicate_token", "r8_", _ALNUM, 37),
        token("xai_api_key", "xai-", _ALNUM, 80),
        token("perplexity_api_key", "pplx-", _ALNUM, 48),
        token(
            "langsmith_api_key",
            "lsv2_(?:pt|sk)_",
            "0-9a-f",
            32,
            suffix="_[0-9a-f]{10}",
            suffix_len=11,
        ),
        token("databricks_token", "dapi", "0-9a-f", 32, suffix="(?:-[0-9])?", suffix_len=2),
        # Commerce, productivity and developer SaaS.
        token("shopify_token", "shp(?:at|ss|ca|pa)_", "a-fA-F0-9", 32),
        token("square_token", "sq0(?:atp|csp)-", _URLSAFE, 22, 43),
        token("atlassian_api_token", "AT(?:ATT|CTT)3", "A-Za-z0-9_=\\-", 100, 300),
        token("linear_api_key", "lin_api_", _ALNUM, 40),
        token("notion_token", "ntn_", _ALNUM, 46),
        token("notion_token", "secret_", _ALNUM, 43),
        token("postman_api_key", "PMAK-", "0-9a-f", 24, suffix="-[0-9a-f]{34}", suffix_len=35),
        token("new_relic_key", "NRAK-", "A-Z0-9", 27),
        token("sentry_token", "sntry[su]_", _B64 + "=_", 40, 400),
        token("grafana_token", "glsa_", _ALNUM, 32, suffix="_[A-Fa-f0-9]{8}", suffix_len=9),
        token("grafana_token", "glc_", _B64, 32, 400, suffix="={0,2}", suffix_len=2),
        token("sonarqube_token", "sq[pua]_", "0-9a-f", 40),
        token(
            "mapbox_secret_token",
            r"sk\.eyJ",
            _URLSAFE,
            50,
            400,
            suffix=r"\.[A-Za-z0-9_\-]{20,400}",
            suffix_len=401,
        ),
        token("firebase_fcm_key", "AAAA[A-Za-z0-9_\\-]{7}:APA91b", _URLSAFE, 120, 160),
        # Infrastructure and secret managers.
        token("digitalocean_token", "do[opr]_v1_", "0-9a-f", 64),
        token("docker_hub_token", "dckr_(?:pat|oat)_", _URLSAFE, 27, 100),
        token("jfrog_token", "AKCp", _ALNUM, 69),
        token("jfrog_token", "cmVmdGtuOjAxOj", _ALNUM, 50),
        token("vault_token", r"hv[sbr]\.", _URLSAFE, 24, 400),
        token("terraform_cloud_token", r"[A-Za-z0-9]{14}\.atlasv1\.", "A-Za-z0-9_=\\-", 60, 70),
        token("doppler_token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.", _ALNUM, 40, 44),
        token("pulumi_token", "pul-", "0-9a-f", 40),
        token("supabase_token", "sbp_", "0-9a-f", 40),
        token("supabase_token", "sb_secret_", _URLSAFE, 20, 64),
        token("planetscale_token", "pscale_(?:tkn|pw|oauth)_", "A-Za-z0-9_.\\-", 32, 64),
        token("tailscale_key", "tskey-(?:auth|api|client|scim|webhook)-", _ALNUM + "\\-", 26, 90),
        token("heroku_api_key", "HRKU-", _URLSAFE, 40, 80),
        token("age_secret_key", "AGE-SECRET-KEY-1", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
        # Microsoft Azure.
        token(
            "azure_devops_pat",
            "",
            _ALNUM,
            76,
            suffix="AZDO[A-Za-z0-9]{4}",
            suffix_len=8,
            guard=_ALNUM,
        ),
        token(
            "azure_ad_client_secret",
            "[A-Za-z0-9_~.\\-]{3}[0-9]Q~",
            "A-Za-z0-9_~.\\-",
            31,
            34,
            guard="A-Za-z0-9_~.\\-",
        ),
    )


def _strip_dots(text: str, start: int, end: int) -> Span | None:
    return _strip_trailing(text, start, end, ".-")


def _context_rules() -> tuple[Rule, ...]:
    """Formats without a prefix, accepted only next to what gives them away."""
    return (
        Rule(
            id="aws_secret_key",
            category=Category.SECRET,
            triggers=(
                Trigger(r"aws.{0,24}secret|secret.?access.?key", 40, 200, True, anchored=True),
            ),
            pattern=(
                r"(?i)(?:aws.{0,24}secret|secret.?access.?key)"
                + _ASSIGN
                + r"(?P<v>(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
            ),
            priority=HEURISTIC_SECRET + 1,
            check=_aws_secret_check,
            reject_placeholders=True,
        ),
        Rule(
            # Next to an access key id, whatever the assignment looks like.
            id="aws_secret_key",
            category=Category.SECRET,
            triggers=(Trigger("(?:AKIA|ASIA)[A-Z0-9]{16}", before=300, after=300),),
            pattern=r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
            priority=HEURISTIC_SECRET + 1,
            check=_aws_secret_check,
            reject_placeholders=True,
        ),
        Rule(
            id="azure_storage_key",
            category=Category.SECRET,
            triggers=(Trigger(f"[{_B64}]{{86}}==", before=140, after=2),),
            pattern=(
                r"(?i)(?:account.?key|key)" + _ASSIGN + f"(?P<v>[{_B64}]{{86}}==)(?![{_B64}=])"
            ),
            priority=STRUCTURED_SECRET,
            context=r"(?i)azure|storage|account|core\.windows\.net",
            context_before=300,
            min_entropy=4.5,
            reject_placeholders=True,
        ),
        Rule(
            id="azure_sas_token",
            category=Category.SECRET,
            triggers=(Trigger("sig=", before=8, after=140, caseless=True),),
            pattern=(
                r"(?i)(?<![A-Za-z0-9_])sig=(?P<v>(?:[A-Za-z0-9+/]|%2[BF]){30,100}(?:%3D|=){0,2})"
                r"(?![A-Za-z0-9%+/=])"
            ),
            priority=STRUCTURED_SECRET,
            context=r"(?i)(?:^|[?&;\s\"'])sv=\d{4}-\d{2}-\d{2}",
            context_before=600,
            context_after=600,
            min_entropy=3.5,
            reject_placeholders=True,
        ),
        Rule(
            id="azure_shared_access_key",
            category=Category.SECRET,
            triggers=(Trigger(r"SharedAccessKey\s*=", 24, 90, caseless=True, anchored=True),),
            pattern=r"(?i)SharedAccessKey\s*=\s*(?P<v>[A-Za-z0-9+/]{42,43}=)(?![A-Za-z0-9+/=])",
            priority=STRUCTURED_SECRET,
            min_entropy=3.5,
            reject_placeholders=True,
        ),
        Rule(
            id="azure_devops_pat",
            category=Category.SECRET,
            triggers=(Trigger("[a-z2-7]{52}", before=56, after=2),),
            pattern=r"(?<![A-Za-z0-9])[a-z2-7]{52}(?![A-Za-z0-9])",
            priority=HEURISTIC_SECRET,
            context=(
                r"(?i)azure.?devops|dev\.azure\.com|visualstudio\.com|\bado\b|vsts|\bpat\b"
                r"|personal.access.token"
            ),
            context_before=160,
            min_entropy=3.5,
            reject_placeholders=True,
        ),
        Rule(
            id="gcp_service_account_key",
            category=Category.SECRET,
            triggers=(Trigger('"private_key_id"', before=20, after=90, anchored=True),),
            pattern=r'"private_key_id"\s*:\s*"(?P<v>[a-f0-9]{40})"',
            priority=STRUCTURED_SECRET,
            context="service_account",
            context_before=600,
            context_after=600,
            min_entropy=3.0,
        ),
        _hex_context("datadog_api_key", 32, r"(?:datadog|dd)[_.\-]?api[_.\-]?key"),
        _hex_context("datadog_app_key", 40, r"(?:datadog|dd)[_.\-]?app(?:lication)?[_.\-]?key"),
        _hex_context("twilio_auth_token", 32, r"twilio.{0,30}(?:auth|token)"),
        Rule(
            id="mailgun_api_key",
            category=Category.SECRET,
            triggers=(Trigger("mailgun", before=40, after=160, caseless=True, anchored=True),),
            pattern=(
                r"(?i)mailgun"
                + _ASSIGN
                + r"(?P<v>[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})(?![A-Za-z0-9])"
            ),
            priority=HEURISTIC_SECRET + 1,
            min_entropy=3.0,
            reject_placeholders=True,
        ),
        Rule(
            id="heroku_api_key",
            category=Category.SECRET,
            triggers=(Trigger("heroku", before=40, after=160, caseless=True, anchored=True),),
            pattern=(
                r"(?i)heroku[\w.\-]{0,30}(?:api|key|token|auth)"
                + _ASSIGN
                + r"(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                r"(?![A-Za-z0-9-])"
            ),
            priority=HEURISTIC_SECRET + 1,
            reject_placeholders=True,
        ),
    )


def _structured_rules() -> tuple[Rule, ...]:
    return (
        Rule(
            id="private_key",
            category=Category.SECRET,
            triggers=(Trigger("-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY", before=50, after=20_000),),
            pattern=(
                r"-----BEGIN (?P<kind>[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?)-----"
                r"[\s\S]{16,19000}?-----END (?P=kind)-----"
            ),
            priority=VENDOR_SECRET,
            check=_pem_check,
        ),
        Rule(
            # A key cut short (no END line) is still a key.
            id="private_key",
            category=Category.SECRET,
            triggers=(Trigger("-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY", before=50, after=20_000),),
            pattern=(
                r"-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
                r"(?:[\s\"',+]|\\n)*[A-Za-z0-9+/=]{64,}(?:(?:[\s\"',+]|\\n)+[A-Za-z0-9+/=]{4,})*"
            ),
            priority=VENDOR_SECRET,
            check=_pem_check,
        ),
        Rule(
            id="jwt",
            category=Category.SECRET,
            triggers=(Trigger(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ", before=1100, after=10_100),),
            pattern=(
                r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,1000}\.eyJ[A-Za-z0-9_\-]{8,8000}"
                r"\.[A-Za-z0-9_\-]{0,2000}(?![A-Za-z0-9_\-])"
            ),
            priority=STRUCTURED_SECRET,
            check=_jwt_check,
            reject_placeholders=True,
            reject_sequences=False,
        ),
        Rule(
            id="url_password",
            category=Category.SECRET,
            triggers=(Trigger(r"://[^\s/:@]{1,64}:[^\s/@]{1,128}@", before=260, after=2),),
            pattern=(
                r"(?i)(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{1,30}://[^\s/:@'\"<>]{1,64}:"
                r"(?P<v>[^\s/@'\"<>]{1,128})@(?=[A-Za-z0-9\[._\-])"
            ),
            priority=STRUCTURED_SECRET,
            check=_url_password_check,
        ),
        Rule(
            id="http_basic_auth",
            category=Category.SECRET,
            triggers=(
                Trigger(
                    r"authorization[\"']?\s*[:=]\s*[\"']?basic\s", 60, 460, True, anchored=True
                ),
            ),
            pattern=(
                r"(?i)authorization[\"']?\s*[:=]\s*[\"']?basic\s+(?P<v>[A-Za-z0-9+/]{6,}={0,2})"
                r"(?![A-Za-z0-9+/=])"
            ),
            priority=STRUCTURED_SECRET,
            check=_basic_auth_check,
        ),
        Rule(
            id="bearer_token",
            category=Category.SECRET,
            triggers=(
                Trigger(r"bearer\s+[A-Za-z0-9._~+/\-]{16}", before=30, after=2100, caseless=True),
            ),
            pattern=(
                r"(?i)(?<![A-Za-z0-9])bearer\s+(?P<v>[A-Za-z0-9._~+/\-]{16,2048}=*)"
                r"(?![A-Za-z0-9._~+/=\-])"
            ),
            priority=HEURISTIC_SECRET,
            check=_generic_bearer_check,
            reject_placeholders=True,
        ),
    )


def _generic_bearer_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    if is_uuid(value) or _identifier_like(value):
        return None
    return (start, end) if _looks_random(value) else None


def _on_key_line(text: str, start: int) -> bool:
    """Whether the value at ``start`` is assigned at the start of its line, as in ``.env``,
    YAML, INI and shell files: ``KEY=value``, ``  key: value``, ``export KEY=value``."""
    line_start = text.rfind("\n", 0, start) + 1
    head = text[line_start:start]
    return (
        re.fullmatch(r"[ \t]*(?:export[ \t]+|set[ \t]+)?[\w.\-\"']+[ \t]*[=:][ \t]*", head)
        is not None
    )


def _bare_password_line_check(text: str, start: int, end: int) -> Span | None:
    return _bare_password_check(text, start, end) if _on_key_line(text, start) else None


def _generic_line_check(text: str, start: int, end: int) -> Span | None:
    return _generic_check(text, start, end) if _on_key_line(text, start) else None


def _assignment_rules() -> tuple[Rule, ...]:
    """Passwords and other credentials written as assignments, flags, headers or prose.

    Each pattern starts at the credential word that fired the trigger (``secret`` in
    ``CLIENT_SECRET=...``), never at a class of characters: a pattern that starts with a class
    is tried at every position of the window, the cost that dominated scans of code before.
    """
    name_tail = r"[A-Za-z0-9_.\-]{0,30}"
    quoted = (
        r"[\"'`]?\]?\s*(?:=|:|:=|=>|->)\s*(?:[rbuf]{0,2})(?P<q>[\"'`])"
        r"(?P<v>(?:(?!(?P=q))[^\r\n]){1,300}?)(?P=q)"
    )
    unquoted = r"[\"']?[ \t]*(?:=|:)[ \t]*(?P<v>[^\s\"'`#;,&]{4,300})"
    unquoted_token = r"[\"']?[ \t]*(?:=|:)[ \t]*(?P<v>[A-Za-z0-9_\-+/=.~]{12,300})(?=[\s,;]|$)"  # noqa: S105
    # The triggers hold the assignment too (loosely: they are a prefilter): a credential word
    # followed by something assigned to it, at least 4 characters (12 for generic secrets).
    # "token" alone is in every tokenizer; "token = tokens.pop(0)" assigns nothing that could be
    # a secret. They open windows; where a match may start inside them is marked by the bare
    # credential words (*_start): start-of-match tracking on the loose expressions themselves
    # would cost Hyperscan two thirds of its throughput.
    password_trigger = Trigger(
        f"(?:{_PASSWORD_WORDS})"
        r"[\w.\-]*[\"'`\]]*\s*(?:[=:>-]+|\s(?:is|est|was)\s)\s*[\"'`rbuf:=]*\s*[^\s\"'`]{4}",
        before=110,
        after=400,
        caseless=True,
    )
    secret_trigger = Trigger(
        f"(?:{_SECRET_WORDS})"
        r"[\w.\-]*[\"'`]?\]?\s*(?:=|:|=>|->)\s*[rbuf]?[\"'`]?[A-Za-z0-9_\-+/=.~]{12}",
        before=110,
        after=400,
        caseless=True,
    )
    password_start = Trigger(_PASSWORD_WORDS, 0, 0, caseless=True, marks_start=True)
    secret_start = Trigger(_SECRET_WORDS, 0, 0, caseless=True, marks_start=True)
    password_flag = Trigger(r"--?(?:password|passwd|pwd)[ =]", 2, 220, caseless=True, anchored=True)
    secret_flag = Trigger(
        r"--?(?:api[_\-]?key|token|secret|access[_\-]?key|client[_\-]?secret|auth[_\-]?token)[ =]",
        before=2,
        after=330,
        caseless=True,
        anchored=True,
    )
    return (
        Rule(
            id="password",
            category=Category.SECRET,
            triggers=(password_trigger, password_start),
            pattern=f"(?i)(?:{_PASSWORD_WORDS}){name_tail}{quoted}",
            priority=HEURISTIC_SECRET,
            check=_password_check,
        ),
        Rule(
            id="password",
            category=Category.SECRET,
            triggers=(password_trigger, password_start),
            pattern=f"(?i)(?:{_PASSWORD_WORDS}){name_tail}{unquoted}",
            priority=HEURISTIC_SECRET,
            check=_bare_password_line_check,
        ),
        Rule(
            id="password",
            category=Category.SECRET,
            triggers=(password_trigger, password_start),
            pattern=(
                r"(?i)(?:password|passwd|passphrase|mot de passe|mdp)"
                r"(?:\s+(?:is|est|was|=|:)|\s*[:=])\s*[:=]?\s*[\"'`«]?\s*(?P<v>[^\s\"'`»;,&]{6,100})"
            ),
            priority=HEURISTIC_SECRET,
            check=_bare_password_check,
        ),
        Rule(
            id="password",
            category=Category.SECRET,
            triggers=(password_flag,),
            pattern=(
                r"(?i)(?<![A-Za-z0-9_\-])--?(?:password|passwd|pwd)[ =](?P<q>[\"']?)"
                r"(?P<v>[^\s\"']{4,200})(?P=q)"
            ),
            priority=HEURISTIC_SECRET,
            check=_bare_password_check,
        ),
        Rule(
            id="generic_secret",
            category=Category.SECRET,
            triggers=(secret_trigger, secret_start),
            pattern=f"(?i)(?:{_SECRET_WORDS}){name_tail}{quoted}",
            priority=HEURISTIC_SECRET,
            check=_generic_check,
            reject_placeholders=True,
        ),
        Rule(
            id="generic_secret",
            category=Category.SECRET,
            triggers=(secret_trigger, secret_start),
            pattern=f"(?i)(?:{_SECRET_WORDS}){name_tail}{unquoted_token}",
            priority=HEURISTIC_SECRET,
            check=_generic_line_check,
            reject_placeholders=True,
        ),
        Rule(
            id="generic_secret",
            category=Category.SECRET,
            triggers=(secret_flag,),
            pattern=(
                r"(?i)(?<![A-Za-z0-9_\-])--?(?:api[_\-]?key|token|secret|access[_\-]?key"
                r"|client[_\-]?secret|auth[_\-]?token)[ =](?P<q>[\"']?)"
                r"(?P<v>[A-Za-z0-9_\-+/=.~]{12,300})(?P=q)"
            ),
            priority=HEURISTIC_SECRET,
            check=_generic_check,
            reject_placeholders=True,
        ),
    )


def secret_rules() -> tuple[Rule, ...]:
    """Every built-in credential rule."""
    return _vendor_rules() + _context_rules() + _structured_rules() + _assignment_rules()
