"""The one place that talks HTTP to upstream providers.

The client is :mod:`passerelle.providers.http1`: pooled keep-alive connections, bodies streamed
as they arrive, and a fraction of a general-purpose client's cost per call, which matters
because every microsecond here is gateway overhead. Every network failure is mapped to one of
the :class:`TransportError` types below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from passerelle.providers import http1


class TransportError(Exception):
    """The upstream could not be reached or stopped answering. Never carries a secret.

    The resilience layer (pipeline/resilience.py) retries and falls back on every kind alike;
    ``kind`` is what the audit record's attempt says."""

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


class InvalidRequest(TransportError):
    """The request cannot be sent as built (a line break in a header value, say). Another
    route, with its own headers, may still take the call."""

    kind = "invalid_request"


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float
    read_s: float


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read or streamed on demand."""

    def __init__(self, response: http1.Response, read_s: float) -> None:
        self._response = response
        self._read_s = read_s
        self._first: bytes | None = None
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (a larger body is a Disconnected error)."""
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await self._response.next_chunk():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    self.close()
                    raise Disconnected(f"upstream body larger than {limit} bytes")
        except http1.HttpError as exc:
            self.close()
            raise _mapped(exc, self._read_s) from None
        except BaseException:
            self.close()
            raise
        self.release()
        return b"".join(parts)

    async def first_chunk(self) -> bytes:
        """Wait for the first bytes of the body (within the read timeout), which
        :meth:`iter_chunks` then yields first. A body that breaks, stalls or ends before any
        byte raises a TransportError and drops the connection: for a stream, that is the moment
        up to which another route can still take the call."""
        try:
            chunk = await self._response.next_chunk()
        except http1.ReadTimeoutError:
            self.close()
            raise ReadTimeout(f"no first byte from upstream within {self._read_s:g} s") from None
        except http1.ConnectionLost:
            self.close()
            raise EmptyStream("upstream ended the stream before its first byte") from None
        except http1.HttpError as exc:
            self.close()
            raise _mapped(exc, self._read_s) from None
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
        finished = False
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            while chunk := await self._response.next_chunk():
                yield chunk
            finished = True
        except http1.HttpError as exc:
            raise _mapped(exc, self._read_s) from None
        finally:
            if finished:
                self.release()
            else:  # broken, or abandoned half-way: the connection cannot be reused
                self.close()

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        """Drop the connection (used when a stream is abandoned half-way)."""
        self._response.close()


def _mapped(exc: http1.HttpError, read_s: float) -> TransportError:
    """The transport's error for one of the client's; messages never hold a secret."""
    if isinstance(exc, http1.ReadTimeoutError):
        return ReadTimeout(f"no data from upstream for {read_s:g} s")
    if isinstance(exc, http1.ConnectError | http1.ConnectTimeout):
        return ConnectFailed(str(exc))
    if isinstance(exc, http1.BadRequest):
        return InvalidRequest(str(exc))
    return Disconnected(f"upstream connection lost: {exc}")


class Transport:
    """A pooled HTTP client shared by every provider. Create inside the running event loop."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._max_connections = max_connections
        self._pool: http1.Pool | None = None

    async def start(self) -> None:
        self._pool = http1.Pool(max_connections=self._max_connections)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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
        if self._pool is None:
            raise RuntimeError("Transport.start() was not awaited")
        try:
            response = await self._pool.request(
                method,
                url,
                headers,
                body,
                connect_s=timeouts.connect_s,
                read_s=timeouts.read_s,
            )
        except http1.ReadTimeoutError:
            raise ReadTimeout(f"no answer from upstream within {timeouts.read_s:g} s") from None
        except http1.HttpError as exc:
            raise _mapped(exc, timeouts.read_s) from None
        return UpstreamResponse(response, timeouts.read_s)
