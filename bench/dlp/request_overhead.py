"""What the data policy adds to one request: in process, then through a running gateway.

    python bench/dlp/request_overhead.py            # about a minute
    python bench/dlp/request_overhead.py --quick

Two measurements, for a chat completion whose prompt is 1 KB and 20 KB of the typical mix of
throughput.py (prose, real Python source and logs, a planted secret or personal value about every
8 KB; a 1 KB prompt usually holds none):

- **in process**: the data-policy step (walk the body, one scan, classify, route; rewrite when
  something must be pseudonymized) plus the answer side (scan and restore a 32-word answer), timed
  directly, p50 and p99 over thousands of calls. This is the DLP work itself, without noise.
- **end to end**: ``passerelle serve`` with DLP on, then with DLP off (``dlp: {enabled: false}``),
  both running, in front of the fake OpenAI upstream, one request at a time to each in turn
  over kept-alive connections (so that whatever else the machine does falls on both alike); the
  added latency is the difference of the medians. The gateways are pinned to CPU 0, the
  upstream and this client to CPU 1, as in bench/overhead.py.

Results are printed as Markdown and written to bench/results/dlp/request-overhead-<UTC>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import targets  # noqa: E402
import throughput  # noqa: E402

from passerelle.config import parse_config  # noqa: E402
from passerelle.config.schema import ModelKind  # noqa: E402
from passerelle.core.context import KeyScope, Principal, RequestContext  # noqa: E402
from passerelle.errors import WireFormat  # noqa: E402
from passerelle.pipeline.answers import AnswerFilter  # noqa: E402
from passerelle.pipeline.data_policy import DataPolicy  # noqa: E402
from passerelle.pipeline.decisions import Rewrite  # noqa: E402
from passerelle.pipeline.routing import Router  # noqa: E402
from passerelle.pipeline.scanning import ScannerHandle, dlp_settings  # noqa: E402
from passerelle.pipeline.steps import PipelineRequest  # noqa: E402
from passerelle.providers.registry import build_providers  # noqa: E402

SIZES = (1_000, 20_000)
CONFIG = """\
version: 1
providers:
  eu: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
       clearance: confidential}
  onprem: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: on-prem,
           clearance: restricted}
models:
  chat: {routes: [{provider: eu, model: m}, {provider: onprem, model: m}]}
clients:
  bank: {name: Bank, data_class: internal, terms: [Banque Horizon, Project Falcon]}
projects:
  bench: {client: bank, models: [chat]}
policy:
  not_cleared: {confidential: pseudonymize, restricted: redact}
"""
ANSWER = (
    "Here is a short answer of about thirty words, the kind a model sends back for a small "
    "question, with a [EMAIL_1] placeholder in it so that restoring has something to do."
)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def prompts(seed: int) -> dict[int, str]:
    rng = random.Random(seed)
    code = throughput.source_lines()
    return {size: throughput.typical_prompt(rng, size, code) for size in SIZES}


def in_process(texts: dict[int, str], calls: int) -> dict[str, Any]:
    config = parse_config(CONFIG)
    handle = ScannerHandle(dlp_settings(config))
    assert handle.join(), handle.problem()
    router = Router(config, build_providers(config, {}))
    policy = DataPolicy(config, handle, router)
    scanner = handle.scanner()
    principal = Principal("k", "psk", "u", "dev@example.com", None, None, "bench", "bank",
                          KeyScope.INFERENCE)  # fmt: skip
    answer_body = orjson.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}]}
    )
    results: dict[str, Any] = {"scanner_build_s": handle.build_seconds}
    for size, text in texts.items():
        body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
        request_side: list[float] = []
        answer_side: list[float] = []
        decision = None
        for _ in range(calls):
            ctx = RequestContext("req", WireFormat.OPENAI, "/v1/chat/completions")
            ctx.principal = principal
            ctx.model_alias = "chat"
            request = PipelineRequest(ctx, body, ModelKind.CHAT)
            started = time.perf_counter()
            decision = policy.decide(request)
            request_side.append(time.perf_counter() - started)
            vault = decision.vault if isinstance(decision, Rewrite) else None
            started = time.perf_counter()
            answer = AnswerFilter(vault, collect=True)
            answer.body(answer_body)
            answer.findings(scanner)
            answer_side.append(time.perf_counter() - started)
        found = policy.scan(body).counts()
        results[f"{size}"] = {
            "bytes": len(text.encode("utf-8")),
            "findings": found,
            "decision": type(decision).__name__,
            "request_p50_us": statistics.median(request_side) * 1e6,
            "request_p99_us": percentile(request_side, 0.99) * 1e6,
            "answer_p50_us": statistics.median(answer_side) * 1e6,
            "answer_p99_us": percentile(answer_side, 0.99) * 1e6,
        }
    return results


def _serve(workdir: Path, upstream_url: str, dlp: bool, pin: bool) -> targets.Endpoint:
    port = targets.free_port()
    setup = targets.prepare_passerelle(workdir, upstream_url, port)
    config_path = workdir / "passerelle.yaml"
    config = json.loads(config_path.read_text("utf-8"))
    config["dlp"] = {"enabled": dlp}
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    process = targets.spawn(
        "passerelle", setup.serve_argv, env=setup.env, cpus={0} if pin else None, workdir=workdir
    )
    asyncio.run(targets.wait_healthy(process, port, setup.health_path, limit_s=60))
    return targets.Endpoint(
        name="passerelle",
        label="passerelle",
        base_url=f"http://{targets.HOST}:{port}/v1",
        model=targets.MODEL_ALIAS,
        api_key=setup.api_key,
        process=process,
        port=port,
    )


def _timed_post(client: httpx.Client, endpoint: targets.Endpoint, body: bytes) -> float:
    headers = {"authorization": f"Bearer {endpoint.api_key}", "content-type": "application/json"}
    started = time.perf_counter()
    response = client.post(endpoint.base_url + "/chat/completions", content=body, headers=headers)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def _alternating(
    endpoints: dict[bool, targets.Endpoint], text: str, requests: int
) -> dict[bool, list[float]]:
    """One request to each gateway in turn, so that whatever else the machine does falls on
    both alike; the first 50 of each are warm-up (connections, caches, the scanner's first use)."""
    body = orjson.dumps(
        {
            "model": targets.MODEL_ALIAS,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
        }
    )
    samples: dict[bool, list[float]] = {False: [], True: []}
    with httpx.Client(timeout=30) as off_client, httpx.Client(timeout=30) as on_client:
        clients = {False: off_client, True: on_client}
        for index in range(requests + 50):
            for dlp in (index % 2 == 0, index % 2 == 1):
                elapsed = _timed_post(clients[dlp], endpoints[dlp], body)
                if index >= 50:
                    samples[dlp].append(elapsed)
    return samples


def end_to_end(texts: dict[int, str], requests: int, pin: bool) -> dict[str, Any]:
    if pin:
        import os

        os.sched_setaffinity(0, {1})
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="passerelle-dlp-bench-") as tmp:
        root = Path(tmp)
        settings = targets.UpstreamSettings(chunk_delay_ms=0.0)
        upstream, upstream_url = asyncio.run(
            targets.start_upstream(settings, cpus={1} if pin else None, workdir=root)
        )
        endpoints: dict[bool, targets.Endpoint] = {}
        try:
            for dlp in (False, True):
                workdir = root / ("dlp-on" if dlp else "dlp-off")
                workdir.mkdir()
                endpoints[dlp] = _serve(workdir, upstream_url, dlp, pin)
            measured = {
                size: _alternating(endpoints, text, requests) for size, text in texts.items()
            }
        finally:
            for endpoint in endpoints.values():
                assert endpoint.process is not None
                endpoint.process.stop()
            upstream.stop()
    for size in texts:
        off, on = measured[size][False], measured[size][True]
        results[f"{size}"] = {
            "requests": requests,
            "dlp_off_p50_us": statistics.median(off) * 1e6,
            "dlp_on_p50_us": statistics.median(on) * 1e6,
            "added_p50_us": (statistics.median(on) - statistics.median(off)) * 1e6,
            "dlp_off_p99_us": percentile(off, 0.99) * 1e6,
            "dlp_on_p99_us": percentile(on, 0.99) * 1e6,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--no-e2e", action="store_true", help="only the in-process measurement")
    args = parser.parse_args()
    texts = prompts(args.seed)
    calls, requests = (300, 300) if args.quick else (3000, 2000)
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": throughput.machine(),
        "in_process": in_process(texts, calls),
    }
    if not args.no_e2e:
        report["end_to_end"] = end_to_end(texts, requests, pin=not args.no_pin)
    print("| prompt | findings | step p50 / p99 (µs) | answer p50 / p99 (µs) |")
    print("|---|---|---:|---:|")
    for size in SIZES:
        row = report["in_process"][f"{size}"]
        print(
            f"| {size // 1000} KB | {throughput_found(row['findings'])} | "
            f"{row['request_p50_us']:.0f} / {row['request_p99_us']:.0f} | "
            f"{row['answer_p50_us']:.0f} / {row['answer_p99_us']:.0f} |"
        )
    if "end_to_end" in report:
        print()
        print("| prompt | DLP off p50 (µs) | DLP on p50 (µs) | added p50 (µs) |")
        print("|---|---:|---:|---:|")
        for size in SIZES:
            row = report["end_to_end"][f"{size}"]
            print(
                f"| {size // 1000} KB | {row['dlp_off_p50_us']:.0f} | {row['dlp_on_p50_us']:.0f}"
                f" | {row['added_p50_us']:.0f} |"
            )
    out = Path("bench/results/dlp")
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"request-overhead-{stamp}.json"
    path.write_text(json.dumps(report, indent=2), "utf-8")
    print(f"\nwritten to {path}")


def throughput_found(found: dict[str, int]) -> str:
    return ", ".join(f"{n} {rule}" for rule, n in sorted(found.items())) or "none"


if __name__ == "__main__":
    main()
