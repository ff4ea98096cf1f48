"""Serve any ASGI application on a real socket from a background thread.

Tests and benchmarks need real HTTP (real sockets, real chunked encoding, real disconnects), not an
in-process transport, yet must not spawn processes for every fixture. The socket is bound here,
before uvicorn starts, so port 0 yields a free port with no race between choosing and binding it.

Any fake upstream can be served by name as well: ``serve_in_thread("bedrock")`` builds it with
its default settings, ``serve_in_thread("gemini", settings=FakeSettings(...))`` with others.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import cast

import uvicorn
from starlette.types import ASGIApp

# The fake upstreams by provider name; each module has ``FakeSettings`` and ``create_app``.
FAKES: Mapping[str, str] = {
    "openai": "passerelle.testing.fake_openai",
    "anthropic": "passerelle.testing.fake_anthropic",
    "gemini": "passerelle.testing.fake_gemini",
    "bedrock": "passerelle.testing.fake_bedrock",
}


def create_fake(provider: str, settings: object | None = None) -> ASGIApp:
    """The fake upstream for ``provider`` (a key of ``FAKES``), with default or given settings."""
    if provider not in FAKES:
        raise ValueError(f"no fake upstream named {provider!r}; expected one of {sorted(FAKES)}")
    module = importlib.import_module(FAKES[provider])
    if settings is None:
        settings = module.FakeSettings()
    elif not isinstance(settings, module.FakeSettings):
        raise TypeError(f"the {provider} fake takes {FAKES[provider]}.FakeSettings")
    return cast(ASGIApp, module.create_app(settings))


@contextmanager
def serve_in_thread(
    app: ASGIApp | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    settings: object | None = None,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
    shutdown_timeout: int = 2,
) -> Iterator[str]:
    """Run ``app`` with uvicorn until the block exits; yields its base URL (``http://host:port``).

    ``app`` may name a fake upstream instead (``"openai"``, ``"anthropic"``, ``"gemini"``,
    ``"bedrock"``), built with ``settings`` or its defaults. The app's lifespan runs as under
    ``uvicorn``; requests still in flight at exit get ``shutdown_timeout`` seconds before they are
    cancelled.
    """
    if isinstance(app, str):
        app = create_fake(app, settings)
    elif settings is not None:
        raise TypeError("settings are only for a fake named by its provider")
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
