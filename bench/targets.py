"""The systems the overhead benchmark runs: how each is configured, started, probed and stopped.

* the fake OpenAI upstream (``passerelle.testing.fake_openai``), which every target talks to;
* ``direct``: the upstream itself, the baseline every overhead is measured against;
* ``passerelle``: the gateway, from this repository's ``.venv``;
* ``litellm``: LiteLLM's proxy from the throwaway environment made by ``bench/setup_litellm.sh``.

Every process is started as the leader of a new process group, with its CPU affinity set before
it runs any code so that its workers inherit the pinning, and is stopped through that group:
nothing else on the machine is touched. A target that cannot be started raises
:class:`Unavailable` with what to do about it; the harness reports it as skipped and goes on
with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
LITELLM_ENV = BENCH_DIR / ".envs" / "litellm"
UPSTREAM_MODULE = "passerelle.testing.fake_openai"
UPSTREAM_MODEL = "gpt-4o-mini"
UPSTREAM_KEY = "bench-upstream-key"  # the fake accepts any key; this one is never a secret
MODEL_ALIAS = "bench-model"
HOST = "127.0.0.1"

# Environment variables that would make a child read something other than what the harness wrote.
_SCRUBBED_ENV = ("DATABASE_URL", "PASSERELLE_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL")


class Unavailable(Exception):
    """A target that cannot run on this machine; the message says how to fix that."""


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(extra or {})
    return env


@dataclass
class Process:
    """A process this harness started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process group this harness created, SIGKILL if it lingers."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cpus: set[int] | None,
    workdir: Path,
) -> Process:
    log_path = workdir / f"{name}.log"
    log = log_path.open("ab")

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    spawned_at = time.perf_counter()
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
            preexec_fn=pin,  # the harness starts no threads, so this is safe here
        )
    except OSError as exc:
        raise Unavailable(f"cannot start {argv[0]}: {exc}") from exc
    finally:
        log.close()
    return Process(name, popen, log_path, spawned_at)


def run_cli(argv: Sequence[str], *, env: dict[str, str], cwd: Path, what: str) -> str:
    """Run a set-up command to completion; its stdout, or Unavailable with its error output."""
    try:
        done = subprocess.run(
            list(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-1500:]
        raise Unavailable(f"{what} failed (exit {done.returncode}):\n{detail}")
    return done.stdout


# -- HTTP probes (one request per connection; never used while measuring) ----------------------


async def http_request(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    limit_s: float = 5.0,
) -> tuple[int, bytes]:
    """A single HTTP/1.1 request with ``Connection: close``; (status, body)."""

    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if body or method == "POST":
                lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        if b"transfer-encoding: chunked" in head.lower():
            payload = _dechunk(payload)
        return status, payload

    return await asyncio.wait_for(exchange(), limit_s)


def _dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


async def wait_healthy(
    process: Process, port: int, path: str, *, limit_s: float = 180.0, interval: float = 0.01
) -> float:
    """Seconds from spawn to the first 2xx answer on ``path``."""
    deadline = process.spawned_at + limit_s
    while time.perf_counter() < deadline:
        if not process.alive():
            raise Unavailable(
                f"{process.name} exited with status {process.popen.returncode} during start-up; "
                f"its log ({process.log_path}) ends with:\n{process.log_tail()}"
            )
        with contextlib.suppress(OSError, asyncio.TimeoutError, ValueError, IndexError):
            status, _ = await http_request(port, "GET", path, limit_s=1.0)
            if 200 <= status < 300:
                return time.perf_counter() - process.spawned_at
        await asyncio.sleep(interval)
    raise Unavailable(f"{process.name} did not answer {path} within {limit_s:.0f} s")


# -- process-tree accounting -------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (scans /proc; call it outside measured windows)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, ()))
    return tree


@dataclass
class TreeUsage:
    """CPU seconds used so far and memory of a process tree; memory in KiB."""

    cpu_s: float = 0.0
    rss_kib: int = 0
    hwm_kib: int = 0
    processes: int = 0


def tree_usage(root: int) -> TreeUsage:
    usage = TreeUsage()
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        usage.cpu_s += (int(stat[11]) + int(stat[12])) / _CLOCK_TICKS  # utime + stime
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                usage.rss_kib += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                usage.hwm_kib += int(line.split()[1])
        usage.processes += 1
    return usage


# -- targets ----------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """What the load generator needs to talk to one system, and what started it."""

    name: str
    label: str
    base_url: str
    model: str
    api_key: str | None
    process: Process | None = None
    port: int = 0
    health_path: str = ""
    startup_s: list[float] = field(default_factory=list)
    version: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UpstreamSettings:
    module: str = UPSTREAM_MODULE
    latency_ms: float = 0.0
    chunk_delay_ms: float = 2.0
    reply_words: int = 32


async def start_upstream(
    settings: UpstreamSettings, *, cpus: set[int] | None, workdir: Path
) -> tuple[Process, str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        settings.module,
        "--host",
        HOST,
        "--port",
        str(port),
        "--latency-ms",
        str(settings.latency_ms),
        "--chunk-delay-ms",
        str(settings.chunk_delay_ms),
        "--reply-words",
        str(settings.reply_words),
    ]
    process = spawn("upstream", argv, env=child_env(), cpus=cpus, workdir=workdir)
    await wait_healthy(process, port, "/v1/models", limit_s=60)
    return process, f"http://{HOST}:{port}/v1"


def direct_endpoint(upstream_url: str) -> Endpoint:
    return Endpoint(
        name="direct",
        label="fake upstream, direct",
        base_url=upstream_url,
        model=UPSTREAM_MODEL,
        api_key=UPSTREAM_KEY,
    )


# Passerelle ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewaySetup:
    """Everything specific to one gateway's command line and configuration."""

    serve_argv: list[str]
    env: dict[str, str]
    api_key: str
    health_path: str
    version: str | None


def prepare_passerelle(
    workdir: Path, upstream_url: str, port: int, extra: dict[str, Any] | None = None
) -> GatewaySetup:
    """Write Passerelle's configuration, create a user and an API key, and say how to serve.

    ``extra`` replaces or adds top-level sections of the configuration (budgets, state...).
    This is the only place that knows Passerelle's configuration schema and CLI.
    """
    bin_dir = Path(sys.executable).parent
    cli = bin_dir / "passerelle"
    if not cli.exists():
        raise Unavailable(f"{cli} not found: run 'make install' at the repository root first")
    config_path = workdir / "passerelle.yaml"
    config = {
        "version": 1,
        "gateway": {"host": HOST, "port": port},
        "storage": {"url": f"sqlite:///{workdir / 'passerelle.db'}", "spool_dir": "spool"},
        "audit": {"key": "env:PASSERELLE_AUDIT_KEY"},
        "providers": {
            "fake": {
                "kind": "openai_compatible",
                "base_url": upstream_url,
                "api_key": "env:FAKE_UPSTREAM_KEY",
                "region": "on-prem",
                "clearance": "restricted",
            }
        },
        "models": {MODEL_ALIAS: {"routes": [{"provider": "fake", "model": UPSTREAM_MODEL}]}},
        "clients": {"internal": {"name": "Internal", "data_class": "internal"}},
        "teams": {"bench": {"name": "Bench"}},
        "projects": {"bench": {"client": "internal", "models": [MODEL_ALIAS]}},
    }
    config.update(extra or {})
    # JSON is YAML: no YAML library needed to write it.
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    env = child_env(
        {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY, "PASSERELLE_AUDIT_KEY": secrets.token_hex(32)}
    )
    base = [str(cli), "--config", str(config_path)]
    user = "bench@example.com"
    run_cli(
        [*base, "users", "add", user, "--team", "bench", "--profile", "dev"],
        env=env,
        cwd=workdir,
        what="passerelle users add",
    )
    key = run_cli(
        [*base, "keys", "create", "--user", user, "--project", "bench", "--quiet"],
        env=env,
        cwd=workdir,
        what="passerelle keys create",
    ).strip()
    if not key or len(key.split()) != 1:
        raise Unavailable(f"passerelle keys create --quiet printed {key!r}, not a single key")
    serve = [*base, "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    return GatewaySetup(serve, env, key, "/healthz", importlib.metadata.version("passerelle"))


# LiteLLM ---------------------------------------------------------------------------------------

_LITELLM_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}

# LiteLLM fetches several data files from GitHub at start-up unless told to use its bundled
# copies; without network access each fetch retries for seconds. Telemetry is off as well.
_LITELLM_OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",  # do not load a .env file from the working directory
}


def prepare_litellm(workdir: Path, upstream_url: str, port: int) -> GatewaySetup:
    cli = LITELLM_ENV / "bin" / "litellm"
    python = LITELLM_ENV / "bin" / "python"
    if not cli.exists():
        raise Unavailable(
            "LiteLLM is not installed for the benchmark: run 'bash bench/setup_litellm.sh' "
            "(it creates bench/.envs/litellm, which git ignores)"
        )
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = {
        "model_list": [
            {
                "model_name": MODEL_ALIAS,
                "litellm_params": {
                    "model": f"openai/{UPSTREAM_MODEL}",
                    "api_base": upstream_url,
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False, "json_logs": False},
        "general_settings": {"master_key": master_key},
    }
    config_path = workdir / "litellm.yaml"
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    logging_path = workdir / "litellm-logging.json"
    logging_path.write_text(json.dumps(_LITELLM_LOGGING, indent=2) + "\n", "utf-8")
    env = child_env(_LITELLM_OFFLINE_ENV)
    version = run_cli(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        env=env,
        cwd=workdir,
        what="reading LiteLLM's version",
    ).strip()
    serve = [
        str(cli),
        "--config",
        str(config_path),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
        "--log_config",
        str(logging_path),
    ]
    return GatewaySetup(serve, env, master_key, "/health/readiness", version)


PREPARE: dict[str, tuple[str, Callable[[Path, str, int], GatewaySetup]]] = {
    "passerelle": ("Passerelle", prepare_passerelle),
    "litellm": ("LiteLLM proxy", prepare_litellm),
}


async def start_gateway(
    name: str,
    upstream_url: str,
    *,
    cpus: set[int] | None,
    workdir: Path,
    startup_runs: int = 1,
) -> Endpoint:
    """Prepare and start a gateway; start-up is measured ``startup_runs`` times and the last
    process is left running for the load phases."""
    label, prepare = PREPARE[name]
    target_dir = workdir / name
    target_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    setup = prepare(target_dir, upstream_url, port)
    endpoint = Endpoint(
        name=name,
        label=label,
        base_url=f"http://{HOST}:{port}/v1",
        model=MODEL_ALIAS,
        api_key=setup.api_key,
        port=port,
        health_path=setup.health_path,
        version=setup.version,
    )
    for run in range(startup_runs):
        process = spawn(name, setup.serve_argv, env=setup.env, cpus=cpus, workdir=target_dir)
        try:
            endpoint.startup_s.append(await wait_healthy(process, port, setup.health_path))
        except BaseException:
            process.stop()
            raise
        if run < startup_runs - 1:
            process.stop()
        else:
            endpoint.process = process
    return endpoint
