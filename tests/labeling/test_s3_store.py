"""A raw image store on an S3 API (moto's server on loopback): Label Studio reads the
images through an S3 storage connected to the project, and the accepted labels are
written back into the bucket, where the data pipeline's importer reads them."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from edge_runtime.storage import S3Store
from tests.label_studio_server import LabelStudioServer
from tests.labeling.helpers import annotate, rect, review, studio
from tests.moto_server import S3Server
from visionloop.data import ingest
from visionloop.data.sources import open_source
from visionloop.data.types import LabelStatus
from visionloop.labeling.queue import list_raw_images, score_images
from visionloop.labeling.review import ReviewPolicy
from visionloop.labeling.rounds import export_bytes, export_key, review_project, sync_queue
from visionloop.labeling.types import LabelQueue

pytestmark = pytest.mark.s3


def test_s3_raw_store_round_trip(
    label_studio: LabelStudioServer, s3_server: S3Server, s3_bucket: tuple[Any, str]
) -> None:
    client, bucket = s3_bucket
    for i in range(3):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (30 * i, 90, 200)).save(buf, format="JPEG")
        client.put_object(Bucket=bucket, Key=f"raw/feedback/f{i}.jpg", Body=buf.getvalue())
    raw = f"s3://{bucket}/raw"
    source = open_source(raw, s3_server.endpoint_url)
    images, _ = list_raw_images(source)
    items, bad = score_images(images, source.read_bytes, None, 0.25, None)
    queue = LabelQueue(raw_images=raw, found=len(images), labeled_before=0, items=items, quarantined=bad)
    s = studio(label_studio)
    result = sync_queue(s, queue, "s3 store", ["scratch"], 1, "/", s3_endpoint=s3_server.endpoint_url)
    assert result.created == 3 and result.storage.startswith("s3 storage")

    tasks = sorted(s.tasks(result.project_id), key=lambda t: t["data"]["path"])
    # the labeling UI's image URL: Label Studio resolves the s3:// URI through the storage
    headers = {"Authorization": f"Token {label_studio.token}"}
    shown = httpx.get(
        f"{label_studio.url}/api/tasks/{tasks[0]['id']}?resolve_uri=true", headers=headers
    ).json()
    image = httpx.get(label_studio.url + shown["data"]["image"], headers=headers, follow_redirects=True)
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (64, 48)

    annotate(s, int(tasks[0]["id"]), [rect(10, 10, 50, 50, "scratch", 64, 48), review("accept")])
    _, export, _ = review_project(s, result.project_id, ReviewPolicy("reviewer"))
    S3Store(raw, endpoint_url=s3_server.endpoint_url).put(export_key(result.project_id), export_bytes(export))
    found = ingest.ingest(open_source(raw, s3_server.endpoint_url), "auto", ["scratch"], None, None)
    labeled = {c.path: c.labels for c in found.candidates if c.labels.status == LabelStatus.LABELED}
    assert list(labeled) == ["feedback/f0.jpg"] and len(labeled["feedback/f0.jpg"].boxes) == 1
