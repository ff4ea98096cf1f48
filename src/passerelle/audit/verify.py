"""``audit verify``: walk the chain once, in ``seq`` order, and say what was tampered with.

For every row the walk establishes where the record was *written*: a record's hash commits to its
position, so a record whose hash verifies at seq ``n`` was written at seq ``n``, whatever seq it
carries now. Comparing written and current positions, and following each record's ``prev_hash``
to the record it was chained to, tells the kinds of tampering apart:

``modified``
    the hash does not match the content at any nearby position (payload, hash or link edited), or
    a record's hash verifies but the next record was chained to a different one (rewritten with
    a recomputed hash, or replaced: only possible without a key).
``column_mismatch``
    a queryable column (cost, tokens, project…) differs from the payload the hash covers.
``deleted``
    a seq is missing, or a record was chained to one that no longer exists, or the head names a
    later record than the last one found.
``inserted``
    a record that is not in the original chain: it sits between a record and the one that was
    chained to it, or it occupies a position another, genuinely chained record was written at,
    or it lies beyond the head.
``reordered``
    a genuine record was moved: it now comes after records that were written after it.
``renumbered``
    a run of genuine records, in their original order, carries new seqs (the consequence of an
    insertion or deletion before them).
``head_mismatch``
    the head row is missing, or does not describe the last record.
``key_mismatch``
    no record verifies at all: the key is wrong or missing, or everything was rewritten.

Memory stays bounded: the analysis looks at a sliding window of recent rows, so a record moved
farther than the window is reported as modified or deleted rather than as reordered.
All reads happen in one snapshot, so a gateway appending meanwhile does not disturb the walk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select

from passerelle.audit.append import column_values, read_head
from passerelle.audit.chain import GENESIS_HASH, link_hash
from passerelle.audit.records import from_payload
from passerelle.storage.db import Database
from passerelle.storage.tables import audit_log

ProblemKind = Literal[
    "modified",
    "column_mismatch",
    "deleted",
    "inserted",
    "reordered",
    "renumbered",
    "head_mismatch",
    "key_mismatch",
]

_WINDOW = 10_000  # rows kept for the analysis
_MAX_WAITING = 1_000  # rows whose position waits for their predecessor to show up
_MAX_PROBLEMS = 1_000
_PROBES = (1, -1, 2, -2, 3, -3, 4, -4)  # shifts tried for a record that does not verify in place
_COLUMNS = [c for c in audit_log.c if c.name not in ("payload", "prev_hash", "hash")]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``seq`` is the record's current seq (for ``deleted``, the missing seq);
    ``record_id`` is None when the record is gone or the finding is about the whole chain."""

    seq: int | None
    record_id: str | None
    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    problems: list[Problem]
    omitted: int = 0
    """Problems found beyond the first thousand, counted but not listed."""
    head_seq: int | None = None
    head_hash: str | None = None
    """The head, worth keeping outside the database: a later verify that finds a shorter or
    different chain proves records were removed even if the head was moved back with them."""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.omitted


def verify_chain(
    db: Database,
    key: bytes | None,
    progress: Callable[[int, int], None] | None = None,
    *,
    page_size: int = 2_000,
) -> VerifyReport:
    """Check every record of the audit trail against the chain and the head.

    ``progress(done, total)`` is called after each page. Raises ``StorageError`` when the
    database cannot be read; tampering is reported, never raised."""
    with db.read() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for the head and every page.
            conn.execution_options(isolation_level="REPEATABLE READ")
        head = read_head(conn)
        last = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq.desc())).first()
        total = max(head[0] if head else 0, int(last.seq) if last else 0)
        walk = _Walk(key, head)
        after: int | None = None
        while True:
            query = select(*_COLUMNS, audit_log.c.payload, audit_log.c.prev_hash, audit_log.c.hash)
            if after is not None:
                query = query.where(audit_log.c.seq > after)
            rows = conn.execute(query.order_by(audit_log.c.seq).limit(page_size)).all()
            for row in rows:
                values = row._mapping
                walk.visit(values, str(values["payload"]).encode("utf-8"))
            if progress is not None:
                progress(walk.checked, max(total, walk.checked))
            if len(rows) < page_size:
                break
            after = int(rows[-1].seq)
    return walk.report()


@dataclass(slots=True, eq=False)
class _Row:
    index: int
    seq: int
    record_id: str
    hash: str
    prev_hash: str
    before: _Row | None  # the row visited just before; dropped when this one leaves the window
    written_at: int | None = None  # where the hash verifies; None while unknown or broken
    broken: bool = False
    unreadable: bool = False
    intruder: bool = False  # found between a record and the record chained to it
    referenced: bool = False  # a later record is chained to it
    waiting: bool = False  # position unknown until its predecessor shows up
    awaiting_predecessor: bool = False
    gap_before: bool = False
    reported_inserted: bool = False
    payload: bytes | None = None  # kept only while waiting


@dataclass(slots=True)
class _Run:
    """Consecutive moved records sharing one shift: reported as one problem."""

    first_seq: int
    first_written: int
    record_id: str
    last_seq: int
    reordered: bool = False

    @property
    def shift(self) -> int:
        return self.first_seq - self.first_written


@dataclass(slots=True)
class _Walk:
    key: bytes | None
    head: tuple[int, str] | None
    rows: deque[_Row] = field(default_factory=deque)
    by_hash: dict[str, _Row] = field(default_factory=dict)
    waiting: dict[str, list[_Row]] = field(default_factory=dict)
    awaiting: dict[str, list[_Row]] = field(default_factory=dict)
    claims: dict[int, list[_Row]] = field(default_factory=dict)
    runs: list[_Run] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    omitted: int = 0
    checked: int = 0
    intact: int = 0
    waiting_count: int = 0
    max_written: int = 0
    probing: bool = True
    head_row: _Row | None = None
    at_head_seq: tuple[int, str] | None = None
    last: _Row | None = None

    # -- per row -------------------------------------------------------------------------------

    def visit(self, values: Mapping[Any, Any], payload: bytes) -> None:
        self.checked += 1
        before = self.rows[-1] if self.rows else None
        row = _Row(
            index=self.checked,
            seq=int(values["seq"]),
            record_id=str(values["record_id"]),
            hash=str(values["hash"]),
            prev_hash=str(values["prev_hash"]),
            before=before,
        )
        expected = before.seq + 1 if before else 1
        if row.seq > expected:
            row.gap_before = True
            self._deleted(expected, row.seq - 1, f"the next record is seq {row.seq}")
        self._check_columns(row, values, payload)
        if row.unreadable:
            row.broken = True
        elif self._verifies(row, row.seq, payload):
            row.written_at = row.seq
        else:
            self._locate(row, payload)
        if row.written_at is not None:
            self.intact += 1
        if self.head is not None:
            if row.hash == self.head[1] and self.head_row is None:
                self.head_row = row
            if row.seq == self.head[0] and self.at_head_seq is None:
                self.at_head_seq = (row.seq, row.record_id)
        self._link(row)
        self._resolve_successors(row)
        if row.written_at is not None:
            self._placed(row, late=False)
        self.rows.append(row)
        self.by_hash.setdefault(row.hash, row)
        self.last = row
        while len(self.rows) > _WINDOW:
            self._finalize(self.rows.popleft())
        if self.probing and self.checked >= 64 and self.intact == 0:
            self.probing = False  # nothing verifies: a wrong key, not worth probing every row

    def _verifies(self, row: _Row, seq: int, payload: bytes) -> bool:
        try:
            return link_hash(row.prev_hash, seq, payload, self.key) == row.hash
        except ValueError:  # a prev_hash that is not 64 ASCII characters
            return False

    def _check_columns(self, row: _Row, values: Mapping[Any, Any], payload: bytes) -> None:
        try:
            record = from_payload(payload)
        except ValueError as exc:
            row.unreadable = True
            self._add(row.seq, row.record_id, "modified", f"the payload is not a record: {exc}")
            return
        differences = [
            f"{name} is {values[name]!r} in the column but {value!r} in the payload"
            for name, value in column_values(record).items()
            if values[name] != value
        ]
        if differences:
            self._add(row.seq, row.record_id, "column_mismatch", "; ".join(differences))

    def _locate(self, row: _Row, payload: bytes) -> None:
        """Find where a record that does not verify at its seq was written, if anywhere near."""
        candidates: list[int] = []
        if row.prev_hash == GENESIS_HASH:
            candidates.append(1)
        predecessor = self.by_hash.get(row.prev_hash)
        if predecessor is not None and predecessor.written_at is not None:
            candidates.append(predecessor.written_at + 1)
        if self.probing:
            candidates.extend(row.seq + shift for shift in _PROBES)
        for seq in dict.fromkeys(candidates):
            if seq >= 1 and seq != row.seq and self._verifies(row, seq, payload):
                row.written_at = seq
                return
        if (
            predecessor is None
            and row.prev_hash != GENESIS_HASH
            and self.waiting_count < _MAX_WAITING
        ):
            # Chained to a record not seen yet: it may come later, if this one was moved up.
            row.waiting = True
            row.payload = payload
            self.waiting.setdefault(row.prev_hash, []).append(row)
            self.waiting_count += 1
        else:
            row.broken = True

    def _link(self, row: _Row) -> None:
        """Check that the record this one was chained to is where the chain says it is."""
        if row.prev_hash == GENESIS_HASH:
            return
        predecessor = self.by_hash.get(row.prev_hash)
        if predecessor is not None:
            predecessor.referenced = True
            if row.written_at is not None and predecessor is not row.before and self.rows:
                # Whatever lies between a record and the record chained to it does not belong
                # there. A record that verifies nowhere is an insertion; one that verifies
                # elsewhere is a moved record and is reported as such.
                start = predecessor.index - self.rows[0].index + 1
                for i in range(max(start, 0), len(self.rows)):
                    if self.rows[i].broken or self.rows[i].waiting:
                        self.rows[i].intruder = True
        elif row.written_at is not None:
            row.awaiting_predecessor = True
            self.awaiting.setdefault(row.prev_hash, []).append(row)

    def _resolve_successors(self, row: _Row) -> None:
        for waiter in self.waiting.pop(row.hash, []):
            row.referenced = True
            waiter.waiting = False
            self.waiting_count -= 1
            payload, waiter.payload = waiter.payload or b"", None
            if row.written_at is not None and self._verifies(waiter, row.written_at + 1, payload):
                waiter.written_at = row.written_at + 1
                self.intact += 1
                self._placed(waiter, late=True)
            else:
                waiter.broken = True
        for successor in self.awaiting.pop(row.hash, []):
            row.referenced = True
            successor.awaiting_predecessor = False

    def _placed(self, row: _Row, *, late: bool) -> None:
        """Bookkeeping once a row's written position is known."""
        written = row.written_at
        assert written is not None
        self.claims.setdefault(written, []).append(row)
        if self.head is not None and row is not self.head_row:
            # The head's hash says where the chain ends, even if its seq was edited.
            end = self.head[0]
            if self.head_row is not None and self.head_row.written_at is not None:
                end = self.head_row.written_at
            if written > end:
                self._inserted(row, f"it lies beyond the head (seq {self.head[0]})")
        if self.head is not None and written == self.head[0]:
            self.at_head_seq = (row.seq, row.record_id)
        if written != row.seq:
            # A record whose predecessor comes after it (late), or written before a record
            # that now precedes it, has been moved; otherwise its whole neighbourhood shifted.
            if late or written < self.max_written:
                self._reordered(row)
            else:
                self._renumbered(row)
        self.max_written = max(self.max_written, written)

    def _reordered(self, row: _Row) -> None:
        written = row.written_at
        assert written is not None
        self._add(row.seq, row.record_id, "reordered", f"it was written at seq {written}")
        for run in reversed(self.runs[-64:]):
            if run.first_written > written:
                run.reordered = True

    def _renumbered(self, row: _Row) -> None:
        written = row.written_at
        assert written is not None
        run = self.runs[-1] if self.runs else None
        if (
            run is not None
            and not run.reordered
            and run.last_seq == row.seq - 1
            and run.shift == row.seq - written
        ):
            run.last_seq = row.seq
        elif len(self.runs) < _MAX_PROBLEMS:
            self.runs.append(_Run(row.seq, written, row.record_id, row.seq))
        else:
            self.omitted += 1

    # -- when a row leaves the window ---------------------------------------------------------

    def _finalize(self, row: _Row) -> None:
        if self.by_hash.get(row.hash) is row:
            del self.by_hash[row.hash]
        if row.waiting:
            self.waiting[row.prev_hash].remove(row)
            if not self.waiting[row.prev_hash]:
                del self.waiting[row.prev_hash]
            self.waiting_count -= 1
            row.waiting, row.payload, row.broken = False, None, True
        if row.awaiting_predecessor:
            self.awaiting[row.prev_hash].remove(row)
            if not self.awaiting[row.prev_hash]:
                del self.awaiting[row.prev_hash]
            row.awaiting_predecessor = False
            self._missing_predecessor(row)
        if row.broken:
            if row.intruder:
                self._inserted(row, "the next genuine record was chained to the one before it")
            elif self.head is not None and row.seq > self.head[0] and self.head_row is not None:
                self._inserted(row, f"it lies beyond the head (seq {self.head[0]})")
            elif not row.unreadable:
                self._add(
                    row.seq,
                    row.record_id,
                    "modified",
                    "its hash does not match its content: the payload, the hash or the link "
                    "to the previous record was edited",
                )
        elif row.written_at is not None:
            claim = self.claims.get(row.written_at, [])
            if (
                len(claim) > 1
                and not row.referenced
                and not (self.head is not None and row.hash == self.head[1])
            ):
                self._inserted(
                    row,
                    f"another record was also written at seq {row.written_at}, and that one "
                    "is chained to the rest of the trail",
                )
            if row in claim:
                claim.remove(row)
                if not claim:
                    del self.claims[row.written_at]
        row.before = None

    def _missing_predecessor(self, row: _Row) -> None:
        """The record ``row`` was chained to is nowhere to be found: say what most likely
        happened to it, from what sits before ``row`` now."""
        written = row.written_at
        assert written is not None
        if row.gap_before and written == row.seq:
            return  # already reported as a gap in the seqs
        before = row.before
        renumbered = "; later records were renumbered" if written != row.seq else ""
        if before is None:
            if written > 1:
                self._deleted(1, written - 1, f"the first record was written at seq {written}")
        elif before.broken or before.written_at is None:
            return  # its own problem explains the broken link
        elif before.written_at == written - 1:
            self._add(
                before.seq,
                before.record_id,
                "modified",
                f"it is not the record seq {row.seq} ({row.record_id}) was chained to: it was "
                "rewritten with a recomputed hash, or replaced",
            )
        elif before.written_at < written - 1:
            self._deleted(before.written_at + 1, written - 1, renumbered.lstrip("; "))
        else:
            self._add(
                row.seq,
                row.record_id,
                "deleted",
                f"the record it was chained to (written at seq {written - 1}) is missing",
            )

    # -- reporting -----------------------------------------------------------------------------

    def _add(self, seq: int | None, record_id: str | None, kind: ProblemKind, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(seq, record_id, kind, message))
        else:
            self.omitted += 1

    def _deleted(self, first: int, last: int, detail: str) -> None:
        what = f"seq {first}" if first == last else f"seqs {first} to {last}"
        message = f"the record(s) written at {what} are missing"
        self._add(first, None, "deleted", f"{message}: {detail}" if detail else message)

    def _inserted(self, row: _Row, why: str) -> None:
        if not row.reported_inserted:
            row.reported_inserted = True
            self._add(row.seq, row.record_id, "inserted", f"not part of the original chain: {why}")

    def report(self) -> VerifyReport:
        while self.rows:
            self._finalize(self.rows.popleft())
        for run in self.runs:
            self._report_run(run)
        self._check_head()
        problems = self.problems
        omitted = self.omitted
        if self.checked and not self.intact:
            problems = [
                Problem(
                    None,
                    None,
                    "key_mismatch",
                    f"none of the {self.checked} records verifies with this key: the audit key is "
                    "wrong (or set when the trail was written without one, or the reverse), or "
                    "every record was rewritten",
                )
            ]
            omitted = 0
        problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
        return VerifyReport(
            checked=self.checked,
            problems=problems,
            omitted=omitted,
            head_seq=self.head[0] if self.head else None,
            head_hash=self.head[1] if self.head else None,
        )

    def _report_run(self, run: _Run) -> None:
        count = run.last_seq - run.first_seq + 1
        last_written = run.first_written + count - 1
        where = (
            f"seq {run.first_seq}"
            if count == 1
            else f"seqs {run.first_seq} to {run.last_seq} ({count} records)"
        )
        written = (
            f"seq {run.first_written}"
            if count == 1
            else f"seqs {run.first_written} to {last_written}"
        )
        if run.reordered:
            message = f"the record(s) now at {where} were written at {written}"
            self._add(run.first_seq, run.record_id, "reordered", message)
            return
        cause = (
            f"{run.shift} record(s) were inserted before them"
            if run.shift > 0
            else f"{-run.shift} record(s) before them were deleted"
        )
        self._add(
            run.first_seq,
            run.record_id,
            "renumbered",
            f"the records now at {where} are intact but were written at {written}: {cause}",
        )

    def _check_head(self) -> None:
        if self.head is None:
            if self.checked:
                self._add(
                    None,
                    None,
                    "head_mismatch",
                    "the audit head row is missing, so removals from the end cannot be ruled out",
                )
            return
        head_seq = self.head[0]
        if self.head_row is not None:
            if self.head_row.written_at not in (None, head_seq):
                self._add(
                    self.head_row.seq,
                    self.head_row.record_id,
                    "head_mismatch",
                    f"the head says seq {head_seq}, but its hash is that of this record, written "
                    f"at seq {self.head_row.written_at}: the head was edited",
                )
            return
        top = max(self.max_written, self.last.seq if self.last else 0)
        if top < head_seq:
            self._deleted(
                top + 1,
                head_seq,
                f"the head says the chain ends at seq {head_seq}",
            )
        elif self.at_head_seq is not None:
            seq, record_id = self.at_head_seq
            self._add(
                seq,
                record_id,
                "head_mismatch",
                "this is not the record the head was written for: it was rewritten with a "
                "recomputed hash, or replaced, or the head was edited",
            )
        else:
            self._add(None, None, "head_mismatch", "the head's hash matches no record of the trail")
