"""Step: the labeling queue: unlabeled raw images, most uncertain first, with the
production model's pre-labels."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.logger import get_logger

from edge_runtime.detector import Detection, OnnxDetector, open_image
from steps.deployment import control_plane
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.data.sources import open_source
from visionloop.labeling.queue import list_raw_images, score_images
from visionloop.labeling.types import LabelQueue
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(enable_cache=False)
def gather_images(
    raw_images: str,
    base: ImageDataset,
    model_name: str,
    prelabel_conf: float = 0.25,
    scan_conf: float = 0.05,
    s3_endpoint: str | None = None,
) -> Annotated[LabelQueue, constants.LABEL_QUEUE]:
    """List the raw image store, leave out images the base data set already has
    labelled, and score the rest with the production model (the edge runtime's own
    ONNX predictor): uncertainty orders the queue, detections at ``prelabel_conf`` or
    above become pre-labels. Undecodable images are quarantined with the reason.
    Without a production model the edge's recorded scores order the queue and there
    are no pre-labels. Not cached: the store and the production model change."""
    source = open_source(raw_images, s3_endpoint)
    images, duplicates = list_raw_images(source)
    labeled = {r.sha256 for r in base.records if r.labeled}
    todo = [i for i in images if i.sha256 not in labeled]
    production = control_plane.version_in_stage(model_name, control_plane.PRODUCTION)
    predict = None
    version = None
    blob: ModelBlob | None = None
    if production is not None and todo:
        try:
            blob = control_plane.load_artifact(production, constants.ONNX_MODEL)
        except control_plane.PromotionError as exc:
            logger.warning("no pre-labels this round: %s", exc)
    if production is not None and blob is not None:
        detector = OnnxDetector(blob.data, blob.class_names, conf=scan_conf)
        version = f"{model_name}:{production.name}"

        def predict(data: bytes) -> tuple[int, int, list[Detection]]:
            image = open_image(data)
            return image.width, image.height, detector.predict(image)

    items, bad = score_images(todo, source.read_bytes, predict, prelabel_conf, version)
    queue = LabelQueue(
        raw_images=source.uri,
        found=len(images) + len(duplicates),
        labeled_before=len(images) - len(todo),
        items=items,
        quarantined=duplicates + bad,
        model_name=model_name,
        model_version=version,
    )
    queue.check_reconciles()
    logger.info(
        "Labeling queue from %s: %d images, %d labelled before, %d to label, %d quarantined (%s)",
        source.uri,
        queue.found,
        queue.labeled_before,
        len(items),
        len(queue.quarantined),
        f"pre-labels by {version}"
        if version
        else (
            f"production version {production.name}: nothing new to pre-label"
            if production is not None and not todo
            else "no production model: no pre-labels"
            if production is None
            else "no pre-labels: the production version has no ONNX artifact"
        ),
    )
    for q in queue.quarantined[:20]:
        logger.warning("not sent to labeling: %s: %s", q.path, q.reason)
    log_metadata(
        {
            "found": queue.found,
            "labeled_before": queue.labeled_before,
            "to_label": len(items),
            "quarantined": len(queue.quarantined),
            "prelabel_model": version or "none",
        }
    )
    return queue
