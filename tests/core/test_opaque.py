from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from passerelle.core.canonical import ReasoningPart, Vendor
from passerelle.core.opaque import outgoing_token, received_state, seal, unseal

opaque = st.one_of(st.none(), st.text(min_size=1, max_size=40))


@given(
    signature=opaque,
    encrypted=opaque,
    origin=st.sampled_from(list(Vendor)),
    item_id=opaque,
)
def test_seal_round_trip(
    signature: str | None, encrypted: str | None, origin: Vendor, item_id: str | None
) -> None:
    part = ReasoningPart(signature=signature, encrypted=encrypted, origin=origin, id=item_id)
    token = seal(part)
    base64.b64decode(token, validate=True)  # fits a field a Gemini client reads as bytes
    assert unseal(token) == part
    # a client that re-encodes the bytes in the URL-safe alphabet still gets it back
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(token)).decode().rstrip("=")
    assert unseal(urlsafe) == part


def test_native_tokens_are_not_mistaken_for_sealed_ones() -> None:
    for token in ("EqQBCgIYAhIM", "gAAAAABoISQ24OyV", "", "UFNMMQ", "UFNMMQ!!!!", "UFNMMQA="):
        assert unseal(token) is None


def test_received_state_unseals_foreign_and_keeps_native() -> None:
    foreign = ReasoningPart(signature="sig-g", origin=Vendor.GEMINI)
    state = received_state(Vendor.ANTHROPIC, signature=seal(foreign))
    assert state.origin is Vendor.GEMINI and state.signature == "sig-g"
    native = received_state(Vendor.ANTHROPIC, signature="EqQB")
    assert native.origin is Vendor.ANTHROPIC and native.signature == "EqQB"
    empty = received_state(Vendor.ANTHROPIC, signature="")
    assert not empty.opaque


def test_outgoing_token_seals_only_foreign_state() -> None:
    part = ReasoningPart(text="t", signature="s", origin=Vendor.ANTHROPIC)
    assert outgoing_token(part, Vendor.ANTHROPIC) == "s"
    sealed = outgoing_token(part, Vendor.GEMINI)
    assert sealed is not None and unseal(sealed) == ReasoningPart(
        signature="s", origin=Vendor.ANTHROPIC
    )
    assert outgoing_token(ReasoningPart(text="only text"), Vendor.GEMINI) is None
    encrypted = ReasoningPart(encrypted="e", origin=Vendor.OPENAI, id="rs_1")
    assert outgoing_token(encrypted, Vendor.OPENAI) == "e"
