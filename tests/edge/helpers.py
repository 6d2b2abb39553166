"""Shared parts of the edge runtime tests: a channel written with the control plane's
own publisher, a runtime on it, an HTTP server on loopback and a prober that keeps
asking for predictions while a test breaks things."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_runtime.channel import ChannelClient, version_prefix
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.server import EdgeServer
from edge_runtime.storage import LocalStore, Store
from tests.conftest import METAL_TAGS
from tests.deploy.channel_helpers import key
from visionloop.deploy.channel import ChannelPublisher, Release

MODEL = "tags"
IMAGES = sorted(METAL_TAGS.glob("*/*.jpg"))


def image_bytes(i: int = 0) -> bytes:
    return IMAGES[i % len(IMAGES)].read_bytes()


def noise_jpeg(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A unique JPEG of random noise: the model finds nothing in it above the uncertainty
    band, so it always goes back as feedback (no detection, or an uncertain one)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Channel:
    """A channel folder and the control plane's publisher for it (signing key 1)."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.publisher = ChannelPublisher(LocalStore(self.root), key(1))

    def publish(self, rel: Release, version: str, stage: str = "production") -> None:
        self.publisher.publish(replace(rel, version=version))
        self.publisher.set_pointer(MODEL, stage, version, reason="test")

    def file(self, version: str, name: str) -> Path:
        return self.root / version_prefix(MODEL, version) / name


def public_key_file(folder: Path) -> Path:
    path = folder / "channel.pub.pem"
    path.write_text(key(1).public_pem)
    return path


def make_runtime(
    channel: Channel, state_dir: Path, feedback: Store | None = None, **config: Any
) -> EdgeRuntime:
    """A runtime on ``channel``, driven by the test (``start(background=False)``, then
    ``agent.check_once()`` and ``uploader.drain()`` when the test wants them)."""
    cfg = RuntimeConfig(
        model=MODEL,
        state_dir=state_dir,
        device_id="test-device",
        threads=1,
        **{"empty_sample_rate": 1.0, **config},
    )
    client = ChannelClient(LocalStore(channel.root), key(1).public_raw)
    return EdgeRuntime(cfg, client, feedback)


@contextmanager
def serving(runtime: EdgeRuntime, **kwargs: Any) -> Iterator[EdgeServer]:
    server = EdgeServer(runtime, "127.0.0.1", 0, **kwargs)
    server.start_background()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def request(
    server: EdgeServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def predict(server: EdgeServer, data: bytes, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "image/jpeg"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return request(server, "POST", "/v1/predict", data, headers)


@dataclass
class Prober:
    """Asks ``server`` for predictions in a loop from a background thread; every answer
    is kept, so a test can show that serving never stopped during a fault."""

    server: EdgeServer
    results: list[tuple[int, str | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                status, doc = predict(self.server, image_bytes(i))
                self.results.append((status, doc.get("version")))
                if status != 200:
                    self.failures.append(f"HTTP {status}: {doc}")
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            i += 1
            time.sleep(0.01)

    def wait_for(self, n: int) -> None:
        """Until ``n`` more answers have come (bounded by a minute)."""
        target = len(self.results) + n
        deadline = time.monotonic() + 60
        while len(self.results) < target and time.monotonic() < deadline and not self.failures:
            time.sleep(0.01)

    def __enter__(self) -> Prober:
        self._thread.start()
        self.wait_for(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait_for(1)
        self._stop.set()
        self._thread.join(timeout=60)

    def versions(self) -> list[str | None]:
        return [v for _, v in self.results]

    def assert_uninterrupted(self) -> None:
        assert not self.failures, f"serving was interrupted: {self.failures[:3]}"
        assert len(self.results) >= 2 and all(s == 200 for s, _ in self.results)


class AgentProcess:
    """``python -m edge_runtime serve ...`` as a subprocess; its log lines are collected
    by a thread (``lines``) and its URL is read from the "listening on" line."""

    def __init__(self, python: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "edge_runtime", "serve", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for_line("listening on ")
        self.url = line.split("listening on ", 1)[1].strip()
        self.host, port = self.url.removeprefix("http://").split(":")
        self.port = int(port)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, start: int = 0, timeout: float = 120) -> str:
        """The first log line from index ``start`` on that contains ``text``."""
        deadline = time.monotonic() + timeout
        i = start
        while time.monotonic() < deadline:
            while i < len(self.lines):
                if text in self.lines[i]:
                    return self.lines[i]
                i += 1
            if self.proc.poll() is not None and i >= len(self.lines):
                self._reader.join(timeout=5)
                if i >= len(self.lines):
                    raise AssertionError(f"edge runtime exited ({self.proc.returncode}):\n" + self.log())
            time.sleep(0.005)
        raise AssertionError(f"no log line with {text!r} within {timeout} s:\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    def get(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg"} if body else {})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def wait_serving(self, version: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            _, health = self.get("GET", "/healthz")
            if health.get("version") == version:
                return health
            time.sleep(0.05)
        raise AssertionError(f"not serving {version} within {timeout} s: {health}\n{self.log()}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._reader.join(timeout=5)
        return self.proc.returncode
