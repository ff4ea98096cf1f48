"""Carrying one vendor's opaque reasoning state through a client that speaks another format.

Reasoning models hand out state the caller must send back unchanged on the next turn: Anthropic
thinking signatures and redacted thinking, OpenAI encrypted reasoning items, Gemini thought
signatures (Gemini 3 refuses a function-calling turn without them). When an agent speaking
Anthropic's format is served by Gemini, the Gemini signature has to travel inside an Anthropic
``signature`` field and come back; when the same conversation later falls back to Anthropic, that
Gemini signature must *not* be sent to Anthropic, which would reject it.

So state from a foreign vendor is *sealed*: wrapped with its origin into one token that fits any
format's opaque field, and recognised when the client sends it back. The token is standard base64
(Gemini clients decode the field as bytes) of a magic prefix and a small JSON object. Native state
is never sealed: a vendor's own client gets exactly the bytes the vendor produced.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from passerelle.core.canonical import ReasoningPart, Vendor

_MAGIC = b"PSL1\x00"


def seal(part: ReasoningPart) -> str:
    """One token holding ``part``'s origin, signature, encrypted data and id."""
    payload = {
        "o": part.origin.value if part.origin is not None else None,
        "s": part.signature,
        "e": part.encrypted,
        "i": part.id,
    }
    return base64.b64encode(_MAGIC + orjson.dumps(payload)).decode("ascii")


def unseal(token: str) -> ReasoningPart | None:
    """The opaque state inside a token made by :func:`seal`, or None for any other string."""
    if len(token) < 8 or not token.startswith("UFNMMQ"):  # base64 of the magic prefix
        return None
    padded = token.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_MAGIC):
        return None
    try:
        payload = orjson.loads(raw[len(_MAGIC) :])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    origin_name = payload.get("o")
    try:
        origin = Vendor(origin_name) if isinstance(origin_name, str) else None
    except ValueError:
        return None
    return ReasoningPart(
        signature=_text(payload.get("s")),
        encrypted=_text(payload.get("e")),
        origin=origin,
        id=_text(payload.get("i")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def received_state(
    native: Vendor,
    *,
    signature: str | None = None,
    encrypted: str | None = None,
    id: str | None = None,
) -> ReasoningPart:
    """The reasoning state a client of ``native``'s format sent back: unsealed when it is a
    foreign vendor's, else ``native``'s own. Text is left empty for the caller to fill."""
    for token in (signature, encrypted):
        if token:
            inner = unseal(token)
            if inner is not None:
                return inner
    return ReasoningPart(
        signature=signature or None, encrypted=encrypted or None, origin=native, id=id
    )


def outgoing_token(part: ReasoningPart, target: Vendor) -> str | None:
    """What to put in ``target``'s single opaque field for a client: the part's own signature
    (or encrypted data) when ``target`` minted it, a sealed token when another vendor did, and
    None when the part has no opaque state."""
    if not part.opaque:
        return None
    if part.origin is target:
        return part.signature if part.signature is not None else part.encrypted
    return seal(part)
