"""What do budgets, rate limits and the response cache cost on the request path?

    .venv/bin/python bench/limits.py            # full run, about five minutes
    .venv/bin/python bench/limits.py --quick    # smoke run, about two minutes

The same gateway configuration is measured with and without them, against the fake OpenAI
upstream, in one run:

* ``none``: no budget, no rate limit, no cache (the baseline);
* ``budgets+limits, memory``: three budgets (user, project, client) and three rate limits (key
  rpm and tpm, model tpm) on every request, counted in the process;
* ``budgets+limits, redis``: the same, counted in Redis (one admission script, one reservation
  script, one settlement per request);
* ``cache hits, memory``: the cache on and every request the same, so every one is a hit;
* ``3 instances, none`` and ``3 instances, budgets+limits, redis``: three ``passerelle serve``
  processes sharing PostgreSQL (and Redis), the load spread evenly over them.

Limits are set far above the load: what is measured is the bookkeeping, not refusals. For each
variant: an open loop at a fixed rate (p50 and p99 latency, overhead against the upstream called
directly) and a closed loop (saturation throughput). Results are printed as Markdown and written to
``bench/results/limits-<UTC time>.md`` and ``.json``.

Needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (user postgres, trust), or
``--redis-url`` / ``--postgres-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import psycopg
import targets
from targets import Process, UpstreamSettings

PROMPT = "Say hello in one short sentence."

BUDGETS = [
    {"scope": "user", "period": "day", "hard_usd": 1_000_000},
    {"scope": "project", "period": "month", "soft_usd": 900_000, "hard_usd": 1_000_000},
    {"scope": "client", "period": "month", "hard_usd": 1_000_000},
]
RATE_LIMITS = [
    {"scope": "key", "rpm": 10_000_000, "tpm": 10_000_000_000},
    {"scope": "model", "tpm": 10_000_000_000},
]
PRICES = {f"openai_compatible/{targets.UPSTREAM_MODEL}": {"input": 150_000, "output": 600_000}}


@dataclass(frozen=True)
class Variant:
    name: str
    instances: int
    limits: bool
    redis: bool
    cache: bool


VARIANTS = (
    Variant("none", 1, limits=False, redis=False, cache=False),
    Variant("budgets+limits, memory", 1, limits=True, redis=False, cache=False),
    Variant("budgets+limits, redis", 1, limits=True, redis=True, cache=False),
    Variant("cache hits, memory", 1, limits=False, redis=False, cache=True),
    Variant("3 instances, none", 3, limits=False, redis=False, cache=False),
    Variant("3 instances, budgets+limits, redis", 3, limits=True, redis=True, cache=False),
)


def _database(admin_url: str) -> str:
    """A fresh PostgreSQL database for the three instances to share."""
    name = f"passerelle_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _configure(
    workdir: Path, upstream_url: str, variant: Variant, args: argparse.Namespace
) -> tuple[targets.GatewaySetup, list[int]]:
    ports = [targets.free_port() for _ in range(variant.instances)]
    extra: dict[str, Any] = {"prices": PRICES}
    if variant.instances > 1:
        url = _database(args.postgres_url)
        extra["storage"] = {"url": url, "spool_dir": "spool"}
    if variant.limits:
        extra["budgets"] = BUDGETS
        extra["rate_limits"] = RATE_LIMITS
    if variant.redis:
        extra["state"] = {
            "backend": "redis",
            "redis_url": args.redis_url,
            "key_prefix": f"passerelle-bench:{secrets.token_hex(4)}:",
        }
    if variant.cache:
        extra["cache"] = {"enabled": True}
    return targets.prepare_passerelle(workdir, upstream_url, ports[0], extra), ports


async def _start(setup: targets.GatewaySetup, ports: list[int], workdir: Path) -> list[Process]:
    processes = []
    for port in ports:
        argv = list(setup.serve_argv)
        argv[argv.index("--port") + 1] = str(port)
        process = targets.spawn(
            f"passerelle-{port}", argv, env=setup.env, cpus=None, workdir=workdir
        )
        processes.append(process)
    for process, port in zip(processes, ports, strict=True):
        await targets.wait_healthy(process, port, "/readyz", limit_s=60)
    return processes


async def _phase(
    urls: list[str], key: str | None, *, rate: float | None, seconds: float, warmup: float
) -> dict[str, Any]:
    """One phase spread evenly over ``urls``; the worst instance's percentiles are kept."""
    runs = []
    for url in urls:
        target = loadgen.chat_target(
            url,
            model=targets.MODEL_ALIAS if key else targets.UPSTREAM_MODEL,
            api_key=key or targets.UPSTREAM_KEY,
            stream=False,
            prompt=PROMPT,
        )
        if rate is not None:
            runs.append(
                loadgen.open_loop(
                    target, rate=rate / len(urls), duration_s=seconds, warmup_s=warmup
                )
            )
        else:
            runs.append(
                loadgen.closed_loop(
                    target, connections=max(1, 32 // len(urls)), duration_s=seconds, warmup_s=warmup
                )
            )
    results: list[loadgen.PhaseResult] = list(await asyncio.gather(*runs))
    return {
        "p50_ms": max(r.latency_ms["p50"] for r in results),
        "p99_ms": max(r.latency_ms["p99"] for r in results),
        "throughput": sum(r.throughput for r in results),
        "errors": sum(r.error_count for r in results),
        "sent": sum(r.sent for r in results),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rate_s, sat_s, warm = (5.0, 4.0, 1.0) if args.quick else (15.0, 10.0, 2.0)
    report: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rate": args.rate,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="passerelle-bench-") as tmp:
        root = Path(tmp)
        upstream, upstream_url = await targets.start_upstream(
            UpstreamSettings(), cpus=None, workdir=root
        )
        try:
            direct_rate = await _phase(
                [upstream_url], None, rate=args.rate, seconds=rate_s, warmup=warm
            )
            report["direct"] = direct_rate
            print(f"direct: p50 {direct_rate['p50_ms']:.2f} ms, p99 {direct_rate['p99_ms']:.2f} ms")
            for variant in VARIANTS:
                if args.only and not any(word in variant.name for word in args.only.split(",")):
                    continue
                workdir = root / variant.name.replace(" ", "_").replace(",", "")
                workdir.mkdir()
                setup, ports = _configure(workdir, upstream_url, variant, args)
                processes = await _start(setup, ports, workdir)
                urls = [f"http://{targets.HOST}:{port}/v1" for port in ports]
                try:
                    await _phase(urls, setup.api_key, rate=None, seconds=2.0, warmup=0.5)
                    open_loop = await _phase(
                        urls, setup.api_key, rate=args.rate, seconds=rate_s, warmup=warm
                    )
                    closed = await _phase(
                        urls, setup.api_key, rate=None, seconds=sat_s, warmup=warm
                    )
                finally:
                    for process in processes:
                        process.stop()
                figures = {
                    "instances": variant.instances,
                    "open": open_loop,
                    "saturation_rps": closed["throughput"],
                    "saturation_errors": closed["errors"],
                    "overhead_p50_ms": open_loop["p50_ms"] - direct_rate["p50_ms"],
                    "overhead_p99_ms": open_loop["p99_ms"] - direct_rate["p99_ms"],
                }
                report["variants"][variant.name] = figures
                print(
                    f"{variant.name}: p50 +{figures['overhead_p50_ms']:.2f} ms, "
                    f"p99 +{figures['overhead_p99_ms']:.2f} ms, "
                    f"{figures['saturation_rps']:.0f} req/s, errors {open_loop['errors']}"
                    f"+{closed['errors']}"
                )
        finally:
            upstream.stop()
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# Budgets, rate limits and cache on the request path ({report['started']})",
        "",
        f"Open loop at {report['rate']:g} req/s; saturation with 32 connections in total. "
        f"Upstream called directly: p50 {report['direct']['p50_ms']:.2f} ms, "
        f"p99 {report['direct']['p99_ms']:.2f} ms. {report['machine']['cpus']} CPUs.",
        "",
        "| variant | instances | p50 overhead | p99 overhead | saturation | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in report["variants"].items():
        lines.append(
            f"| {name} | {v['instances']} | +{v['overhead_p50_ms']:.2f} ms "
            f"| +{v['overhead_p99_ms']:.2f} ms | {v['saturation_rps']:.0f} req/s "
            f"| {v['open']['errors'] + v['saturation_errors']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--only", default="", help="comma-separated words a variant must contain")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    loadgen.raise_fd_limit()
    report = loadgen.run(run(args))
    text = render(report)
    print(text)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"limits-{stamp}.md").write_text(text, "utf-8")
    (out / f"limits-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
