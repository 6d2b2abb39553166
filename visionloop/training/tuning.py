"""Hyperparameter search: which trials to run, on which subset, and which one won."""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any

from visionloop.data.dataset import DatasetManifest, ImageDataset
from visionloop.training.types import Override, TrainParams, TrialResult, TuningResult

TUNED = ("lr0", "augment", "imgsz")


def search_space(
    base: TrainParams,
    lr0: list[float] | None = None,
    augment: list[float] | None = None,
    imgsz: list[int] | None = None,
) -> dict[str, list[Any]]:
    """The values tuning tries, each list given or built around ``base`` (the training
    settings): imgsz ``[base.imgsz]``, lr0 ``[lr0 / 2, lr0, 2 lr0]``, augment
    ``[augment / 2, augment]`` (``[0]`` when augmentation is off)."""
    return {
        "lr0": list(lr0) if lr0 else [round(base.lr0 / 2, 8), base.lr0, round(base.lr0 * 2, 8)],
        "augment": list(augment) if augment else sorted({round(base.augment / 2, 4), base.augment}),
        "imgsz": list(imgsz) if imgsz else [base.imgsz],
    }


def trial_params(
    base: TrainParams,
    lr0: list[float],
    augment: list[float],
    imgsz: list[int],
    trials: int,
    epochs: int,
    seed: int = 0,
) -> list[TrainParams]:
    """``trials`` distinct combinations drawn (seeded) from the grid of the search
    space, each trained for ``epochs``. Fewer when the grid is smaller."""
    grid = list(itertools.product(lr0, augment, imgsz))
    random.Random(seed).shuffle(grid)
    return [
        base.model_copy(update={"lr0": lr, "augment": aug, "imgsz": size, "epochs": epochs})
        for lr, aug, size in grid[:trials]
    ]


def choose(trials: list[TrialResult], base: TrainParams, written: list[str] | None = None) -> TuningResult:
    """The trial with the highest validation fitness wins (the earliest on a tie); its
    learning rate, augmentation and image size go into ``base``. Each value that changes
    is an ``Override``; ``written`` names the ``train`` settings the user wrote, whose
    replacement the caller must not keep quiet about."""
    if not trials:
        return TuningResult(trials=[], best_index=None, best_params=base)
    best = max(trials, key=lambda t: (t.fitness, -t.index))
    tuned = {name: getattr(best.params, name) for name in TUNED}
    overrides = [
        Override(field=name, configured=getattr(base, name), tuned=value, written=name in (written or []))
        for name, value in tuned.items()
        if value != getattr(base, name)
    ]
    return TuningResult(
        trials=sorted(trials, key=lambda t: t.index),
        best_index=best.index,
        best_params=base.model_copy(update=tuned),
        overrides=overrides,
    )


def tuning_subset(dataset: ImageDataset, fraction: float, seed: int = 0) -> ImageDataset:
    """The data set with its train split cut to ``fraction`` of its capture groups
    (seeded; whole groups), val unchanged and test removed: tuning never sees test."""
    groups = sorted({r.group for r in dataset.records if r.split == "train"})
    keep_n = max(1, round(len(groups) * fraction))
    ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}\x00{g}".encode()).hexdigest())
    keep = set(ranked[:keep_n])
    records = [r for r in dataset.records if r.split == "val" or (r.split == "train" and r.group in keep)]
    manifest = dataset.manifest.model_copy(update={"records": records, "parent_version": dataset.version_id})
    return ImageDataset(DatasetManifest.model_validate(manifest.model_dump()), dataset.blobs)
