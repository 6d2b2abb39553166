"""An HTTP trigger for runs: a small authenticated service (standard library only) that
starts ``python run.py train``, the main job, a labeling round or a monitoring run when
asked, one run at a time, and reports how each went. A scheduled monitoring run asks it
for the follow-up of a drift (``monitor.trigger_url``).

    POST /v1/runs         {"job": "train" | "main" | "label" | "monitor",
                           "config": "<name in the config folder>"}
                          -> 202 {"id": ..., "status": "queued", "url": "/v1/runs/<id>"}
    GET  /v1/runs/<id>    -> {"status": "queued" | "running" | "succeeded" | "failed",
                              "returncode", "summary" (the run's JSON summary), "log_tail"}
    GET  /healthz         -> {"ok": true} (no token needed)

Every other request needs ``Authorization: Bearer <token>``; the token is compared in
constant time. Only configurations found in the configured folder can be named (by
name, never by path), and only the jobs above run: the request picks from a list, it
never supplies a command. Runs execute as child processes, so a failed run cannot take
the service down; their output goes to ``<state dir>/<id>.log``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("visionloop.trigger")

JOBS = ("train", "main", "label", "monitor")
MAX_BODY = 64 * 1024
MIN_TOKEN_CHARS = 16
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class Run:
    id: str
    job: str
    config: str
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    returncode: int | None = None
    summary: dict[str, Any] | None = None
    log_path: str = ""

    def view(self) -> dict[str, Any]:
        out = asdict(self)
        out["log_tail"] = _tail(Path(self.log_path)) if self.log_path and self.status != "queued" else ""
        return out


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object (run.py's ``--json``)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


class TriggerService:
    """The queue, the worker thread and the run records; ``command(job, config_path)``
    builds the argument list of one run."""

    def __init__(
        self,
        token: str,
        config_dir: Path,
        state_dir: Path,
        command: Callable[[str, Path], list[str]],
        max_queued: int = 4,
    ) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the trigger token must have at least {MIN_TOKEN_CHARS} characters")
        self.token = token.encode()
        self.config_dir = config_dir.resolve()
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()
        self.queue: queue.Queue[Run | None] = queue.Queue(maxsize=max_queued)
        self.worker = threading.Thread(target=self._work, name="trigger-worker", daemon=True)
        self.worker.start()

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self.token)

    def config_path(self, name: str) -> Path | None:
        if not CONFIG_NAME.match(name):
            return None
        for candidate in (self.config_dir / name, self.config_dir / f"{name}.yaml"):
            if candidate.is_file() and candidate.resolve().parent == self.config_dir:
                return candidate
        return None

    def submit(self, job: str, config: str) -> Run:
        run = Run(id=uuid.uuid4().hex[:12], job=job, config=config)
        run.log_path = str(self.state_dir / f"{run.id}.log")
        with self.lock:
            self.queue.put_nowait(run)  # raises queue.Full
            self.runs[run.id] = run
        log.info("Queued run %s: %s with %s", run.id, job, config)
        return run

    def get(self, run_id: str) -> Run | None:
        with self.lock:
            return self.runs.get(run_id)

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def _work(self) -> None:
        while True:
            run = self.queue.get()
            if run is None:
                return
            path = self.config_path(run.config)
            run.status, run.started = "running", time.time()
            if path is None:
                Path(run.log_path).write_text(f"the config {run.config!r} is gone from {self.config_dir}\n")
                run.returncode = -1
            else:
                argv = self.command(run.job, path)
                try:
                    with open(run.log_path, "wb") as out:
                        proc = subprocess.run(
                            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                        )
                    run.returncode = proc.returncode
                except OSError as exc:
                    Path(run.log_path).write_text(f"could not start {argv}: {exc}\n")
                    run.returncode = -1
            run.summary = last_json_line(_tail(Path(run.log_path), 200_000))
            run.status = "succeeded" if run.returncode == 0 else "failed"
            run.finished = time.time()
            log.info(
                "Run %s %s (exit %s) in %.0f s",
                run.id,
                run.status,
                run.returncode,
                run.finished - run.started,
            )


class TriggerHandler(BaseHTTPRequestHandler):
    server: TriggerHTTPServer
    server_version = "visionloop-trigger"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)

    def reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="visionloop"')
        self.end_headers()
        self.wfile.write(data)

    def _auth(self) -> bool:
        if self.server.service.authorized(self.headers.get("Authorization")):
            return True
        self.reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            self.reply(HTTPStatus.OK, {"ok": True})
            return
        if not self._auth():
            return
        match = re.fullmatch(r"/v1/runs/([0-9a-f]{12})", self.path)
        run = self.server.service.get(match.group(1)) if match else None
        if run is None:
            self.reply(HTTPStatus.NOT_FOUND, {"error": f"no run at {self.path}"})
            return
        self.reply(HTTPStatus.OK, run.view())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._auth():
            return
        if self.path != "/v1/runs":
            self.reply(HTTPStatus.NOT_FOUND, {"error": f"POST {self.path}: use /v1/runs"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.reply(HTTPStatus.BAD_REQUEST, {"error": "the body must be a JSON object"})
            return
        service = self.server.service
        job = body.get("job", "train")
        config = body.get("config", self.server.default_config)
        if job not in JOBS:
            self.reply(HTTPStatus.BAD_REQUEST, {"error": f"job must be one of {list(JOBS)}, got {job!r}"})
            return
        if not isinstance(config, str) or service.config_path(config) is None:
            known = sorted(p.stem for p in service.config_dir.glob("*.yaml"))
            self.reply(HTTPStatus.BAD_REQUEST, {"error": f"unknown config {config!r}; known: {known}"})
            return
        try:
            run = service.submit(job, config)
        except queue.Full:
            self.reply(HTTPStatus.TOO_MANY_REQUESTS, {"error": "too many runs waiting; try again later"})
            return
        self.reply(HTTPStatus.ACCEPTED, {"id": run.id, "status": run.status, "url": f"/v1/runs/{run.id}"})


class TriggerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: TriggerService, default_config: str) -> None:
        super().__init__(address, TriggerHandler)
        self.service = service
        self.default_config = default_config
