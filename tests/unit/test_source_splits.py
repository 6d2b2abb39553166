"""The splits a source declares: read from every format, kept in ``source`` mode (with a
missing test split carved out of train, group-aware), ignored in ``auto`` mode, and
capture groups or identical images that straddle two of them reported by QA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import GT_HEADER, gt_csv_row, split_detection_set, write_image
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.importers.splits import normalize_split, split_from_file_name, split_from_path
from visionloop.data.ingest import Scan, ingest
from visionloop.data.qa import QARunner
from visionloop.data.sources import LocalSource
from visionloop.data.split import SplitConfig, SplitModeError, resolve_splits
from visionloop.data.types import ImageRecord


def accepted(root: Path, tmp: Path, fmt: str = "auto", group_pattern: str | None = None) -> tuple:
    source = LocalSource(root)
    found = ingest(source, fmt, None, group_pattern)
    return QARunner(source, LocalBlobStore(tmp / "blobs"), found.class_names).run(
        found.candidates, source.uri
    )


def by_split(records: list[ImageRecord]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(str(r.split), set()).add(r.path)
    return out


def test_split_names_are_read_loosely_and_unknown_ones_refused() -> None:
    assert [normalize_split(v) for v in ("Train", "valid", "validation", "dev", "TEST", "", None)] == [
        "train",
        "val",
        "val",
        "val",
        "test",
        None,
        None,
    ]
    with pytest.raises(ValueError, match="holdout"):
        normalize_split("holdout")
    assert split_from_path("images/train/a.jpg") == "train"
    assert split_from_path("valid/images/a.jpg") == "val"
    assert split_from_path("test.jpg") is None and split_from_path("testing_rig/a.jpg") is None
    assert split_from_file_name("annotations/instances_val2017.json") == "val"
    assert split_from_file_name("train-and-test.json") is None


def test_source_mode_keeps_a_yolo_data_yaml_split_exactly(tmp_path: Path) -> None:
    root = split_detection_set(tmp_path / "s", {"train": 12, "val": 4, "test": 5}, size=(64, 64))
    records, report = accepted(root, tmp_path)
    plan = resolve_splits(records, SplitConfig())
    assert plan.mode == "source" and plan.declared == {"test": 5, "train": 12, "val": 4} and not plan.carved
    assert by_split(records) == {
        s: {f"images/{s}/{s}_{i:03d}.jpg" for i in range(n)}
        for s, n in (("train", 12), ("val", 4), ("test", 5))
    }
    assert report.leakage is not None and report.leakage.leaks == 0
    assert report.leakage.declared == {"test": 5, "train": 12, "val": 4}


def test_auto_mode_ignores_the_declared_splits(tmp_path: Path) -> None:
    root = split_detection_set(tmp_path / "s", {"train": 30}, size=(64, 64))
    records, _ = accepted(root, tmp_path)
    plan = resolve_splits(records, SplitConfig(mode="auto"))
    assert plan.mode == "auto" and set(by_split(records)) == {"train", "val", "test"}


def test_a_missing_test_split_is_carved_from_train_group_aware(tmp_path: Path) -> None:
    root = split_detection_set(tmp_path / "s", {"train": 40, "val": 8}, size=(64, 64), data_yaml=False)
    # four crops of each photo share a capture group: train_000..003 are one photo, and so on
    records, _ = accepted(root, tmp_path, group_pattern=r"^(?P<group>train_\d\d)\d")
    val_before = {r.path for r in records if r.split == "val"}
    plan = resolve_splits(records, SplitConfig())
    assert plan.mode == "source" and plan.declared == {"train": 40, "val": 8}
    test = [r for r in records if r.split == "test"]
    assert plan.carved == {"test": len(test)} and 4 <= len(test) <= 12  # ~15% of 48, whole groups
    assert all(r.path.startswith("images/train/") for r in test)
    assert {r.path for r in records if r.split == "val"} == val_before
    groups: dict[str, set[str]] = {}
    for r in records:
        groups.setdefault(r.group, set()).add(str(r.split))
    assert all(len(s) == 1 for g, s in groups.items() if g.startswith("train_"))


def test_source_mode_without_a_declared_split_or_train_is_a_clear_error(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    split_detection_set(flat, {"x": 3}, size=(64, 64))
    records, _ = accepted(flat, tmp_path / "a")
    with pytest.raises(SplitModeError, match="declares no split"):
        resolve_splits(records, SplitConfig(mode="source"))
    only_test = split_detection_set(tmp_path / "t", {"val": 3, "test": 3}, size=(64, 64))
    records, _ = accepted(only_test, tmp_path / "b")
    with pytest.raises(SplitModeError, match="no train split"):
        resolve_splits(records, SplitConfig())


def test_roboflow_data_yaml_paths_and_valid_folders(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        for i in range(n):
            write_image(root / split / "images" / f"{split}{i}.jpg", seed=hash((split, i)) % 1000)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"{split}{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 1\nnames: ['dent']\n"
    )
    cands = {c.path: c.split for c in Scan(LocalSource(root)).candidates()}
    assert cands == {
        **{f"train/images/train{i}.jpg": "train" for i in range(3)},
        **{f"valid/images/valid{i}.jpg": "val" for i in range(2)},
        **{f"test/images/test{i}.jpg": "test" for i in range(2)},
    }


def test_coco_files_label_studio_keys_and_csv_columns_declare_splits(tmp_path: Path) -> None:
    coco = tmp_path / "coco"
    for i, split in enumerate(("train", "val")):
        write_image(coco / "images" / f"{split}.jpg", seed=i)
        data = {
            "images": [{"id": 1, "file_name": f"{split}.jpg", "width": 96, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
            "categories": [{"id": 1, "name": "dent"}],
        }
        (coco / f"instances_{split}.json").write_text(json.dumps(data))
    assert {c.path: c.split for c in Scan(LocalSource(coco)).candidates()} == {
        "images/train.jpg": "train",
        "images/val.jpg": "val",
    }
    ls = tmp_path / "ls"
    write_image(ls / "a.jpg", seed=3)
    write_image(ls / "b.jpg", seed=4)
    tasks = [
        {"id": n, "data": {"image": f"/data/local-files/?d={name}", "split": split}, "annotations": []}
        for n, (name, split) in enumerate((("a.jpg", "test"), ("b.jpg", "holdout")), start=1)
    ]
    (ls / "export.json").write_text(json.dumps(tasks))
    cands = {c.path: c for c in Scan(LocalSource(ls), "label-studio", ["dent"]).candidates()}
    assert cands["a.jpg"].split == "test"
    assert any("holdout" in p for p in cands["b.jpg"].labels.problems)  # quarantined with the reason
    gt = tmp_path / "gt"
    write_image(gt / "assets" / "x.jpg", seed=5)
    write_image(gt / "assets" / "y.jpg", seed=6)
    header = GT_HEADER.rstrip("\n") + ",split\n"
    rows = [
        gt_csv_row(n, [(0, 1, 1, 5, 5)]).rstrip("\n") + f",{s}\n"
        for n, s in (("x.jpg", "val"), ("y.jpg", ""))
    ]
    (gt / "labels.csv").write_text(header + "".join(rows))
    cands = {c.path: c.split for c in Scan(LocalSource(gt), "ground-truth", ["dent"]).candidates()}
    assert cands == {"assets/x.jpg": "val", "assets/y.jpg": None}


def test_qa_reports_groups_and_identical_images_across_declared_splits(tmp_path: Path) -> None:
    root = split_detection_set(tmp_path / "s", {"train": 6, "val": 3, "test": 3}, size=(64, 64))
    # a test image copied into train, and one photo's crops named alike in train and val
    (root / "images" / "train" / "copy.jpg").write_bytes(
        (root / "images" / "test" / "test_000.jpg").read_bytes()
    )
    (root / "labels" / "train" / "copy.txt").write_text(
        (root / "labels" / "test" / "test_000.txt").read_text()
    )
    records, report = accepted(root, tmp_path, group_pattern=r"^(?:train|val)_(?P<group>000)")
    leakage = report.leakage
    assert leakage is not None
    assert leakage.identical_images == 1
    assert leakage.identical_examples[0].paths == {
        "images/test/test_000.jpg": "test",
        "images/train/copy.jpg": "train",
    }
    assert leakage.straddling_groups == 1 and leakage.group_examples[0].group == "000"
    assert leakage.group_examples[0].splits == {"train": 1, "val": 1}
    assert report.counts_by_rule() == {"duplicate": 1}  # one copy kept; counts reconcile
    assert report.total == report.accepted + report.quarantined
