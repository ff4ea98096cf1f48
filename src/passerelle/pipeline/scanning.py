"""The DLP scanner of one configuration, compiled in the background while the gateway starts.

Compiling the Hyperscan database takes about half a second (more with many client terms). The
gateway does not wait for it to answer health checks: :class:`ScannerHandle` compiles on a
background thread from the moment the configuration is loaded, and a request that arrives
before the scanner is ready waits for it (a few hundred milliseconds at most, once). If it is
still not ready after ``wait_seconds``, or if it could not be built, requests are refused with
:class:`~passerelle.errors.DlpUnavailable`: DLP fails closed, nothing is ever sent unscanned.
``/readyz`` reports the scanner's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from concurrent.futures import Future

from passerelle.config import Config
from passerelle.dlp.findings import ScanError
from passerelle.dlp.scanner import Scanner
from passerelle.dlp.settings import DlpSettings, TermSet

log = logging.getLogger("passerelle.dlp")

DEFAULT_WAIT_S = 10.0


def dlp_settings(config: Config) -> DlpSettings:
    """The scanner settings a configuration asks for: its ``dlp`` section, its data classes,
    and each client's terms with the client's class."""
    dlp = config.file.dlp
    order = config.file.data_classes
    term_sets = tuple(
        TermSet(name, client.data_class, tuple(client.terms))
        for name, client in sorted(config.file.clients.items())
        if client.terms
    )
    return DlpSettings(
        term_sets=term_sets,
        person_names=dlp.person_names,
        # Secrets go to the most sensitive class, personal data to the one below it: with the
        # default classes, restricted and confidential.
        secret_class=order[-1],
        personal_class=order[-2] if len(order) > 1 else order[-1],
        disabled_rules=frozenset(dlp.disabled_rules),
        allowed_values=frozenset(dlp.allow),
    )


class ScannerHandle:
    """A scanner being compiled, then compiled (or failed: then every request is refused)."""

    def __init__(self, settings: DlpSettings, *, wait_seconds: float = DEFAULT_WAIT_S) -> None:
        self.settings = settings
        self.wait_seconds = wait_seconds
        """How long a request waits for the scanner to be built before it is refused."""
        self.build_seconds: float | None = None
        self._future: Future[Scanner] = Future()
        self._thread = threading.Thread(
            target=self._build, name="passerelle-dlp-compile", daemon=True
        )
        self._thread.start()

    def _build(self) -> None:
        # Background work: on a busy or single core, start-up and requests go first (Linux
        # gives each thread its own niceness; raising one's own needs no privilege).
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        started = time.perf_counter()
        try:
            scanner = Scanner(self.settings)
        except ScanError as exc:
            log.error("the DLP scanner cannot be built, requests will be refused: %s", exc)
            self._future.set_exception(exc)
            return
        self.build_seconds = time.perf_counter() - started
        log.info("DLP scanner ready in %.2f s", self.build_seconds)
        self._future.set_result(scanner)

    @property
    def ready(self) -> bool:
        return self._future.done() and self._future.exception() is None

    def problem(self) -> str | None:
        """Why requests cannot be scanned now, or None."""
        if not self._future.done():
            return "the DLP scanner is still compiling"
        error = self._future.exception()
        return None if error is None else f"the DLP scanner cannot be built: {error}"

    def scanner(self) -> Scanner:
        """The scanner, or ScanError when it is not (or cannot be) built."""
        if not self._future.done():
            raise ScanError("the DLP scanner is still compiling")
        return self._future.result()

    async def wait(self) -> None:
        """Wait until the scanner is built or has failed, at most ``wait_seconds``."""
        if self._future.done():
            return
        try:
            await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(self._future)), self.wait_seconds
            )
        except (TimeoutError, ScanError):
            return  # scanner() says what is wrong

    def join(self, timeout: float | None = None) -> bool:
        """Block until the build ends (tests, command-line tools); whether it is ready."""
        self._thread.join(timeout)
        return self.ready
