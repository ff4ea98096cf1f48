"""Run Presidio's AnalyzerEngine and Yelp's detect-secrets over the benchmark prompts.

Runs inside the throwaway environment made by setup_peers.sh (never Passerelle's), started by
throughput.py as a subprocess:

    bench/.envs/dlp-peers/bin/python bench/dlp/peers.py PROMPTS.json [--engine presidio]

``PROMPTS.json`` is ``{"mix": [str, ...], "latency": str, "dense": [str, ...]}``. Prints one JSON
object per engine on standard output, with the same measurements as throughput.py makes for
Passerelle: MB/s over the mix (one thread), per-call latency on the 20 KB prompt.

- detect-secrets: every plugin of its default settings and its default filters, the pipeline
  ``detect-secrets scan`` runs on a file once it has read its lines (its line-based plugin pass,
  ``_process_line_based_plugins``; its ad-hoc ``scan_line`` is far slower and noisier, as it
  searches eagerly and drops filters).
- Presidio: ``AnalyzerEngine`` with its default recognizer registry, language ``en``. The NLP
  engine is spaCy; with no model installable from PyPI (see setup_peers.sh) it is a blank
  English pipeline, so the NER recognizer finds nothing and costs only tokenization: what is
  measured is Presidio's pattern, checksum and context machinery, a lower bound of its cost
  with a real model.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def measure(scan: Callable[[str], int], mix: list[str], latency: str, budget_s: float) -> dict:
    """MB/s over ``mix`` (whole passes, at least one, until ``budget_s``), and latency of
    ``latency`` (repeated until ``budget_s`` or 200 calls)."""
    total = sum(len(text.encode("utf-8")) for text in mix)
    scan(mix[0])  # warm up
    passes = 0
    findings = 0
    started = time.perf_counter()
    while True:
        findings = sum(scan(text) for text in mix)
        passes += 1
        if time.perf_counter() - started >= budget_s:
            break
    elapsed = time.perf_counter() - started
    samples = []
    started = time.perf_counter()
    while len(samples) < 200 and (len(samples) < 5 or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        scan(latency)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return {
        "mb_per_s": total * passes / elapsed / 1e6,
        "findings_per_pass": findings,
        "latency_20kb_p50_ms": statistics.median(samples) * 1e3,
        "latency_20kb_p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3,
        "latency_samples": len(samples),
    }


def detect_secrets_engine() -> tuple[Callable[[str], int], dict]:
    import importlib.metadata

    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    context = default_settings()
    context.__enter__()  # entered for the life of the process: scan() keeps it referenced

    def scan(text: str, _settings: object = context) -> int:
        # What `detect-secrets scan` does to each file once it has read its lines.
        lines = list(enumerate(text.splitlines(), start=1))
        return sum(1 for _ in _process_line_based_plugins(lines=lines, filename="prompt.txt"))

    return scan, {"version": importlib.metadata.version("detect-secrets")}


def presidio_engine() -> tuple[Callable[[str], int], dict]:
    import importlib.metadata

    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    model_file = Path(sys.prefix) / "SPACY_MODEL"
    model = model_file.read_text().strip() if model_file.exists() else "blank:en"
    if model == "blank:en":
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank_en"}])
        engine.nlp = {"en": spacy.blank("en")}
    else:
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])

    def scan(text: str) -> int:
        return len(analyzer.analyze(text=text, language="en"))

    return scan, {
        "version": importlib.metadata.version("presidio-analyzer"),
        "spacy_pipeline": model,
        "recognizers": sorted(r.name for r in analyzer.registry.recognizers),
    }


ENGINES = {"detect-secrets": detect_secrets_engine, "presidio": presidio_engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompts", type=Path)
    parser.add_argument("--engine", choices=sorted(ENGINES), action="append")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per measurement")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # tldextract complains it cannot reach the internet
    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    for name in args.engine or sorted(ENGINES):
        scan, info = ENGINES[name]()
        result = {"engine": name, **info}
        result.update(measure(scan, prompts["mix"], prompts["latency"], args.budget))
        dense = measure(scan, prompts["dense"], prompts["latency"], args.budget / 2)
        result["dense_mb_per_s"] = dense["mb_per_s"]
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
