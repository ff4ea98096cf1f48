"""A lean HTTP/1.1 client for upstream calls: keep-alive connections, parsed by httptools.

Why not a general-purpose client: a gateway's upstream calls are all alike (one request, a body
already in memory, an answer read whole or relayed as it arrives, to a handful of hosts), and
every microsecond of client code is overhead on every request. aiohttp's client spent about
150 to 220 µs of CPU per call on the reference machine, a quarter of the gateway's own work;
this one spends about 40 to 70. It does what the gateway needs and no more:

- HTTP/1.1 over TCP or TLS (certificates verified against the system's store), one request at
  a time per connection, connections kept alive and reused per (scheme, host, port);
- the response parser is llhttp (Node.js's parser) through ``httptools``, the one uvicorn uses
  for the server side: chunked and fixed-length bodies, bodies that end with the connection;
- a connect timeout, and a read timeout between any two arrivals of data (the headers
  included), kept by one timer per connection that is re-armed only when it fires;
- at most ``max_connections`` open connections; idle ones are closed after ``keepalive_s``,
  before servers drop them (many do after 5 s, and a request sent on a connection being closed
  fails with no answer);
- no redirects, no cookies, no decompression, no proxies from the environment: an upstream
  answer reaches the caller as the provider sent it.

Request header names and values are checked for line breaks (header injection); a body always
goes with its ``Content-Length`` (never chunked).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """Base of the client's errors; the transport maps each to its own error types."""


class ConnectError(HttpError):
    pass


class ConnectTimeout(HttpError):
    pass


class ReadTimeoutError(HttpError):
    pass


class ConnectionLost(HttpError):
    pass


class BadRequest(HttpError):
    """The request cannot be written (a line break in a header, an unsupported URL)."""


# Idle connections are checked when a request looks for one, and closed past this age.
KEEPALIVE_S = 4.0
# Past this many body bytes waiting for the reader, the socket is paused.
_HIGH_WATER = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively. A header sent several times is joined
    with ``, `` as RFC 9110 allows."""

    __slots__ = ("_items",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        items: dict[str, str] = {}
        for raw_name, raw_value in pairs:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1").strip()
            items[name] = f"{items[name]}, {value}" if name in items else value
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({sorted(self._items)})"


class _Target:
    """A parsed URL: where to connect and what to put on the request line."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise BadRequest(f"unsupported upstream URL scheme or host: {scheme or 'none'}://")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise BadRequest("the upstream URL has an invalid port") from None
        self.host = parts.hostname
        self.port = port
        self.tls = scheme == "https"
        self.key = (scheme, self.host, port)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        if any(c in path for c in " \r\n"):
            raise BadRequest("the upstream URL holds a space or a line break")
        # The request line's target and the Host header, written once per URL.
        self.head = (path, authority)


def _header_lines(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        if any(c in name for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
            raise BadRequest(f"header {name.strip()[:40]!r} holds a forbidden character")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the state of the response in progress lives here too."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        # The response in progress.
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.headers: Headers | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self.complete = False
        self.reusable = False
        self._error: HttpError | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Read timeout: one timer, re-armed when it fires if data came meanwhile.
        self._read_s = 0.0
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without inheriting from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(ConnectionLost("the upstream sent an invalid HTTP response"))
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/1.1 has no half-closed answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self.headers is not None and not self.complete and self._error is None:
            # A body without a length ends with the connection.
            with contextlib.suppress(httptools.HttpParserError):
                self._parser.feed_data(b"")
            if not self.complete and not self._parser.should_keep_alive() and self._no_length():
                self.on_message_complete()
        if not self.complete:
            self._fail(ConnectionLost("the upstream closed the connection"))
        self._cancel_timer()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._raw_headers = []
            return
        self.status = status
        self.headers = Headers(self._raw_headers)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers is None:  # the end of an interim answer
            return
        self.complete = True
        self.reusable = self._parser.should_keep_alive() and not self.closed
        self._cancel_timer()
        self._wake()

    # -- the request in progress ---------------------------------------------------------------

    def start(self, data: bytes, read_s: float) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionLost("the upstream closed the connection")
        self._raw_headers = []
        self.status = 0
        self.headers = None
        self._chunks.clear()
        self._buffered = 0
        self.complete = False
        self.reusable = False
        self._error = None
        self._read_s = read_s
        self._last_data = self._loop.time()
        self._timer = self._loop.call_at(self._last_data + read_s, self._check_timeout)
        self.transport.write(data)

    async def wait_headers(self) -> None:
        while self.headers is None:
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The next body bytes, or ``b""`` at the end of the body."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _HIGH_WATER // 2:
                    self._paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                return chunk
            if self.complete:
                return b""
            await self._wait()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: HttpError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _check_timeout(self) -> None:
        self._timer = None
        if self.complete or self.closed:
            return
        deadline = self._last_data + self._read_s
        now = self._loop.time()
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._check_timeout)
            return
        self._fail(ReadTimeoutError(f"no data from upstream for {self._read_s:g} s"))
        self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _no_length(self) -> bool:
        headers = self.headers
        return (
            headers is not None
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )

    @property
    def unread(self) -> bool:
        """Body bytes arrived that nobody read: the connection cannot serve another request."""
        return bool(self._chunks)

    def release(self) -> None:
        self._pool.release(self)

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self._pool.forget(self)


class Response:
    """An answer whose headers have arrived. Read the body with :meth:`next_chunk`, then call
    :meth:`release` (the connection goes back to the pool if the body was read to its end) or
    :meth:`close`."""

    __slots__ = ("_connection", "headers", "status")

    def __init__(self, connection: _Connection) -> None:
        self._connection: _Connection | None = connection
        assert connection.headers is not None
        self.status = connection.status
        self.headers: Headers = connection.headers

    async def next_chunk(self) -> bytes:
        connection = self._connection
        if connection is None:
            return b""
        return await connection.next_chunk()

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.release()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()

    def __del__(self) -> None:  # never read nor released: do not leave the socket behind
        connection = getattr(self, "_connection", None)
        if connection is not None and not connection.closed:
            connection.abort()


class Pool:
    """Keep-alive connections per (scheme, host, port). Create inside the running loop."""

    def __init__(self, *, max_connections: int = 1000, keepalive_s: float = KEEPALIVE_S) -> None:
        self.loop = asyncio.get_running_loop()
        self._max = max_connections
        self._keepalive_s = keepalive_s
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._connecting = 0
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def target(self, url: str) -> _Target:
        parsed = self._targets.get(url)
        if parsed is None:
            parsed = _Target(url)
            if len(self._targets) < 1024:  # bounded: model names can be part of a URL
                self._targets[url] = parsed
        return parsed

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        connect_s: float,
        read_s: float,
    ) -> Response:
        """Send a request and wait for its answer's headers."""
        if self._closed:
            raise ConnectionLost("the upstream client is closed")
        target = self.target(url)
        path, authority = target.head
        payload = body or b""
        # A request without content whose method expects none sends no Content-Length, as
        # RFC 9110 asks of user agents; every other one sends it, even when it is 0.
        length = (
            "" if body is None and method in _NO_BODY else f"Content-Length: {len(payload)}\r\n"
        )
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{_header_lines(headers)}{length}\r\n"
        ).encode()
        connection = self._take_idle(target.key) or await self._connect(target, connect_s)
        try:
            if len(payload) < 65536:
                connection.start(head + payload, read_s)
            else:  # no copy of a large body
                connection.start(head, read_s)
                assert connection.transport is not None
                connection.transport.write(payload)
            await connection.wait_headers()
        except BaseException:
            connection.abort()
            raise
        return Response(connection)

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest = self.loop.time() - self._keepalive_s
        while idle:
            connection = idle.pop()  # the most recent: the least likely to be closing
            if not connection.closed and connection.idle_since > oldest:
                return connection
            connection.abort()
        return None

    async def _connect(self, target: _Target, connect_s: float) -> _Connection:
        """A new connection, or an idle one to the same host freed while waiting for room."""
        while len(self._open) + self._connecting >= self._max:
            reused = self._take_idle(target.key)
            if reused is not None:
                return reused
            if self._evict_one():
                continue
            waiter = self.loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)
        ssl_context: ssl.SSLContext | None = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            ssl_context = self._tls
        self._connecting += 1
        try:
            async with asyncio.timeout(connect_s):
                _, protocol = await self.loop.create_connection(
                    lambda: _Connection(self, target.key),
                    target.host,
                    target.port,
                    ssl=ssl_context,
                    server_hostname=target.host if ssl_context is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"cannot connect to {target.host}:{target.port} within {connect_s:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(
                f"cannot connect to {target.host}:{target.port} ({type(exc).__name__})"
            ) from None
        finally:
            self._connecting -= 1
            self._wake_slot()
        if protocol.closed:
            raise ConnectionLost("the upstream closed the connection at once")
        self._open.add(protocol)
        return protocol

    def _evict_one(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.popleft().abort()
                return True
        return False

    def _wake_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, connection: _Connection) -> None:
        """Back to the idle list if its answer was read to the end and it may be kept."""
        if (
            connection.closed
            or not connection.complete
            or not connection.reusable
            or connection.unread
            or self._closed
        ):
            connection.abort()
            return
        connection.idle_since = self.loop.time()
        self._idle.setdefault(connection.key, deque()).append(connection)
        self._wake_slot()

    def forget(self, connection: _Connection) -> None:
        """A connection closed: it no longer counts."""
        if connection in self._open:
            self._open.discard(connection)
            self._wake_slot()
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    async def close(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost
