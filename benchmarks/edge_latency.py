"""Measurement: per-image latency and throughput of the edge runtime against what users
would run instead, in one run, on the same images and the same CPU threads.

The model is the ABD YOLOv8n checkpoint (``visionloop.training.offline.abd_checkpoint``,
offline) exported to a fixed-shape ONNX at ``--imgsz`` (480); the images are the
``data/metal-tags`` JPEGs (450x300), taken in turn. Conf 0.25, IoU 0.7 everywhere.

    (a) ultralytics ``YOLO(.pt).predict(path)``            torch on the CPU, ``--threads`` threads
    (b) ultralytics ``YOLO(.onnx).predict(path)``          onnxruntime inside ultralytics
    (c) bare ``session.run`` on a ready tensor             the floor: no decoding, no NMS
    (c8) the same on the INT8 model (``visionloop.training.quantize.quantize_int8``)
    (d) the edge runtime in-process: ``LoadedModel.predict`` = JPEG decode (Pillow),
        letterbox, ``session.run``, decode + NMS (what a request costs in the model);
    (d+) ``EdgeRuntime.predict``: (d) plus image statistics, prediction log and
        feedback spool (the whole request path, minus HTTP);
    (d8) (d) on the INT8 variant;
    (e) the edge runtime over HTTP: ``python -m edge_runtime serve`` as a subprocess
        (its own process, as on a device), one client on loopback, POST of the JPEG bytes.

All methods take turns in ``--rounds`` rounds of ``--runs / --rounds`` images each after
5 warm-up calls, so that a noisy moment on a shared machine does not hit one method only.
Then ``--clients`` concurrent HTTP clients load the server for ``--load-seconds`` and its
peak resident memory (``VmHWM``) is read from ``/proc``. The machine's load average
before and after is printed: numbers taken beside another busy process are not absolute.

    .venv/bin/python benchmarks/edge_latency.py                      # ~3 min on 2 cores
    .venv/bin/python benchmarks/edge_latency.py --runs 200 --threads 2 --results /tmp/edge.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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
CONF, IOU = 0.25, 0.7


def prepare_models(workdir: Path, imgsz: int, calib: int) -> tuple[Path, Path, Path | None]:
    """(checkpoint copy, float ONNX, INT8 ONNX or None), cached under ``workdir``."""
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    workdir.mkdir(parents=True, exist_ok=True)
    weights = workdir / "abd.pt"
    if not weights.exists():
        shutil.copyfile(abd_checkpoint(), weights)
    onnx_path = workdir / f"abd-{imgsz}.onnx"
    if not onnx_path.exists():
        exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, opset=17, dynamic=False))
        shutil.move(exported, onnx_path)
    int8_path: Path | None = workdir / f"abd-{imgsz}.int8.onnx"
    assert int8_path is not None
    if not int8_path.exists():
        try:
            from visionloop.training.quantize import quantize_int8
        except ImportError as exc:  # pragma: no cover - the training extras are missing
            print(f"INT8 skipped: {exc}")
            return weights, onnx_path, None
        images = sorted(METAL_TAGS.glob("*/*.jpg"))
        result = quantize_int8(onnx_path, int8_path, images, max_images=calib)
        print(f"INT8: {result.calibration_images} calibration images, {result.seconds:.1f} s")
    return weights, onnx_path, int8_path


def build_channel(workdir: Path, onnx_path: Path, int8_path: Path | None, imgsz: int) -> tuple[Path, Path]:
    """A channel folder with version 1 of the model (float + INT8) and its public key."""
    from edge_runtime.detector import OnnxDetector
    from edge_runtime.storage import LocalStore
    from visionloop.config import ServingThresholds
    from visionloop.deploy.channel import ChannelPublisher
    from visionloop.deploy.release import build_release
    from visionloop.deploy.signing import generate
    from visionloop.training.types import ModelBlob

    channel = workdir / "channel"
    shutil.rmtree(channel, ignore_errors=True)
    key = generate("benchmark")
    names = OnnxDetector(onnx_path).class_names

    def blob(path: Path) -> ModelBlob:
        return ModelBlob(
            data=path.read_bytes(), filename=path.name, class_names=names, imgsz=imgsz, kind="onnx"
        )

    samples = [p.read_bytes() for p in sorted(METAL_TAGS.glob("*/*.jpg"))[:3]]
    thresholds = ServingThresholds(conf=CONF, iou=IOU, uncertain_low=0.25, uncertain_high=0.5)
    release = build_release(
        MODEL,
        "1",
        blob(onnx_path),
        blob(int8_path) if int8_path else None,
        samples,
        thresholds,
        {},
    )
    publisher = ChannelPublisher(LocalStore(channel), key)
    publisher.publish(release)
    publisher.set_pointer(MODEL, "production", "1")
    pub = workdir / "channel.pub.pem"
    pub.write_text(key.public_pem)
    return channel, pub


class Server:
    """``python -m edge_runtime serve`` in its own process, on a free loopback port."""

    def __init__(self, channel: Path, pub: Path, state: Path, threads: int, variant: str = "float") -> None:
        shutil.rmtree(state, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "edge_runtime", "serve", "--channel", str(channel), "--model", MODEL]
        cmd += ["--public-key", str(pub), "--state-dir", str(state), "--port", "0", "--threads", str(threads)]
        cmd += ["--variant", variant]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.port = 0
        for line in self.proc.stderr:
            if "listening on http://" in line:
                self.port = int(line.rsplit(":", 1)[1])
                break
        if not self.port:
            raise RuntimeError(f"edge runtime exited ({self.proc.wait()}) without listening")
        stderr = self.proc.stderr
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()  # keep the pipe drained
        self._wait_model()

    def _wait_model(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, _ = self.request("GET", "/healthz")
            if status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("edge runtime loaded no model within 120 s")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def memory_kb(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def summary(times_s: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times_s)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(ms[0], 2),
        "images_per_s": round(1000 / statistics.fmean(ms), 1),
        "n": len(ms),
    }


def load(server: Server, images: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        nonlocal errors
        i = seed
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, _ = server.request("POST", "/v1/predict", images[i % len(images)])
            with lock:
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
            i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = sorted(t * 1000 for t in latencies)
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(ms),
        "errors": errors,
        "images_per_s": round(len(ms) / seconds, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "visionloop-edge-bench")
    parser.add_argument("--imgsz", type=int, default=480)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every method")
    parser.add_argument("--runs", type=int, default=100, help="timed images per method")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calib", type=int, default=32, help="INT8 calibration images")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--results", type=Path, default=None, help="JSON results (default: workdir)")
    parser.add_argument(
        "--prepared",
        action="store_true",
        help="reuse abd.pt, channel/ and channel.pub.pem of an earlier run in --workdir "
        "(another machine with ultralytics but not visionloop's dependencies)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    if args.prepared:
        os.environ.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"})
        os.environ.setdefault("YOLO_CONFIG_DIR", str(args.workdir / "ultralytics-config"))
        weights, channel, pub = (
            args.workdir / "abd.pt",
            args.workdir / "channel",
            args.workdir / "channel.pub.pem",
        )
        version = channel / "models" / MODEL / "1"
        onnx_path = version / "model.onnx"
        int8_path: Path | None = (
            version / "model.int8.onnx" if (version / "model.int8.onnx").exists() else None
        )
        for needed in (weights, onnx_path, pub):
            if not needed.exists():
                raise SystemExit(f"--prepared: {needed} is missing; run once without --prepared first")
    else:
        weights, onnx_path, int8_path = prepare_models(args.workdir, args.imgsz, args.calib)
        channel, pub = build_channel(args.workdir, onnx_path, int8_path, args.imgsz)

    import numpy as np
    import onnxruntime as ort
    import torch
    import ultralytics
    from ultralytics import YOLO

    from edge_runtime.channel import ChannelClient
    from edge_runtime.detector import open_image
    from edge_runtime.ed25519 import load_public_key
    from edge_runtime.preprocess import letterbox
    from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
    from edge_runtime.storage import LocalStore

    torch.set_num_threads(args.threads)
    paths = sorted(METAL_TAGS.glob("*/*.jpg"))
    images = [p.read_bytes() for p in paths]
    client = ChannelClient(LocalStore(channel), load_public_key(pub.read_bytes()))

    def runtime(variant: str) -> EdgeRuntime:
        state = args.workdir / f"state-{variant}"
        shutil.rmtree(state, ignore_errors=True)
        config = RuntimeConfig(model=MODEL, state_dir=state, variant=variant, threads=args.threads)
        rt = EdgeRuntime(config, client, None)
        rt.start(background=False)
        assert rt.agent.check_once() and rt.current is not None and rt.current.variant == variant
        return rt

    edge = runtime("float")
    edge8 = runtime("int8") if int8_path else None
    pt = YOLO(str(weights))
    yolo_onnx = YOLO(str(onnx_path), task="detect")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    with open(paths[0], "rb") as f:
        tensor, _ = letterbox(open_image(f.read()), args.imgsz, args.imgsz)
    bare = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {bare.get_inputs()[0].name: np.ascontiguousarray(tensor)}
    server = Server(channel, pub, args.workdir / "state-http", args.threads)
    kwargs = {"imgsz": args.imgsz, "conf": CONF, "iou": IOU, "verbose": False, "device": "cpu"}

    assert edge.current is not None
    loaded = edge.current
    methods: dict[str, Callable[[int], object]] = {
        "(a) ultralytics YOLO(.pt).predict": lambda i: pt.predict(str(paths[i % len(paths)]), **kwargs),
        "(b) ultralytics YOLO(.onnx).predict": lambda i: yolo_onnx.predict(
            str(paths[i % len(paths)]), **kwargs
        ),
        "(c) bare session.run, ready tensor": lambda i: bare.run(None, feed),
        "(d) edge in-process, model path": lambda i: loaded.predict(open_image(images[i % len(images)])),
        "(d+) edge in-process, EdgeRuntime.predict": lambda i: edge.predict(images[i % len(images)], "bench"),
        "(e) edge over HTTP, 1 client": lambda i: server.request(
            "POST", "/v1/predict", images[i % len(images)]
        ),
    }
    if int8_path and edge8 is not None:
        bare8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
        loaded8 = edge8.current
        assert loaded8 is not None
        methods["(c8) bare session.run, INT8"] = lambda i: bare8.run(None, feed)
        methods["(d8) edge in-process, INT8, model path"] = lambda i: loaded8.predict(
            open_image(images[i % len(images)])
        )
    times: dict[str, list[float]] = {k: [] for k in methods}
    for fn in methods.values():
        for i in range(5):
            fn(i)
    per_round = max(1, args.runs // args.rounds)
    for r in range(args.rounds):
        for name, fn in methods.items():
            for i in range(per_round):
                t0 = time.perf_counter()
                fn(r * per_round + i)
                times[name].append(time.perf_counter() - t0)
    results: dict[str, Any] = {name: summary(t) for name, t in times.items()}
    memory_idle = server.memory_kb()
    results["http_load"] = load(server, images, args.clients, args.load_seconds)
    memory = server.memory_kb()
    server.stop()
    results["serving_memory_mb"] = {
        "rss_idle": round(memory_idle["VmRSS"] / 1024, 1),
        "rss_after_load": round(memory["VmRSS"] / 1024, 1),
        "peak_rss": round(memory["VmHWM"] / 1024, 1),
    }
    results["setup"] = {
        "imgsz": args.imgsz,
        "threads": args.threads,
        "runs": args.runs,
        "images": len(images),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }
    floor = results["(c) bare session.run, ready tensor"]["median_ms"]
    print(f"\n{'method':45s} {'median':>8s} {'p90':>8s} {'mean':>8s} {'img/s':>7s}  x floor")
    for name in methods:
        s = results[name]
        print(
            f"{name:45s} {s['median_ms']:8.2f} {s['p90_ms']:8.2f} {s['mean_ms']:8.2f} "
            f"{s['images_per_s']:7.1f}  {s['median_ms'] / floor:5.2f}"
        )
    print(f"HTTP load: {json.dumps(results['http_load'])}")
    print(f"serving process memory (MB): {json.dumps(results['serving_memory_mb'])}")
    print(f"setup: {json.dumps(results['setup'])}")
    out = args.results or args.workdir / "edge_latency.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
