"""Self-test of a model release: the sample images shipped with a version must give the
detections its manifest records (computed by the control plane with this same code).

Detections within ``margin`` of the confidence threshold may appear on one side and
not the other after harmless numeric differences (another CPU, another onnxruntime),
so only clear detections are compared, by class, IoU and score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.channel import member_path
from edge_runtime.detector import OnnxDetector, box_iou

MIN_IOU = 0.9
MAX_SCORE_DIFF = 0.05


def expectations(
    detector: OnnxDetector, images: dict[str, bytes], conf: float
) -> dict[str, list[list[float]]]:
    """Per sample name: ``[class_id, x1, y1, x2, y2, score]`` for each detection."""
    out: dict[str, list[list[float]]] = {}
    for name, data in images.items():
        dets = detector.predict(data, conf=conf)
        out[name] = [
            [float(d.class_id), *(round(float(v), 2) for v in d.box), round(d.score, 4)] for d in dets
        ]
    return out


def _clear(rows: list[list[float]], conf: float, margin: float) -> np.ndarray:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return arr[arr[:, 5] >= conf + margin]


def compare(
    expected: list[list[float]], found: list[list[float]], conf: float, margin: float = 0.05
) -> list[str]:
    """Problems between expected and found detections of one image (empty: it passes)."""
    problems: list[str] = []
    exp_clear = _clear(expected, conf, margin)
    found_all = np.asarray(found, dtype=np.float64).reshape(-1, 6)
    found_clear = _clear(found, conf, margin)
    for label, wanted, pool in (("expected", exp_clear, found_all), ("unexpected", found_clear, None)):
        for row in wanted:
            candidates = pool if pool is not None else np.asarray(expected, dtype=np.float64).reshape(-1, 6)
            same = candidates[candidates[:, 0] == row[0]]
            if len(same):
                # any detection close in place and score matches: a poorly trained model can
                # give several boxes at one place (clipped to the image) with other scores
                ious = box_iou(row[1:5], same[:, 1:5])
                if np.any((ious >= MIN_IOU) & (np.abs(same[:, 5] - row[5]) <= MAX_SCORE_DIFF)):
                    continue
            problems.append(
                f"{label} detection class {int(row[0])} at {np.round(row[1:5], 1).tolist()} "
                f"score {row[5]:.3f} has no match"
            )
    return problems


def run_self_test(
    detector: OnnxDetector, folder: Path, self_test: dict[str, Any], model_file: str
) -> list[str]:
    """Run the samples of a verified version folder through ``detector`` (loaded from
    ``model_file``) and compare with the manifest's ``self_test`` section."""
    conf = float(self_test.get("conf", 0.25))
    expected_by_sample = self_test.get("expected", {}).get(model_file)
    if expected_by_sample is None:
        return [f"the manifest records no self-test expectations for {model_file}"]
    if not expected_by_sample:
        return ["the manifest ships no self-test samples"]
    problems: list[str] = []
    for name, expected in expected_by_sample.items():
        data = member_path(folder, name).read_bytes()
        found = expectations(detector, {name: data}, conf)[name]
        problems += [f"{name}: {p}" for p in compare(expected, found, conf)]
    return problems
