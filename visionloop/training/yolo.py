"""Training, validation, prediction and ONNX export with ultralytics, offline.

Every function calls ``prepare_ultralytics()`` first (no downloads, no telemetry) and
writes only under the ``out_dir`` it is given.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.training.offline import abd_checkpoint, prepare_ultralytics
from visionloop.training.types import Metrics, TrainParams

logger = logging.getLogger(__name__)

PLOT_FILES = {
    "pr_curve": ("BoxPR_curve.png", "PR_curve.png"),
    "confusion_matrix": ("confusion_matrix.png",),
    "predictions": ("val_batch0_pred.jpg",),
    "labels": ("val_batch0_labels.jpg",),
}


def resolve_weights(spec: str) -> str:
    """``abd`` -> the bundled checkpoint; a ``.yaml`` model name as is (from scratch);
    else a local ``.pt`` that must exist (never a hub name that would download)."""
    if spec == "abd":
        return str(abd_checkpoint())
    if spec.endswith((".yaml", ".yml")):
        return spec
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"starting weights {spec!r} not found: give 'abd', a model YAML such as "
            "'yolov8n.yaml', or the path of a local .pt file"
        )
    return str(path)


@dataclass
class TrainOutcome:
    best: Path
    seconds: float
    epochs_run: int
    val: Metrics


def train(
    data_yaml: Path, params: TrainParams, weights: str, out_dir: Path, name: str = "train"
) -> TrainOutcome:
    prepare_ultralytics()
    from ultralytics import YOLO

    source = resolve_weights(weights)
    model = YOLO(source)
    kwargs = params.ultralytics_kwargs()
    if source.endswith((".yaml", ".yml")):
        kwargs["pretrained"] = False
    start = time.perf_counter()

    def log_epoch(trainer: Any) -> None:
        if trainer.epoch >= trainer.epochs:  # ultralytics calls it once more for the best weights' figures
            return
        m = trainer.metrics or {}
        logger.info(
            "%s epoch %d/%d: val mAP50 %.3f mAP50-95 %.3f (%.0f s)",
            name,
            trainer.epoch + 1,
            trainer.epochs,
            m.get("metrics/mAP50(B)", 0.0),
            m.get("metrics/mAP50-95(B)", 0.0),
            time.perf_counter() - start,
        )

    model.add_callback("on_fit_epoch_end", log_epoch)
    model.train(
        data=str(data_yaml),
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
    validator_metrics = getattr(trainer, "metrics", {}) or {}
    val = Metrics(
        map50=float(validator_metrics.get("metrics/mAP50(B)", 0.0)),
        map50_95=float(validator_metrics.get("metrics/mAP50-95(B)", 0.0)),
        precision=float(validator_metrics.get("metrics/precision(B)", 0.0)),
        recall=float(validator_metrics.get("metrics/recall(B)", 0.0)),
    )
    return TrainOutcome(best=best, seconds=seconds, epochs_run=int(trainer.epoch) + 1, val=val)


EPOCH_COLUMNS = {
    "metrics/mAP50(B)": "epoch_val_map50",
    "metrics/mAP50-95(B)": "epoch_val_map50_95",
    "metrics/precision(B)": "epoch_val_precision",
    "metrics/recall(B)": "epoch_val_recall",
    "train/box_loss": "epoch_train_box_loss",
    "train/cls_loss": "epoch_train_cls_loss",
    "val/box_loss": "epoch_val_box_loss",
    "val/cls_loss": "epoch_val_cls_loss",
}


def epoch_metrics(results_csv: Path) -> list[tuple[str, float, int]]:
    """(name, value, epoch) for each epoch of ultralytics' ``results.csv``: validation
    mAP, precision, recall and the losses, the training curves MLflow draws."""
    import csv

    out: list[tuple[str, float, int]] = []
    with open(results_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                epoch = int(float(row.get("epoch", "0")))
            except ValueError:
                continue
            for column, name in EPOCH_COLUMNS.items():
                try:
                    out.append((name, float(row[column]), epoch))
                except (KeyError, TypeError, ValueError):
                    continue
    return out


def fitness(m: Metrics) -> float:
    """ultralytics' default model fitness: 0.1 mAP50 + 0.9 mAP50-95."""
    return 0.1 * m.map50 + 0.9 * m.map50_95


def validate(
    weights: Path,
    data_yaml: Path,
    split: str,
    imgsz: int,
    out_dir: Path,
    device: str = "cpu",
    plots: bool = True,
) -> tuple[Metrics, dict[str, bytes]]:
    """ultralytics' validator on ``split``; returns metrics and the plots it drew."""
    prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    r = model.val(
        data=str(data_yaml),
        split=split,
        imgsz=imgsz,
        batch=8,
        device=device,
        plots=plots,
        project=str(out_dir),
        name=f"val-{split}",
        exist_ok=True,
        verbose=False,
        workers=0,
    )
    names = model.names
    per_class = {}
    for i, cls in enumerate(r.box.ap_class_index):
        per_class[str(names[int(cls)])] = {
            "map50": float(r.box.ap50[i]),
            "map50_95": float(r.box.ap[i]),
            "precision": float(r.box.p[i]),
            "recall": float(r.box.r[i]),
        }
    metrics = Metrics(
        map50=float(r.box.map50),
        map50_95=float(r.box.map),
        precision=float(r.box.mp),
        recall=float(r.box.mr),
        per_class=per_class,
    )
    images: dict[str, bytes] = {}
    save_dir = Path(r.save_dir)
    for key, candidates in PLOT_FILES.items():
        for filename in candidates:
            if (save_dir / filename).is_file():
                images[key] = (save_dir / filename).read_bytes()
                break
    return metrics, images


def predict_arrays(
    weights: Path,
    images: list[np.ndarray],
    imgsz: int,
    conf: float = 0.001,
    iou: float = 0.7,
    device: str = "cpu",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """ultralytics' own predictions (xyxy pixels of each original image, scores,
    class ids) for BGR uint8 images, as a user of ``YOLO(pt).predict`` gets them."""
    prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    out = []
    for image in images:
        (r,) = model.predict(image, imgsz=imgsz, conf=conf, iou=iou, device=device, verbose=False)
        boxes: Any = r.boxes  # type: ignore[union-attr]
        out.append((boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy().astype(int)))
    return out


def export_onnx(weights: Path, imgsz: int, opset: int, out_dir: Path) -> Path:
    """A fixed-size (1, 3, imgsz, imgsz) ONNX file with ultralytics' metadata (names,
    imgsz, stride) in it; simplified with onnxslim."""
    prepare_ultralytics()
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / weights.name
    if local != weights:
        local.write_bytes(weights.read_bytes())
    path = YOLO(str(local)).export(
        format="onnx", imgsz=imgsz, opset=opset, simplify=True, dynamic=False, device="cpu", verbose=False
    )
    return Path(path)


def class_names_of(weights: Path) -> list[str]:
    prepare_ultralytics()
    from ultralytics import YOLO

    names: dict[int, str] | Any = YOLO(str(weights)).names
    return [str(names[i]) for i in sorted(names)]
