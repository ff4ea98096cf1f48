"""The compiled scanner: one Hyperscan database over every rule, confirmed in Python.

How a scan works::

    str --utf-8--> bytes --Hyperscan (one pass, every trigger)--> (trigger, byte offsets)
        --byte->char offsets--> windows or start points per rule --Python re--> matches
        --context, checks, allow-lists, entropy--> confirmed detections
        --overlap resolution--> findings (sorted, disjoint)

Hyperscan is a *prefilter*: its triggers are simple supersets of each rule (a vendor prefix, a
credential word with something assigned to it, a run of digits) and the Python pattern, run only
near what fired, is the authority on what matches and where (look-arounds, Unicode word
boundaries and back-references stay in one engine). A trigger is used in one of three ways:

- *window* (the default): Hyperscan reports where the trigger ends; the pattern is searched in
  a small window around that end, windows of one rule merged;
- *anchored*: for rules that start with a literal prefix or keyword, Hyperscan also tracks
  where the trigger starts (``HS_FLAG_SOM_LEFTMOST``, cheap on such literals) and the pattern is
  tried once, right there;
- *start marks*: a cheap keyword trigger only marks where matches may start, and the rule's
  window trigger (an expression too loose for start tracking, which would cost Hyperscan most of
  its throughput) says whether anything there is worth trying.

Identical trigger expressions are compiled once and feed every rule that declares them (all
the numeric rules share one).

**Offsets.** Findings are spans of the ``str`` that was scanned, never of its UTF-8 bytes: text
full of French accents has far fewer characters than bytes. Byte offsets are converted by
decoding the prefix up to each candidate (incrementally, once over the text), and pure-ASCII
text skips the conversion.

**Overlaps.** Two confirmed detections may cover the same characters (a key inside a ``.env``
assignment is both a vendor token and a generic secret). Findings never overlap; the one kept is,
in order: the higher rule priority (injection > vendor secrets > structured secrets > heuristic
secrets > checksum-validated personal data > other personal data > client terms > person
names), then the longer span, then the earlier start, then the rule id alphabetically. The
result is deterministic. The data classes of the detections that lost still count in
:attr:`ScanResult.data_classes`.

**Threads.** Compiling is expensive, so one scanner is built per configuration and shared. Each
thread gets its own Hyperscan scratch space, cloned on first use; patterns are immutable.

**Failing closed.** Any error while scanning raises :class:`ScanError`, whose message never
quotes the text, so that the caller blocks rather than forwards.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import hyperscan

from passerelle.dlp.allowlist import is_placeholder, is_published_example
from passerelle.dlp.findings import Category, Finding, ScanError, ScanResult
from passerelle.dlp.rules import NUMBER_RUN, TIMESTAMP_RUN, Rule
from passerelle.dlp.rules.catalog import builtin_rules
from passerelle.dlp.settings import DlpSettings
from passerelle.dlp.validators import shannon_entropy

_EMPTY = ScanResult()
# How a trigger's hits are used (see Trigger): a window around the end, the pattern tried at the
# start, a start mark for the rule's other triggers, or a gate to the second database.
_WINDOW, _ANCHORED, _MARK, _GATE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule with its Python expressions compiled and its implied class resolved."""

    rule: Rule
    pattern: re.Pattern[str]
    value_group: bool
    context: re.Pattern[str] | None
    data_class: str | None
    marked: bool  # the rule has a start-marking trigger: try the pattern at marked starts only


@dataclass(frozen=True, slots=True)
class _Candidate:
    start: int
    end: int
    index: int  # into Scanner._compiled


class Scanner:
    """Finds secrets, personal data, client terms and injection signatures in text.

    Build once (``Scanner(settings)``), then call :meth:`scan` from any thread.
    """

    def __init__(self, settings: DlpSettings | None = None, *, rules: Sequence[Rule] | None = None):
        self.settings = settings or DlpSettings()
        try:
            chosen = tuple(rules) if rules is not None else builtin_rules(self.settings)
            self._compiled = tuple(self._compile_rule(rule) for rule in chosen)
            compiled = self._compile_database(chosen)
            self._database, self._rare_database, self._triggers, self._timestamps, gates = compiled
        except ScanError:
            raise
        except (re.error, hyperscan.error, ValueError) as exc:
            raise ScanError(f"the DLP rules do not compile: {exc}") from None
        self._gates = gates
        self._prototype = self._database.scratch
        self._rare_prototype = None if self._rare_database is None else self._rare_database.scratch
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(compiled.rule for compiled in self._compiled)

    def _compile_rule(self, rule: Rule) -> _Compiled:
        try:
            pattern = re.compile(rule.pattern)
            context = re.compile(rule.context) if rule.context else None
        except re.error as exc:
            raise ScanError(f"rule {rule.id!r}: invalid pattern ({exc.msg})") from None
        if rule.data_class is not None:
            data_class: str | None = rule.data_class
        elif rule.category is Category.SECRET:
            data_class = self.settings.secret_class
        elif rule.category is Category.PERSONAL:
            data_class = self.settings.personal_class
        else:
            data_class = None
        marked = any(trigger.marks_start for trigger in rule.triggers)
        return _Compiled(rule, pattern, "v" in pattern.groupindex, context, data_class, marked)

    @staticmethod
    def _compile_database(
        rules: tuple[Rule, ...],
    ) -> tuple[
        hyperscan.Database,
        hyperscan.Database | None,
        tuple[tuple[tuple[int, int, int, int], ...], ...],
        tuple[int, int] | None,
        frozenset[int],
    ]:
        """One Hyperscan expression per distinct trigger; each id maps to the (rule index,
        before, after, kind) of every rule that declared it. Rare triggers go to a second
        database (None if there are none), scanned only when a gate fired (the gates' ids are
        the last value). When the numeric rules' shared trigger is there, one more expression
        finds log timestamps (``2026-11-29 17:04:``), whose digits it would otherwise take for a
        number: the fourth value is (timestamp id, number-run id)."""
        ids: dict[tuple[str, bool, int, bool, bool], int] = {}
        targets: list[list[tuple[int, int, int, int]]] = []
        for index, rule in enumerate(rules):
            for trigger in rule.triggers:
                if trigger.gate:
                    kind = _GATE
                elif trigger.marks_start:
                    kind = _MARK
                elif trigger.anchored:
                    kind = _ANCHORED
                else:
                    kind = _WINDOW
                key = (trigger.expression, trigger.caseless, kind, trigger.single, trigger.rare)
                if key not in ids:
                    ids[key] = len(targets)
                    targets.append([])
                if kind != _GATE:
                    targets[ids[key]].append((index, trigger.before, trigger.after, kind))
        if not ids:
            raise ScanError("no DLP rule to compile")
        timestamps: tuple[int, int] | None = None
        number_run = ids.get((NUMBER_RUN, False, _WINDOW, False, False))
        if number_run is not None:
            ids[(TIMESTAMP_RUN, False, _WINDOW, False, False)] = len(targets)
            timestamps = (len(targets), number_run)
            targets.append([])
        gates = frozenset(number for key, number in ids.items() if key[2] == _GATE)
        common = {key: number for key, number in ids.items() if not key[4]}
        rare = {key: number for key, number in ids.items() if key[4]}
        if rare and not gates:
            raise ScanError("rare DLP triggers need a gate trigger")
        database = _build(common, rules, targets)
        rare_database = _build(rare, rules, targets) if rare else None
        return (
            database,
            rare_database,
            tuple(tuple(target) for target in targets),
            timestamps,
            gates,
        )

    def _scratch(self) -> tuple[hyperscan.Scratch, hyperscan.Scratch | None]:
        scratch: tuple[hyperscan.Scratch, hyperscan.Scratch | None] | None = getattr(
            self._local, "scratch", None
        )
        if scratch is None:
            with self._lock:
                rare = self._rare_prototype
                scratch = (self._prototype.clone(), None if rare is None else rare.clone())
            self._local.scratch = scratch
        return scratch

    def scan(self, text: str) -> ScanResult:
        """Scan ``text``. Raises :class:`ScanError` on any failure: block, do not forward."""
        if not isinstance(text, str):
            raise ScanError(f"the DLP scanner scans str, not {type(text).__name__}")
        try:
            return self._scan(text)
        except ScanError:
            raise
        except Exception as exc:  # noqa: BLE001 (fail closed: whatever broke, the caller blocks)
            # ``from None``: a chained exception's message could quote the text.
            raise ScanError(f"the DLP scan failed ({type(exc).__name__})") from None

    def _scan(self, text: str) -> ScanResult:
        if not text:
            return _EMPTY
        data = text.encode("utf-8", "surrogatepass")
        hits: list[tuple[int, int, int]] = []
        append = hits.append

        def on_match(trigger_id: int, start: int, end: int, _flags: int, _ctx: object) -> None:
            append((trigger_id, start, end))

        scratch, rare_scratch = self._scratch()
        self._database.scan(data, match_event_handler=on_match, scratch=scratch)
        if not hits:
            return _EMPTY
        if self._rare_database is not None and any(hit[0] in self._gates for hit in hits):
            self._rare_database.scan(data, match_event_handler=on_match, scratch=rare_scratch)
        triggers = self._triggers
        if self._timestamps is not None:
            stamp_id, run_id = self._timestamps
            stamps = {end for trigger_id, _, end in hits if trigger_id == stamp_id}
            if stamps:  # the digits of a log timestamp are not a number
                hits = [hit for hit in hits if hit[0] != run_id or hit[2] not in stamps]
        # Gates and timestamps open no window: drop them before converting offsets.
        hits = [hit for hit in hits if triggers[hit[0]]]
        if not hits:
            return _EMPTY
        to_char: dict[int, int] | None = None
        if len(data) != len(text):
            offsets = {end for _, _, end in hits} | {start for _, start, _ in hits}
            to_char = _char_offsets(data, sorted(offsets))
        length = len(text)
        windows: dict[int, list[tuple[int, int]]] = {}
        anchors: dict[int, set[tuple[int, int]]] = {}
        marks: dict[int, set[int]] = {}
        for trigger_id, start, end in hits:
            for index, before, after, kind in triggers[trigger_id]:
                if kind == _WINDOW:
                    position = end if to_char is None else to_char[end]
                    windows.setdefault(index, []).append(
                        (max(0, position - before), min(length, position + after))
                    )
                    continue
                position = start if to_char is None else to_char[start]
                if kind == _ANCHORED:
                    anchors.setdefault(index, set()).add((position, min(length, position + after)))
                else:
                    marks.setdefault(index, set()).add(position)
        candidates: set[_Candidate] = set()
        for index, spans in windows.items():
            compiled = self._compiled[index]
            pattern = compiled.pattern
            if compiled.marked:
                points = sorted(marks.get(index, ()))
                for low, high in _merge(spans):
                    at = bisect.bisect_left(points, low)
                    while at < len(points) and points[at] < high:
                        found = pattern.match(text, points[at], high)
                        if found is not None:
                            self._accept(text, index, found, high, candidates)
                        at += 1
                continue
            for low, high in _merge(spans):
                for match in pattern.finditer(text, low, high):
                    self._accept(text, index, match, high, candidates)
        for index, starts in anchors.items():
            pattern = self._compiled[index].pattern
            for low, high in starts:
                found = pattern.match(text, low, high)
                if found is not None:
                    self._accept(text, index, found, high, candidates)
        return self._resolve(candidates)

    def _accept(
        self, text: str, index: int, match: re.Match[str], high: int, out: set[_Candidate]
    ) -> None:
        """Run a pattern match through the allow-lists and checks; keep it if it passes."""
        length = len(text)
        if match.end() == high and high < length:
            return  # cut short by the window: the window of its own trigger holds it whole
        compiled = self._compiled[index]
        rule = compiled.rule
        if compiled.value_group and match.start("v") >= 0:
            start, end = match.span("v")
        else:
            start, end = match.span()
        if start >= end:
            return
        if compiled.context is not None:
            around = (max(0, start - rule.context_before), min(length, end + rule.context_after))
            if compiled.context.search(text, *around) is None:
                return
        if rule.check is not None:  # the rule's own checks first: they reject most candidates
            span = rule.check(text, start, end)
            if span is None:
                return
            start, end = span
        value = text[start:end]
        if value in self.settings.allowed_values:
            return
        if rule.reject_placeholders and (
            is_published_example(value) or is_placeholder(value, sequences=rule.reject_sequences)
        ):
            return
        if rule.min_entropy and shannon_entropy(value) < rule.min_entropy:
            return
        out.add(_Candidate(start, end, index))

    def _resolve(self, candidates: set[_Candidate]) -> ScanResult:
        compiled = self._compiled
        classes = frozenset(
            data_class
            for candidate in candidates
            if (data_class := compiled[candidate.index].data_class) is not None
        )
        injection = any(compiled[c.index].rule.category is Category.INJECTION for c in candidates)
        ranked = sorted(
            candidates,
            key=lambda c: (
                -compiled[c.index].rule.priority,
                c.start - c.end,
                c.start,
                compiled[c.index].rule.id,
                c.index,
            ),
        )
        starts: list[int] = []
        ends: list[int] = []
        kept: list[_Candidate] = []
        for candidate in ranked:
            position = bisect.bisect_left(starts, candidate.start)
            if position > 0 and ends[position - 1] > candidate.start:
                continue
            if position < len(starts) and starts[position] < candidate.end:
                continue
            starts.insert(position, candidate.start)
            ends.insert(position, candidate.end)
            kept.insert(position, candidate)
        findings = tuple(
            Finding(
                rule=compiled[c.index].rule.id,
                category=compiled[c.index].rule.category,
                data_class=compiled[c.index].data_class,
                start=c.start,
                end=c.end,
                client=compiled[c.index].rule.client,
            )
            for c in kept
        )
        return ScanResult(findings=findings, data_classes=classes, injection=injection)


def _build(
    ids: dict[tuple[str, bool, int, bool, bool], int],
    rules: tuple[Rule, ...],
    targets: list[list[tuple[int, int, int, int]]],
) -> hyperscan.Database:
    """A block-mode database of the triggers in ``ids`` (key -> trigger id)."""
    expressions = [key[0].encode("utf-8") for key in ids]
    flags = [
        (hyperscan.HS_FLAG_CASELESS if caseless else 0)
        | (hyperscan.HS_FLAG_SOM_LEFTMOST if kind in (_ANCHORED, _MARK) else 0)
        | (hyperscan.HS_FLAG_SINGLEMATCH if single else 0)
        for _, caseless, kind, single, _ in ids
    ]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        database.compile(expressions=expressions, ids=list(ids.values()), flags=flags)
    except hyperscan.error:
        # Name the rule whose trigger does not compile, then fail.
        for position, (expression, number) in enumerate(
            zip(expressions, ids.values(), strict=True)
        ):
            probe = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            try:
                probe.compile(expressions=[expression], flags=[flags[position]])
            except hyperscan.error as exc:
                owner = rules[targets[number][0][0]].id if targets[number] else "a gate"
                raise ScanError(f"rule {owner!r}: trigger does not compile ({exc})") from None
        raise
    return database


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching windows merged, so that each character is confirmed once."""
    spans.sort()
    merged = [spans[0]]
    for low, high in spans[1:]:
        last_low, last_high = merged[-1]
        if low <= last_high:
            if high > last_high:
                merged[-1] = (last_low, high)
        else:
            merged.append((low, high))
    return merged


def _char_offsets(data: bytes, offsets: list[int]) -> dict[int, int]:
    """Character offset of each byte offset in ``data`` (sorted ascending). A byte offset inside
    a multi-byte character moves forward to the end of that character."""
    result: dict[int, int] = {}
    byte_position = 0
    char_position = 0
    size = len(data)
    for offset in offsets:
        stop = offset
        while stop < size and (data[stop] & 0xC0) == 0x80:
            stop += 1
        if stop > byte_position:
            char_position += len(data[byte_position:stop].decode("utf-8", "surrogatepass"))
            byte_position = stop
        result[offset] = char_position
    return result
