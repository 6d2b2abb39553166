"""Load on loopback: 4 concurrent clients for 5 seconds (longer if the swap is slow:
until 1 s after it, at most 60 s), a model swap half-way; no request may fail. The latency figures are printed (run with ``-s`` to see them), not
asserted: they depend on the machine."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from tests.edge.helpers import Channel, image_bytes, make_runtime, predict, serving
from visionloop.deploy.channel import Release

CLIENTS = 4
SECONDS = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def test_load_with_a_swap_in_the_middle(channel: Channel, rel: Release, tmp_path: Path) -> None:
    channel.publish(rel, "1")
    runtime = make_runtime(channel, tmp_path / "state")
    runtime.start(background=False)
    assert runtime.agent.check_once()
    images = [image_bytes(i) for i in range(16)]
    latencies: list[float] = []
    answers: list[tuple[int, str | None, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    with serving(runtime) as server:
        began = time.monotonic()
        swapped_at: list[float] = []

        def running() -> bool:
            now = time.monotonic()
            if now - began > 60:
                return False
            return now - began < SECONDS or not swapped_at or now < swapped_at[0] + 1.0

        def client(seed: int) -> None:
            i = seed
            while running():
                started = time.perf_counter()
                try:
                    status, doc = predict(server, images[i % len(images)])
                except OSError as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    answers.append((status, doc.get("version"), time.monotonic()))
                    latencies.append(elapsed)
                    if status != 200:
                        errors.append(f"HTTP {status}: {doc}")
                i += CLIENTS

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(SECONDS / 2)
        channel.publish(rel, "2")
        swap_started = time.monotonic()
        assert runtime.agent.check_once()
        swap_done = time.monotonic()
        swapped_at.append(swap_done)
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    versions = [v for _, v, _ in answers]
    assert versions.count("1") > 0 and versions.count("2") > 0, "the swap did not happen under load"
    assert runtime.current is not None and runtime.current.version_id == "2"
    duration = max(t for _, _, t in answers) - began
    after = [v for _, v, t in answers if t > swap_done + 0.5]
    assert after and set(after) == {"2"}
    n = len(latencies)
    print(
        f"\nload: {CLIENTS} clients x {duration:.1f} s on loopback: {n} requests, 0 errors, "
        f"{n / duration:.1f} req/s, p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms; "
        f"swap (fetch, verify, load, self-test) {1000 * (swap_done - swap_started):.0f} ms under load"
    )
