"""Kill -9 the publishing process at chosen and random points, over and over: a stage
pointer must never name an incomplete or unverifiable version."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_runtime.channel import ChannelClient, VerificationError
from edge_runtime.storage import LocalStore
from tests.conftest import METAL_TAGS, REPO_ROOT
from tests.deploy.channel_helpers import key

KILLS = 24
# where to kill: right after the process announces a write of this kind
PHASES = ["model.onnx", "samples/", "manifest.json", "manifest.sig", "staging.json", "production.json"]


def start(channel: Path, model: Path, samples: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "tests/deploy/publish_loop.py", str(channel), str(model), str(samples)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def kill_at(proc: subprocess.Popen[str], phase: str, rng: random.Random) -> str:
    """Read the announced writes until one of ``phase``, then kill -9 after a random
    delay of 0 to 3 ms (inside that write, or just after it). Returns the last line."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        last = proc.stdout.readline().strip()
        if not last:
            raise AssertionError(f"publisher ended: {proc.stderr.read() if proc.stderr else ''}")
        if last.startswith("put") and phase in last:
            break
    time.sleep(rng.uniform(0, 0.003))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return last


def test_pointers_survive_kill_9_at_any_point(abd_onnx: Path, tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    samples = tmp_path / "samples"
    samples.mkdir()
    for p in sorted(METAL_TAGS.glob("*/*.jpg"))[:3]:
        (samples / p.name).write_bytes(p.read_bytes())
    rng = random.Random(7)
    device = ChannelClient(LocalStore(channel), key(1).public_raw)
    seen_versions: set[str] = set()
    incomplete_folders_seen = 0
    for i in range(KILLS):
        proc = start(channel, abd_onnx, samples)
        phase = PHASES[i % len(PHASES)]
        last = kill_at(proc, phase, rng)
        # the newest version folder may be incomplete; that is allowed, as long as no pointer names it
        newest = max(
            (p for p in (channel / "models" / "tags").iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        if not (newest / "manifest.sig").exists():
            incomplete_folders_seen += 1
        for stage in ("staging", "production"):
            pointer = device.pointer("tags", stage)  # raises on a damaged pointer
            if pointer is None:
                continue
            try:
                got = device.fetch(
                    "tags", pointer.version, tmp_path / f"dev-{i}-{stage}", pointer.manifest_sha256
                )
            except VerificationError as exc:  # pragma: no cover - the failure this test exists for
                raise AssertionError(
                    f"kill {i} at {last!r}: {stage} names an unverifiable version: {exc}"
                ) from exc
            seen_versions.add(got.version)
    print(
        f"kills {KILLS}: half-written version folders {incomplete_folders_seen}, versions that reached a pointer {len(seen_versions)}"
    )
    assert incomplete_folders_seen >= KILLS // 3, "the kills did not land inside publications"
    assert len(seen_versions) >= 3, f"the pointers hardly moved: {sorted(seen_versions)}"
    # after all that, a publisher started again completes a version and both pointers name it
    proc = start(channel, abd_onnx, samples)
    assert proc.stdout is not None
    line = ""
    while not line.startswith("done"):
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read() if proc.stderr else ""
    proc.kill()
    proc.wait(timeout=30)
    done = line.split()[1]
    for stage in ("staging", "production"):
        pointer = device.pointer("tags", stage)
        assert pointer is not None and pointer.version == done
        device.fetch("tags", done, tmp_path / f"final-{stage}", pointer.manifest_sha256)
