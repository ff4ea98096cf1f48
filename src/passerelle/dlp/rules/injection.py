"""Prompt-injection signatures: a flag for policy, not data to protect.

Four families, in English and French:

- instruction overrides: "ignore (all) previous instructions", "disregard the above",
  "ignore les instructions précédentes", "oublie tes consignes"...;
- chat-template role markers pasted into content to forge a turn: ``<|im_start|>system``,
  ``[INST]``, ``<<SYS>>``, ``### System:``, ``<|start_header_id|>system``...;
- invisible text: Unicode tag characters (U+E0000-U+E007F, which render as nothing but models
  read) and bidirectional controls (U+202A-U+202E, U+2066-U+2069, the "Trojan Source" trick);
- encoded payloads: a long base64 run that decodes to text matching the families above.

These are signatures, not a classifier: they catch the common copy-pasted attacks cheaply and
say so; paraphrased attacks need a model, which is out of scope here.
"""

from __future__ import annotations

import base64
import binascii
import re

from passerelle.dlp.findings import Category
from passerelle.dlp.rules import INJECTION, Rule, Span, Trigger

# Shared by the instruction-override rule and the encoded-payload decoder (Python syntax).
_OVERRIDE_EN = (
    r"(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|every\s+)?"
    r"(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?"
    r"(?:previous|prior|above|earlier|preceding|initial|original|system|existing|former)\s+"
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|context|messages?"
    r"|constraints|commands)"
    r"|(?:forget|ignore)\s+(?:everything|all)\s+(?:above|before|you\s+(?:were|have\s+been)\s+told)"
    r"|(?:reveal|print|show|output|repeat|leak)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+)?"
    r"(?:system\s+prompt|hidden\s+instructions|initial\s+prompt|original\s+instructions)"
    r"|you\s+are\s+now\s+(?:DAN|in\s+developer\s+mode|jailbroken|an?\s+unrestricted)"
    r"|do\s+anything\s+now"
)
_OVERRIDE_FR = (
    r"(?:ignore[rz]?|oublie[rz]?|n[eé]glige[rz]?)\s+(?:toutes\s+|tous\s+)?"
    r"(?:les\s+|tes\s+|vos\s+|ces\s+)?(?:instructions|consignes|r[eè]gles|directives|messages)"
    r"(?:\s+(?:pr[eé]c[eé]dentes|ant[eé]rieures|ci-dessus|initiales|originales|syst[eè]me"
    r"|donn[eé]es|re[cç]ues))"
    r"|ne\s+tiens?\s+(?:plus\s+|pas\s+)?compte\s+des\s+(?:instructions|consignes|r[eè]gles)"
    r"|fais\s+abstraction\s+des\s+(?:instructions|consignes|r[eè]gles)"
    r"|(?:r[eé]v[eè]le|affiche|montre|donne)[rz]?\s+(?:moi\s+)?(?:ton|votre|le)\s+"
    r"(?:prompt|message)\s+syst[eè]me"
    r"|tu\s+es\s+(?:maintenant|d[eé]sormais)\s+(?:DAN|en\s+mode\s+d[eé]veloppeur|sans\s+restrictions?)"
)
# Hyperscan triggers: the two-word cores every phrase above contains ("previous instructions",
# "system prompt", "instructions précédentes"...), accented letters as ``..?`` (one or two bytes).
# Matching the whole phrases in Hyperscan, verbs and optional words included, halved the
# throughput of the entire database; the Python patterns confirm the phrases around the core.
_OVERRIDE_TRIGGERS = (
    r"(?:previous|prior|above|earlier|preceding|initial|original|system|existing|former)\s+"
    r"(?:instruction|prompt|rule|direction|directive|guideline|context|message|constraint|command)",
    r"(?:everything|all)\s+(?:above|before|you\s+(?:were|have))",
    r"(?:system\s+prompt|hidden\s+instructions|anything\s+now)",
    r"you\s+are\s+now\s+(?:dan|in\s+developer|jailbroken|an?\s+unrestricted)",
    r"(?:instructions|consignes|r..?gles|directives|messages)\s+(?:pr..?c..?dentes|ant..?rieures"
    r"|ci-dessus|initiales|originales|syst..?me|donn..?es|re..?ues)",
    r"(?:compte|abstraction)\s+des\s+(?:instructions|consignes|r..?gles)",
    r"(?:prompt|message)\s+syst..?me",
    r"tu\s+es\s+(?:maintenant|d..?sormais)\s+(?:dan|en\s+mode|sans\s+restriction)",
)
_MARKERS = (
    r"<\|im_start\|>\s*(?:system|assistant|user)|<\|im_end\|>|<\|system\|>"
    r"|<\|start_header_id\|>\s*(?:system|assistant|user)|<\|eot_id\|>|<\|begin_of_text\|>"
    r"|\[/?INST\]|<</?SYS>>|^#{2,3}\s*(?:System|Instruction|Assistant)\s*:"
)


# An ``after`` that reaches the end of any text, for single-match triggers.
_TO_THE_END = 1 << 40

# Words that every encoded attack the decoder recognises must contain; their base64 forms are
# the triggers, so that ordinary base64 (images, keys, blobs) costs nothing.
_ENCODED_KEYWORDS = (
    "ignore", "Ignore", "IGNORE", "disregard", "Disregard", "DISREGARD", "forget", "Forget",
    "override", "Override", "bypass", "Bypass", "reveal", "Reveal", "system prompt",
    "System prompt", "you are now", "You are now", "anything now", "oublie", "Oublie", "OUBLIE",
    "glige", "compte des", "abstraction", "prompt syst", "tu es maintenant", "Tu es maintenant",
    "sormais", "im_start", "im_end", "<<SYS>>", "[INST]", "start_header_id", "endoftext",
    "# System", "# Instruction", "# Assistant",
)  # fmt: skip
# How far around a keyword the base64 run is looked for: an encoded payload that starts more
# than 1 KB before the keyword, or ends more than 4 KB after it, is not decoded.
_ENCODED_BEFORE = 1024
_ENCODED_AFTER = 4096


def encoded_fragments(keywords: tuple[str, ...]) -> tuple[str, ...]:
    """The base64 characters that ``keywords`` produce wherever they fall in the encoded
    stream: for each of the three byte alignments, only the characters fully determined by the
    keyword's own bytes (the first and last may mix in neighbouring bytes)."""
    fragments: set[str] = set()
    for keyword in keywords:
        raw = keyword.encode("utf-8")
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0").decode("ascii")
            first = -(-8 * shift // 6)  # ceil: first character whose 6 bits are all the keyword's
            last = (8 * (shift + len(raw))) // 6  # exclusive
            fragment = encoded[first:last]
            if len(fragment) >= 5:
                fragments.add(re.escape(fragment).replace("\\/", "/"))
    return tuple(sorted(fragments))


def _encoded_check(text: str, start: int, end: int) -> Span | None:
    """A base64 run is reported only if it decodes to text that reads as an injection."""
    run = text[start:end]
    head = run[: (min(len(run), 4096) // 4) * 4]
    try:
        decoded = base64.b64decode(head + "=" * (-len(head) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    try:
        plain = decoded.decode("utf-8")
    except UnicodeDecodeError:
        plain = decoded.decode("utf-8", errors="ignore")
    controls = len(plain) - len(re.sub(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]", "", plain))
    if not plain or controls > 0.1 * len(plain):
        return None  # binary data, not text
    signature = f"(?im){_OVERRIDE_EN}|{_OVERRIDE_FR}|{_MARKERS}"
    return (start, end) if re.search(signature, plain) else None


def injection_rules() -> tuple[Rule, ...]:
    return (
        Rule(
            id="instruction_override",
            category=Category.INJECTION,
            triggers=(
                *(
                    Trigger(expression, before=120, after=60, caseless=True)
                    for expression in _OVERRIDE_TRIGGERS
                ),
            ),
            pattern=f"(?i)(?<!\\w)(?:{_OVERRIDE_EN}|{_OVERRIDE_FR})(?!\\w)",
            priority=INJECTION,
        ),
        Rule(
            id="role_marker",
            category=Category.INJECTION,
            triggers=(
                Trigger(
                    r"<\|(?:im_start|im_end|system|start_header_id|eot_id|begin_of_text)\|>"
                    r"|\[/?INST\]|<</?SYS>>",
                    before=30,
                    after=30,
                ),
                Trigger(r"##\s*(?:System|Instruction|Assistant)\s*:", before=30, after=2),
            ),
            pattern=f"(?m){_MARKERS}",
            priority=INJECTION,
        ),
        Rule(
            id="unicode_tags",
            category=Category.INJECTION,
            triggers=(Trigger(r"\xf3\xa0[\x80\x81][\x80-\xbf]", 2, _TO_THE_END, single=True),),
            pattern="[\U000e0000-\U000e007f]+",
            priority=INJECTION,
        ),
        Rule(
            id="bidi_control",
            category=Category.INJECTION,
            triggers=(
                Trigger(r"\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]", 2, _TO_THE_END, single=True),
            ),
            pattern="[\u202a-\u202e\u2066-\u2069]+",
            priority=INJECTION,
        ),
        Rule(
            id="encoded_injection",
            category=Category.INJECTION,
            triggers=tuple(
                Trigger(fragment, before=_ENCODED_BEFORE, after=_ENCODED_AFTER)
                for fragment in encoded_fragments(_ENCODED_KEYWORDS)
            ),
            pattern=r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/]{40,5120}={0,2}(?![A-Za-z0-9+/=_\-])",
            priority=INJECTION,
            check=_encoded_check,
        ),
    )
