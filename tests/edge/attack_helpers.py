"""Parts of the attack tests: a runtime serving over HTTP while a test attacks its
channel, the checks every attack test ends with (the refusal's reason in ``/healthz``,
spool counts that reconcile, served version and highest sequence surviving a restart),
a throttling TCP proxy in front of the S3 server, and tmpfs mounts for full and
read-only disks."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.channel import ChannelClient
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.server import EdgeServer
from edge_runtime.storage import LocalStore, Store
from edge_runtime.trust import Keyring
from tests.deploy.channel_helpers import key
from tests.edge.helpers import MODEL, Prober, request, serving


def runtime_on(
    store: Store | Path, state: Path, keyring: Keyring | None = None, timeout_s: float = 600.0, **config: Any
) -> EdgeRuntime:
    """A runtime driven by the test (``start(background=False)``; checks by hand)."""
    store = LocalStore(store) if isinstance(store, Path) else store
    ring = keyring or Keyring([key(1).public_raw], path=state / "trust.json")
    cfg = RuntimeConfig(
        model=MODEL,
        state_dir=state,
        device_id="test-device",
        threads=1,
        **{"empty_sample_rate": 1.0, **config},
    )
    return EdgeRuntime(cfg, ChannelClient(store, ring, timeout_s), None)


@dataclass
class Scene:
    runtime: EdgeRuntime
    server: EdgeServer
    prober: Prober

    def health(self) -> dict[str, Any]:
        status, doc = request(self.server, "GET", "/healthz")
        assert status == 200, doc
        return doc


@contextmanager
def under_attack(runtime: EdgeRuntime, **server: Any) -> Iterator[Scene]:
    """Serve ``runtime`` on loopback with a prober asking for predictions throughout;
    every answer must be a 200."""
    with serving(runtime, **server) as srv, Prober(srv) as prober:
        yield Scene(runtime, srv, prober)
        prober.wait_for(2)
    prober.assert_uninterrupted()


def reconcile(runtime: EdgeRuntime) -> None:
    """Nothing was lost: every answer that asked for feedback is counted once in the
    spool's counters, and what the spool says it holds is what is on its disk."""
    counters = runtime.spool.describe()
    log = runtime.predlog.path
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    wanted = sum(1 for line in lines if line.get("feedback"))
    outcomes = sum(counters[k] for k in ("spooled", "duplicates", "dropped_full", "write_errors"))
    assert wanted == outcomes, (wanted, counters)
    held = counters["spooled"] - counters["uploaded"] - counters["already_in_store"]
    metas = list(runtime.spool.folder.glob("*.json"))
    assert counters["items"] == held == len(metas), counters
    on_disk = sum(p.stat().st_size for p in runtime.spool.folder.iterdir() if not p.name.startswith("."))
    assert counters["bytes"] == on_disk, (counters, on_disk)


def refused(scene: Scene, reason: str, channel: str = "refused") -> dict[str, Any]:
    """The attack's refusal, as ``/healthz`` shows it."""
    health = scene.health()
    assert reason in (health["agent"]["last_error"] or ""), health["agent"]
    assert health["channel"] == channel, health["agent"]
    return health


def survives_restart(runtime: EdgeRuntime, version: str, sequence: int, **kwargs: Any) -> EdgeRuntime:
    """A new runtime on the same state folder serves ``version`` before the channel is
    asked, and still holds ``sequence`` as the highest accepted."""
    runtime.stop()
    store = runtime.agent.client.store
    keyring = runtime.agent.client.keyring
    again_ring = Keyring(list(keyring.pinned.values()), root=keyring.root, path=keyring.path)
    again = runtime_on(store, runtime.state_dir, again_ring, **kwargs)
    again.start(background=False)
    assert again.current is not None and again.current.version_id == version
    assert again.agent.describe()["highest_sequence"] == sequence
    return again


class ThrottlingProxy:
    """A TCP proxy on loopback that passes requests through and trickles the answers
    back ``rate`` bytes per second: a slow mirror in front of a real S3 server."""

    def __init__(self, upstream_port: int, rate: int) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.rate), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        try:
            while not self._stop.is_set():
                data = src.recv(min(4096, rate // 10) if rate else 65536)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@contextmanager
def tmpfs(path: Path, size: str = "64m", read_only: bool = False) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
