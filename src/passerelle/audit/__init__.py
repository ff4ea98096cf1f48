"""The tamper-evident audit trail: one hash-chained record per request and per admin action.

::

    records.py   AuditRecord and its canonical JSON payload (the bytes the chain covers)
    chain.py     the hash (SHA-256, or HMAC-SHA256 with the audit key) linking each record
    append.py    the one transaction that appends records to the chain
    spool.py     per-writer spool files and the recovery of a dead writer's records
    writer.py    the background writer (group commit) and synchronous appends for the CLI
    verify.py    walks the chain and names what was modified, deleted, inserted or moved
    export.py    streams records out as JSON-ready dicts

Prompts and responses are never part of a record: bodies kept by a retention policy live apart,
so that erasing them leaves the chain intact.
"""
