"""Tuning follows the user: the search space is built around the training settings, and a
tuned value that replaces one the user wrote is recorded, never silent."""

from __future__ import annotations

from pathlib import Path

import yaml

from visionloop.config import load_config
from visionloop.training.tuning import TUNED, choose, search_space, trial_params
from visionloop.training.types import TrainParams, TrialResult


def config_with(tmp_path: Path, train: dict, space: dict | None = None):
    raw = {"name": "x", "data": {"source": str(tmp_path)}, "train": train, "tune": {"space": space or {}}}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_the_default_space_is_built_around_the_written_training_settings(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"imgsz": 224, "lr0": 0.01})
    base = TrainParams(**config.train.model_dump(exclude={"weights"}))
    space = search_space(base, config.tune.space.lr0, config.tune.space.augment, config.tune.space.imgsz)
    assert space == {"lr0": [0.005, 0.01, 0.02], "augment": [0.5, 1.0], "imgsz": [224]}
    trials = trial_params(base, **space, trials=4, epochs=2)
    assert {t.imgsz for t in trials} == {224} and all(t.epochs == 2 for t in trials)
    # a list the user gives is taken as it is
    config = config_with(tmp_path, {"imgsz": 224}, {"imgsz": [192, 256]})
    assert search_space(base, None, None, config.tune.space.imgsz)["imgsz"] == [192, 256]


def trial(index: int, fitness: float, **params: float) -> TrialResult:
    return TrialResult(
        index=index,
        params=TrainParams(**params),  # type: ignore[arg-type]
        fitness=fitness,
        map50=fitness,
        map50_95=fitness,
        seconds=1.0,
        train_images=10,
    )


def test_a_tuned_value_replacing_a_written_one_is_recorded(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"imgsz": 224, "epochs": 5}, {"imgsz": [192, 256]})
    base = TrainParams(**config.train.model_dump(exclude={"weights"}))
    written = sorted(n for n in TUNED if n in config.train.model_fields_set)
    assert written == ["imgsz"]
    result = choose([trial(0, 0.2, imgsz=192), trial(1, 0.5, imgsz=256, lr0=0.004)], base, written)
    assert result.best_params.imgsz == 256 and result.best_params.epochs == 5
    by_field = {o.field: o for o in result.overrides}
    assert (
        by_field["imgsz"].written and by_field["imgsz"].configured == 224 and by_field["imgsz"].tuned == 256
    )
    assert not by_field["lr0"].written  # the default lr0 0.002, replaced: recorded, not flagged
    assert by_field["imgsz"].describe() == "train.imgsz 224 (written in train) replaced by the tuned 256"


def test_no_override_when_the_trials_keep_the_written_values() -> None:
    base = TrainParams(imgsz=224)
    result = choose([trial(0, 0.3, imgsz=224)], base, ["imgsz"])
    assert result.best_params.imgsz == 224 and result.overrides == []
    assert choose([], base).best_params == base
