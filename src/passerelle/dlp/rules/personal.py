"""Personal data: emails, phone numbers, bank and card numbers, French identifiers, IP addresses.

Weak formats are made strong by their checksums (IBAN MOD 97 and RIB key, Luhn for cards and
SIREN/SIRET, the NIR key) or by context words (SIREN and SIRET are only reported after
``SIREN``, ``SIRET``, ``RCS``...; a bare 9-digit number is everywhere).

IP addresses, a documented choice: only globally routable addresses are reported, because a
public address identifies a subscriber (personal data under the GDPR) while private (RFC 1918),
shared (100.64/10), loopback, link-local, unique-local (fc00::/7), multicast and reserved
addresses identify no one outside the network and fill code, configuration and logs. Also left
out: the documentation ranges (RFC 5737, RFC 3849), netmask-like addresses, addresses whose four
parts are all single digits (``1.2.3.4``, far more often a version than a host) and dotted numbers
after a version marker (``v``, ``version``, ``==``...) or followed by more dotted numbers
(``1.3.6.1.4.1``, an OID).
"""

from __future__ import annotations

import ipaddress

from passerelle.dlp.allowlist import TEST_CARD_NUMBERS, is_documentation_ip
from passerelle.dlp.findings import Category
from passerelle.dlp.rules import NUMBER_RUN, PERSONAL, VALIDATED_PERSONAL, Rule, Span, Trigger
from passerelle.dlp.validators import (
    card_issuer_ok,
    e164_country_ok,
    fr_rib_key_ok,
    iban_length,
    iban_ok,
    luhn_ok,
    nir_ok,
    siren_ok,
    siret_ok,
)

# Top-level "domains" that are really file extensions: icon@2x.png, module@1.2.js.
_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "ico",
        "bmp",
        "css",
        "scss",
        "js",
        "mjs",
        "cjs",
        "ts",
        "tsx",
        "jsx",
        "map",
        "json",
        "html",
        "htm",
        "xml",
        "yaml",
        "yml",
        "txt",
        "md",
        "rst",
        "py",
        "pyc",
        "pyi",
        "rb",
        "go",
        "rs",
        "java",
        "kt",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "so",
        "dll",
        "exe",
        "zip",
        "gz",
        "tgz",
        "tar",
        "whl",
        "lock",
        "toml",
        "ini",
        "cfg",
        "log",
        "csv",
        "pdf",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "vue",
        "wasm",
        "bin",
        "dat",
    ]
)
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net", "example.fr")
_SERVICE_DOMAINS = (".gserviceaccount.com",)
# Domains that documentation and tests use as stand-ins, like example.com.
_PLACEHOLDER_DOMAINS = frozenset(
    [
        "foo.com",
        "bar.com",
        "baz.com",
        "bat.com",
        "qux.com",
        "foobar.com",
        "a.com",
        "b.com",
        "c.com",
        "domain.com",
        "yourdomain.com",
        "mydomain.com",
        "yourcompany.com",
        "company.com",
        "test.com",
        "email.test",
    ]
)
_VERSION_MARKERS = (
    "version", "ver", "v", "release", "build", "==", ">=", "<=", "~=", "^", "section", "chapter",
    "chapitre", "§", "oid", "objectidentifier(", "objectidentifier('", 'objectidentifier("',
)  # fmt: skip
# SSH algorithm names are written name@domain: aes256-gcm@openssh.com is no one's address.
_SSH_NAMES = (
    "ssh-",
    "sha2-",
    "aes",
    "chacha20",
    "gcm",
    "hmac",
    "ecdsa",
    "ed25519",
    "curve25519",
    "etm",
    "umac",
)


def _compact(value: str) -> str:
    return "".join(char for char in value if char.isalnum())


def _email_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    local, _, domain = value.rpartition("@")
    domain = domain.lower()
    tld = domain.rsplit(".", 1)[-1]
    if tld in _FILE_EXTENSIONS or domain.endswith((".test", ".invalid", ".localhost")):
        return None
    if domain in _EXAMPLE_DOMAINS or domain.endswith(tuple("." + d for d in _EXAMPLE_DOMAINS)):
        return None
    if domain in _PLACEHOLDER_DOMAINS:
        return None
    if domain.endswith(_SERVICE_DOMAINS):
        return None  # a machine identity, not a person
    if domain in ("openssh.com", "libssh.org") and any(n in local.lower() for n in _SSH_NAMES):
        return None
    if local.lower() == "git" and text[end : end + 1] == ":":
        return None  # scp-style git remote, git@host:org/repo
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    return (start, end)


def _phone_fr_check(text: str, start: int, end: int) -> Span | None:
    digits = "".join(char for char in text[start:end] if char.isdigit())
    national = digits[-9:]
    if len(set(national)) <= 2 or _counts_in_order(national):
        return None  # 06 00 00 00 00, 06 12 34 56 78 and the like are placeholders
    return (start, end)


def _counts_in_order(digits: str, run: int = 6) -> bool:
    """``123456`` or ``987654`` inside: the mark of a made-up number."""
    return any(
        sequence[i : i + run] in digits
        for sequence in ("0123456789", "9876543210")
        for i in range(len(sequence) - run + 1)
    )


def _phone_intl_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    digits = "".join(char for char in value if char.isdigit())
    if not e164_country_ok(digits) or len(set(digits)) <= 2 or _counts_in_order(digits[-8:]):
        return None
    if digits.startswith("1") and digits[4:9] in ("55501", "55500"):
        return None  # 555-0100 to 555-0199: numbers reserved for fiction in North America
    if value.count("(") != value.count(")"):
        return None
    return (start, end)


def _iban_check(text: str, start: int, end: int) -> Span | None:
    """Accept the longest prefix of the candidate that has the country's IBAN length and
    passes MOD 97: the pattern may have run into a following word of capitals."""
    country = text[start : start + 2]
    length = iban_length(country)
    if length is None:
        return None
    seen = 0
    for index in range(start, end):
        if text[index].isalnum():
            seen += 1
            if seen == length:
                stop = index + 1
                if stop < len(text) and text[stop].isalnum():
                    return None
                compact = _compact(text[start:stop]).upper()
                return (start, stop) if iban_ok(compact) else None
    return None


def _rib_check(text: str, start: int, end: int) -> Span | None:
    compact = _compact(text[start:end]).upper()
    if len(compact) != 23:
        return None
    ok = fr_rib_key_ok(compact[:5], compact[5:10], compact[10:21], compact[21:])
    return (start, end) if ok and len(set(compact)) > 3 else None


def _card_check(text: str, start: int, end: int) -> Span | None:
    digits = _compact(text[start:end])
    if not luhn_ok(digits) or not card_issuer_ok(digits) or digits in TEST_CARD_NUMBERS:
        return None
    if len(set(digits)) <= 2:
        return None
    return (start, end)


def _nir_check(text: str, start: int, end: int) -> Span | None:
    return (start, end) if nir_ok(_compact(text[start:end])) else None


def _siren_check(text: str, start: int, end: int) -> Span | None:
    digits = _compact(text[start:end])
    return (start, end) if siren_ok(digits) and len(set(digits)) > 2 else None


def _siret_check(text: str, start: int, end: int) -> Span | None:
    digits = _compact(text[start:end])
    return (start, end) if siret_ok(digits) and len(set(digits)) > 2 else None


def _after_version_marker(text: str, start: int) -> bool:
    head = text[max(0, start - 20) : start].lower()
    return head.rstrip(" \t").endswith(_VERSION_MARKERS) or head.rstrip(" :=\t").endswith(
        _VERSION_MARKERS
    )


def _network_prefix(text: str, end: int) -> bool:
    """``81.2.0.0/16``, ``2a01:e0a::/32``: a network, not an address."""
    return text[end : end + 1] == "/" and text[end + 1 : end + 2].isdigit()


def _ipv4_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    parts = value.split(".")
    if all(len(part) == 1 for part in parts) or _after_version_marker(text, start):
        return None
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return None
    if not address.is_global or address.is_multicast or is_documentation_ip(address):
        return None  # private, loopback, link-local, shared, multicast, reserved, documentation
    if parts[0] == "255" or _network_prefix(text, end):
        return None  # a netmask or a network
    if int(parts[0]) <= 2 and len(parts[1]) == 1:
        return None  # 2.5.29.14: an X.500 object identifier far more often than a host
    return (start, end)


_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _ipv6_check(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return None
    if not (address in _GLOBAL_UNICAST and address.is_global) or is_documentation_ip(address):
        return None  # only global unicast addresses (2000::/3) identify a subscriber
    if _network_prefix(text, end):
        return None
    groups = [group for group in value.split(":") if group]
    if len(groups) < 3 and not any(len(group) == 4 for group in groups):
        return None  # a::b, 1::2: slices and scope operators more often than addresses
    return (start, end)


def personal_rules() -> tuple[Rule, ...]:
    """Every built-in personal-data rule (person names excepted: see names.py)."""
    sep = r"[ .\-\u00a0]"
    return (
        Rule(
            id="email",
            category=Category.PERSONAL,
            triggers=(Trigger(r"[A-Za-z0-9._%+\-]@[A-Za-z0-9]", before=70, after=260),),
            pattern=(
                r"(?<![A-Za-z0-9._%+\-:/@])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
                r"(?![A-Za-z0-9@\-]|\.[A-Za-z0-9])"
            ),
            priority=PERSONAL,
            check=_email_check,
        ),
        Rule(
            id="phone_fr",
            category=Category.PERSONAL,
            triggers=(
                Trigger(NUMBER_RUN, before=24, after=16),
                Trigger(r"(?:\+|00)33[ .\-]?(?:\(0\)[ .\-]?)?[1-9](?:[ .\-]?[0-9]{2}){4}", 24, 4),
                Trigger(r"0[1-9](?:\xc2\xa0[0-9]{2}){4}", before=16, after=4),
            ),
            pattern=(
                rf"(?<![\w+])(?:(?:\+|00)33(?P<a>{sep}?)(?:\(0\){sep}?)?[1-9](?:(?P=a)\d{{2}}){{4}}"
                rf"|0[1-9](?P<b>{sep}?)\d{{2}}(?:(?P=b)\d{{2}}){{3}})(?![\w]|{sep}\d)"
            ),
            priority=PERSONAL + 1,
            check=_phone_fr_check,
            label="PHONE",
        ),
        Rule(
            id="phone_intl",
            category=Category.PERSONAL,
            triggers=(Trigger(r"\+[1-9][0-9 .\-()]{7}", before=12, after=24),),
            pattern=(
                r"(?<![\w+)\]])\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6}"
                r"(?![\w]|[ .\-]?\d)"
            ),
            priority=PERSONAL,
            check=_phone_intl_check,
            label="PHONE",
        ),
        Rule(
            id="iban",
            category=Category.PERSONAL,
            triggers=(Trigger(r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}", before=16, after=40),),
            pattern=r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
            priority=VALIDATED_PERSONAL,
            check=_iban_check,
        ),
        Rule(
            id="fr_rib",
            category=Category.PERSONAL,
            triggers=(Trigger(NUMBER_RUN, before=30, after=30),),
            pattern=r"(?<![\w])\d{5}( ?)\d{5}\1[0-9A-Z]{11}\1\d{2}(?![\w])",
            priority=VALIDATED_PERSONAL,
            check=_rib_check,
            context=r"(?i)\brib\b|banc|banque|bank|compte|account|guichet|virement",
            context_before=120,
            label="RIB",
        ),
        Rule(
            id="credit_card",
            category=Category.PERSONAL,
            triggers=(Trigger(NUMBER_RUN, before=30, after=24),),
            pattern=(
                r"(?<![\w.,\-])(?:\d{4}(?P<s>[ \-]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
                r"|3\d{3}(?P<a>[ \-]?)\d{6}(?P=a)\d{4,5})(?![\w]|[.,\-]\d)"
            ),
            priority=VALIDATED_PERSONAL,
            check=_card_check,
            label="CARD",
        ),
        Rule(
            id="fr_nir",
            category=Category.PERSONAL,
            triggers=(
                Trigger(NUMBER_RUN, before=26, after=24),
                Trigger(r"2[ABab] ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}", before=26, after=2),
            ),
            pattern=(
                r"(?<![\w])[1-478]( ?)\d{2}\1\d{2}\1(?:\d{2}|2[ABab])\1\d{3}\1\d{3}\1\d{2}(?![\w])"
            ),
            priority=VALIDATED_PERSONAL,
            check=_nir_check,
            label="NIR",
        ),
        Rule(
            id="fr_siren",
            category=Category.PERSONAL,
            triggers=(Trigger(r"siren|rcs|r\.c\.s\.|immatricul", 60, 90, True),),
            pattern=r"(?<![\w.])\d{3}(?P<s>[ .\u00a0]?)\d{3}(?P=s)\d{3}(?![\w]|[ .\u00a0]\d)",
            priority=VALIDATED_PERSONAL + 1,
            check=_siren_check,
            label="SIREN",
        ),
        Rule(
            id="fr_siret",
            category=Category.PERSONAL,
            triggers=(Trigger(r"siret|siren|rcs|r\.c\.s\.|immatricul", 60, 90, True),),
            pattern=(
                r"(?<![\w.])\d{3}(?P<s>[ .\u00a0]?)\d{3}(?P=s)\d{3}(?P=s)\d{5}(?![\w]|[ .\u00a0]\d)"
            ),
            priority=VALIDATED_PERSONAL + 1,
            check=_siret_check,
            label="SIRET",
        ),
        Rule(
            id="ipv4",
            category=Category.PERSONAL,
            triggers=(Trigger(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]", before=16, after=4),),
            pattern=(
                r"(?<![\w.\-])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w\-]|\.\d)"
            ),
            priority=PERSONAL,
            check=_ipv4_check,
            label="IP",
        ),
        Rule(
            id="ipv6",
            category=Category.PERSONAL,
            triggers=(
                # Only global unicast addresses are reported (2000::/3): they start 2xxx: or 3xxx:
                Trigger(r"[23][0-9A-Fa-f]{3}:[0-9A-Fa-f]{0,4}:", before=12, after=46),
            ),
            pattern=(
                r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
                r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:.])"
            ),
            priority=PERSONAL,
            check=_ipv6_check,
            label="IP",
        ),
    )
