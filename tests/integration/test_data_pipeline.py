"""The data pipeline on a fresh local ZenML store, asserting on the artifacts it made."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from pipelines.launch import run_data_pipeline
from tests import bad_inputs
from tests.conftest import REPO_ROOT
from tests.factories import image_bytes
from visionloop import constants
from visionloop.config import DataSettings, QASettings, load_config


@pytest.fixture(scope="module")
def metal_tags_runs(zenml_stack):
    settings = load_config(REPO_ROOT / "configs" / "metal_tags.yaml").data
    return run_data_pipeline(settings, enable_cache=False), run_data_pipeline(settings)


def test_metal_tags_dataset_version(metal_tags_runs):
    first, _ = metal_tags_runs
    summary = first.summary()
    assert summary["images"] == 199 and summary["labeled"] == 185 and summary["unlabeled"] == 14
    assert summary["qa"] == {
        "total": 199,
        "accepted": 199,
        "quarantined": 0,
        "quarantined_by_rule": {},
        "ignored_files": 2,
    }
    assert sum(v for k, v in summary["per_split"].items() if k != "unlabeled") == 185
    assert first.dataset.class_names == ["scratch"]
    assert first.cached_steps == []


def test_rerun_with_nothing_changed_is_cached_and_gives_the_same_id(metal_tags_runs):
    first, second = metal_tags_runs
    assert second.dataset.version_id == first.dataset.version_id
    assert second.cached_steps == ["check_images", "ingest_images", "split_dataset"]


def test_artifacts_have_dashboard_visualizations(metal_tags_runs):
    first, _ = metal_tags_runs
    outputs = {
        constants.IMAGE_DATASET: first.run.steps["split_dataset"].outputs[constants.IMAGE_DATASET][0],
        constants.QUARANTINE_REPORT: first.run.steps["check_images"].outputs[constants.QUARANTINE_REPORT][0],
    }
    dataset_vis = {v.type.value for v in outputs[constants.IMAGE_DATASET].visualizations}
    assert dataset_vis == {"image", "html"}
    assert {v.type.value for v in outputs[constants.QUARANTINE_REPORT].visualizations} == {"html"}
    meta = outputs[constants.IMAGE_DATASET].run_metadata
    assert meta["version_id"] == first.dataset.version_id
    assert meta["per_split"] == first.dataset.stats()["per_split"]


def test_bad_inputs_are_quarantined_through_the_pipeline(zenml_stack, tmp_path):
    expected = bad_inputs.build(tmp_path / "raw", tmp_path / "outside")
    settings = DataSettings(
        source=str(tmp_path / "raw"), format="yolo", qa=QASettings(**bad_inputs.QA_SETTINGS)
    )
    result = run_data_pipeline(settings)
    report = result.report
    assert report.total == len(expected) == report.accepted + report.quarantined
    assert {e.path: e.rule for e in report.entries} == {p: r for p, r in expected.items() if r != "accepted"}
    assert {r.path for r in result.dataset.records} == {p for p, r in expected.items() if r == "accepted"}
    assert [i.path for i in report.ignored] == ["notes.md"]


def test_a_new_file_reruns_ingestion_and_makes_a_new_version(zenml_stack, tmp_path):
    src = tmp_path / "raw"
    shutil.copytree(REPO_ROOT / "data" / "metal-tags" / "good", src)
    settings = DataSettings(source=str(src), format="none")
    before = run_data_pipeline(settings)
    (src / "new.jpg").write_bytes(image_bytes(seed=5, size=(450, 300)))
    after = run_data_pipeline(settings)
    assert "ingest_images" not in after.cached_steps
    assert after.dataset.version_id != before.dataset.version_id
    assert len(after.dataset.records) == len(before.dataset.records) + 1
    assert Path(src / "new.jpg").exists()


def test_a_file_changed_in_place_and_a_lost_blob_are_caught_by_the_next_run(zenml_stack, tmp_path):
    """A re-run skips reading the files it has seen (same path, size and change stamp)
    whose blobs are stored; a file rewritten in place must still be hashed and checked
    again, and a blob that went missing from the image store must be written again."""
    src = tmp_path / "raw"
    shutil.copytree(REPO_ROOT / "data" / "metal-tags" / "good", src)
    settings = DataSettings(source=str(src), format="none")
    before = run_data_pipeline(settings)
    first = {r.path: r for r in before.dataset.records}
    changed, kept = sorted(first)[:2]
    new_bytes = image_bytes(seed=7, size=(450, 300))
    with open(src / changed, "r+b") as fh:  # same path and inode, other bytes
        fh.truncate(0)
        fh.write(new_bytes)
    lost = before.dataset.blobs.local_path(first[kept].sha256, first[kept].ext)
    assert lost is not None and lost.is_file()
    lost.unlink()
    after = run_data_pipeline(settings)
    second = {r.path: r for r in after.dataset.records}
    assert second[changed].sha256 == hashlib.sha256(new_bytes).hexdigest() != first[changed].sha256
    assert second[kept].sha256 == first[kept].sha256
    assert after.dataset.version_id != before.dataset.version_id
    for r in after.dataset.records:
        assert after.dataset.blobs.has(r.sha256, r.ext), r.path
    assert hashlib.sha256(lost.read_bytes()).hexdigest() == first[kept].sha256
