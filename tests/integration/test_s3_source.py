"""``S3Source`` against a real moto S3 server over HTTP: listing, reading, fingerprint,
ingestion and QA of an uploaded data set."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.factories import GT_HEADER, gt_csv_row, image_bytes
from tests.moto_server import S3Server, free_port
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.ingest import ingest
from visionloop.data.qa import QARunner
from visionloop.data.sources import S3Source, SourceError, fingerprint
from visionloop.data.types import LabelStatus

pytestmark = pytest.mark.s3

PREFIX = "batch-1"
CORRUPT = b"not an image"


def upload(client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def ground_truth_objects() -> dict[str, bytes]:
    """A Ground Truth data set: relative path -> bytes."""
    rows = (
        gt_csv_row("a.jpg", [(0, 10, 20, 30, 15)])
        + gt_csv_row("c.jpg", [])
        + gt_csv_row("corrupt.jpg", [(0, 1, 1, 5, 5)])
    )
    return {
        "imgs/bad/a.jpg": image_bytes(seed=1),
        "imgs/good/b.jpg": image_bytes(seed=2),  # no row: unlabeled
        "imgs/good/c.jpg": image_bytes(seed=3, size=(80, 48)),
        "imgs/bad/corrupt.jpg": CORRUPT,
        "labels.csv": (GT_HEADER + rows).encode(),
    }


@pytest.fixture
def gt_dataset(s3_bucket: tuple[Any, str], s3_server: S3Server) -> tuple[S3Source, dict[str, bytes], Any]:
    client, bucket = s3_bucket
    objects = ground_truth_objects()
    upload(client, bucket, {f"{PREFIX}/{k}": v for k, v in objects.items()})
    # siblings that share the prefix's first characters, and a file at the bucket root
    upload(
        client,
        bucket,
        {
            "batch-10/imgs/x.jpg": image_bytes(seed=9),
            "batch-2/labels.csv": GT_HEADER.encode(),
            "root.jpg": image_bytes(seed=8),
        },
    )
    source = S3Source(f"s3://{bucket}/{PREFIX}/", endpoint_url=s3_server.endpoint_url)
    return source, objects, client


def test_lists_exactly_the_prefix(gt_dataset: tuple[S3Source, dict[str, bytes], Any]) -> None:
    source, objects, _ = gt_dataset
    assert source.uri == f"s3://{source.bucket}/{PREFIX}"
    listing = {f.path: f for f in source.list_files()}
    assert sorted(listing) == sorted(objects)
    for path, body in objects.items():
        assert listing[path].size == len(body)
        assert listing[path].stamp  # the ETag


def test_reads_bytes_and_checks_existence(gt_dataset: tuple[S3Source, dict[str, bytes], Any]) -> None:
    source, objects, _ = gt_dataset
    for path, body in objects.items():
        assert source.read_bytes(path) == body
    assert source.exists("imgs/bad/a.jpg")
    assert not source.exists("imgs/bad/nope.jpg")
    assert not source.exists("../batch-10/imgs/x.jpg")
    assert source.uri_for("imgs/bad/a.jpg") == f"s3://{source.bucket}/{PREFIX}/imgs/bad/a.jpg"
    with pytest.raises(SourceError, match="escapes"):
        source.read_bytes("../root.jpg")


def test_fingerprint_changes_when_an_object_is_added(
    gt_dataset: tuple[S3Source, dict[str, bytes], Any],
) -> None:
    source, _, client = gt_dataset
    before = fingerprint(source)
    assert fingerprint(source) == before  # stable while nothing changes
    upload(client, source.bucket, {"batch-10/imgs/y.jpg": image_bytes(seed=11)})
    assert fingerprint(source) == before  # a sibling prefix is not part of this source
    upload(client, source.bucket, {f"{PREFIX}/imgs/good/new.jpg": image_bytes(seed=12)})
    after_add = fingerprint(source)
    assert after_add != before
    upload(client, source.bucket, {f"{PREFIX}/imgs/good/new.jpg": image_bytes(seed=13)})
    assert fingerprint(source) != after_add  # overwritten with other bytes


def test_ingest_and_qa_from_s3(gt_dataset: tuple[S3Source, dict[str, bytes], Any], tmp_path: Path) -> None:
    source, objects, _ = gt_dataset
    ingested = ingest(source, "auto", ["scratch"], None)
    assert ingested.format == "ground-truth"
    cands = {c.path: c for c in ingested.candidates}
    assert sorted(cands) == sorted(p for p in objects if p.endswith(".jpg"))
    assert all(c.exists for c in cands.values())
    assert cands["imgs/bad/a.jpg"].source_uri == f"s3://{source.bucket}/{PREFIX}/imgs/bad/a.jpg"
    assert cands["imgs/good/b.jpg"].labels.status == LabelStatus.UNLABELED
    assert ingested.ignored == []

    blobs = LocalBlobStore(tmp_path / "blobs")
    records, report = QARunner(source, blobs, ingested.class_names).run(ingested.candidates, source.uri)

    accepted = {r.path: r for r in records}
    assert sorted(accepted) == ["imgs/bad/a.jpg", "imgs/good/b.jpg", "imgs/good/c.jpg"]
    assert [(e.path, e.rule) for e in report.entries] == [("imgs/bad/corrupt.jpg", "not_an_image")]
    assert report.source == source.uri
    assert report.total == len(ingested.candidates)
    assert report.total == report.accepted + report.quarantined
    assert report.accepted == len(records)

    a = accepted["imgs/bad/a.jpg"]
    assert a.status == LabelStatus.LABELED
    assert (a.width, a.height) == (96, 64)
    assert [b.as_tuple() for b in a.boxes] == [(0, 10.0, 20.0, 40.0, 35.0)]
    assert a.sha256 == hashlib.sha256(objects["imgs/bad/a.jpg"]).hexdigest()
    assert blobs.get(a.sha256, a.ext) == objects["imgs/bad/a.jpg"]
    c = accepted["imgs/good/c.jpg"]
    assert c.status == LabelStatus.LABELED and c.boxes == [] and (c.width, c.height) == (80, 48)
    assert accepted["imgs/good/b.jpg"].status == LabelStatus.UNLABELED


def test_yolo_layout_on_s3(s3_bucket: tuple[Any, str], s3_server: S3Server) -> None:
    client, bucket = s3_bucket
    upload(
        client,
        bucket,
        {
            "yolo/images/train/a.jpg": image_bytes(seed=1),
            "yolo/images/train/b.jpg": image_bytes(seed=2),
            "yolo/images/val/c.jpg_0": image_bytes(seed=3),  # sniffed as a JPEG
            "yolo/labels/train/a.txt": b"0 0.5 0.5 0.5 0.5\n",
            "yolo/labels/val/c.txt": b"",
            "yolo/data.yaml": b"names: [scratch]\n",
            "yolo/README.md": b"# a yolo set\n",
            "other/images/train/z.jpg": image_bytes(seed=4),
        },
    )
    source = S3Source(f"s3://{bucket}/yolo", endpoint_url=s3_server.endpoint_url)
    ingested = ingest(source, "auto", None, None)
    assert ingested.format == "yolo" and ingested.class_names == ["scratch"]
    cands = {c.path: c for c in ingested.candidates}
    assert sorted(cands) == ["images/train/a.jpg", "images/train/b.jpg", "images/val/c.jpg_0"]
    a = cands["images/train/a.jpg"]
    assert a.labels.normalized
    assert [b.as_tuple() for b in a.labels.boxes] == [(0, 0.25, 0.25, 0.75, 0.75)]
    assert cands["images/train/b.jpg"].labels.status == LabelStatus.UNLABELED
    c = cands["images/val/c.jpg_0"]
    assert c.labels.status == LabelStatus.LABELED and c.labels.boxes == []
    assert [i.path for i in ingested.ignored] == ["README.md"]


def test_unreachable_endpoint_is_a_source_error() -> None:
    port = free_port()  # nothing listens there
    uri = "s3://raw-images-unreachable/some/prefix"
    source = S3Source(uri, endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(SourceError) as err:
        list(source.list_files())
    assert uri in str(err.value)
    with pytest.raises(SourceError, match=uri):
        ingest(source, "auto", None, None)
