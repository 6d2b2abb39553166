"""The drift detector on real metal-tags images: shifted streams (darker, blurred,
another camera) are flagged on the features that changed, unshifted ones are not; the
prediction-log reader counts bad lines and never crashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_runtime.storage import LocalStore
from tests.conftest import METAL_TAGS
from visionloop.config import MonitorSettings
from visionloop.monitoring.drift import decide
from visionloop.monitoring.logs import parse_line, read_window
from visionloop.monitoring.reference import table_from_images
from visionloop.monitoring.streams import metal_tag_pools, stream

SETTINGS = MonitorSettings()
EXPECTED = {"darker": "brightness", "blurred": "sharpness", "other_camera": "width"}


@pytest.fixture(scope="module")
def pools() -> tuple[pd.DataFrame, list[bytes]]:
    ref, held = metal_tag_pools(METAL_TAGS)
    return table_from_images(ref), held


def run(pools: tuple[pd.DataFrame, list[bytes]], kind: str, seed: int):  # type: ignore[no-untyped-def]
    reference, held = pools
    current = table_from_images(stream(held, kind, 40, seed))
    current["max_score"] = 0.8
    return decide(reference, current, SETTINGS, "ref", {}, {})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unshifted_stream_is_not_drift(pools, seed: int) -> None:  # type: ignore[no-untyped-def]
    decision, html = run(pools, "none", seed)
    assert not decision.drift, decision.reasons
    assert decision.enough_data and decision.current_images == 40
    assert len(decision.features) == len(SETTINGS.features)
    assert "<html" in html.lower() and len(html) > 10_000  # Evidently's report


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_shifted_stream_is_flagged_on_the_right_feature(pools, kind: str) -> None:  # type: ignore[no-untyped-def]
    decision, _ = run(pools, kind, 0)
    assert decision.drift
    assert EXPECTED[kind] in decision.drifted_features, decision.drifted_features
    if kind == "blurred":
        assert "width" not in decision.drifted_features and "brightness" not in decision.drifted_features
    if kind == "darker":
        assert "width" not in decision.drifted_features
    by_name = {f.feature: f for f in decision.features}
    assert any(EXPECTED[kind] in r for r in decision.reasons)
    if kind == "darker":
        assert by_name["brightness"].current_mean < by_name["brightness"].reference_mean


def test_confidence_collapse_is_drift_even_without_feature_drift(pools) -> None:  # type: ignore[no-untyped-def]
    reference, held = pools
    current = table_from_images(stream(held, "none", 40, 3))
    current["max_score"] = [0.1] * 30 + [0.9] * 10
    decision, _ = decide(reference, current, SETTINGS, "ref", {}, {})
    assert decision.drift and decision.confidence_collapse and not decision.drifted_features
    assert decision.low_confidence_share == 0.75


def test_too_few_images_is_not_a_verdict(pools) -> None:  # type: ignore[no-untyped-def]
    reference, held = pools
    current = table_from_images(stream(held, "darker", 5, 0))
    decision, html = decide(reference, current, SETTINGS, "ref", {}, {})
    assert not decision.enough_data and not decision.drift and html == ""


def good_line(when: datetime, **extra: object) -> str:
    """A line as edge_runtime.predlog writes it: one 10x10 box on a 100x50 image."""
    stats = {f: 0.5 for f in SETTINGS.features} | {"width": 100.0, "height": 50.0}
    doc = {
        "time": when.isoformat(),
        "max_score": 0.7,
        "boxes": 1,
        "box_sizes": [[10.0, 10.0]],
        **stats,
        **extra,
    }
    return json.dumps(doc)


def test_log_reader_counts_bad_lines_and_keeps_the_window(tmp_path: Path) -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    lines = [
        good_line(now),
        "",
        "   ",
        "{not json",
        "[1, 2]",
        json.dumps({"time": now.isoformat(), "max_score": 0.5, "boxes": 0}),  # no image statistics
        good_line(now, box_sizes=[[1, 2, 3]]),
        good_line(now).replace('"max_score": 0.7', '"max_score": NaN'),
        good_line(now).replace('"max_score": 0.7', '"max_score": "high"'),
        good_line(now, time="yesterday"),
        good_line(now - timedelta(days=3)),  # outside the window
        good_line(now + timedelta(minutes=5)),
        "\x00\xff garbage",
    ]
    (tmp_path / "device-1").mkdir()
    (tmp_path / "device-1" / "2026-11-22.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "device-1" / "2026-11-22.jsonl.1").write_text(good_line(now) + "\n")  # rotated
    (tmp_path / "notes.txt").write_text("not a log")
    window = read_window(LocalStore(tmp_path), "", now - timedelta(hours=1), now + timedelta(hours=1))
    assert len(window.rows) == 3
    assert window.empty == 2 and window.outside_window == 1
    assert window.malformed == 8
    assert window.lines == len(lines) + 1
    assert window.files == ["device-1/2026-11-22.jsonl", "device-1/2026-11-22.jsonl.1"]
    assert all(e.startswith("device-1/2026-11-22.jsonl:") for e in window.examples)
    assert any("no image statistics" in e for e in window.examples)
    assert any("not a finite number" in e for e in window.examples)


def test_parse_line_accepts_epoch_seconds() -> None:
    when, row = parse_line(good_line(datetime(2026, 1, 1, tzinfo=UTC), time=1_767_225_600))
    assert when == datetime(2026, 1, 1, tzinfo=UTC) and row["mean_box_area"] == 0.02  # 10x10 of 100x50


def predictions(rng: np.random.Generator, n: int, score: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "max_score": np.clip(rng.normal(score, 0.06, n), 0, 1),
            "boxes": rng.integers(1, 4, n).astype(float),
            "mean_box_area": rng.uniform(0.01, 0.05, n),
        }
    )


@pytest.mark.parametrize("shifted", [False, True])
def test_prediction_features_against_the_models_held_out_answers(pools, shifted: bool) -> None:  # type: ignore[no-untyped-def]
    """The model grows unsure on images that look the same: drift on max_score only."""
    reference, held = pools
    rng = np.random.default_rng(7)
    current = table_from_images(stream(held, "none", 40, 4))
    answers = predictions(rng, 40, 0.6 if shifted else 0.8)
    for column in answers:
        current[column] = answers[column].to_numpy()
    decision, html = decide(reference, current, SETTINGS, "ref", {}, {}, predictions(rng, 60, 0.8))
    assert decision.reference_images == len(reference)
    assert {f.feature for f in decision.features} == {*SETTINGS.features, *SETTINGS.prediction_features}
    assert decision.drift == shifted and not decision.confidence_collapse
    assert decision.drifted_features == (["max_score"] if shifted else [])
    assert "max_score" in html


def test_reference_predictions_use_only_held_out_images(tmp_path: Path) -> None:
    from edge_runtime.detector import Detection
    from tests.unit.test_dataset import make_dataset
    from visionloop.monitoring.reference import reference_predictions

    dataset = make_dataset(tmp_path)
    seen: list[tuple[int, int]] = []

    def predict(image):  # type: ignore[no-untyped-def]
        seen.append(image.size)
        return [Detection(0, "x", 0.9, (0.0, 0.0, image.width / 2, image.height / 2))]

    table = reference_predictions(dataset, predict, max_images=100)
    held_out = [r for r in dataset.records if r.split in ("val", "test")]
    assert len(table) == len(seen) == len(held_out) > 0
    assert list(table.columns) == ["max_score", "boxes", "mean_box_area"]
    assert (table["max_score"] == 0.9).all() and (table["mean_box_area"] == 0.25).all()
