"""Splitting: group-aware, seeded, stratified, unlabeled images left out."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from tests.conftest import METAL_TAGS
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.ingest import ingest
from visionloop.data.qa import QARunner
from visionloop.data.sources import LocalSource
from visionloop.data.split import SplitConfig, assign_splits, set_splits
from visionloop.data.types import Box, ImageRecord, LabelStatus

GROUP_PATTERN = r"^(?P<group>.+?)-cropped-"


def record(i: int, group: str, classes: list[int], status: LabelStatus = LabelStatus.LABELED) -> ImageRecord:
    boxes = [Box(class_id=c, x1=1, y1=1, x2=9, y2=9) for c in classes]
    return ImageRecord(
        sha256=f"{i:064x}",
        path=f"{group}/{i}.jpg",
        width=10,
        height=10,
        status=status,
        boxes=boxes,
        source="s",
        group=group,
    )


@pytest.fixture(scope="module")
def metal_tag_records(tmp_path_factory):
    source = LocalSource(METAL_TAGS)
    found = ingest(source, "ground-truth", ["scratch"], GROUP_PATTERN)
    blobs = LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    records, report = QARunner(source, blobs, found.class_names).run(found.candidates, source.uri)
    assert report.quarantined == 0
    return records


def test_no_metal_tags_capture_group_spans_two_splits(metal_tag_records):
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for r in assign_splits(metal_tag_records):
        if r.split is not None:
            splits_of_group[r.group].add(r.split)
    assert len(splits_of_group) > 50  # the photos really were grouped, not one group each
    assert all(len(s) == 1 for s in splits_of_group.values()), {
        g: s for g, s in splits_of_group.items() if len(s) > 1
    }
    # crops of one photo share a group: 199 files come from 59 photos
    assert len({r.group for r in metal_tag_records}) == 59


def test_metal_tags_split_shares_are_close_to_the_targets(metal_tag_records):
    counts = Counter(r.split for r in assign_splits(metal_tag_records) if r.split)
    total = sum(counts.values())
    for split, target in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert abs(counts[split] / total - target) < 0.05, counts


def test_unlabeled_images_get_no_split(metal_tag_records):
    out = assign_splits(metal_tag_records)
    assert {r.split for r in out if not r.labeled} == {None}
    assert sum(not r.labeled for r in out) == 14


def test_same_seed_same_assignment_other_seed_differs():
    records = [record(i, f"g{i // 3}", [i % 2]) for i in range(300)]
    a = [r.split for r in assign_splits(records, SplitConfig(seed=1))]
    b = [r.split for r in assign_splits(list(reversed(records)), SplitConfig(seed=1))][::-1]
    c = [r.split for r in assign_splits(records, SplitConfig(seed=2))]
    assert a == b
    assert a != c


def test_rare_class_is_stratified_into_every_split():
    records = [record(i, f"common{i}", [0]) for i in range(200)]
    records += [record(1000 + i, f"rare{i}", [1]) for i in range(20)]
    out = assign_splits(records, SplitConfig(train=0.6, val=0.2, test=0.2))
    rare = Counter(r.split for r in out if r.group.startswith("rare"))
    assert rare == {"train": 12, "val": 4, "test": 4}


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SplitConfig(train=0.8, val=0.3, test=0.1)


def test_group_from_a_label_field(tmp_path):
    """A Ground Truth CSV column can name the capture group instead of a file-name regex."""
    from tests.factories import GT_HEADER, write_image

    rows = []
    for i in range(6):
        write_image(tmp_path / "imgs" / f"shot{i}.jpg", seed=i)
        rows.append(f"s3://b/imgs/shot{i}.jpg,96,64,3,[],1.0,job,APPROVED,camera-{i % 2}\n")
    (tmp_path / "labels.csv").write_text(GT_HEADER.rstrip("\n") + ",rig\n" + "".join(rows))
    found = ingest(LocalSource(tmp_path), "ground-truth", ["x"], group_field="rig")
    assert sorted({c.group for c in found.candidates}) == ["camera-0", "camera-1"]


def test_set_splits_works_in_place_and_agrees_with_assign_splits():
    records = [record(i, f"g{i // 4}", [i % 3]) for i in range(120)]
    records += [record(500 + i, f"u{i}", [], LabelStatus.UNLABELED) for i in range(5)]
    copies = assign_splits(records, SplitConfig(seed=3))
    assert {r.split for r in records} == {None}  # assign_splits leaves its input alone
    same = set_splits(records, SplitConfig(seed=3))
    assert same is records  # no copy of the data set
    assert [r.split for r in records] == [r.split for r in copies]
    assert {r.split for r in records[:120]} == {"train", "val", "test"}
    assert {r.split for r in records[120:]} == {None}
