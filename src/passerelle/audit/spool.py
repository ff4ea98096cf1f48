"""Spool files: where a record waits, outside the database, until its batch commits.

Each writer owns its spool files, ``audit-<instance id>-<segment>.spool``, holding one canonical
payload per line, and keeps an exclusive ``flock`` on each for as long as it lives. A file nobody
holds belongs to a writer that died; :func:`recover_spools` appends its records to the chain and
deletes it. Because the lock belongs to the open file and the kernel drops it when the process
dies, however it dies, a live writer's spool is never taken from under it and a dead one's is
never left behind.

A writer empties its file whenever everything in it is committed. Under a load that never lets
the queue run dry, it starts a new segment every few megabytes instead, and deletes the old one
once its records are committed, so the spool stays small either way.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from passerelle.audit.append import Item, append_batch, check_key
from passerelle.audit.records import canonical_payload, from_payload
from passerelle.storage.db import Database

log = logging.getLogger("passerelle.audit")

SPOOL_SUFFIX = ".spool"


def new_instance_id() -> str:
    return secrets.token_hex(8)


def open_spool(spool_dir: Path, instance: str, segment: int) -> tuple[int, Path]:
    """A new spool file, locked, opened for appending: ``(fd, path)``.

    Named ``audit-<instance>-<segment>.spool`` so that one writer's files sort in the order they
    were written. The file is created and locked under a temporary name, then renamed, so that
    recovery in another process can never find it under its final name before it is locked."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    stem = f"audit-{instance}-{segment:08d}"
    temporary = spool_dir / f".{stem}.creating"
    path = spool_dir / f"{stem}{SPOOL_SUFFIX}"
    fd = os.open(temporary, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, path)
    except OSError:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    return fd, path


def write_line(fd: int, line: bytes) -> None:
    """Append ``line`` with as few ``write`` calls as the kernel allows (one, in practice).

    ``O_APPEND`` makes each write land at the end of the file, atomically with respect to other
    writers. There is deliberately no ``fsync``: once ``write`` returns, the bytes are in the
    operating system's page cache and survive the death of this process (``SIGKILL``, OOM
    killer, a crash), which is what the spool is for. Surviving a power loss or a kernel panic
    would need an ``fsync`` per record or per batch: a disk flush costs from tens of microseconds
    (NVMe with power-loss protection) to several milliseconds (cloud block storage), on the
    request path, which is why it is not done here."""
    view = memoryview(line)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def recover_spools(
    db: Database, spool_dir: Path, key: bytes | None = None, *, batch_max: int = 500
) -> int:
    """Append the records of every spool file whose writer is gone, then delete the files.

    Files locked by a live writer (in this process or another) are left alone. A torn last line,
    the record a dying writer was in the middle of writing, is skipped: its request never
    completed its audit, so it was never acknowledged as audited. Records already in the chain
    are skipped, so running this twice, or after a writer that did commit, is harmless.
    ``key`` must be the audit key the gateway uses: ``AuditIntegrityError`` is raised, and
    nothing appended, when the trail's last records do not verify with it.

    Returns the number of records appended."""
    if not spool_dir.is_dir():
        return 0
    appended = 0
    key_checked = False
    for path in sorted(spool_dir.glob(f"*{SPOOL_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # recovered by someone else meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's spool
            if not _still_linked(fd, path):
                continue  # recovered and deleted by someone else between open and lock
            items = list(_read_items(fd, path))
            if items and not key_checked:
                check_key(db, key)
                key_checked = True
            for start in range(0, len(items), batch_max):
                appended += append_batch(db, items[start : start + batch_max], key).inserted
            path.unlink()
            if items:
                log.info("recovered %d audit record(s) from %s", len(items), path.name)
        finally:
            os.close(fd)
    return appended


def _still_linked(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read_items(fd: int, path: Path) -> Iterator[Item]:
    with os.fdopen(os.dup(fd), "rb") as file:
        data = file.read()
    lines = data.split(b"\n")
    # Whatever follows the last newline is a line whose write never finished.
    if lines[-1]:
        log.warning("skipping a torn last line in %s", path.name)
    for number, line in enumerate(lines[:-1], start=1):
        if not line:
            continue
        try:
            record = from_payload(line)
        except ValueError:
            # Only a failed write (disk full) can leave a partial line before the last one.
            log.warning("skipping unreadable line %d in %s", number, path.name)
            continue
        # Re-encoded rather than trusted, so that the row's columns and payload always agree.
        yield record, canonical_payload(record)
