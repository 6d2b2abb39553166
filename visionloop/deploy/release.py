"""A model version made ready for the channel: the ONNX file(s), self-test samples with
the detections they must give, and the manifest fields a device needs."""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

from edge_runtime import selftest
from edge_runtime.channel import VerifiedVersion
from edge_runtime.detector import OnnxDetector
from visionloop.config import ServingThresholds, StagingSettings
from visionloop.deploy.channel import Release
from visionloop.deploy.types import Check, StagingReport
from visionloop.training.types import ModelBlob

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"


def sample_name(data: bytes) -> str:
    kind = "png" if data[:4] == b"\x89PNG" else "jpg"
    return f"samples/{hashlib.sha256(data).hexdigest()[:16]}.{kind}"


def build_release(
    model_name: str,
    version: str,
    onnx_model: ModelBlob,
    int8_model: ModelBlob | None,
    samples: list[bytes],
    thresholds: ServingThresholds,
    fields: dict[str, Any],
) -> Release:
    """Everything that goes into ``models/<model_name>/<version>/``. The self-test
    expectations are computed here with the edge runtime's detector, per model file."""
    sample_files = {sample_name(b): b for b in samples}
    models = {MODEL_FILE: onnx_model} | ({INT8_FILE: int8_model} if int8_model is not None else {})
    expected = {
        name: selftest.expectations(
            OnnxDetector(blob.data, blob.class_names, conf=thresholds.conf, iou=thresholds.iou),
            sample_files,
            thresholds.conf,
        )
        for name, blob in models.items()
    }
    return Release(
        model=model_name,
        version=version,
        files={**{n: b.data for n, b in models.items()}, **sample_files},
        model_file=MODEL_FILE,
        int8_file=INT8_FILE if int8_model is not None else None,
        fields={
            "task": "detect",
            "classes": onnx_model.class_names,
            "input_size": [onnx_model.imgsz, onnx_model.imgsz],
            "opset": onnx_model.opset,
            "thresholds": thresholds.model_dump(),
            "self_test": {"conf": thresholds.conf, "expected": expected},
            **fields,
        },
    )


def measure_latency(detector: OnnxDetector, images: list[bytes], n: int) -> dict[str, float]:
    """Per-image latency (decode, letterbox, inference, NMS) over ``n`` images taken in
    turn from ``images``, after two warm-up runs; milliseconds."""
    for image in images[:2]:
        detector.predict(image)
    times = []
    for i in range(n):
        start = time.perf_counter()
        detector.predict(images[i % len(images)])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
    return {
        "p50": round(statistics.median(times), 2),
        "p95": round(p95, 2),
        "mean": round(statistics.fmean(times), 2),
        "n": float(n),
    }


def staging_checks(
    verified: VerifiedVersion,
    images: list[bytes],
    settings: StagingSettings,
    parity_ok: bool,
    parity_detail: str,
    gate_map50: float,
    channel_map50: float,
) -> StagingReport:
    """Checks of a version as the edge runtime pulled and verified it: its self-test
    (float and INT8), ONNX parity from evaluation, the same accuracy as the gate measured
    (what was validated is what was published), latency p95 and model size."""
    manifest = verified.manifest
    conf, iou = manifest["thresholds"]["conf"], manifest["thresholds"]["iou"]
    checks: list[Check] = []
    files = [manifest["model_file"]] + ([manifest["int8_file"]] if manifest.get("int8_file") else [])
    latency: dict[str, float] = {}
    for name in files:
        detector = OnnxDetector(
            verified.file(name), manifest["classes"], conf=conf, iou=iou, threads=settings.threads
        )
        problems = selftest.run_self_test(detector, verified.path, manifest["self_test"], name)
        checks.append(
            Check(
                name=f"self-test of {name}",
                passed=not problems,
                value=len(problems),
                limit=0,
                detail="; ".join(problems[:5]),
            )
        )
        if name == manifest["model_file"]:
            latency = measure_latency(detector, images, settings.latency_images)
    checks += [
        Check(name="ONNX parity with PyTorch", passed=parity_ok, value=str(parity_ok), detail=parity_detail),
        Check(
            name="mAP50 of the published copy equals the gate's",
            passed=abs(channel_map50 - gate_map50) <= 1e-6,
            value=round(channel_map50, 6),
            limit=round(gate_map50, 6),
        ),
        Check(
            name="latency p95 (ms)",
            passed=latency["p95"] <= settings.max_latency_p95_ms,
            value=latency["p95"],
            limit=settings.max_latency_p95_ms,
            detail=f"{settings.latency_images} images, p50 {latency['p50']} ms",
        ),
    ]
    size = Path(verified.model_path).stat().st_size
    checks.append(
        Check(
            name="model size (MB)",
            passed=size <= settings.max_model_mb * 2**20,
            value=round(size / 2**20, 2),
            limit=settings.max_model_mb,
        )
    )
    failed = [c for c in checks if not c.passed]
    return StagingReport(
        model_name=verified.model,
        version=verified.version,
        manifest_sha256=verified.manifest_sha256,
        size_bytes=size,
        latency_ms=latency,
        map50=channel_map50,
        checks=checks,
        passed=not failed,
        reasons=[f"{c.name}: {c.value} against {c.limit} {c.detail}".strip() for c in failed]
        or ["every staging check passed"],
    )
