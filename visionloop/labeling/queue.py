"""Gathering the raw image store into a labeling queue, and the Label Studio tasks made
from it.

The raw image store is a folder or ``s3://`` prefix. The edge runtime uploads its
feedback there as ``feedback/<sha256>.<ext>`` with a ``feedback/<sha256>.json`` beside
it (model version, scores, device); images may also arrive any other way. Files under
``labels/`` are the exports this package writes, not images.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from edge_runtime.detector import Detection
from visionloop.data.ingest import split_listing
from visionloop.data.sources import DataSource
from visionloop.labeling.label_config import BOXES, IMAGE
from visionloop.labeling.types import PreLabel, Quarantined, QueueItem, RawImage

LABELS_PREFIX = "labels/"


def uncertainty(scores: list[float]) -> float:
    """1 - |2s - 1| for the score ``s`` closest to 0.5 (0 with no score): 1 for a
    detection the model put at even odds, 0 when every detection is certain."""
    return max((1.0 - abs(2.0 * s - 1.0) for s in scores), default=0.0)


def list_raw_images(source: DataSource) -> tuple[list[RawImage], list[Quarantined]]:
    """Every image file of the raw store, found as the data pipeline's ingestion finds
    them (an image extension, or an unknown one with an image signature: the bundled
    ``*.jpg_0`` files), hashed, with the edge's metadata when it sent one. A second file
    with the same bytes is one image: it is reported (quarantined as a duplicate) rather
    than queued twice."""
    images: list[RawImage] = []
    duplicates: list[Quarantined] = []
    seen: dict[str, str] = {}
    files = sorted(source.list_files(), key=lambda f: f.path)
    paths = {f.path for f in files}
    candidates, _ = split_listing(source, [f for f in files if not f.path.startswith(LABELS_PREFIX)])
    for f in candidates:
        data = source.read_bytes(f.path)
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            duplicates.append(Quarantined(path=f.path, sha256=sha, reason=f"same bytes as {seen[sha]}"))
            continue
        seen[sha] = f.path
        meta: dict[str, Any] = {}
        sidecar = posixpath.splitext(f.path)[0] + ".json"
        if sidecar in paths:
            try:
                loaded = json.loads(source.read_bytes(sidecar))
                meta = loaded if isinstance(loaded, dict) else {}
            except (ValueError, UnicodeDecodeError):
                meta = {"metadata_error": f"{source.uri_for(sidecar)} is not JSON"}
        images.append(RawImage(sha256=sha, path=f.path, size=len(data), meta=meta))
    return images, duplicates


Predict = Callable[[bytes], tuple[int, int, list[Detection]]]


def score_images(
    images: list[RawImage],
    read: Callable[[str], bytes],
    predict: Predict | None,
    prelabel_conf: float,
    model_version: str | None,
) -> tuple[list[QueueItem], list[Quarantined]]:
    """Run the model over each image: its uncertainty, and its detections scoring at
    least ``prelabel_conf`` as pre-labels. An image that does not decode is quarantined
    with the reason. Without a model, the scores the edge recorded order the queue.
    Most uncertain first (ties: by path)."""
    items: list[QueueItem] = []
    bad: list[Quarantined] = []
    for image in images:
        data = read(image.path)
        detections: list[Detection] = []
        try:
            if predict is None:
                width, height = _size(data)
            else:
                width, height, detections = predict(data)
        except Exception as exc:  # Pillow and onnxruntime raise many kinds on hostile bytes
            bad.append(
                Quarantined(path=image.path, sha256=image.sha256, reason=f"{type(exc).__name__}: {exc}")
            )
            continue
        if predict is None:
            edge_scores = image.meta.get("scores")
            scores = [float(s) for s in edge_scores] if isinstance(edge_scores, list) else []
        else:
            scores = [d.score for d in detections]
        items.append(
            QueueItem(
                image=image,
                width=width,
                height=height,
                uncertainty=round(uncertainty(scores), 6),
                prelabels=[
                    PreLabel(class_name=d.class_name, score=round(d.score, 4), box=d.box)
                    for d in detections
                    if d.score >= prelabel_conf
                ],
                model_version=model_version,
            )
        )
    items.sort(key=lambda i: (-i.uncertainty, i.image.path))
    return items, bad


def _size(data: bytes) -> tuple[int, int]:
    from edge_runtime.detector import open_image

    image = open_image(data)
    image.load()
    return image.size


def image_url(path: str, raw_images: str, document_root: str) -> str:
    """How Label Studio finds an image: ``s3://bucket/key`` for an S3 store (served
    through the project's S3 storage), else a ``/data/local-files/?d=`` URL relative to
    the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``."""
    if raw_images.startswith("s3://"):
        return f"{raw_images.rstrip('/')}/{path}"
    full = posixpath.join(posixpath.abspath(raw_images), path)
    root = posixpath.abspath(document_root)
    relative = posixpath.relpath(full, root)
    if relative.startswith(".."):
        raise ValueError(
            f"the raw image store {raw_images} is outside Label Studio's local-files document root "
            f"{document_root}: start Label Studio with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a "
            "folder that holds it, and set label.document_root to the same"
        )
    return "/data/local-files/?d=" + quote(relative)


def prediction_region(p: PreLabel, width: int, height: int, index: int) -> dict[str, Any]:
    x1, y1, x2, y2 = p.box
    x1, y1 = max(0.0, x1), max(0.0, y1)
    x2, y2 = min(float(width), x2), min(float(height), y2)
    return {
        "id": f"p{index}",
        "from_name": BOXES,
        "to_name": IMAGE,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "score": p.score,
        "value": {
            "x": 100.0 * x1 / width,
            "y": 100.0 * y1 / height,
            "width": 100.0 * (x2 - x1) / width,
            "height": 100.0 * (y2 - y1) / height,
            "rotation": 0,
            "rectanglelabels": [p.class_name],
        },
    }


def task_payload(item: QueueItem, url: str) -> dict[str, Any]:
    """A Label Studio task for ``item``: the image, its hash (how a re-run recognises
    it), its uncertainty (sortable in the Data Manager) and the model's pre-labels. The
    prediction's score, which Label Studio shows as a percentage, is the confidence of
    the least certain pre-label (0 without one): a figure a person reads as confidence."""
    meta = item.image.meta
    data: dict[str, Any] = {
        IMAGE: url,
        "sha256": item.image.sha256,
        "path": item.image.path,
        "uncertainty": item.uncertainty,
    }
    for key in ("device_id", "reason", "time"):
        if meta.get(key) is not None:
            data[f"edge_{key}"] = meta[key]
    task: dict[str, Any] = {"data": data}
    if item.model_version is not None:
        task["predictions"] = [
            {
                "model_version": item.model_version,
                "score": round(min((p.score for p in item.prelabels), default=0.0), 4),
                "result": [
                    prediction_region(p, item.width, item.height, i) for i, p in enumerate(item.prelabels)
                ],
            }
        ]
    return task
