"""The hash chain, as pure functions.

Record ``n`` stores ``hash_n = H(hash_{n-1}, n, payload_n)``, with ``hash_0`` the genesis value.
Each hash therefore commits to the record's content, to its position, and (through its
predecessor) to every record before it. The head (last ``seq`` and ``hash``) is stored apart, in
the same transaction as the rows it covers.

What the chain proves depends on the key:

- **Without a key**, ``H`` is SHA-256. Any change made without recomputing hashes is detected:
  an edited payload no longer matches its hash, a deleted or moved record breaks the links
  around it. But anyone who can write to the database can also recompute every hash from the
  first edited record to the end and rewrite the head; the chain then only proves that the
  trail is internally consistent. It catches accidents, careless edits and partial restores.
- **With a key** (``audit.key`` in the configuration), ``H`` is HMAC-SHA256 under that key.
  Rewriting the chain now needs the key, which lives in the gateway's environment and not in the
  database: a database administrator, a stolen backup or an SQL injection cannot forge a record
  that verifies. The key itself must be protected like any other secret; whoever holds it can
  rewrite history.

In both cases, dropping records from the very end *and* moving the head back leaves a shorter
trail that is consistent with itself. Only a copy of the head kept elsewhere (a verify report, an
export, a log line shipped off the machine) can prove that records were there; ``audit verify``
reports the head for that purpose.
"""

from __future__ import annotations

import hashlib
import hmac

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""

# Domain separation: a hash of this chain can never be mistaken for a hash of something else.
_TAG = b"passerelle-audit-chain-v1\x00"


def link_hash(prev_hash: str, seq: int, payload: bytes, key: bytes | None) -> str:
    """The hash of record ``seq``: SHA-256, or HMAC-SHA256 when ``key`` is set, as 64 hex digits.

    The input is unambiguous: a fixed tag, the previous hash (always 64 ASCII hex digits), the
    sequence number as 8 big-endian bytes, the payload's length as 8 big-endian bytes, then the
    payload. No two different triples encode to the same bytes."""
    if len(prev_hash) != 64:
        raise ValueError("prev_hash must be 64 hex digits")
    if seq < 1:
        raise ValueError("seq starts at 1")
    message = b"".join(
        (
            _TAG,
            prev_hash.encode("ascii"),
            seq.to_bytes(8, "big"),
            len(payload).to_bytes(8, "big"),
            payload,
        )
    )
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
