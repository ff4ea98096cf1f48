"""The upstream HTTP/1.1 client against real sockets: servers that answer in every framing,
keep connections or drop them, stall, or send garbage."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from passerelle.providers import http1
from passerelle.providers.transport import (
    ConnectFailed,
    Disconnected,
    EmptyStream,
    InvalidRequest,
    ReadTimeout,
    Timeouts,
    Transport,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = Timeouts(connect_s=2.0, read_s=2.0)


def on_uvloop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run the scenario on the event loop the gateway runs on."""

    @functools.wraps(test)
    def run() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(asyncio.wait_for(test(), 20))

    return run


class Server:
    """A raw TCP server that records each connection and each request head it reads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.bodies.append(body)
        return body


def fixed(body: bytes, *, keep: bool = True, requests: int = 100) -> Callable[[Server], Handler]:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(requests):
                await server.read_request(reader)
                connection = b"" if keep else b"Connection: close\r\n"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Twice: a\r\n"
                    b"x-twice: b\r\n" + connection + b"Content-Length: %d\r\n\r\n" % len(body)
                )
                writer.write(body)
                await writer.drain()
                if not keep:
                    return

        return handler

    return make


async def served(make: Callable[[Server], Handler]) -> AsyncIterator[Server]:
    server = Server(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    async with server:
        yield server


async def transport() -> Transport:
    client = Transport(max_connections=4)
    await client.start()
    return client


@on_uvloop
async def test_requests_reuse_one_kept_alive_connection() -> None:
    async for server in served(fixed(b'{"ok":true}')):
        client = await transport()
        for number in range(5):
            response = await client.send(
                "POST",
                server.url,
                headers={"authorization": "Bearer k"},
                body=b"%d" % number,
                timeouts=FAST,
            )
            assert response.status == 200
            assert response.headers["CONTENT-TYPE"] == "application/json"
            assert response.headers.get("x-twice") == "a, b"
            assert await response.read(1000) == b'{"ok":true}'
        await client.close()
        assert server.connections == 1
        assert server.bodies == [b"0", b"1", b"2", b"3", b"4"]
        head = server.heads[0].decode()
        assert head.startswith("POST /v1/chat?x=1 HTTP/1.1\r\n")
        assert "\r\nHost: 127.0.0.1:" in head and "\r\nContent-Length: 1\r\n" in head
        assert "\r\nauthorization: Bearer k\r\n" in head


@on_uvloop
async def test_connection_close_is_honoured() -> None:
    async for server in served(fixed(b"x", keep=False)):
        client = await transport()
        for _ in range(3):
            response = await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
            assert await response.read(10) == b"x"
        await client.close()
        assert server.connections == 3
        # Nothing to send, nothing announced; an empty body of a POST is still announced.
        assert all(b"content-length" not in head.lower() for head in server.heads)


@on_uvloop
async def test_an_empty_post_announces_its_length() -> None:
    async for server in served(fixed(b"x")):
        client = await transport()
        response = await client.send("PUT", server.url, headers={}, body=None, timeouts=FAST)
        assert await response.read(10) == b"x"
        await client.close()
        assert b"\r\nContent-Length: 0\r\n" in server.heads[0]


def raw(answer: bytes, *, then: float = 0.0) -> Callable[[Server], Handler]:
    """Answer ``answer`` as is, then wait ``then`` seconds and close."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(answer)
            await writer.drain()
            await asyncio.sleep(then)

        return handler

    return make


@on_uvloop
async def test_chunked_bodies_stream_chunk_by_chunk() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\ndata:1\r\n6\r\ndata:2\r\n0\r\n\r\n"
    )
    async for server in served(raw(answer)):
        client = await transport()
        response = await client.send("POST", server.url, headers={}, body=b"{}", timeouts=FAST)
        assert await response.first_chunk() == b"data:1"
        assert b"".join([c async for c in response.iter_chunks()]) == b"data:1data:2"
        await client.close()


@on_uvloop
async def test_a_body_without_length_ends_with_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    async for server in served(raw(answer)):
        client = await transport()
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
        assert await response.read(100) == b"until the end"
        await client.close()


@on_uvloop
async def test_an_interim_answer_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    async for server in served(raw(answer)):
        client = await transport()
        response = await client.send("POST", server.url, headers={}, body=b"x", timeouts=FAST)
        assert response.status == 201
        assert await response.read(10) == b"ok"
        await client.close()


@on_uvloop
async def test_a_cut_body_is_a_disconnection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
    async for server in served(raw(answer)):
        client = await transport()
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
        with pytest.raises(Disconnected):
            await response.read(1000)
        await client.close()


@on_uvloop
async def test_a_stream_that_ends_before_its_first_byte() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    async for server in served(raw(answer)):
        client = await transport()
        response = await client.send("POST", server.url, headers={}, body=b"{}", timeouts=FAST)
        with pytest.raises(EmptyStream):
            await response.first_chunk()
        await client.close()


@on_uvloop
async def test_garbage_is_a_disconnection_not_a_crash() -> None:
    async for server in served(raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")):
        client = await transport()
        with pytest.raises(Disconnected, match="invalid HTTP response"):
            await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
        await client.close()


@on_uvloop
async def test_read_timeouts_before_the_headers_and_inside_the_body() -> None:
    stall = Timeouts(connect_s=2.0, read_s=0.3)
    async for server in served(raw(b"", then=5)):
        client = await transport()
        with pytest.raises(ReadTimeout, match=r"within 0\.3 s"):
            await client.send("GET", server.url, headers={}, body=None, timeouts=stall)
        await client.close()
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
    async for server in served(raw(half, then=5)):
        client = await transport()
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=stall)
        with pytest.raises(ReadTimeout, match=r"for 0\.3 s"):
            await response.read(100)
        await client.close()


@on_uvloop
async def test_a_slow_but_steady_body_is_not_a_timeout() -> None:
    """The read timeout is between arrivals of data, not for the whole body."""

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(6):
                await asyncio.sleep(0.1)
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        return handler

    async for server in served(make):
        client = await transport()
        timeouts = Timeouts(connect_s=2.0, read_s=0.25)
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=timeouts)
        assert await response.read(100) == b"xxxxxx"
        await client.close()


@on_uvloop
async def test_refused_connections_and_bad_urls() -> None:
    client = await transport()
    with pytest.raises(ConnectFailed, match=r"cannot connect to 127\.0\.0\.1:9"):
        await client.send("GET", "http://127.0.0.1:9/v1", headers={}, body=None, timeouts=FAST)
    with pytest.raises(InvalidRequest, match="scheme"):
        await client.send("GET", "ftp://example.com/", headers={}, body=None, timeouts=FAST)
    await client.close()


@on_uvloop
async def test_header_injection_is_refused_before_anything_is_sent() -> None:
    async for server in served(fixed(b"x")):
        client = await transport()
        for headers in ({"x-a": "v\r\nx-injected: 1"}, {"x-a\r\nx-b": "v"}, {"x-a": "v\n"}):
            with pytest.raises(InvalidRequest, match="forbidden character"):
                await client.send("GET", server.url, headers=headers, body=None, timeouts=FAST)
        await client.close()
        assert server.connections == 0


@on_uvloop
async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async for server in served(fixed(b"x", requests=1)):  # closes after each answer
        client = await transport()
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
        assert await response.read(10) == b"x"
        await asyncio.sleep(0.1)  # the close reaches the client
        response = await client.send("GET", server.url, headers={}, body=None, timeouts=FAST)
        assert await response.read(10) == b"x"
        await client.close()
        assert server.connections == 2


@on_uvloop
async def test_idle_connections_expire_before_servers_drop_them() -> None:
    async for server in served(fixed(b"x")):
        pool = http1.Pool(max_connections=4, keepalive_s=0.2)
        response = await pool.request("GET", server.url, {}, None, connect_s=2, read_s=2)
        assert await response.next_chunk() == b"x"
        assert await response.next_chunk() == b""
        response.release()
        await asyncio.sleep(0.3)
        response = await pool.request("GET", server.url, {}, None, connect_s=2, read_s=2)
        while await response.next_chunk():
            pass
        response.release()
        await pool.close()
        assert server.connections == 2


@on_uvloop
async def test_the_connection_limit_holds_and_waiters_get_freed_connections() -> None:
    gate = asyncio.Event()

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                await gate.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
                await writer.drain()

        return handler

    async for server in served(make):
        pool = http1.Pool(max_connections=2)

        async def one(pool: http1.Pool = pool, url: str = server.url) -> bytes:
            response = await pool.request("GET", url, {}, None, connect_s=2, read_s=5)
            body = b""
            while chunk := await response.next_chunk():
                body += chunk
            response.release()
            return body

        tasks = [asyncio.create_task(one()) for _ in range(6)]
        await asyncio.sleep(0.2)
        assert server.connections == 2  # four requests wait for a connection
        gate.set()
        assert await asyncio.gather(*tasks) == [b"x"] * 6
        assert server.connections == 2
        await pool.close()


@on_uvloop
async def test_an_abandoned_stream_drops_its_connection() -> None:
    closed = asyncio.Event()

    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
            await writer.drain()
            if await reader.read(1) == b"":  # the client hung up
                closed.set()

        return handler

    async for server in served(make):
        client = await transport()
        response = await client.send("POST", server.url, headers={}, body=b"{}", timeouts=FAST)
        chunks = response.iter_chunks()
        assert await anext(chunks) == b"x"
        await chunks.aclose()  # the caller went away half-way
        await asyncio.wait_for(closed.wait(), 2)
        await client.close()


@on_uvloop
async def test_large_bodies_pause_the_socket_and_the_connection_is_reused() -> None:
    big = bytes(range(256)) * 12_000  # about 3 MB: past the reader's high-water mark
    async for server in served(fixed(big)):
        pool = http1.Pool(max_connections=4)
        for _ in range(2):
            response = await pool.request("GET", server.url, {}, None, connect_s=2, read_s=5)
            await asyncio.sleep(0.2)  # the whole body arrives while nobody reads
            received = b""
            while chunk := await response.next_chunk():
                received += chunk
            response.release()
            assert received == big
        await pool.close()
        assert server.connections == 1


@on_uvloop
async def test_a_connection_released_with_unread_body_is_not_reused() -> None:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"
                )
                await writer.drain()

        return handler

    async for server in served(make):
        pool = http1.Pool(max_connections=4)
        response = await pool.request("GET", server.url, {}, None, connect_s=2, read_s=5)
        await asyncio.sleep(0.1)  # all three chunks and the end are in
        assert await response.next_chunk() == b"a"
        response.release()  # "b" and "c" were never read
        response = await pool.request("GET", server.url, {}, None, connect_s=2, read_s=5)
        chunks = [chunk async for chunk in _chunks(response)]
        response.release()
        await pool.close()
        assert chunks == [b"a", b"b", b"c"]
        assert server.connections == 2


async def _chunks(response: http1.Response) -> AsyncIterator[bytes]:
    while chunk := await response.next_chunk():
        yield chunk
