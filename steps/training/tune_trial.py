"""Step: one tuning trial, its own step so a remote orchestrator runs trials in parallel."""

from __future__ import annotations

from typing import Annotated

import mlflow
from zenml import step
from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import MLFlowExperimentTrackerSettings
from zenml.logger import get_logger

from steps.training.cache_policy import FIT_CACHE
from visionloop.data.dataset import ImageDataset
from visionloop.training import yolo
from visionloop.training.tuning import tuning_subset
from visionloop.training.types import TrainParams, TrialResult
from visionloop.training.workspace import yolo_workspace

logger = get_logger(__name__)


@step(
    cache_policy=FIT_CACHE,
    experiment_tracker=True,  # the active stack's tracker, whatever its name
    settings={"experiment_tracker": MLFlowExperimentTrackerSettings(nested=True)},
)
def tune_trial(
    dataset: ImageDataset, params: TrainParams, index: int, subset: float = 0.5, weights: str = "abd"
) -> Annotated[TrialResult, "trial_result"]:
    """Train with ``params`` on a seeded subset of the train split's capture groups and
    validate on the val split (test is removed from the subset). Logged to MLflow as a
    nested run."""
    sub = tuning_subset(dataset, subset, seed=params.seed)
    with yolo_workspace(sub, prefix=f"visionloop-trial{index}-") as (data_yaml, work):
        outcome = yolo.train(data_yaml, params, weights, work / "runs", name=f"trial{index}")
    result = TrialResult(
        index=index,
        params=params,
        fitness=yolo.fitness(outcome.val),
        map50=outcome.val.map50,
        map50_95=outcome.val.map50_95,
        seconds=outcome.seconds,
        train_images=len(sub.split("train")),
    )
    mlflow.log_params(
        {
            "trial": index,
            "lr0": params.lr0,
            "augment": params.augment,
            "imgsz": params.imgsz,
            "epochs": params.epochs,
            "train_images": result.train_images,
        }
    )
    mlflow.log_metrics(
        {"val_map50": result.map50, "val_map50_95": result.map50_95, "fitness": result.fitness}
    )
    logger.info(
        "Trial %d %s: val mAP50 %.3f mAP50-95 %.3f fitness %.3f in %.0f s",
        index,
        {"lr0": params.lr0, "augment": params.augment, "imgsz": params.imgsz},
        result.map50,
        result.map50_95,
        result.fitness,
        result.seconds,
    )
    return result
