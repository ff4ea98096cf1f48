"""How much latency, throughput and memory does a gateway cost? Passerelle and LiteLLM's proxy
against the same fake OpenAI upstream, on the same machine, in one run.

    .venv/bin/python bench/overhead.py            # full run, about six minutes
    .venv/bin/python bench/overhead.py --quick    # smoke run, about two minutes

For each target (the upstream called directly, then each gateway in front of it), in this order:

1. start-up: spawn to the first successful GET of its health endpoint;
2. warm-up (discarded);
3. open loop at each fixed arrival rate (default 100 and 500 req/s): p50/p99/p99.9 latency,
   measured from the scheduled send time; overhead = target minus direct at the same percentile;
4. streaming, one request at a time: time to the first SSE data event and to the end;
5. closed loop with N connections (default 64): saturation throughput;
6. peak resident memory of the process tree (VmHWM, children included) and CPU used per phase.

Results are printed as Markdown and written to ``bench/results/overhead-<UTC time>.md`` with the
raw figures in a ``.json`` beside it. bench/README.md explains the method and its caveats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import targets
from targets import Endpoint, Process, Unavailable, UpstreamSettings

PROMPT = "Say hello in one short sentence."
ALL_TARGETS = ("direct", "passerelle", "litellm")


@dataclass(frozen=True)
class Plan:
    """Durations in seconds."""

    warmup_s: float
    phase_warmup_s: float
    rate_s: float
    stream_s: float
    saturation_s: float
    pause_s: float
    startup_runs: int
    rates: tuple[float, ...] = (100.0, 500.0)
    connections: int = 64


FULL = Plan(
    warmup_s=5, phase_warmup_s=3, rate_s=20, stream_s=10, saturation_s=15, pause_s=2,
    startup_runs=3,
)  # fmt: skip
QUICK = Plan(
    warmup_s=2, phase_warmup_s=1, rate_s=5, stream_s=3, saturation_s=5, pause_s=1, startup_runs=1
)


# -- CPU placement ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Which CPUs the gateway under test, and the upstream plus load generator, may use."""

    proxy: set[int] | None
    rest: set[int] | None

    def describe(self) -> str:
        if self.proxy is None:
            return "not pinned: every process may run on every CPU"
        return (
            f"gateway under test on CPU {_cpus(self.proxy)}; fake upstream and load generator "
            f"on CPU {_cpus(self.rest or set())}"
        )


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def placement(pin: bool) -> Placement:
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return Placement(None, None)
    # Two CPUs: the gateway gets one to itself, so that its throughput is that of one core and
    # not of whatever the upstream and the generator leave over.
    return Placement({available[0]}, {available[1]})


# -- measuring one target ---------------------------------------------------------------------


async def smoke_test(endpoint: Endpoint) -> None:
    """One plain and one streamed request must work before any load is sent."""
    port = int(endpoint.base_url.split(":")[2].split("/")[0])
    path = "/" + endpoint.base_url.split("/", 3)[3].rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    for stream in (False, True):
        body: dict[str, Any] = {
            "model": endpoint.model,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        if stream:
            body["stream"] = True
        status, payload = await targets.http_request(
            port, "POST", path, headers=headers, body=json.dumps(body).encode(), limit_s=30
        )
        ok = 200 <= status < 300 and (b"[DONE]" in payload if stream else b'"choices"' in payload)
        if not ok:
            kind = "streamed" if stream else "plain"
            raise Unavailable(
                f"a {kind} chat completion through {endpoint.label} failed: HTTP {status}, "
                f"{payload[:600].decode('utf-8', 'replace')}"
            )


def _usage(process: Process | None) -> targets.TreeUsage | None:
    return targets.tree_usage(process.pid) if process is not None else None


class Meter:
    """CPU used by the gateway and the upstream between two points, and the gateway's peak
    memory; read only between phases, never while a phase is measuring."""

    def __init__(self, gateway: Process | None, upstream: Process) -> None:
        self.gateway = gateway
        self.upstream = upstream
        self.peak_hwm_kib = 0
        self.processes = 0

    def snapshot(self) -> tuple[targets.TreeUsage | None, targets.TreeUsage]:
        gateway = _usage(self.gateway)
        if gateway is not None:
            self.peak_hwm_kib = max(self.peak_hwm_kib, gateway.hwm_kib)
            self.processes = max(self.processes, gateway.processes)
        return gateway, targets.tree_usage(self.upstream.pid)

    async def settle(
        self, quiet: float = 0.15, window_s: float = 0.5, limit_s: float = 60.0
    ) -> float:
        """Wait until the gateway is idle again: after an overloaded phase it may still be
        working through requests whose clients have gone. Seconds waited."""
        if self.gateway is None:
            return 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < limit_s:
            before = targets.tree_usage(self.gateway.pid).cpu_s
            await asyncio.sleep(window_s)
            if (targets.tree_usage(self.gateway.pid).cpu_s - before) / window_s < quiet:
                break
        return time.perf_counter() - start

    def cpu_between(
        self,
        before: tuple[targets.TreeUsage | None, targets.TreeUsage],
        after: tuple[targets.TreeUsage | None, targets.TreeUsage],
        wall_s: float,
    ) -> dict[str, float | None]:
        gateway = None
        if before[0] is not None and after[0] is not None:
            gateway = (after[0].cpu_s - before[0].cpu_s) / wall_s
        return {"gateway_cpu": gateway, "upstream_cpu": (after[1].cpu_s - before[1].cpu_s) / wall_s}


async def measure(endpoint: Endpoint, upstream: Process, plan: Plan) -> dict[str, Any]:
    """Every load phase against one running target; raw figures as JSON-ready data."""
    meter = Meter(endpoint.process, upstream)
    plain = loadgen.chat_target(
        endpoint.base_url,
        model=endpoint.model,
        api_key=endpoint.api_key,
        stream=False,
        prompt=PROMPT,
    )
    streamed = loadgen.chat_target(
        endpoint.base_url,
        model=endpoint.model,
        api_key=endpoint.api_key,
        stream=True,
        prompt=PROMPT,
    )
    idle = meter.snapshot()[0]
    out: dict[str, Any] = {"idle_rss_kib": idle.rss_kib if idle else None}

    async def phase(name: str, run: Any) -> dict[str, Any]:
        before, t0 = meter.snapshot(), time.perf_counter()
        result: loadgen.PhaseResult = await run
        after, wall = meter.snapshot(), time.perf_counter() - t0
        figures = result.to_json() | meter.cpu_between(before, after, wall)
        _progress(endpoint.name, name, result)
        figures["settle_s"] = await meter.settle()
        await asyncio.sleep(plan.pause_s)
        return figures

    await phase(
        "warm-up",
        loadgen.closed_loop(plain, connections=4, duration_s=plan.warmup_s, warmup_s=0),
    )
    out["rates"] = {}
    for rate in plan.rates:
        out["rates"][f"{rate:g}"] = await phase(
            f"{rate:g} req/s",
            loadgen.open_loop(
                plain, rate=rate, duration_s=plan.rate_s, warmup_s=plan.phase_warmup_s
            ),
        )
    out["stream"] = await phase(
        "streaming",
        loadgen.closed_loop(streamed, connections=1, duration_s=plan.stream_s, warmup_s=1),
    )
    out["saturation"] = await phase(
        f"saturation, {plan.connections} connections",
        loadgen.closed_loop(
            plain,
            connections=plan.connections,
            duration_s=plan.saturation_s,
            warmup_s=plan.phase_warmup_s,
        ),
    )
    meter.snapshot()
    out["peak_hwm_kib"] = meter.peak_hwm_kib if endpoint.process else None
    out["processes"] = meter.processes if endpoint.process else None
    return out


def _progress(target: str, phase: str, result: loadgen.PhaseResult) -> None:
    lat = result.latency_ms
    extra = ""
    if result.ttfb_ms:
        extra = f", first byte p50 {result.ttfb_ms['p50']:.2f} ms"
    print(
        f"  {target:<11} {phase:<28} {result.throughput:>8,.0f} req/s  p50 {lat['p50']:7.2f} ms  "
        f"p99 {lat['p99']:7.2f} ms{extra}  errors {result.error_count}",
        file=sys.stderr,
        flush=True,
    )


# -- the run ----------------------------------------------------------------------------------


async def run_benchmark(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    place = placement(not args.no_pin)
    if place.rest:
        os.sched_setaffinity(0, place.rest)  # the load generator runs in this process
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-bench-"))
    upstream_settings = UpstreamSettings(
        module=args.upstream_module,
        latency_ms=args.upstream_latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        reply_words=args.reply_words,
    )
    report: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "plan": dataclasses.asdict(plan),
        "machine": machine_info(),
        "placement": place.describe(),
        "upstream": dataclasses.asdict(upstream_settings),
        "prompt": PROMPT,
        "targets": {},
    }
    print(f"benchmark work directory: {workdir}", file=sys.stderr)
    upstream: Process | None = None
    failed = False
    try:
        upstream, upstream_url = await targets.start_upstream(
            upstream_settings, cpus=place.rest, workdir=workdir
        )
        for name in args.targets:
            report["targets"][name] = await run_target(
                name, upstream, upstream_url, place, workdir, plan
            )
    except BaseException:
        failed = True
        raise
    finally:
        if upstream is not None:
            upstream.stop()
        if failed or args.keep_logs:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return report


async def run_target(
    name: str, upstream: Process, upstream_url: str, place: Placement, workdir: Path, plan: Plan
) -> dict[str, Any]:
    print(f"{name}:", file=sys.stderr, flush=True)
    endpoint: Endpoint | None = None
    try:
        if name == "direct":
            endpoint = targets.direct_endpoint(upstream_url)
        else:
            endpoint = await targets.start_gateway(
                name,
                upstream_url,
                cpus=place.proxy,
                workdir=workdir,
                startup_runs=plan.startup_runs,
            )
            print(
                f"  {name:<11} start-up {', '.join(f'{s:.2f}' for s in endpoint.startup_s)} s",
                file=sys.stderr,
            )
        await smoke_test(endpoint)
        figures = await measure(endpoint, upstream, plan)
    except Unavailable as exc:
        print(f"  {name}: SKIPPED: {exc}", file=sys.stderr, flush=True)
        return {"skipped": str(exc)}
    finally:
        if endpoint is not None and endpoint.process is not None:
            endpoint.process.stop()
    return {
        "label": endpoint.label,
        "version": endpoint.version,
        "startup_s": endpoint.startup_s,
        "health_path": endpoint.health_path or None,
        **figures,
    }


# -- machine ----------------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*argv: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "--no-optional-locks", *argv],
            cwd=targets.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout.strip()
    return None


def machine_info() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    litellm = None
    if (targets.LITELLM_ENV / "bin" / "python").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            litellm = subprocess.run(
                [
                    str(targets.LITELLM_ENV / "bin" / "python"),
                    "-c",
                    "import importlib.metadata as m; print(m.version('litellm'))",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.strip()
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "passerelle": _version("passerelle"),
        "passerelle_commit": (commit + ("+changes" if dirty else "")) if commit else None,
        "litellm": litellm,
        "uvicorn": _version("uvicorn"),
        "uvloop": _version("uvloop"),
    }


# -- report -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def _delta(value: float | None, base: float | None) -> str:
    if value is None or base is None or math.isnan(value) or math.isnan(base):
        return "n/a"
    return f"{value - base:+.2f}" if abs(value - base) < 100 else f"{value - base:+.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _mib(kib: int | None) -> str:
    return "n/a" if not kib else f"{kib / 1024:.0f}"


def _errors(figures: dict[str, Any]) -> str:
    errors: dict[str, int] = figures["errors"]
    if not errors:
        return "0"
    return ", ".join(f"{count} {kind}" for kind, count in errors.items())


def overloaded(phase: dict[str, Any]) -> bool:
    """An open-loop phase whose target could not keep up with the arrival rate."""
    rate = phase["target_rate"]
    sent = max(1, phase["sent"])
    errors = sum(phase["errors"].values())
    return bool(phase["throughput"] < 0.95 * rate or errors / sent > 0.01)


def render_markdown(report: dict[str, Any]) -> str:
    m, plan = report["machine"], report["plan"]
    up = report["upstream"]
    measured = {k: v for k, v in report["targets"].items() if "skipped" not in v}
    direct = measured.get("direct")
    lines = [
        f"# Gateway overhead, {report['started_at']} ({report['mode']} run)",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}, Python {m['python']}",
        f"- Versions: passerelle {m['passerelle']} ({m['passerelle_commit'] or 'no git'}), "
        f"litellm {m['litellm'] or 'not installed'}, uvicorn {m['uvicorn']}, uvloop {m['uvloop']}",
        f"- Placement: {report['placement']}",
        f"- Upstream: fake OpenAI server, {up['latency_ms']:g} ms before each answer, "
        f"{up['reply_words']}-word replies, {up['chunk_delay_ms']:g} ms between stream events",
        f"- Plan: open loop {plan['rate_s']:g} s per rate after {plan['phase_warmup_s']:g} s of "
        f"warm-up; saturation {plan['saturation_s']:g} s with {plan['connections']} connections; "
        f"streaming {plan['stream_s']:g} s one request at a time; start-up median of "
        f"{plan['startup_runs']}",
        "",
        "## Throughput and footprint",
        "",
        "| target | saturation (req/s) | errors | gateway CPU | upstream CPU | peak RSS (MiB) "
        "| idle RSS (MiB) | start-up (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in measured.items():
        sat = t["saturation"]
        startup = sorted(t["startup_s"])
        start = f"{startup[len(startup) // 2]:.2f}" if startup else "n/a"
        lines.append(
            f"| {name} | {sat['throughput']:,.0f} | {_errors(sat)} | {_pct(sat['gateway_cpu'])} "
            f"| {_pct(sat['upstream_cpu'])} | {_mib(t['peak_hwm_kib'])} | {_mib(t['idle_rss_kib'])}"
            f" | {start} |"
        )
    lines += [
        "",
        "## Latency at a fixed arrival rate (ms, from the scheduled send time)",
        "",
        "| target | rate (req/s) | achieved | p50 | p99 | p99.9 | overhead p50 | overhead p99 "
        "| overhead p99.9 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    overloaded_rows = 0
    for name, t in measured.items():
        for rate, r in t["rates"].items():
            base = direct["rates"].get(rate) if direct else None
            lat = r["latency_ms"]
            b = base["latency_ms"] if base else {}
            if name == "direct":
                overhead = "baseline | baseline | baseline"
            elif overloaded(r):
                overloaded_rows += 1
                overhead = "overloaded | overloaded | overloaded"
            else:
                overhead = " | ".join(_delta(lat[p], b.get(p)) for p in ("p50", "p99", "p99.9"))
            lines.append(
                f"| {name} | {rate} | {r['throughput']:,.0f} | {_ms(lat['p50'])} "
                f"| {_ms(lat['p99'])} | {_ms(lat['p99.9'])} | {overhead} | {_errors(r)} |"
            )
    if overloaded_rows:
        lines += [
            "",
            "*overloaded*: the target answered fewer requests than were sent (under 95 % of the "
            "rate, or over 1 % errors). Its queue grew for the whole phase, so its latencies "
            "depend on the phase's length and are not an overhead.",
        ]
    lines += [
        "",
        "## Streaming, one request at a time (ms)",
        "",
        "| target | requests | first event p50 | first event p99 | complete p50 | complete p99 "
        "| overhead first event p50 | overhead first event p99 | overhead complete p50 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in measured.items():
        s, b = t["stream"], (direct["stream"] if direct else None)
        if name == "direct":
            overhead = "baseline | baseline | baseline"
        else:
            pairs = [("ttfb_ms", "p50"), ("ttfb_ms", "p99"), ("latency_ms", "p50")]
            overhead = " | ".join(
                _delta(s[kind][p], b[kind][p] if b else None) for kind, p in pairs
            )
        lines.append(
            f"| {name} | {s['ok']} | {_ms(s['ttfb_ms']['p50'])} | {_ms(s['ttfb_ms']['p99'])} "
            f"| {_ms(s['latency_ms']['p50'])} | {_ms(s['latency_ms']['p99'])} | {overhead} "
            f"| {_errors(s)} |"
        )
    lines += [
        "",
        "## The load generator itself",
        "",
        "| target | phase | generator CPU | send lag p50 (ms) | send lag p99 (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, t in measured.items():
        phases = [(f"{rate} req/s", r) for rate, r in t["rates"].items()]
        phases.append(("saturation", t["saturation"]))
        for label, r in phases:
            lag = r["send_lag_ms"]
            lines.append(
                f"| {name} | {label} | {_pct(r['client_cpu'])} | {_ms(lag['p50'])} "
                f"| {_ms(lag['p99'])} |"
            )
    skipped = {k: v["skipped"] for k, v in report["targets"].items() if "skipped" in v}
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {name}: {reason.splitlines()[0]}" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def write_results(report: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(report["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    markdown = output_dir / f"overhead-{stamp}.md"
    raw = output_dir / f"overhead-{stamp}.json"
    markdown.write_text(render_markdown(report), "utf-8")
    raw.write_text(json.dumps(report, indent=2, default=str) + "\n", "utf-8")
    return markdown, raw


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure Passerelle's and LiteLLM's overhead over a fake OpenAI upstream.",
    )
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke run")
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated, from {', '.join(ALL_TARGETS)} (default: all)",
    )
    parser.add_argument("--rates", default=None, help="open-loop rates, e.g. 100,500")
    parser.add_argument("--connections", type=int, default=None, help="saturation concurrency")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=2.0)
    parser.add_argument("--reply-words", type=int, default=32)
    parser.add_argument(
        "--upstream-module",
        default=targets.UPSTREAM_MODULE,
        help="module run with 'python -m' as the fake upstream",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=targets.BENCH_DIR / "results",
        help="where the Markdown and JSON results go (default: bench/results)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(args.targets) - set(ALL_TARGETS))
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    return args


def _shown(path: Path) -> str:
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rates:
        plan = dataclasses.replace(
            plan, rates=tuple(float(r) for r in args.rates.split(",") if r.strip())
        )
    if args.connections:
        plan = dataclasses.replace(plan, connections=args.connections)
    loadgen.raise_fd_limit()
    try:
        report = loadgen.run(run_benchmark(args, plan))
    except Unavailable as exc:
        print(f"error: the fake upstream could not start: {exc}", file=sys.stderr)
        return 2
    markdown, raw = write_results(report, args.output_dir)
    print(render_markdown(report))
    print(f"written: {_shown(markdown)} and {_shown(raw)}")
    measured = [t for t in report["targets"].values() if "skipped" not in t]
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
