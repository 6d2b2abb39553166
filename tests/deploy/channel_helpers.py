"""Shared helpers of the channel tests: keys, a release of a real ONNX model."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.detector import OnnxDetector
from tests.conftest import ABD_ONNX_IMGSZ, METAL_TAGS
from visionloop.config import ServingThresholds
from visionloop.deploy.channel import Release
from visionloop.deploy.release import build_release
from visionloop.deploy.signing import SigningKey, parse_private_key
from visionloop.training.types import ModelBlob

THRESHOLDS = ServingThresholds(conf=0.05, iou=0.7, uncertain_low=0.05, uncertain_high=0.3)


def key(seed: int) -> SigningKey:
    return parse_private_key(bytes([seed]).hex() * 32, f"test key {seed}")


def onnx_blob(path: Path) -> ModelBlob:
    names = OnnxDetector(path).class_names
    return ModelBlob(
        data=path.read_bytes(),
        filename="model.onnx",
        class_names=names,
        imgsz=ABD_ONNX_IMGSZ,
        kind="onnx",
        opset=17,
    )


def samples(n: int = 3) -> list[bytes]:
    return [p.read_bytes() for p in sorted(METAL_TAGS.glob("*/*.jpg"))[:n]]


def release(model_path: Path, version: str, model: str = "tags", n_samples: int = 3) -> Release:
    return build_release(
        model,
        version,
        onnx_blob(model_path),
        None,
        samples(n_samples),
        THRESHOLDS,
        {"dataset_version_id": "d" * 64, "code_commit": "test"},
    )
