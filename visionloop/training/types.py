"""Artifact types of the training pipeline (plain data, no ZenML)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TrainParams(BaseModel):
    """One training configuration. ``augment`` scales ultralytics' colour and geometry
    augmentation (hsv, translate, scale) around its defaults (1.0 = defaults)."""

    lr0: float = 0.002
    augment: float = 1.0
    imgsz: int = 480
    epochs: int = 25
    batch: int = 8
    optimizer: str = "AdamW"
    flipud: float = 0.5
    patience: int = 100
    seed: int = 0
    device: str = "cpu"
    workers: int = 0

    def ultralytics_kwargs(self) -> dict[str, Any]:
        a = self.augment
        return {
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "optimizer": self.optimizer,
            "lr0": self.lr0,
            "seed": self.seed,
            "deterministic": True,
            "patience": self.patience,
            "device": self.device,
            "workers": self.workers,
            "amp": False,
            "hsv_h": 0.015 * a,
            "hsv_s": 0.7 * a,
            "hsv_v": 0.4 * a,
            "translate": 0.1 * a,
            "scale": 0.5 * a,
            "fliplr": 0.5,
            "flipud": self.flipud,
        }


class TrialResult(BaseModel):
    index: int
    params: TrainParams
    fitness: float
    map50: float
    map50_95: float
    seconds: float
    train_images: int


class Override(BaseModel):
    """A training setting that tuning replaced: ``written`` when the user wrote it in
    the configuration's ``train`` section (not a default)."""

    field: str
    configured: float
    tuned: float
    written: bool = False

    def describe(self) -> str:
        who = "written in train" if self.written else "default"
        return f"train.{self.field} {self.configured:g} ({who}) replaced by the tuned {self.tuned:g}"


class TuningResult(BaseModel):
    """All trials and the chosen parameters (``best_index`` is None without trials), and
    the training settings the chosen trial replaced."""

    trials: list[TrialResult] = Field(default_factory=list)
    best_index: int | None = None
    best_params: TrainParams
    overrides: list[Override] = Field(default_factory=list)


class ModelBlob(BaseModel):
    """A model file with what is needed to use it: class names, input size, and for
    ONNX the opset and precision. ``sha256`` is computed from the bytes."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes
    filename: str
    class_names: list[str]
    imgsz: int
    kind: str  # "pytorch" or "onnx"
    precision: str = "fp32"
    opset: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def describe(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "class_names": self.class_names,
            "imgsz": self.imgsz,
            "kind": self.kind,
            "precision": self.precision,
            "opset": self.opset,
            **self.metadata,
        }


class Metrics(BaseModel):
    map50: float
    map50_95: float
    precision: float
    recall: float
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    images: int = 0


class EvaluationReport(BaseModel):
    """Held-out evaluation of one training run: ultralytics' validator on the test
    split, the same test split through the edge runtime for the ONNX and INT8 files,
    their parity with the PyTorch model, tuning, and the plots (PNG bytes)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    model_name: str
    dataset_version_id: str
    test: Metrics
    pytorch_predict: Metrics
    onnx: Metrics
    int8: Metrics | None = None
    parity: dict[str, float] = Field(default_factory=dict)
    parity_ok: bool = True
    int8_kept: bool = False
    int8_reason: str = ""
    tuning: TuningResult | None = None
    train_params: TrainParams
    train_seconds: float = 0.0
    plots: dict[str, bytes] = Field(default_factory=dict)
    code_commit: str | None = None
