"""Step: full training with the chosen parameters on the whole train split."""

from __future__ import annotations

from typing import Annotated

import mlflow
from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.model_blob_materializer import ModelBlobMaterializer
from steps.training.cache_policy import FIT_CACHE
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.training import yolo
from visionloop.training.types import ModelBlob, TuningResult
from visionloop.training.workspace import yolo_workspace

logger = get_logger(__name__)


@step(
    cache_policy=FIT_CACHE,
    experiment_tracker=True,  # the active stack's tracker, whatever its name
    output_materializers=ModelBlobMaterializer,
)
def train_model(
    dataset: ImageDataset, tuning: TuningResult, weights: str = "abd"
) -> Annotated[ModelBlob, ArtifactConfig(name=constants.MODEL_WEIGHTS, artifact_type=ArtifactType.MODEL)]:
    """Train from ``weights`` (``abd``, a local ``.pt`` or a model YAML) with the
    tuned parameters; the val split picks the best epoch. Logs parameters, the final
    validation metrics and ultralytics' per-epoch results to MLflow."""
    params = tuning.best_params
    with yolo_workspace(dataset, prefix="visionloop-train-") as (data_yaml, work):
        outcome = yolo.train(data_yaml, params, weights, work / "runs", name="train")
        blob = ModelBlob(
            data=outcome.best.read_bytes(),
            filename="best.pt",
            class_names=dataset.class_names,
            imgsz=params.imgsz,
            kind="pytorch",
            metadata={
                "train_seconds": round(outcome.seconds, 1),
                "epochs_run": outcome.epochs_run,
                "start_weights": weights,
                "dataset_version_id": dataset.version_id,
            },
        )
        results_csv = outcome.best.parent.parent / "results.csv"
        mlflow.log_params(
            {
                **params.model_dump(),
                "start_weights": weights,
                "dataset_version_id": dataset.version_id,
                "train_images": len(dataset.split("train")),
                "val_images": len(dataset.split("val")),
            }
        )
        mlflow.log_metrics(
            {
                "val_map50": outcome.val.map50,
                "val_map50_95": outcome.val.map50_95,
                "val_precision": outcome.val.precision,
                "val_recall": outcome.val.recall,
                "train_seconds": outcome.seconds,
            }
        )
        if results_csv.is_file():
            mlflow.log_artifact(str(results_csv), "training")
            for name, value, step in yolo.epoch_metrics(results_csv):  # training curves
                mlflow.log_metric(name, value, step=step)
        # MLflow 3 opens an experiment it cannot place in its GenAI view; this one trains models
        mlflow.set_experiment_tag("mlflow.experimentKind", "custom_model_development")
    logger.info(
        "Trained %d epochs in %.0f s: val mAP50 %.3f mAP50-95 %.3f",
        outcome.epochs_run,
        outcome.seconds,
        outcome.val.map50,
        outcome.val.map50_95,
    )
    log_metadata(
        {
            "train_seconds": outcome.seconds,
            "val_map50": outcome.val.map50,
            "val_map50_95": outcome.val.map50_95,
            "epochs_run": outcome.epochs_run,
        }
    )
    return blob
