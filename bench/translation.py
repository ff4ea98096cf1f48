"""What does translating between wire formats cost, next to a same-format passthrough?

    .venv/bin/python bench/translation.py            # about two minutes
    .venv/bin/python bench/translation.py --quick    # about forty seconds

One Passerelle process (pinned to CPU 0) fronts three fake upstreams (pinned to CPU 1 with the
load generator): OpenAI, Anthropic and Gemini, each streaming a 32-word reply in events 2 ms
apart. The load generator speaks OpenAI Chat Completions, so:

* ``openai -> openai``    is a passthrough (events relayed untouched);
* ``openai -> anthropic`` decodes Anthropic events and encodes chat chunks, event by event;
* ``openai -> gemini``    does the same from Gemini's stream.

For each route, one request at a time (no queueing), streamed and not: time to the first byte
and to the end of the answer, and the gateway's CPU per request read from ``/proc`` (all its
threads: the relay, the translation, the audit writer). The fakes' own pacing is the same for
all three, so the differences are the gateway's. Results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen
import targets

ROUTES = {
    "openai -> openai (passthrough)": "via-openai",
    "openai -> anthropic (translated)": "via-anthropic",
    "openai -> gemini (translated)": "via-gemini",
}
FAKES = {
    "openai": ("passerelle.testing.fake_openai", "/v1/models"),
    "anthropic": ("passerelle.testing.fake_anthropic", "/v1/models"),
    "gemini": ("passerelle.testing.fake_gemini", "/v1beta/models"),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def start_fakes(workdir: Path, cpus: set[int] | None) -> tuple[dict[str, str], list[Any]]:
    urls: dict[str, str] = {}
    processes = []
    for name, (module, health) in FAKES.items():
        port = targets.free_port()
        argv = [
            sys.executable, "-m", module, "--host", targets.HOST, "--port", str(port),
            "--chunk-delay-ms", "2", "--reply-words", "32",
        ]  # fmt: skip
        process = targets.spawn(name, argv, env=targets.child_env(), cpus=cpus, workdir=workdir)
        await targets.wait_healthy(process, port, health, limit_s=60)
        urls[name] = f"http://{targets.HOST}:{port}"
        processes.append(process)
    return urls, processes


def write_config(workdir: Path, urls: dict[str, str], port: int) -> Path:
    config = {
        "version": 1,
        "gateway": {"host": targets.HOST, "port": port},
        "storage": {"url": f"sqlite:///{workdir / 'passerelle.db'}", "spool_dir": "spool"},
        "audit": {"key": "env:PASSERELLE_AUDIT_KEY"},
        "providers": {
            "oai": {"kind": "openai", "base_url": urls["openai"] + "/v1",
                    "api_key": "env:FAKE_KEY", "region": "eu", "clearance": "restricted"},
            "claude": {"kind": "anthropic", "base_url": urls["anthropic"],
                       "api_key": "env:FAKE_KEY", "region": "eu", "clearance": "restricted"},
            "gem": {"kind": "gemini", "base_url": urls["gemini"],
                    "api_key": "env:FAKE_KEY", "region": "eu", "clearance": "restricted"},
        },
        "models": {
            "via-openai": {"routes": [{"provider": "oai", "model": "gpt-4o-mini"}]},
            "via-anthropic": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-6"}]},
            "via-gemini": {"routes": [{"provider": "gem", "model": "gemini-2.5-flash"}]},
        },
        "clients": {"internal": {"name": "Internal", "data_class": "internal"}},
        "projects": {"bench": {"client": "internal", "models": ["*"]}},
    }  # fmt: skip
    path = workdir / "passerelle.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    return path


async def measure(
    base_url: str, key: str, model: str, stream: bool, seconds: float, pid: int
) -> dict[str, Any]:
    target = loadgen.chat_target(base_url, model=model, api_key=key, stream=stream, prompt="Hello")
    await loadgen.closed_loop(target, connections=1, duration_s=1.0, warmup_s=0.5)
    before = cpu_seconds(pid)
    result = await loadgen.closed_loop(target, connections=1, duration_s=seconds, warmup_s=0.0)
    used = cpu_seconds(pid) - before
    return {
        "requests": result.ok,
        "errors": result.errors,
        "total_ms": result.latency_ms,
        "ttfb_ms": result.ttfb_ms,
        "cpu_us_per_request": round(used * 1e6 / max(result.ok, 1)),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pin = len(os.sched_getaffinity(0)) >= 2 and not args.no_pin
    cpus = sorted(os.sched_getaffinity(0))
    gateway_cpus, rest_cpus = ({cpus[0]}, {cpus[1]}) if pin else (None, None)
    if rest_cpus:
        os.sched_setaffinity(0, rest_cpus)  # the load generator shares CPU 1 with the fakes
    with tempfile.TemporaryDirectory(prefix="passerelle-translation-") as tmp:
        workdir = Path(tmp)
        urls, fakes = await start_fakes(workdir, rest_cpus)
        gateway = None
        try:
            port = targets.free_port()
            config = write_config(workdir, urls, port)
            env = targets.child_env(
                {"FAKE_KEY": "bench-upstream-key", "PASSERELLE_AUDIT_KEY": secrets.token_hex(32)}
            )
            cli = [str(Path(sys.executable).parent / "passerelle"), "--config", str(config)]
            targets.run_cli([*cli, "users", "add", "bench@example.com"], env=env, cwd=workdir,
                            what="users add")  # fmt: skip
            key = targets.run_cli(
                [*cli, "keys", "create", "--user", "bench@example.com", "--project", "bench",
                 "--quiet"], env=env, cwd=workdir, what="keys create",
            ).strip()  # fmt: skip
            serve = [*cli, "serve", "--host", targets.HOST, "--port", str(port),
                     "--log-level", "warning"]  # fmt: skip
            gateway = targets.spawn(
                "passerelle", serve, env=env, cpus=gateway_cpus, workdir=workdir
            )
            await targets.wait_healthy(gateway, port, "/healthz")
            base = f"http://{targets.HOST}:{port}/v1"
            results: dict[str, Any] = {}
            for label, model in ROUTES.items():
                for stream in (True, False):
                    name = f"{label}, {'streamed' if stream else 'not streamed'}"
                    results[name] = await measure(
                        base, key, model, stream, args.seconds, gateway.pid
                    )
                    print(name, json.dumps(results[name]), flush=True)
            return {"placement": "pinned" if pin else "not pinned", "results": results}
        finally:
            if gateway is not None:
                gateway.stop()
            for process in fakes:
                process.stop()


def report(data: dict[str, Any]) -> str:
    lines = [
        f"Translation overhead ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {data['placement']})",
        "",
        "| route | requests | TTFB p50 (ms) | total p50 (ms) | total p99 (ms) "
        "| gateway CPU / request (µs) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in data["results"].items():
        ttfb = r["ttfb_ms"]["p50"] if r["ttfb_ms"] else float("nan")
        lines.append(
            f"| {name} | {r['requests']} | {ttfb:.2f} | {r['total_ms']['p50']:.2f} | "
            f"{r['total_ms']['p99']:.2f} | {r['cpu_us_per_request']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per phase instead of 10")
    parser.add_argument("--no-pin", action="store_true", help="let the kernel place processes")
    args = parser.parse_args()
    args.seconds = 3.0 if args.quick else 10.0
    loadgen.raise_fd_limit()
    started = time.time()
    data = loadgen.run(main_async(args))
    text = report(data)
    print(text)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"translation-{stamp}.md").write_text(text, "utf-8")
    (out / f"translation-{stamp}.json").write_text(json.dumps(data, indent=2), "utf-8")
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
