"""Data set versions: the id is a hash of the manifest, and only of what matters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from tests.factories import image_bytes
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.dataset import DatasetManifest, ImageDataset, _compact_json, _encode_row, _round3
from visionloop.data.export import export_stem, export_yolo
from visionloop.data.importers.yolo import parse_yolo_txt
from visionloop.data.types import (
    Box,
    ImageRecord,
    Labels,
    LabelStatus,
    make_box,
    make_labels,
    make_record,
)


def make_dataset(tmp_path: Path, source: str = "/a", boxes_x1: float = 2.0, order: int = 1) -> ImageDataset:
    blobs = LocalBlobStore(tmp_path / "blobs")
    records = []
    for i, split in enumerate(["train", "train", "val", "test", None]):
        data = image_bytes(size=(64, 48), seed=i)
        sha = hashlib.sha256(data).hexdigest()
        blobs.put(sha, ".jpg", data)
        status = LabelStatus.LABELED if split else LabelStatus.UNLABELED
        boxes = [Box(class_id=i % 2, x1=boxes_x1, y1=3, x2=30, y2=20)] if split else []
        records.append(
            ImageRecord(
                sha256=sha,
                path=f"{i}.jpg",
                width=64,
                height=48,
                status=status,
                boxes=boxes,
                source=f"{source}/{i}.jpg",
                group=f"g{i}",
                split=split,
            )
        )
    manifest = DatasetManifest(class_names=["a", "b"], source=source, records=records[::order])
    return ImageDataset(manifest, blobs)


def test_same_data_same_id_wherever_it_was_read_from(tmp_path):
    a = make_dataset(tmp_path, source="/home/alice/data")
    b = make_dataset(tmp_path, source="s3://bucket/raw", order=-1)
    assert a.version_id == b.version_id and len(a.version_id) == 64


def test_a_changed_label_changes_the_id(tmp_path):
    assert make_dataset(tmp_path).version_id != make_dataset(tmp_path, boxes_x1=2.5).version_id


def test_stats_count_splits_classes_and_unlabeled(tmp_path):
    stats = make_dataset(tmp_path).stats()
    assert stats["per_split"] == {"test": 1, "train": 2, "unlabeled": 1, "val": 1}
    assert stats["boxes_per_class"] == {"a": {"train": 1, "val": 1}, "b": {"train": 1, "test": 1}}
    assert stats["unlabeled"] == 1 and stats["boxes"] == 4


def test_yolo_export_round_trips_boxes(tmp_path):
    ds = make_dataset(tmp_path)
    data_yaml = export_yolo(ds, tmp_path / "yolo")
    text = data_yaml.read_text()
    assert f"path: {tmp_path / 'yolo'}" in text and "download" not in text
    for r in ds.records:
        if not r.split:
            continue
        label = tmp_path / "yolo" / "labels" / r.split / f"{export_stem(r)}.txt"
        parsed = parse_yolo_txt(label.read_text(), str(label), ds.class_names)
        (b,) = parsed.boxes
        assert (b.x1 * r.width, b.y1 * r.height, b.x2 * r.width, b.y2 * r.height) == pytest.approx(
            (r.boxes[0].x1, r.boxes[0].y1, r.boxes[0].x2, r.boxes[0].y2), abs=1e-3
        )
        assert (
            tmp_path / "yolo" / "images" / r.split / f"{export_stem(r)}.jpg"
        ).read_bytes() == ds.read_bytes(r)
    assert not list((tmp_path / "yolo").glob("images/*/" + export_stem(ds.records[-1]) + "*"))


def test_unvalidated_constructors_make_what_the_classes_make(tmp_path):
    """``make_box``/``make_labels``/``make_record`` skip pydantic's validation (ingestion
    and QA's hot path); what they make must equal, hash, serialise and version alike."""
    assert make_box(1, 1.5, 2.0, 30.0, 40.25) == Box(class_id=1, x1=1.5, y1=2.0, x2=30.0, y2=40.25)
    assert hash(make_box(0, 1.0, 2.0, 3.0, 4.0)) == hash(Box(class_id=0, x1=1.0, y1=2.0, x2=3.0, y2=4.0))
    assert make_labels("job-1", "g") == Labels(labeling_job="job-1", group="g")
    assert (
        make_labels(status=LabelStatus.UNLABELED)
        == Labels.unlabeled()
        == Labels(status=LabelStatus.UNLABELED)
    )
    validated = make_dataset(tmp_path)
    fields = [{f.name: getattr(r, f.name) for f in dataclasses.fields(r)} for r in validated.records]
    made = [make_record(**f) for f in fields]
    assert made == validated.records
    manifest = validated.manifest.model_copy(update={"records": made})
    assert manifest.model_dump_json() == validated.manifest.model_dump_json()
    assert ImageDataset(manifest, validated.blobs).version_id == validated.version_id


@pytest.mark.parametrize(
    "row",
    [
        [
            "ab" * 32,
            'q"uo\\te/é😀\t\x01',
            450,
            300,
            "labeled",
            [[0, 1.0, 2.5, 1e20, 3]],
            "g",
            None,
            None,
            ".jpg",
        ],
        ["x", "p", 1, 2, "unlabeled", [[1, float("nan"), float("inf"), -float("inf"), -0.0]], "g", "train"],
        [],
    ],
)
def test_the_row_encoder_writes_what_json_dumps_writes(row):
    """The version id encodes rows with an encoder made once; it must write the bytes
    ``json.dumps(row, separators=(",", ":"))`` writes, or every version id changes."""
    assert _encode_row(row) == json.dumps(row, separators=(",", ":")) == _compact_json(row)


def test_round3_is_round_to_three_digits():
    for v in [0.0, -0.0, 302.0, 1e300, 2.0**53, 0.1234567, -7.0005, 1 / 3, float("inf"), 12.0]:
        assert repr(_round3(v)) == repr(round(v, 3))
    assert _round3(7) == 7 and type(_round3(7)) is int
