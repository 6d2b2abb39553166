"""The trigger service (``visionloop.trigger``) on loopback for the monitoring tests,
with a job command that only reports which job ran for which configuration."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from visionloop.trigger import TriggerHTTPServer, TriggerService

TOKEN = "follow-up-test-token-" + "5" * 20


@dataclass
class Service:
    url: str
    service: TriggerService
    started: list[tuple[str, str]]


def serve(tmp_path: Path) -> Iterator[Service]:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "tags.yaml").write_text("name: tags\n")
    started: list[tuple[str, str]] = []

    def command(job: str, config: Path) -> list[str]:
        started.append((job, config.name))  # the job itself: a process that reports it ran
        return [sys.executable, "-c", f'print(\'{{"job": "{job}", "config": "{config.name}"}}\')']

    service = TriggerService(TOKEN, configs, tmp_path / "state", command)
    server = TriggerHTTPServer(("127.0.0.1", 0), service, "tags")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Service(f"http://127.0.0.1:{server.server_address[1]}", service, started)
    finally:
        server.shutdown()
        service.stop()
        server.server_close()


def finished(service: TriggerService, run_id: str, timeout_s: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = service.get(run_id)
        assert run is not None
        if run.status in ("succeeded", "failed"):
            return run.view()
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")
