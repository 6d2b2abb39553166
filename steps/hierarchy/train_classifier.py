"""Step: train one node's classifier on its train split (val picks the best epoch)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.model_blob_materializer import ModelBlobMaterializer
from steps.hierarchy.cache_policy import FIT_CACHE
from visionloop import constants
from visionloop.hierarchy.dataset import ClassificationDataset, export_image_folder
from visionloop.hierarchy.spec import ClassifierSettings
from visionloop.training import classify, yolo
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(
    cache_policy=FIT_CACHE,
    experiment_tracker=constants.EXPERIMENT_TRACKER,
    output_materializers=ModelBlobMaterializer,
)
def train_classifier(
    dataset: ClassificationDataset, settings: dict[str, Any]
) -> Annotated[ModelBlob, ArtifactConfig(name=constants.MODEL_WEIGHTS, artifact_type=ArtifactType.MODEL)]:
    """An ultralytics ``-cls`` model from ``settings.weights`` (``abd``: the ABD
    detection backbone; a YAML: from scratch). The class names are the model's own
    (ultralytics orders them by folder name)."""
    s = ClassifierSettings(**settings)
    with tempfile.TemporaryDirectory(prefix="visionloop-cls-") as tmp:
        data = export_image_folder(dataset, Path(tmp) / "data")
        outcome = classify.train(data, s.params(), s.weights, Path(tmp) / "runs", name="train")
        blob = ModelBlob(
            data=outcome.best.read_bytes(),
            filename="best.pt",
            class_names=yolo.class_names_of(outcome.best),
            imgsz=s.imgsz,
            kind="pytorch",
            metadata={
                "task": "classify",
                "train_seconds": round(outcome.seconds, 1),
                "epochs_run": outcome.epochs_run,
                "start_weights": classify.describe_weights(s.weights),
                "dataset_version_id": dataset.version_id,
                "train_images": len(dataset.split("train")),
            },
        )
    mlflow.log_params({**s.model_dump(), "dataset_version_id": dataset.version_id})
    mlflow.log_metrics({"val_top1": outcome.val_top1, "train_seconds": outcome.seconds})
    logger.info(
        "%s: %d epochs in %.0f s from %s: val top-1 %.3f",
        dataset.manifest.name,
        outcome.epochs_run,
        outcome.seconds,
        classify.describe_weights(s.weights),
        outcome.val_top1,
    )
    log_metadata(
        {"train_seconds": outcome.seconds, "val_top1": outcome.val_top1, "epochs_run": outcome.epochs_run}
    )
    return blob
