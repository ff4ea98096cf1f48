"""Precision and recall of the DLP scanner per detector type, and false positives on real code.

    python bench/dlp/evaluate.py                    # generate the corpus in memory and score it
    python bench/dlp/evaluate.py --corpus FILE      # score a corpus written by make_corpus.py
    python bench/dlp/evaluate.py --real-source      # also scan installed libraries' source

**Matching.** A prediction matches a label when both have the same type and their character
spans overlap (any overlap). Each label is matched at most once and so is each prediction, in
document order. Unmatched predictions are false positives of their type, unmatched labels false
negatives of theirs. A prediction that overlaps a label of another type is counted as a false
positive of its own type and the label as a false negative of its type (and both are listed as
a confusion). Overlap rather than exact equality, because where a value ends is sometimes a
matter of convention (a trailing ``=`` of base64, a grouping space), while missing or inventing
a value never is.

The person-name tier is off by default; its documents are scored by a second scanner with the
tier on, and only for ``person_name`` (reported separately).

**Real source code.** ``--real-source`` scans every ``.py`` file of a few large libraries
installed in the running environment (SQLAlchemy, Starlette, pydantic, aiohttp, click by
default) and lists every finding by type and file, so that each one can be judged.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_corpus

from passerelle.dlp import DlpSettings, Scanner, TermSet

DEFAULT_LIBRARIES = ("sqlalchemy", "starlette", "pydantic", "aiohttp", "click")


def term_sets() -> tuple[TermSet, ...]:
    return tuple(
        TermSet(client, data_class, terms) for client, data_class, terms in make_corpus.TERM_SETS
    )


def score(
    corpus: list[dict[str, Any]], scanner: Scanner, only: set[str] | None = None
) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    examples: defaultdict[str, list[str]] = defaultdict(list)
    for doc in corpus:
        text = doc["text"]
        labels = [label for label in doc["labels"] if only is None or label["type"] in only]
        predictions = [f for f in scanner.scan(text).findings if only is None or f.rule in only]
        matched_labels: set[int] = set()
        for finding in predictions:
            hit = None
            for index, label in enumerate(labels):
                if index in matched_labels or label["type"] != finding.rule:
                    continue
                if finding.start < label["end"] and label["start"] < finding.end:
                    hit = index
                    break
            if hit is None:
                fp[finding.rule] += 1
                other = [
                    label["type"]
                    for label in labels
                    if finding.start < label["end"] and label["start"] < finding.end
                ]
                if other:
                    confusions[(other[0], finding.rule)] += 1
                if len(examples[finding.rule]) < 5:
                    context = text[max(0, finding.start - 40) : finding.end + 20]
                    examples[finding.rule].append(f"FP {doc['id']}: {context!r}")
            else:
                matched_labels.add(hit)
                tp[finding.rule] += 1
        for index, label in enumerate(labels):
            if index not in matched_labels:
                fn[label["type"]] += 1
                if len(examples[label["type"]]) < 5:
                    context = text[max(0, label["start"] - 40) : label["end"] + 20]
                    examples[label["type"]].append(f"FN {doc['id']}: {context!r}")
    types = sorted(set(tp) | set(fp) | set(fn))
    rows = []
    for kind in types:
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        recall = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        rows.append(
            {
                "type": kind,
                "support": tp[kind] + fn[kind],
                "tp": tp[kind],
                "fp": fp[kind],
                "fn": fn[kind],
                "precision": precision,
                "recall": recall,
            }
        )
    return {
        "rows": rows,
        "confusions": [
            {"label": a, "predicted": b, "count": n} for (a, b), n in confusions.most_common()
        ],
        "examples": dict(examples),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| type | support | TP | FP | FN | precision | recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['type']} | {row['support']} | {row['tp']} | {row['fp']} | {row['fn']} "
            f"| {row['precision']:.3f} | {row['recall']:.3f} |"
        )
    return "\n".join(lines)


def library_files(names: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            print(f"note: {name} is not installed here; skipped", file=sys.stderr)
            continue
        for location in spec.submodule_search_locations:
            files.extend(sorted(Path(location).rglob("*.py")))
    return files


def real_source(scanner: Scanner, names: tuple[str, ...]) -> dict[str, Any]:
    files = library_files(names)
    by_type: Counter[str] = Counter()
    listing: list[dict[str, Any]] = []
    size = 0
    started = time.perf_counter()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        size += len(text.encode("utf-8"))
        for finding in scanner.scan(text).findings:
            by_type[finding.rule] += 1
            line = text.count("\n", 0, finding.start) + 1
            listing.append({"type": finding.rule, "file": _short(path), "line": line})
    elapsed = time.perf_counter() - started
    return {
        "libraries": list(names),
        "files": len(files),
        "bytes": size,
        "seconds": elapsed,
        "findings": sum(by_type.values()),
        "by_type": dict(by_type.most_common()),
        "listing": listing,
    }


def _short(path: Path) -> str:
    parts = path.parts
    return (
        "/".join(parts[parts.index("site-packages") + 1 :])
        if "site-packages" in parts
        else str(path)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=None, help="a JSONL corpus (default: generate)"
    )
    parser.add_argument("--seed", type=int, default=20_240_501)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--per-type", type=int, default=120)
    parser.add_argument("--real-source", action="store_true", help="scan installed libraries too")
    parser.add_argument("--libraries", default=",".join(DEFAULT_LIBRARIES))
    parser.add_argument(
        "--examples", action="store_true", help="print missed and spurious examples"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("bench/results/dlp/evaluation.json")
    )
    args = parser.parse_args()

    if args.corpus:
        corpus = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines()]
    else:
        corpus = make_corpus.generate(args.seed, args.docs, args.per_type)
    main_docs = [doc for doc in corpus if doc["kind"] != "names"]
    name_docs = [doc for doc in corpus if doc["kind"] == "names"]

    scanner = Scanner(DlpSettings(term_sets=term_sets()))
    report: dict[str, Any] = {
        "documents": len(main_docs),
        "labels": sum(len(d["labels"]) for d in main_docs),
    }
    report["default"] = score(main_docs, scanner)
    with_names = Scanner(DlpSettings(term_sets=term_sets(), person_names=True))
    report["person_names"] = score(name_docs, with_names, only={"person_name"})

    print(f"## Detectors ({report['documents']} documents, {report['labels']} labels)\n")
    print(table(report["default"]["rows"]))
    worst = sorted(report["default"]["rows"], key=lambda r: min(r["precision"], r["recall"]))[:5]
    print(
        "\nworst: "
        + ", ".join(f"{r['type']} P={r['precision']:.3f} R={r['recall']:.3f}" for r in worst)
    )
    if report["default"]["confusions"]:
        print(
            "\nconfusions: "
            + ", ".join(
                f"{c['label']}→{c['predicted']} x{c['count']}"
                for c in report["default"]["confusions"]
            )
        )
    print(f"\n## Person names tier ({len(name_docs)} documents)\n")
    print(table(report["person_names"]["rows"]))
    if args.examples:
        for kind, lines in sorted(report["default"]["examples"].items()):
            print(f"\n### {kind}")
            for line in lines:
                print("  " + line)
    if args.real_source:
        libraries = tuple(name for name in args.libraries.split(",") if name)
        report["real_source"] = real_source(Scanner(), libraries)
        result = report["real_source"]
        print(
            f"\n## Real source code: {result['files']} files, {result['bytes'] / 1e6:.1f} MB "
            f"of {', '.join(libraries)} in {result['seconds']:.2f} s\n"
        )
        print(f"{result['findings']} findings: {result['by_type']}")
        for item in result["listing"]:
            print(f"  {item['type']:24} {item['file']}:{item['line']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
