"""The one place that talks HTTP to upstream providers.

aiohttp is the client: it keeps pooled keep-alive connections, streams bodies as they arrive,
and costs a fraction of what higher-level clients cost per request, which matters because every
microsecond here is gateway overhead. Every network failure is mapped to one of the
:class:`TransportError` types below; nothing else in Passerelle imports aiohttp's client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL


class TransportError(Exception):
    """The upstream could not be reached or stopped answering. Never carries a secret."""

    retryable = True
    kind = "transport"


class ConnectFailed(TransportError):
    kind = "connect_failed"


class ReadTimeout(TransportError):
    kind = "timeout"


class Disconnected(TransportError):
    kind = "disconnected"


class EmptyStream(Disconnected):
    """A stream whose body ended before its first byte, cleanly or not."""

    kind = "stream_empty"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float
    read_s: float


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read or streamed on demand."""

    def __init__(self, response: aiohttp.ClientResponse, read_s: float) -> None:
        self._response = response
        self._read_s = read_s
        self._first: bytes | None = None
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (a larger body is a Disconnected error)."""
        try:
            body = await self._response.content.read(limit + 1)
        except TimeoutError as exc:
            raise ReadTimeout(f"no data from upstream for {self._read_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise Disconnected(f"upstream connection lost: {type(exc).__name__}") from exc
        finally:
            self.release()
        if len(body) > limit:
            raise Disconnected(f"upstream body larger than {limit} bytes")
        return body

    async def first_chunk(self) -> bytes:
        """Wait for the first bytes of the body (within the read timeout), which
        :meth:`iter_chunks` then yields first. A body that breaks, stalls or ends before any
        byte raises a TransportError and drops the connection: for a stream, that is the moment
        up to which another route can still take the call."""
        try:
            chunk = await self._response.content.readany()
        except TimeoutError as exc:
            self.close()
            raise ReadTimeout(f"no first byte from upstream within {self._read_s:g} s") from exc
        except aiohttp.ClientError as exc:
            self.close()
            raise Disconnected(f"upstream connection lost: {type(exc).__name__}") from exc
        except BaseException:  # cancelled (the caller left): drop the connection, re-raise
            self.close()
            raise
        if not chunk:
            self.close()
            raise EmptyStream("upstream ended the stream before its first byte")
        self._first = chunk
        return chunk

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, with no re-buffering."""
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise ReadTimeout(f"no data from upstream for {self._read_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise Disconnected(f"upstream connection lost: {type(exc).__name__}") from exc
        finally:
            self.release()

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        """Drop the connection (used when a stream is abandoned half-way)."""
        self._response.close()


class Transport:
    """A pooled HTTP client shared by every provider. Create inside the running event loop."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Parsed once: providers call a handful of URLs, and parsing one costs more than a
        # dictionary lookup on every request.
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
            # Drop idle connections before the server does: many close them after 5 s, and a
            # request sent on a connection the server is closing at that moment fails with no
            # answer. aiohttp's default (15 s) made that race likely on quiet routes.
            keepalive_timeout=4.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            trust_env=False,
            # Upstream cookies are never sent back: a provider must not track callers through us.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> UpstreamResponse:
        """Send a request and wait for the response headers."""
        if self._session is None:
            raise RuntimeError("Transport.start() was not awaited")
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
            )
            self._timeouts[timeouts] = timeout
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = URL(url, encoded=True)  # sent exactly as built (and as signed)
            if len(self._urls) < 1024:  # bounded: model names can be part of a URL
                self._urls[url] = parsed
        try:
            response = await self._session.request(
                method,
                parsed,
                headers=headers,
                data=body,
                timeout=timeout,
                allow_redirects=False,
            )
        except TimeoutError as exc:
            raise ReadTimeout(f"no answer from upstream within {timeouts.read_s:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"cannot connect to {exc.host}:{exc.port}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise Disconnected(f"upstream closed the connection: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise Disconnected(f"upstream error: {type(exc).__name__}") from exc
        return UpstreamResponse(response, timeouts.read_s)
