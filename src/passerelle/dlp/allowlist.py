"""Look-alikes that must not be reported: placeholders, published examples, hashes, UUIDs.

Documentation, tutorials and test suites are full of values shaped like credentials that grant
nothing: ``AKIAIOSFODNN7EXAMPLE``, ``<YOUR_API_KEY>``, ``${OPENAI_API_KEY}``, ``sk-xxxxxxxx``.
Blocking a prompt because it quotes the AWS documentation would teach people to route around
the gateway, so each detector passes its candidate value through these checks.
"""

from __future__ import annotations

import ipaddress
import re

# Values vendors publish in their documentation as examples; they grant nothing.
PUBLISHED_EXAMPLES = frozenset(
    {
        # AWS documentation
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        # the token shown on jwt.io and in RFC-style tutorials
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
        "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    }
)

# Card numbers that card networks and payment processors publish for testing.
TEST_CARD_NUMBERS = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "4000056655665556",
        "4012888888881881",
        "4222222222222",
        "5555555555554444",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "36227206271667",
        "3566002020360505",
        "6200000000000005",
    }
)

# Substrings that mark a value as a stand-in for a real credential. Long enough that a random
# token contains one by chance with negligible probability.
_PLACEHOLDER_MARKERS = (
    "example",
    "sample",
    "placeholder",
    "dummy",
    "redacted",
    "changeme",
    "change_me",
    "change-me",
    "replace",
    "insert",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "xxxxx",
    "*****",
    ".....",
    "00000000",
    "<",
    ">",
    "${",
    "{{",
    "%(",
)

_MARKER = re.compile("|".join(re.escape(marker) for marker in _PLACEHOLDER_MARKERS))

# Whole values that are words, not secrets.
_PLACEHOLDER_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "mypassword",
        "motdepasse",
        "mot_de_passe",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "empty",
        "hidden",
        "masked",
        "secret_key",
        "tiger",  # the scott/tiger demo account of Oracle and SQLAlchemy's documentation
        "foo",
        "bar",
        "baz",
        "qux",
        "foobar",
    }
)

_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Both checks run on every candidate credential, so each is one compiled expression (immutable)
# rather than dozens of substring searches.
_SIX_IN_ORDER = re.compile(
    "|".join(sequence[i : i + 6] for sequence in _SEQUENCES for i in range(len(sequence) - 5))
)
_HEX = frozenset("0123456789abcdefABCDEF")
_HASH_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})


def has_sequence(value: str, run: int = 6) -> bool:
    """Whether ``value`` contains ``run`` consecutive characters of 0-9, a-z or A-Z in order,
    the mark of a hand-typed example such as ``ghp_1234567890abcdef...``."""
    if run == 6:
        return _SIX_IN_ORDER.search(value) is not None
    return any(
        sequence[start : start + run] in value
        for sequence in _SEQUENCES
        for start in range(len(sequence) - run + 1)
    )


def _has_marker(lowered: str) -> bool:
    """Whether a lower-cased value holds a placeholder marker (one regular-expression pass)."""
    return _MARKER.search(lowered) is not None


def is_placeholder(value: str, *, sequences: bool = True) -> bool:
    """Whether a candidate credential is a stand-in: a template variable, a word such as
    ``password``, a marker such as ``your-api-key-here`` or ``xxxx``, a run like ``123456``
    (unless ``sequences`` is false: people do choose such passwords), or too few distinct
    characters to be random."""
    if not value:
        return True
    lowered = value.lower()
    if lowered.strip("'\"`") in _PLACEHOLDER_WORDS:
        return True
    if lowered.rstrip("0123456789!") in _PLACEHOLDER_WORDS:
        return True  # password1, secret123, changeme!
    if _has_marker(lowered):
        return True
    if value.startswith("$") or (value.startswith("%") and value.endswith("%")):
        return True  # $VAR, %VAR%
    if len(set(lowered)) <= max(2, min(6, len(value) // 8)):
        return True
    return sequences and has_sequence(value)


def is_published_example(value: str) -> bool:
    return value in PUBLISHED_EXAMPLES


def is_hex_hash(value: str) -> bool:
    """Hex of a digest's length: MD5, SHA-1 (and git object ids), SHA-224, SHA-256, SHA-384,
    SHA-512."""
    return len(value) in _HASH_LENGTHS and all(char in _HEX for char in value)


def is_uuid(value: str) -> bool:
    """The 8-4-4-4-12 hex form of a UUID, any version."""
    parts = value.split("-")
    if [len(part) for part in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(char in _HEX for part in parts for char in part)


def is_documentation_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The ranges reserved for documentation (RFC 5737, RFC 3849): like example.com, they are
    what manuals and tutorials use, not anyone's address."""
    if isinstance(address, ipaddress.IPv4Address):
        return any(
            address in ipaddress.IPv4Network(net)
            for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
        )
    return address in ipaddress.IPv6Network("2001:db8::/32")
