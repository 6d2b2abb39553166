"""Shadow mode: the staging model sees the same images as production, off the request
path, and the disagreements are logged (JSONL) for a person deciding on promotion.

Production answers the request; the image's encoded bytes (never the decoded image)
and production's detections go into a bounded queue that one background thread works
through with the staging model, decoding each image again inside the runtime's memory
budget (``decode``). When
the queue is full the image is skipped (counted in ``skipped_busy``): shadowing never
slows production down.

Two results agree when they have the same number of detections and every production
detection has a staging detection of the same class with IoU >= ``MIN_IOU`` (boxes xyxy
in original-image pixels). A disagreement line holds the time, both versions, both
detection lists and the image's sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_runtime.detector import Detection, box_iou
from edge_runtime.model import LoadedModel
from edge_runtime.worker import QueueWorker

log = logging.getLogger(__name__)

MIN_IOU = 0.5


def disagreement(production: list[Detection], staging: list[Detection]) -> str | None:
    """Why two detection lists of one image disagree, or None when they agree."""
    if len(production) != len(staging):
        return f"{len(production)} detections in production, {len(staging)} in staging"
    for det in production:
        same = [s for s in staging if s.class_id == det.class_id]
        if not same:
            return f"production's {det.class_name} at {np.round(det.box, 1).tolist()} is missing in staging"
        ious = box_iou(np.asarray(det.box), np.asarray([s.box for s in same], dtype=np.float64))
        if float(ious.max()) < MIN_IOU:
            return (
                f"production's {det.class_name} at {np.round(det.box, 1).tolist()} overlaps staging's "
                f"best match only by IoU {float(ious.max()):.2f}"
            )
    return None


class Shadow:
    """Runs ``staging()`` (the staging slot's current model, or None) on images that
    production has answered, and logs where they disagree to ``log_path``."""

    def __init__(
        self,
        staging: Callable[[], LoadedModel | None],
        log_path: Path,
        queue_size: int = 8,
        decode: Callable[[bytes], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.staging = staging
        self.decode = decode
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.counters = {
            "compared": 0,
            "disagreed": 0,
            "skipped_busy": 0,
            "skipped_no_staging": 0,
            "errors": 0,
        }
        self._worker: QueueWorker[tuple[Image.Image | None, bytes, str, list[Detection]]] = QueueWorker(
            "shadow", lambda item: self.compare(*item), self._failed, queue_size
        )

    def submit(
        self, image: Image.Image | None, data: bytes, production_version: str, dets: list[Detection]
    ) -> None:
        """Queue one comparison; ``image`` None: decode ``data`` in the worker."""
        if not self._worker.offer((image, data, production_version, dets)):
            self.counters["skipped_busy"] += 1

    def _failed(self, exc: Exception) -> None:  # a shadow failure never reaches production
        self.counters["errors"] += 1
        log.error("shadow: comparison failed: %s", exc)

    def compare(
        self, image: Image.Image | None, data: bytes, production_version: str, dets: list[Detection]
    ) -> None:
        staging = self.staging()
        if staging is None:
            self.counters["skipped_no_staging"] += 1
            return
        if image is not None:
            found = staging.predict(image)
        elif self.decode is not None:
            with self.decode(data) as decoded:
                found = decoded.to_sent(staging.predict(decoded.image))
        else:
            found = staging.detector.predict(data, conf=staging.thresholds.conf, iou=staging.thresholds.iou)
        self.counters["compared"] += 1
        why = disagreement(dets, found)
        if why is None:
            return
        self.counters["disagreed"] += 1
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sha256": hashlib.sha256(data).hexdigest(),
            "production_version": production_version,
            "staging_version": staging.version_id,
            "why": why,
            "production": [d.to_dict() for d in dets],
            "staging": [d.to_dict() for d in found],
        }
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def join(self) -> None:
        """Wait until every submitted image has been compared (for tests and shutdown)."""
        self._worker.join()
