"""The proof that a kill switch reaches every instance within a second: three real
``passerelle serve`` processes share one PostgreSQL database; a switch set with the command line
refuses requests on all three, and lifted through one instance's admin API, all three serve
again. Each instance is polled continuously; the delays are measured and printed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from passerelle.core.context import KeyScope
from passerelle.storage.db import Database
from passerelle.storage.keys import KeyStore
from passerelle.storage.killswitch import KillSwitchStore
from passerelle.testing.server import serve_in_thread
from tests.net import free_port, wait_ready

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent
INSTANCES = 3
LIMIT_S = 1.0
ENV = {**os.environ, "UPSTREAM_KEY": "upstream-key"}
BODY = {"model": "chat", "messages": [{"role": "user", "content": "are you there?"}]}


@dataclass
class Watcher:
    """Polls one instance and notes when its answers change from ``before`` to ``after``."""

    url: str
    key: str
    before: int
    after: int
    changed_at: float | None = None
    errors: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(headers={"authorization": f"Bearer {self.key}"}, timeout=5) as client:
            while not stop.is_set():
                response = client.post(self.url + "/v1/chat/completions", json=BODY)
                received = time.time()
                if response.status_code == self.after:
                    self.changed_at = received
                    return
                if response.status_code != self.before:
                    self.errors.append(f"{response.status_code}: {response.text[:200]}")
                    return
                time.sleep(0.01)


def watch_all(
    urls: list[str], key: str, before: int, after: int
) -> tuple[list[Watcher], Callable[[], None]]:
    watchers = [Watcher(url, key, before, after) for url in urls]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in watchers]
    for thread in threads:
        thread.start()

    def finish(timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stop.set()
        for thread in threads:
            thread.join(5)

    return watchers, finish


@pytest.fixture
def fleet(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Path, list[str], str, str]]:
    """The configuration file, the three instances' URLs, an inference key and an admin key."""
    with ExitStack() as stack:
        upstream = stack.enter_context(serve_in_thread("openai"))
        config = tmp_path / "passerelle.yaml"
        config.write_text(
            f"""\
version: 1
storage: {{url: "{postgres_url}", spool_dir: "{tmp_path / "spool"}"}}
providers:
  fake: {{kind: openai_compatible, base_url: "{upstream}/v1", region: on-prem,
          clearance: restricted, api_key: env:UPSTREAM_KEY}}
models:
  chat: {{routes: [{{provider: fake, model: gpt-4o-mini}}]}}
clients: {{acme: {{name: Acme, data_class: internal}}}}
projects: {{p: {{client: acme, models: [chat]}}}}
"""
        )
        db = Database(postgres_url)
        db.migrate()  # once, before three processes start on the same database
        keys = KeyStore(db)
        user = keys.add_user("ops@acme.test")
        key, _ = keys.create_key(user, project="p")
        admin_key, _ = keys.create_key(user, project=None, scope=KeyScope.ADMIN)
        db.dispose()

        urls: list[str] = []
        processes: list[subprocess.Popen[bytes]] = []
        for _ in range(INSTANCES):
            port = free_port()
            command = [str(BIN / "passerelle"), "-c", str(config), "serve", "--port", str(port)]
            processes.append(subprocess.Popen([*command, "--log-level", "warning"], env=ENV))
            urls.append(f"http://127.0.0.1:{port}")

        def stop_all() -> None:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

        stack.callback(stop_all)
        for url, process in zip(urls, processes, strict=True):
            wait_ready(url + "/readyz", process, timeout=60)
        yield config, urls, key, admin_key


def test_a_kill_switch_reaches_three_instances_within_a_second(
    fleet: tuple[Path, list[str], str, str], postgres_url: str
) -> None:
    config, urls, key, admin_key = fleet
    for url in urls:  # every instance serves before the switch
        response = httpx.post(
            url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text

    # Set with the command line, a separate process, while all three are polled.
    watchers, finish = watch_all(urls, key, before=200, after=403)
    command = [str(BIN / "passerelle"), "-c", str(config), "kill", "model", "chat"]
    result = subprocess.run(
        [*command, "--reason", "propagation test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    finish()
    db = Database(postgres_url)
    try:
        (switch,) = KillSwitchStore(db).list()
    finally:
        db.dispose()
    set_at = switch.set_at / 1e6  # taken before the commit: the delays below are upper bounds
    assert not [w.errors for w in watchers if w.errors]
    assert all(w.changed_at is not None for w in watchers), "an instance never refused"
    delays = [w.changed_at - set_at for w in watchers if w.changed_at is not None]
    print(f"\nkill switch set -> refused, per instance (s): {[round(d, 3) for d in delays]}")
    assert max(delays) < LIMIT_S, delays

    # Lifted through the admin API of the first instance: all three serve again.
    watchers, finish = watch_all(urls, key, before=403, after=200)
    started = time.time()
    lifted = httpx.post(
        f"{urls[0]}/admin/kill-switches/{switch.id}/lift",
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert lifted.status_code == 200, lifted.text
    finish()
    assert not [w.errors for w in watchers if w.errors]
    assert all(w.changed_at is not None for w in watchers), "an instance never served again"
    delays = [w.changed_at - started for w in watchers if w.changed_at is not None]
    print(f"kill switch lifted -> served, per instance (s): {[round(d, 3) for d in delays]}")
    assert max(delays) < LIMIT_S, delays
