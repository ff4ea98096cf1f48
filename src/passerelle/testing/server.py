"""Serve any ASGI application on a real socket from a background thread.

Tests and benchmarks need real HTTP (real sockets, real chunked encoding, real disconnects), not an
in-process transport, yet must not spawn processes for every fixture. The socket is bound here,
before uvicorn starts, so port 0 yields a free port with no race between choosing and binding it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
    shutdown_timeout: int = 2,
) -> Iterator[str]:
    """Run ``app`` with uvicorn until the block exits; yields its base URL (``http://host:port``).

    The app's lifespan runs as under ``uvicorn``; requests still in flight at exit get
    ``shutdown_timeout`` seconds before they are cancelled.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=shutdown_timeout,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped during startup; its log says why")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {startup_timeout} s")
            time.sleep(0.005)
        yield f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout + 10)
        sock.close()
