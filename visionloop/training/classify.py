"""Training, validation and prediction of ultralytics ``-cls`` classifiers, offline.

There are no offline ``-cls`` weights. ``weights``:

* ``abd`` (default): ``yolov8n-cls.yaml`` built, then the backbone (layers 0-8, the
  same shapes as YOLOv8n's detection backbone) loaded from the ABD detection
  checkpoint with ``YOLO.load``; the classification head starts fresh. ``pretrained``
  is left unset on ``train()`` (``pretrained=False`` would reset the loaded weights);
* a model YAML (``yolov8n-cls.yaml``, ``yolov8s-cls.yaml``...): from scratch;
* a local ``-cls`` ``.pt`` file: fine-tuned from it.

The data set is an ultralytics ImageFolder layout (``train/<class>/``, ``val/<class>/``,
``test/<class>/``) written by ``visionloop.hierarchy.dataset.export_image_folder``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "yolov8n-cls.yaml"


class ClassifierParams(BaseModel):
    """One classifier training configuration (ultralytics' argument names)."""

    epochs: int = 30
    imgsz: int = 32
    batch: int = 64
    lr0: float = 0.002
    optimizer: str = "AdamW"
    patience: int = 100
    dropout: float = 0.0
    scale: float = 0.5  # RandomResizedCrop keeps (1 - scale, 1) of the area
    fliplr: float = 0.5
    erasing: float = 0.4
    auto_augment: str | None = "randaugment"
    seed: int = 0
    device: str = "cpu"
    workers: int = 0

    def ultralytics_kwargs(self) -> dict[str, Any]:
        return {**self.model_dump(), "deterministic": True, "amp": False}


def describe_weights(spec: str) -> str:
    if spec == "abd":
        return f"{DEFAULT_ARCH} with the backbone of the ABD detection checkpoint"
    if spec.endswith((".yaml", ".yml")):
        return f"{spec} from scratch"
    return f"fine-tuned from {spec}"


def build_model(spec: str) -> tuple[Any, bool]:
    """(an ultralytics YOLO classifier, whether ``train`` must be told ``pretrained=False``)."""
    prepare_ultralytics()
    from ultralytics import YOLO

    if spec == "abd":
        return YOLO(DEFAULT_ARCH, task="classify").load(str(abd_checkpoint())), False
    if spec.endswith((".yaml", ".yml")):
        return YOLO(spec, task="classify"), True
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights {spec!r} not found: give 'abd', a model YAML such as "
            f"'{DEFAULT_ARCH}', or the path of a local -cls .pt file"
        )
    return YOLO(str(path), task="classify"), False


def safe_batch(images: int, batch: int) -> int:
    """``batch``, or the nearest smaller size that does not leave one image alone in the
    last batch (ultralytics refuses a batch of one: BatchNorm needs two values)."""
    b = max(1, min(batch, images))
    while b > 2 and images % b == 1:
        b -= 1
    return b


@dataclass
class ClassifierOutcome:
    best: Path
    seconds: float
    epochs_run: int
    val_top1: float


def train(
    data_dir: Path, params: ClassifierParams, weights: str, out_dir: Path, name: str = "train"
) -> ClassifierOutcome:
    """Train on ``data_dir`` (ImageFolder layout); the val split picks the best epoch."""
    model, scratch = build_model(weights)
    kwargs = params.ultralytics_kwargs()
    images = sum(1 for p in (data_dir / "train").rglob("*") if p.is_file())
    kwargs["batch"] = safe_batch(images, params.batch)
    if kwargs["batch"] != params.batch:
        logger.info(
            "%s: batch %d instead of %d (%d train images)", name, kwargs["batch"], params.batch, images
        )
    if scratch:
        kwargs["pretrained"] = False
    start = time.perf_counter()

    def log_epoch(trainer: Any) -> None:
        if trainer.epoch >= trainer.epochs:  # ultralytics calls it once more for the best weights' figures
            return
        m = trainer.metrics or {}
        logger.info(
            "%s epoch %d/%d: val top-1 %.3f (%.0f s)",
            name,
            trainer.epoch + 1,
            trainer.epochs,
            m.get("metrics/accuracy_top1", 0.0),
            time.perf_counter() - start,
        )

    model.add_callback("on_fit_epoch_end", log_epoch)
    model.train(
        data=str(data_dir),
        project=str(out_dir),
        name=name,
        exist_ok=True,
        plots=False,
        verbose=False,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    trainer: Any = model.trainer
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    top1 = float((getattr(trainer, "metrics", {}) or {}).get("metrics/accuracy_top1", 0.0))
    return ClassifierOutcome(best=best, seconds=seconds, epochs_run=int(trainer.epoch) + 1, val_top1=top1)


def predict_probs(weights: Path, images: list[np.ndarray], imgsz: int, device: str = "cpu") -> np.ndarray:
    """ultralytics' own class probabilities ``(n, nc)`` for HWC uint8 BGR images, as a
    user of ``YOLO(pt).predict`` gets them (the parity reference of the ONNX model)."""
    prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="classify")
    rows = []
    for image in images:
        (r,) = model.predict(image, imgsz=imgsz, device=device, verbose=False)
        rows.append(r.probs.data.cpu().numpy())  # type: ignore[union-attr]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
