"""Measurement: peak resident memory of the edge runtime's serving process while 4
clients send the worst inputs its limits allow, side by side with the code before issue
17 (a git worktree of an older commit, ``--before``), in one run on the same channel.

The serving process is ``python -m edge_runtime serve`` (``--threads 1 --max-inflight 4``:
a 4-core device), its peak is ``VmHWM`` from ``/proc/<pid>/status`` read once the load is
over. The channel holds version 1 of the ABD YOLOv8n model (ONNX, 320 px) and, during
the load, a pointer to version 2 whose ``model.onnx`` is a 600 MB file (the manifest says
13 MB), which the agent retries every ``--poll`` second. Each of ``--clients`` clients
sends, ``--rounds`` times, every one of:

* ``png-cap``: a 6300x6300 RGB PNG (just under the 40 Mpx pixel cap; 120 KB on the wire)
* ``jpeg-cap``: a 6300x6300 JPEG
* ``png16-cap``: a 6300x6300 16-bit greyscale PNG
* ``png-budget`` / ``png16-budget``: the largest RGB / 16-bit PNG the decode budget
  admits (``--max-image-mb``, 96 by default): what the new code still decodes in full

    .venv/bin/python benchmarks/edge_memory.py --before /tmp/before   # git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/edge_memory.py --results /tmp/edge_memory.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402

os.environ.setdefault(
    "VISIONLOOP_CACHE_DIR", str(Path(tempfile.gettempdir()) / "visionloop-edge-bench-cache")
)

METAL_TAGS = ROOT / "data" / "metal-tags"
MODEL = "abd"
SIDE = 6300  # 39.7 Mpx: just under detector.MAX_PIXELS (40 Mpx)


def images(max_image_mb: float) -> dict[str, bytes]:
    import numpy as np
    from PIL import Image

    from edge_runtime.decode import working_set

    photo = Image.open(sorted(METAL_TAGS.glob("*/*.jpg"))[0]).convert("RGB")

    def encode(image: Image.Image, fmt: str, **kw: Any) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format=fmt, **kw)
        return buf.getvalue()

    def png16(side: int) -> bytes:
        grey = np.asarray(photo.convert("L").resize((side, side)), dtype=np.uint16) * 257
        return encode(Image.fromarray(grey), "PNG", compress_level=6)

    def largest(mode: str) -> int:  # the side of the largest square image the budget admits
        side = int(math.sqrt(max_image_mb * 2**20))
        while working_set(mode, side, side) > max_image_mb * 2**20:
            side -= 16
        return side

    rgb_side, grey_side = largest("RGB"), largest("I;16")
    return {
        "png-cap": encode(Image.new("RGB", (SIDE, SIDE), (90, 120, 150)), "PNG", compress_level=9),
        "jpeg-cap": encode(photo.resize((SIDE, SIDE)), "JPEG", quality=85),
        "png16-cap": png16(SIDE),
        "png-budget": encode(photo.resize((rgb_side, rgb_side)), "PNG", compress_level=1),
        "png16-budget": png16(grey_side),
    }


def prepare_channel(workdir: Path, imgsz: int) -> tuple[Path, Path, Any]:
    """A channel with version 1 (served) and a publisher to point at version 2 later."""
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    from edge_runtime.detector import OnnxDetector
    from edge_runtime.storage import LocalStore
    from visionloop.config import ServingThresholds
    from visionloop.deploy.channel import ChannelPublisher
    from visionloop.deploy.release import build_release
    from visionloop.deploy.signing import generate
    from visionloop.training.types import ModelBlob

    workdir.mkdir(parents=True, exist_ok=True)
    onnx_path = workdir / f"abd-{imgsz}.onnx"
    if not onnx_path.exists():
        weights = workdir / "abd.pt"
        shutil.copyfile(abd_checkpoint(), weights)
        shutil.move(
            Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, opset=17, dynamic=False)), onnx_path
        )
    channel = workdir / "channel"
    shutil.rmtree(channel, ignore_errors=True)
    key = generate("benchmark")
    blob = ModelBlob(
        data=onnx_path.read_bytes(),
        filename=onnx_path.name,
        class_names=OnnxDetector(onnx_path).class_names,
        imgsz=imgsz,
        kind="onnx",
    )
    samples = [p.read_bytes() for p in sorted(METAL_TAGS.glob("*/*.jpg"))[:3]]
    thresholds = ServingThresholds(conf=0.25, iou=0.7, uncertain_low=0.25, uncertain_high=0.5)
    release = build_release(MODEL, "1", blob, None, samples, thresholds, {})
    publisher = ChannelPublisher(LocalStore(channel), key)
    publisher.publish(release)
    publisher.set_pointer(MODEL, "production", "1")
    publisher.publish(replace(release, version="2"))
    pub = workdir / "channel.pub.pem"
    pub.write_text(key.public_pem)
    return channel, pub, publisher


def oversize(channel: Path, publisher: Any) -> None:
    """Point production at version 2, whose model.onnx is now a 600 MB (sparse) file."""
    publisher.set_pointer(MODEL, "production", "2")
    with open(channel / "models" / MODEL / "2" / "model.onnx", "r+b") as f:
        f.truncate(600 * 2**20)


class Server:
    def __init__(self, tree: Path, channel: Path, pub: Path, state: Path) -> None:
        shutil.rmtree(state, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cmd = [sys.executable, "-m", "edge_runtime", "serve", "--channel", str(channel), "--model", MODEL]
        cmd += ["--public-key", str(pub), "--state-dir", str(state), "--port", "0", "--threads", "1"]
        cmd += ["--max-inflight", "4", "--poll", "1", "--backoff-cap", "2", "--max-connections", "16"]
        self.proc = subprocess.Popen(cmd, cwd=tree, env=env, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.port = 0
        for line in self.proc.stderr:
            if "listening on http://" in line:
                self.port = int(line.rsplit(":", 1)[1])
                break
        if not self.port:
            raise RuntimeError(f"edge runtime in {tree} exited ({self.proc.wait()}) without listening")
        stderr = self.proc.stderr
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
        deadline = time.monotonic() + 180
        while self.request("GET", "/healthz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("no model within 180 s")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def memory_mb(self) -> dict[str, float]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def measure(
    tree: Path, workdir: Path, payloads: dict[str, bytes], clients: int, rounds: int
) -> dict[str, Any]:
    channel, pub, publisher = prepare_channel(workdir / tree.name, 320)
    server = Server(tree, channel, pub, workdir / f"state-{tree.name}")
    idle = server.memory_mb()
    oversize(channel, publisher)
    answers: dict[str, dict[int, int]] = {name: {} for name in payloads}
    lock = threading.Lock()

    def client(seed: int) -> None:
        names = list(payloads)
        for r in range(rounds):
            for i in range(len(names)):
                name = names[(i + seed + r) % len(names)]
                try:
                    status, _ = server.request("POST", "/v1/predict", payloads[name])
                except OSError:
                    status = -1
                with lock:
                    answers[name][status] = answers[name].get(status, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    _, health = server.request("GET", "/healthz")
    peak = server.memory_mb()
    server.stop()
    return {
        "tree": str(tree),
        "idle_rss_mb": idle["VmRSS"],
        "peak_rss_mb": peak["VmHWM"],
        "seconds": round(seconds, 1),
        "answers": answers,
        "agent_error": (health.get("agent") or {}).get("last_error"),
        "serving": health.get("version"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="a worktree of the code to compare with")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-image-mb", type=float, default=96.0)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "visionloop-edge-memory"
    )
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    payloads = images(args.max_image_mb)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print("inputs: " + ", ".join(f"{n} {len(b) / 1024:.0f} KB" for n, b in payloads.items()))
    runs = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    results = {}
    for label, tree in runs:
        results[label] = measure(tree, args.workdir, payloads, args.clients, args.rounds)
        r = results[label]
        print(
            f"{label:6s} peak RSS {r['peak_rss_mb']:7.1f} MB (idle {r['idle_rss_mb']:.1f} MB), "
            f"{r['seconds']} s; answers {json.dumps(r['answers'])}; serving {r['serving']}; "
            f"agent: {(r['agent_error'] or '')[:120]}"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.results:
        args.results.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
