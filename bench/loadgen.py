"""A small, cheap HTTP/1.1 load generator for the overhead benchmark.

Two ways to load a server:

* **open loop** (``rate`` requests per second): requests are sent on a fixed schedule whatever
  the server does, and latency is measured from the *scheduled* send time. A server that stalls
  therefore pays for every request that should have been sent during the stall, instead of the
  stall hiding behind a client that politely waited (coordinated omission). Connections are
  opened as needed, up to ``max_connections``; past that, requests queue in the client and the
  wait still counts.
* **closed loop** (``connections`` concurrent connections): each connection sends its next request
  as soon as the previous answer is complete. This finds saturation throughput.

Why not aiohttp or wrk: a proxy written in Python saturates at a few thousand requests per second,
and the load generator shares a core with the fake upstream, so it must cost as little as
possible. Requests are pre-encoded bytes written on raw asyncio transports (uvloop when
available) and answers are parsed by httptools, the C parser uvicorn uses; no per-request
coroutine, future or header dictionary is created. ``python bench/loadgen.py self-test`` measures
what the generator itself can do on this machine.

Percentiles are exact: every sample is kept and sorted (nearest-rank), so p99.9 is a real sample,
not a histogram bucket. Only 2xx answers count as successes; anything else (status, connection
error, truncated stream, request still unanswered when the drain deadline passes) is an error,
counted by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

now = time.perf_counter

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


# -- statistics -------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (the value below which pct% fall)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Percentiles, mean and max of samples given in seconds, reported in milliseconds."""
    values = sorted(samples_s)
    summary = {f"p{pct:g}": percentile(values, pct) * 1000.0 for pct in PERCENTILES}
    summary["mean"] = (sum(values) / len(values) * 1000.0) if values else math.nan
    summary["max"] = values[-1] * 1000.0 if values else math.nan
    summary["count"] = float(len(values))
    return summary


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to send requests and the exact bytes of one request."""

    host: str
    port: int
    payload: bytes
    stream: bool = False

    @classmethod
    def build(
        cls,
        url: str,
        *,
        method: str = "POST",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http:// URLs are supported, not {url!r}")
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return cls(parts.hostname, port, head + body, stream)


def chat_target(
    base_url: str, *, model: str, api_key: str | None, stream: bool, prompt: str
) -> Target:
    """A chat completion request in the OpenAI wire format against ``base_url`` (ending in /v1)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if stream:
        headers["Accept"] = "text/event-stream"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return Target.build(
        base_url.rstrip("/") + "/chat/completions",
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers=headers,
        stream=stream,
    )


# -- recording --------------------------------------------------------------------------------


class Recorder:
    """Keeps the samples of the measured window; everything before ``window_start`` is warm-up.

    A request belongs to the window if it was *scheduled* (open loop) or *sent* (closed loop)
    inside it, so requests sent during warm-up never pollute the figures.
    """

    def __init__(self) -> None:
        self.window_start = math.inf
        self.window_end = math.inf
        self.latencies: list[float] = []
        self.ttfb: list[float] = []
        self.send_lag: list[float] = []
        self.errors: dict[str, int] = {}
        self.completed_in_window = 0

    def in_window(self, scheduled: float) -> bool:
        return self.window_start <= scheduled < self.window_end

    def success(self, scheduled: float, sent: float, first_byte: float, done: float) -> None:
        if not self.in_window(scheduled):
            return
        # Late sends are charged to the server (coordinated omission); a send up to a timer
        # tick early is measured from when it actually left.
        origin = min(scheduled, sent)
        self.latencies.append(done - origin)
        self.send_lag.append(max(0.0, sent - scheduled))
        if first_byte:
            self.ttfb.append(first_byte - origin)
        if done < self.window_end:
            self.completed_in_window += 1

    def error(self, scheduled: float, kind: str) -> None:
        if self.in_window(scheduled):
            self.errors[kind] = self.errors.get(kind, 0) + 1


# -- connections ------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.scheduled = 0.0
        self.sent = 0.0
        self.first_byte = 0.0
        self.status = 0
        self.tail = b""
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad-http")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self._fail("connection-closed")
        self.pool.lost(self)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.pool.target.stream:
            return
        if not self.first_byte and b"data:" in self.tail + body:
            self.first_byte = now()
        self.tail = (self.tail + body)[-32:]

    def on_message_complete(self) -> None:
        done = now()
        self.busy = False
        recorder = self.pool.recorder
        if not 200 <= self.status < 300:
            recorder.error(self.scheduled, f"http-{self.status}")
        elif self.pool.target.stream and b"[DONE]" not in self.tail:
            recorder.error(self.scheduled, "stream-without-done")
        else:
            recorder.success(self.scheduled, self.sent, self.first_byte, done)
        self.pool.finished()
        if self.parser.should_keep_alive():
            self.pool.ready(self)
        else:
            self.close()

    # used by the pool
    def send(self, scheduled: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.scheduled = scheduled
        self.first_byte = 0.0
        self.status = 0
        self.tail = b""
        self.sent = now()
        self.transport.write(self.pool.target.payload)

    def _fail(self, kind: str) -> None:
        self.busy = False
        self.pool.recorder.error(self.scheduled, kind)
        self.pool.finished()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class _Pool:
    """Idle connections, requests waiting for one, and connections being opened."""

    def __init__(
        self,
        target: Target,
        recorder: Recorder,
        max_connections: int,
        next_request: Callable[[], float | None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.target = target
        self.recorder = recorder
        self.max_connections = max_connections
        self.next_request = next_request  # closed loop: what a freed connection sends next
        self.idle: list[_Connection] = []
        self.pending: deque[float] = deque()
        self.connections: set[_Connection] = set()
        self.opening = 0
        self.peak_connections = 0
        self.outstanding = 0  # submitted and not yet answered or failed
        self.drained = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def finished(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.drained.set()

    def begun(self) -> None:
        self.outstanding += 1
        self.drained.clear()

    def submit(self, scheduled: float) -> None:
        self.begun()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                conn.send(scheduled)
                return
        self.pending.append(scheduled)
        if len(self.connections) + self.opening < self.max_connections:
            self.opening += 1
            task = self.loop.create_task(self._open())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open(self) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.target.host, self.target.port
            )
        except OSError as exc:
            self.opening -= 1
            if self.pending:
                self.recorder.error(self.pending.popleft(), f"connect-{type(exc).__name__}")
                self.finished()
            return
        self.opening -= 1
        self.connections.add(conn)
        self.peak_connections = max(self.peak_connections, len(self.connections))
        self.ready(conn)

    def ready(self, conn: _Connection) -> None:
        if self.pending:
            conn.send(self.pending.popleft())
            return
        if self.next_request is not None:
            scheduled = self.next_request()
            if scheduled is not None:
                self.begun()
                conn.send(scheduled)
                return
        self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if self.pending and len(self.connections) + self.opening < self.max_connections:
            self.opening += 1
            task = self.loop.create_task(self._open())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def abandon(self) -> None:
        """Count what is still unanswered as errors and close every connection."""
        for scheduled in self.pending:
            self.recorder.error(scheduled, "unanswered")
            self.finished()
        self.pending.clear()
        for conn in list(self.connections):
            if conn.busy:
                conn._fail("unanswered")
            conn.close()
        self.idle.clear()


# -- runs -------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """What one load phase measured; times in milliseconds, rates per second."""

    mode: str
    stream: bool
    target_rate: float | None
    connections: int
    warmup_s: float
    duration_s: float
    sent: int
    ok: int
    errors: dict[str, int]
    throughput: float
    latency_ms: dict[str, float]
    ttfb_ms: dict[str, float] | None
    send_lag_ms: dict[str, float]
    peak_connections: int
    client_cpu: float = field(metadata={"doc": "load generator CPU, fraction of one core"})

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def _drain(pool: _Pool, limit_s: float) -> None:
    """Wait for the answers still due, at most ``limit_s``; what is left counts as errors."""
    if pool.outstanding:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.drained.wait(), limit_s)
    pool.abandon()
    await asyncio.sleep(0)


def _result(
    mode: str,
    target: Target,
    recorder: Recorder,
    pool: _Pool,
    *,
    rate: float | None,
    connections: int,
    warmup_s: float,
    duration_s: float,
    cpu_s: float,
    wall_s: float,
) -> PhaseResult:
    ok = len(recorder.latencies)
    errors = dict(sorted(recorder.errors.items()))
    return PhaseResult(
        mode=mode,
        stream=target.stream,
        target_rate=rate,
        connections=connections,
        warmup_s=warmup_s,
        duration_s=duration_s,
        sent=ok + sum(errors.values()),
        ok=ok,
        errors=errors,
        throughput=recorder.completed_in_window / duration_s,
        latency_ms=summarize_ms(recorder.latencies),
        ttfb_ms=summarize_ms(recorder.ttfb) if target.stream else None,
        send_lag_ms=summarize_ms(recorder.send_lag),
        peak_connections=pool.peak_connections,
        client_cpu=cpu_s / wall_s if wall_s > 0 else math.nan,
    )


async def open_loop(
    target: Target,
    *,
    rate: float,
    duration_s: float,
    warmup_s: float = 2.0,
    max_connections: int = 512,
    drain_s: float = 10.0,
) -> PhaseResult:
    """Send ``rate`` requests per second on a fixed schedule for warm-up plus duration."""
    recorder = Recorder()
    pool = _Pool(target, recorder, max_connections)
    interval = 1.0 / rate
    total = round((warmup_s + duration_s) * rate)
    cpu0, wall0 = time.process_time(), now()
    start = now() + 0.01
    recorder.window_start = start + warmup_s
    recorder.window_end = start + warmup_s + duration_s
    for i in range(total):
        scheduled = start + i * interval
        # uvloop rounds timers to whole milliseconds, so this may wake up to a millisecond
        # early; the recorder then measures from the actual send (see Recorder.success).
        delay = scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        pool.submit(scheduled)
    await _drain(pool, drain_s)
    cpu, wall = time.process_time() - cpu0, now() - wall0
    return _result(
        "open",
        target,
        recorder,
        pool,
        rate=rate,
        connections=max_connections,
        warmup_s=warmup_s,
        duration_s=duration_s,
        cpu_s=cpu,
        wall_s=wall,
    )


async def closed_loop(
    target: Target,
    *,
    connections: int,
    duration_s: float,
    warmup_s: float = 2.0,
    drain_s: float = 10.0,
) -> PhaseResult:
    """Keep ``connections`` requests in flight for warm-up plus duration."""
    recorder = Recorder()
    stop_at = 0.0

    def next_request() -> float | None:
        t = now()
        return t if t < stop_at else None

    pool = _Pool(target, recorder, connections, next_request)
    cpu0, wall0 = time.process_time(), now()
    start = now()
    stop_at = start + warmup_s + duration_s
    recorder.window_start = start + warmup_s
    recorder.window_end = stop_at
    for _ in range(connections):
        pool.submit(now())
    await asyncio.sleep(max(0.0, stop_at - now()))
    await _drain(pool, drain_s)
    cpu, wall = time.process_time() - cpu0, now() - wall0
    return _result(
        "closed",
        target,
        recorder,
        pool,
        rate=None,
        connections=connections,
        warmup_s=warmup_s,
        duration_s=duration_s,
        cpu_s=cpu,
        wall_s=wall,
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, through uvicorn[standard]); the default loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run(coro: Any) -> Any:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def raise_fd_limit() -> None:
    """Open-loop runs against a stalled server may need hundreds of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536)
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# -- self-test --------------------------------------------------------------------------------

_CANNED_BODY = b'{"object":"chat.completion"}'
_CANNED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_CANNED_BODY),
    _CANNED_BODY,
)


class _CannedServer(asyncio.Protocol):
    """Answers every request with the same bytes: the cheapest server possible, so that a
    self-test measures the load generator and not the server."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(_CANNED)


def _serve_canned(port: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_CannedServer, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    run(main())


def self_test(args: argparse.Namespace) -> int:
    """Measure the generator against a canned-answer server on another core."""
    import multiprocessing

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    client_cpu = cpus[1] if len(cpus) > 1 else None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_canned, args=(port, server_cpu), daemon=True
    )
    server.start()
    try:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        deadline = now() + 10
        while now() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        target = chat_target(
            f"http://127.0.0.1:{port}/v1", model="m", api_key="k", stream=False, prompt="hi"
        )
        print(f"canned server on cpu {server_cpu}, load generator on cpu {client_cpu}")
        closed = run(
            closed_loop(
                target, connections=args.connections, duration_s=args.duration, warmup_s=1.0
            )
        )
        print(
            f"closed loop, {args.connections} connections: {closed.throughput:,.0f} req/s, "
            f"generator CPU {closed.client_cpu:.0%} of a core, errors {closed.error_count}"
        )
        for rate in args.rates:
            opened = run(open_loop(target, rate=rate, duration_s=args.duration, warmup_s=1.0))
            lag = opened.send_lag_ms
            print(
                f"open loop {rate:,.0f} req/s: generator CPU {opened.client_cpu:.1%} of a core, "
                f"send lag p50 {lag['p50']:.3f} ms p99 {lag['p99']:.3f} ms, "
                f"latency p50 {opened.latency_ms['p50']:.3f} ms p99 {opened.latency_ms['p99']:.3f}"
                f" ms, errors {opened.error_count}"
            )
    finally:
        server.terminate()
        server.join(5)
    return 0


# -- command line -----------------------------------------------------------------------------


def _print_result(result: PhaseResult) -> None:
    print(json.dumps(result.to_json(), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    load = sub.add_parser("load", help="load an OpenAI-compatible endpoint and print JSON")
    load.add_argument("base_url", help="e.g. http://127.0.0.1:4000/v1")
    load.add_argument("--model", default="gpt-4o-mini")
    load.add_argument("--api-key", default=os.environ.get("LOADGEN_API_KEY"))
    load.add_argument("--stream", action="store_true")
    load.add_argument("--prompt", default="Say hello in one short sentence.")
    load.add_argument("--rate", type=float, help="open loop at this many requests per second")
    load.add_argument("--connections", type=int, default=64, help="closed loop concurrency")
    load.add_argument("--duration", type=float, default=10.0)
    load.add_argument("--warmup", type=float, default=2.0)

    test = sub.add_parser("self-test", help="measure the generator against a canned server")
    test.add_argument("--connections", type=int, default=64)
    test.add_argument("--duration", type=float, default=5.0)
    test.add_argument("--rates", type=float, nargs="*", default=[500.0, 1000.0])

    args = parser.parse_args(argv)
    raise_fd_limit()
    if args.command == "self-test":
        return self_test(args)
    target = chat_target(
        args.base_url,
        model=args.model,
        api_key=args.api_key,
        stream=args.stream,
        prompt=args.prompt,
    )
    if args.rate:
        result = run(
            open_loop(target, rate=args.rate, duration_s=args.duration, warmup_s=args.warmup)
        )
    else:
        result = run(
            closed_loop(
                target, connections=args.connections, duration_s=args.duration, warmup_s=args.warmup
            )
        )
    _print_result(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
