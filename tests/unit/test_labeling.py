"""The labeling domain code: the labeling configuration, the review policies, the
uncertainty order, image URLs and the merge of accepted labels into a data set."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from PIL import Image

from edge_runtime.detector import Detection
from visionloop.data.dataset import DatasetManifest, manifest_version_id
from visionloop.data.split import SplitConfig
from visionloop.data.types import Box, ImageRecord, LabelStatus
from visionloop.labeling.label_config import config_class_names, labeling_config
from visionloop.labeling.merge import merge_labels
from visionloop.labeling.queue import image_url, score_images, task_payload, uncertainty
from visionloop.labeling.review import ReviewPolicy, agree, review_task
from visionloop.labeling.types import ImageState, RawImage


def box(x: float, name: str = "scratch", w: float = 10.0) -> dict[str, Any]:
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": x, "y": 10.0, "width": w, "height": 10.0, "rectanglelabels": [name]},
    }


def verdict(choice: str) -> dict[str, Any]:
    return {"from_name": "review", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}


def annotation(
    aid: int, result: list[dict[str, Any]], by: int = 1, updated_by: int | None = None, **kw: Any
) -> dict:
    return {
        "id": aid,
        "result": result,
        "completed_by": by,
        "updated_by": updated_by if updated_by is not None else by,
        "created_at": f"2026-11-23T00:00:{aid:02d}Z",
        "was_cancelled": False,
        **kw,
    }


def task(*annotations: dict[str, Any]) -> dict[str, Any]:
    return {"id": 7, "data": {"sha256": "s", "path": "feedback/s.jpg"}, "annotations": list(annotations)}


USERS = {1: "ann@x", 2: "rev@x", 3: "other@x"}


def test_labeling_config_is_xml_with_one_label_per_class() -> None:
    config = labeling_config(["scratch", "dent & chip"])
    root = ET.fromstring(config)
    assert [e.get("value") for e in root.iter("Label")] == ["scratch", "dent & chip"]
    assert {e.get("name") for e in root.iter("Choice")} == {None}
    assert [e.get("value") for e in root.iter("Choice")] == ["accept", "reject"]
    assert config_class_names(labeling_config(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match="unique"):
        labeling_config(["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        labeling_config([])


def test_reviewer_mode_accepts_rejects_and_waits() -> None:
    policy = ReviewPolicy("reviewer")
    assert review_task(task(), policy).state == ImageState.QUEUED
    waiting = review_task(task(annotation(1, [box(5)])), policy)
    assert waiting.state == ImageState.IN_REVIEW
    accepted = review_task(task(annotation(1, [box(5), verdict("accept")])), policy)
    assert accepted.state == ImageState.ACCEPTED and accepted.annotation is not None
    assert accepted.annotation["id"] == 1
    rejected = review_task(task(annotation(1, [box(5), verdict("reject")])), policy)
    assert rejected.state == ImageState.REJECTED and rejected.reject == [1]
    # after the pipeline sent it back (cancelled), the task is rejected and waiting again
    back = review_task(task(annotation(1, [box(5), verdict("reject")], was_cancelled=True)), policy)
    assert back.state == ImageState.REJECTED and back.reject == []
    # and a new annotation, accepted, wins
    again = review_task(
        task(
            annotation(1, [box(5), verdict("reject")], was_cancelled=True),
            annotation(2, [box(6), verdict("accept")]),
        ),
        policy,
    )
    assert again.state == ImageState.ACCEPTED and again.annotation is not None and again.annotation["id"] == 2


def test_only_listed_reviewers_verdicts_count() -> None:
    policy = ReviewPolicy("reviewer", frozenset({"rev@x"}))
    self_accepted = review_task(task(annotation(1, [box(5), verdict("accept")], by=1)), policy, USERS)
    assert self_accepted.state == ImageState.IN_REVIEW
    assert "not a reviewer" in self_accepted.reason
    by_reviewer = review_task(
        task(annotation(1, [box(5), verdict("accept")], by=1, updated_by=2)), policy, USERS
    )
    assert by_reviewer.state == ImageState.ACCEPTED and by_reviewer.reviewer == "rev@x"
    rejected = review_task(
        task(annotation(1, [box(5), verdict("reject")], by=1, updated_by=2)), policy, USERS
    )
    assert rejected.state == ImageState.REJECTED


def test_agreement_mode() -> None:
    policy = ReviewPolicy("agreement", agreement_iou=0.5)
    one = review_task(task(annotation(1, [box(5)], by=1)), policy)
    assert one.state == ImageState.IN_REVIEW
    same_person = review_task(task(annotation(1, [box(5)], by=1), annotation(2, [box(5)], by=1)), policy)
    assert same_person.state == ImageState.IN_REVIEW
    agreed = review_task(task(annotation(1, [box(5)], by=1), annotation(2, [box(6)], by=3)), policy)
    assert agreed.state == ImageState.ACCEPTED and agreed.annotation is not None
    assert agreed.annotation["id"] == 1  # the earlier of the two
    disagree = review_task(task(annotation(1, [box(5)], by=1), annotation(2, [box(60)], by=3)), policy)
    assert disagree.state == ImageState.REJECTED and sorted(disagree.reject) == [1, 2]
    empty_both = review_task(task(annotation(1, [], by=1), annotation(2, [], by=3)), policy)
    assert empty_both.state == ImageState.ACCEPTED  # "nothing to find", agreed


def test_agree_matches_one_to_one_by_class() -> None:
    a = annotation(1, [box(5), box(40)])
    assert agree(a, annotation(2, [box(41), box(6)]), 0.5)
    assert not agree(a, annotation(2, [box(5), box(6)]), 0.5)  # both match the first box
    assert not agree(a, annotation(2, [box(5), box(40, name="dent")]), 0.5)
    assert not agree(a, annotation(2, [box(5)]), 0.5)


def test_uncertainty_orders_even_odds_first() -> None:
    assert uncertainty([]) == 0.0
    assert uncertainty([0.5]) == pytest.approx(1.0)
    assert uncertainty([0.99, 0.3]) == pytest.approx(0.6)
    assert uncertainty([0.9]) < uncertainty([0.6])


def jpeg(size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def test_score_images_quarantines_undecodable_and_sorts() -> None:
    files = {"a.jpg": jpeg(), "b.jpg": jpeg((50, 20)), "bad.jpg": b"\xff\xd8\xffnot really"}
    images = [RawImage(sha256=p, path=p, size=len(d)) for p, d in files.items()]
    scores = {"a.jpg": 0.95, "b.jpg": 0.45}

    def predict(data: bytes) -> tuple[int, int, list[Detection]]:
        image = Image.open(io.BytesIO(data))
        image.load()
        path = next(p for p, d in files.items() if d == data)
        return image.width, image.height, [Detection(0, "scratch", scores[path], (1.0, 2.0, 11.0, 12.0))]

    items, bad = score_images(images, files.__getitem__, predict, prelabel_conf=0.5, model_version="m:1")
    assert [i.image.path for i in items] == ["b.jpg", "a.jpg"]  # 0.45 is less sure than 0.95
    assert [len(i.prelabels) for i in items] == [0, 1]  # only scores >= prelabel_conf
    assert [q.path for q in bad] == ["bad.jpg"] and bad[0].reason
    task = task_payload(items[1], "/data/local-files/?d=x/a.jpg")
    region = task["predictions"][0]["result"][0]
    assert task["data"]["sha256"] == "a.jpg" and task["predictions"][0]["model_version"] == "m:1"
    # the score Label Studio shows as a percentage is the weakest pre-label's confidence
    assert task["predictions"][0]["score"] == 0.95
    assert task_payload(items[0], "/data/local-files/?d=x/b.jpg")["predictions"][0]["score"] == 0.0
    assert region["value"]["x"] == pytest.approx(100 * 1 / 40) and region["value"]["width"] == pytest.approx(
        25.0
    )


def test_image_url() -> None:
    assert image_url("feedback/a b.jpg", "/srv/raw", "/") == "/data/local-files/?d=srv/raw/feedback/a%20b.jpg"
    assert image_url("feedback/a.jpg", "/srv/raw", "/srv") == "/data/local-files/?d=raw/feedback/a.jpg"
    assert image_url("feedback/a.jpg", "s3://bucket/raw/", "/") == "s3://bucket/raw/feedback/a.jpg"
    with pytest.raises(ValueError, match="document root"):
        image_url("a.jpg", "/srv/raw", "/home")


def record(sha: str, labeled: bool = True, split: str | None = "train", boxes: int = 1) -> ImageRecord:
    return ImageRecord(
        sha256=sha,
        path=f"{sha}.jpg",
        width=100,
        height=100,
        status=LabelStatus.LABELED if labeled else LabelStatus.UNLABELED,
        boxes=[Box(class_id=0, x1=1, y1=1, x2=20, y2=20)] * boxes if labeled else [],
        source="s",
        group=sha,
        split=split if labeled else None,
        labeling_job="label-studio:p" if sha.startswith("n") else None,
    )


def test_merge_keeps_base_splits_and_adds_only_new_labels() -> None:
    base_records = [record(f"b{i}", split=("train", "val", "test")[i % 3]) for i in range(9)] + [
        record("u1", labeled=False)
    ]
    base = DatasetManifest(class_names=["scratch"], source="base", label_format="yolo", records=base_records)
    base_id = manifest_version_id(base)
    new = [record(f"n{i}", split=None) for i in range(10)] + [
        record("u1", split=None),  # was unlabeled in the base: now labelled
        record("b0", split=None, boxes=3),  # labelled in the base already: the base's label stays
        record("n99", labeled=False),  # still unlabeled: not added
    ]
    merged, summary = merge_labels(base, base_id, new, SplitConfig(), "raw")
    by_sha = {r.sha256: r for r in merged.records}
    assert all(by_sha[r.sha256].split == r.split for r in base_records if r.labeled)
    assert len(by_sha["b0"].boxes) == 1
    assert by_sha["u1"].labeled and by_sha["u1"].split is not None
    assert "n99" not in by_sha
    assert summary.added == 11 and summary.replaced_unlabeled == 1 and summary.already_labeled == 1
    assert sum(summary.per_split.values()) == 11 and set(summary.per_split) <= {"train", "val", "test"}
    assert merged.parent_version == base_id and merged.labeling_jobs == ["label-studio:p"]
    assert summary.version == manifest_version_id(merged) != base_id
    unchanged, nothing = merge_labels(base, base_id, [record("n99", labeled=False)], SplitConfig(), "raw")
    assert nothing.added == 0 and nothing.version == base_id


def test_the_raw_store_is_listed_as_the_data_pipeline_ingests_it(tmp_path) -> None:
    """Images with an unknown extension but an image signature (the bundled ``*.jpg_0``)
    are queued like the data pipeline takes them; other files and the exports are not."""
    from tests.conftest import METAL_TAGS
    from visionloop.data.ingest import ingest
    from visionloop.data.sources import LocalSource
    from visionloop.labeling.queue import list_raw_images

    odd = sorted(METAL_TAGS.rglob("*.jpg_*"))[:3]
    assert odd, "the bundled set has JPEGs named *.jpg_N"
    for f in odd:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 50, 9, 9)).save(tmp_path / f"field{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "export.jpg").write_bytes(odd[0].read_bytes())
    images, duplicates = list_raw_images(LocalSource(tmp_path))
    names = sorted(i.path for i in images)
    assert names == sorted([f.name for f in odd] + [f"field{i}.png" for i in range(3)])
    assert duplicates == []
    ingested = ingest(LocalSource(tmp_path), "none")
    assert sorted(c.path for c in ingested.candidates if not c.path.startswith("labels/")) == names


def test_the_queue_says_why_devices_sent_images_back_and_what_they_did_not_send() -> None:
    from visionloop.labeling.types import LabelQueue, QueueItem

    def item(i: int, reason: str, device: str, skipped: int) -> QueueItem:
        meta = {
            "reason": reason,
            "device_id": device,
            "device_feedback": {"uncertain": i, "empty_sampled": 1, "empty_skipped": skipped},
        }
        image = RawImage(sha256=f"{i:064x}", path=f"feedback/{i}.jpg", size=1, meta=meta)
        return QueueItem(image=image, width=10, height=10, uncertainty=0.5)

    queue = LabelQueue(
        raw_images="/raw",
        found=3,
        labeled_before=0,
        items=[
            item(1, "uncertain score 0.31", "line-2", 40),
            item(2, "no detection above conf (sampled at 0.05)", "line-2", 57),
            item(3, "uncertain score 0.44", "line-3", 9),
        ],
    )
    feedback = queue.feedback()
    assert (feedback["uncertain"], feedback["no_detection_sampled"], feedback["other"]) == (2, 1, 0)
    assert feedback["devices"]["line-2"]["empty_skipped"] == 57  # the latest counter a device sent
    assert feedback["devices"]["line-3"] == {"uncertain": 3, "empty_sampled": 1, "empty_skipped": 9}
