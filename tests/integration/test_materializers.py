"""Save/load round trips of the materializers on the session's fresh ZenML store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from zenml import load_artifact, save_artifact
from zenml.client import Client

from materializers.image_dataset_materializer import MANIFEST_FILE, ImageDatasetMaterializer
from materializers.quarantine_report_materializer import QuarantineReportMaterializer
from tests.factories import image_bytes
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.dataset import DatasetManifest, ImageDataset
from visionloop.data.types import Box, ImageRecord, LabelStatus, QuarantineEntry, QuarantineReport


def dataset_of(tmp_path: Path, seeds: list[int]) -> ImageDataset:
    blobs = LocalBlobStore(tmp_path / "outside-store")
    records = []
    for seed in seeds:
        data = image_bytes(seed=seed)
        sha = hashlib.sha256(data).hexdigest()
        blobs.put(sha, ".jpg", data)
        records.append(
            ImageRecord(
                sha256=sha,
                path=f"{seed}.jpg",
                width=96,
                height=64,
                status=LabelStatus.LABELED,
                source="t",
                group=str(seed),
                split="train",
                boxes=[Box(class_id=0, x1=1, y1=2, x2=30, y2=40)],
            )
        )
    return ImageDataset(DatasetManifest(class_names=["scratch"], records=records), blobs)


def blob_files() -> list[Path]:
    root = Path(Client().active_stack.artifact_store.path) / "visionloop" / "images"
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_image_dataset_round_trip_and_images_stored_once(zenml_stack, tmp_path):
    before = set(blob_files())
    first = dataset_of(tmp_path, [1, 2, 3])
    save_artifact(first, name="roundtrip_dataset", materializer=ImageDatasetMaterializer)
    loaded = load_artifact("roundtrip_dataset")
    assert isinstance(loaded, ImageDataset)
    assert loaded.version_id == first.version_id
    assert loaded.manifest == first.manifest
    assert [loaded.read_bytes(r) for r in loaded.records] == [first.read_bytes(r) for r in first.records]
    assert loaded.blobs.uri != first.blobs.uri  # now read from the artifact store

    second = dataset_of(tmp_path, [2, 3, 4])  # two images shared with the first version
    save_artifact(second, name="roundtrip_dataset", materializer=ImageDatasetMaterializer)
    assert len(set(blob_files()) - before) == 4


def test_a_tampered_manifest_is_refused(zenml_stack, tmp_path):
    artifact = save_artifact(
        dataset_of(tmp_path, [7, 8]), name="tampered", materializer=ImageDatasetMaterializer
    )
    path = Path(artifact.uri) / MANIFEST_FILE
    payload = json.loads(path.read_text())
    payload["manifest"]["records"][0]["boxes"] = []
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="was modified"):
        load_artifact("tampered")


def test_quarantine_report_round_trip(zenml_stack):
    report = QuarantineReport(
        source="s",
        total=3,
        accepted=2,
        entries=[
            QuarantineEntry(
                path="a.jpg", source_uri="s/a.jpg", rule="zero_bytes", reason="the file is empty (0 bytes)"
            )
        ],
    )
    artifact = save_artifact(report, name="qa_roundtrip", materializer=QuarantineReportMaterializer)
    assert load_artifact("qa_roundtrip") == report
    html = (Path(artifact.uri) / "quarantine_report.html").read_text()
    assert "a.jpg" in html and "zero_bytes" in html and "3 in = 2 accepted + 1 quarantined" in html
