"""Step: pick the best trial by validation fitness (fan-in of the trials)."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.logger import get_logger

from visionloop import constants
from visionloop.training.tuning import choose
from visionloop.training.types import TrainParams, TrialResult, TuningResult

logger = get_logger(__name__)


@step
def select_params(
    trials: list[TrialResult], base: TrainParams, written: list[str] | None = None
) -> Annotated[TuningResult, constants.TUNING_RESULT]:
    """With no trials the configured parameters are used as they are. ``written``: the
    ``train`` settings the user wrote; a tuned value replacing one is logged as a warning
    and recorded in the result."""
    result = choose(trials, base, written)
    if result.best_index is None:
        logger.info("No tuning trials: training with the configured parameters")
    else:
        best = result.trials[result.best_index]
        logger.info(
            "Best of %d trials: #%d (fitness %.3f): lr0=%s augment=%s imgsz=%s",
            len(trials),
            best.index,
            best.fitness,
            best.params.lr0,
            best.params.augment,
            best.params.imgsz,
        )
    for override in result.overrides:
        (logger.warning if override.written else logger.info)("Tuning: %s", override.describe())
    log_metadata(
        {
            "trials": len(trials),
            "best_trial": -1 if result.best_index is None else result.best_index,
            "best_params": result.best_params.model_dump(),
            "overrides": [o.describe() for o in result.overrides],
        }
    )
    return result
