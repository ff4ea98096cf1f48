"""The record's canonical bytes and the chain's hash: pure functions, pinned down."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import orjson
import pytest

from passerelle.audit.chain import GENESIS_HASH, link_hash
from passerelle.audit.records import AuditRecord, canonical_payload, day_of, from_payload

MakeRecord = Callable[..., AuditRecord]


def test_payload_is_canonical_and_round_trips(make_record: MakeRecord) -> None:
    record = make_record(1, details={"b": 1, "a": {"z": [1, 2.5, None], "y": "é"}})
    same = make_record(1, details={"a": {"y": "é", "z": [1, 2.5, None]}, "b": 1})
    payload = canonical_payload(record)
    assert payload == canonical_payload(same)
    assert b" " not in payload and b"\n" not in payload
    keys = list(orjson.loads(payload))
    assert keys == sorted(keys)
    assert from_payload(payload) == record
    assert from_payload(payload.decode()) == record


def test_day_is_utc() -> None:
    assert day_of(1_795_348_800_000_000) == "2026-11-22"
    assert day_of(1_795_391_999_999_999) == "2026-11-22"  # 23:59:59.999999 UTC
    assert day_of(1_795_392_000_000_000) == "2026-11-23"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"record_id": ""}, "record_id"),
        ({"record_id": "r" * 65}, "record_id"),
        ({"kind": "other"}, "kind"),
        ({"ts_us": -1}, "ts_us"),
        ({"cost_micro_usd": -5}, "cost_micro_usd"),
        ({"input_tokens": True}, "input_tokens"),
        ({"status": 1000}, "status"),
        ({"project": 3}, "project"),
    ],
)
def test_invalid_records_fail_at_the_source(
    make_record: MakeRecord, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_record(1, **overrides)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"v": 2}',
        b'{"v": 1, "record_id": "x"}',
    ],
)
def test_from_payload_rejects_what_is_not_a_record(payload: bytes) -> None:
    with pytest.raises(ValueError):
        from_payload(payload)


def test_details_must_be_json(make_record: MakeRecord) -> None:
    with pytest.raises(TypeError):
        canonical_payload(make_record(1, details={"when": object()}))


def test_link_hash_is_sha256_or_hmac_over_an_unambiguous_encoding() -> None:
    payload = b'{"a":1}'
    plain = link_hash(GENESIS_HASH, 1, payload, None)
    keyed = link_hash(GENESIS_HASH, 1, payload, b"secret")
    message = (
        b"passerelle-audit-chain-v1\x00"
        + GENESIS_HASH.encode()
        + (1).to_bytes(8, "big")
        + len(payload).to_bytes(8, "big")
        + payload
    )
    assert plain == hashlib.sha256(message).hexdigest()
    assert keyed == hmac.new(b"secret", message, hashlib.sha256).hexdigest()
    # Position, predecessor, content and key all change the hash.
    assert link_hash(GENESIS_HASH, 2, payload, None) != plain
    assert link_hash(plain, 1, payload, None) != plain
    assert link_hash(GENESIS_HASH, 1, payload + b" ", None) != plain
    assert link_hash(GENESIS_HASH, 1, payload, b"other") != keyed
    with pytest.raises(ValueError):
        link_hash("abc", 1, payload, None)
    with pytest.raises(ValueError):
        link_hash(GENESIS_HASH, 0, payload, None)


def test_record_is_frozen(make_record: MakeRecord) -> None:
    record: AuditRecord = make_record(1)
    with pytest.raises(AttributeError):
        record.cost_micro_usd = 0  # type: ignore[misc]
