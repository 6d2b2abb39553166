"""The labeling round against a real Label Studio server: tasks with pre-annotations
appear, in uncertainty order, once; annotations submitted through the API come back;
review accepts, rejects (and sends back) and waits; the export holds exactly the
accepted labels, and the data pipeline's importer reads them back from the store."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from edge_runtime.detector import Detection
from tests.label_studio_server import LabelStudioServer
from tests.labeling.helpers import annotate, rect, review, set_verdict, studio, tasks_by_path
from visionloop.data import ingest
from visionloop.data.sources import open_source
from visionloop.data.types import LabelStatus
from visionloop.labeling.queue import list_raw_images, score_images
from visionloop.labeling.review import ReviewPolicy
from visionloop.labeling.rounds import export_bytes, export_key, review_project, sync_queue
from visionloop.labeling.types import ImageState, LabelQueue

CLASSES = ["scratch", "dent"]
SCORES = {"a": 0.48, "b": 0.9, "c": 0.3, "d": 0.7, "e": 0.55, "f": 0.97}


def make_store(root: Path) -> Path:
    """A raw store: six feedback images (with the edge's sidecar) and one broken file."""
    feedback = root / "feedback"
    feedback.mkdir(parents=True)
    for i, name in enumerate(SCORES):
        Image.new("RGB", (80, 60), (40 * i, 200 - 20 * i, 90)).save(feedback / f"{name}.jpg", quality=95)
        (feedback / f"{name}.json").write_text(f'{{"device_id": "cam-{i}", "reason": "uncertain"}}')
    (feedback / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    return root


def predictor(data: bytes) -> tuple[int, int, list[Detection]]:
    """Stands in for the production model: one box per image with a known score."""
    image = Image.open(io.BytesIO(data))
    image.load()
    name = "abcdef"[round((200 - image.getpixel((0, 0))[1]) / 20)]
    return image.width, image.height, [Detection(0, "scratch", SCORES[name], (8.0, 6.0, 40.0, 30.0))]


def queue_of(store: Path) -> LabelQueue:
    source = open_source(str(store))
    images, duplicates = list_raw_images(source)
    items, bad = score_images(
        images, source.read_bytes, predictor, prelabel_conf=0.25, model_version="tags:1"
    )
    queue = LabelQueue(
        raw_images=str(store), found=len(images) + len(duplicates), labeled_before=0, items=items,
        quarantined=duplicates + bad, model_name="tags", model_version="tags:1",
    )  # fmt: skip
    queue.check_reconciles()
    return queue


@pytest.fixture(scope="module")
def synced(
    label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LabelQueue, int]:
    store = make_store(tmp_path_factory.mktemp("raw"))
    queue = queue_of(store)
    result = sync_queue(
        studio(label_studio), queue, "tags round", CLASSES, 1, document_root="/", batch_size=2
    )
    assert result.created == 6 and result.already_there == 0
    return queue, result.project_id


def test_tasks_with_pre_annotations_appear_most_uncertain_first(
    label_studio: LabelStudioServer, synced: tuple[LabelQueue, int]
) -> None:
    queue, project = synced
    assert [q.path for q in queue.quarantined] == ["feedback/broken.jpg"]
    tasks = sorted(studio(label_studio).tasks(project), key=lambda t: t["id"])
    assert [t["data"]["path"] for t in tasks] == [
        f"feedback/{n}.jpg" for n in "aecdbf"
    ]  # |s - 0.5| ascending
    for t in tasks:
        (prediction,) = t["predictions"]
        assert prediction["model_version"] == "tags:1"
        (region,) = prediction["result"]
        assert region["value"]["rectanglelabels"] == ["scratch"]
        assert region["value"]["x"] == pytest.approx(10.0) and region["value"]["width"] == pytest.approx(40.0)
        assert t["data"]["edge_device_id"].startswith("cam-")
    project_info = studio(label_studio).client.projects.get(id=project)
    assert "scratch" in (project_info.label_config or "") and "dent" in (project_info.label_config or "")


def test_the_labeling_ui_can_load_the_images(
    label_studio: LabelStudioServer, synced: tuple[LabelQueue, int]
) -> None:
    """The image URL of a task is served by Label Studio itself (local-files storage)."""
    _, project = synced
    task = studio(label_studio).tasks(project)[0]
    response = httpx.get(
        label_studio.url + task["data"]["image"], headers={"Authorization": f"Token {label_studio.token}"}
    )
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (80, 60)


def test_a_second_sync_creates_nothing(
    label_studio: LabelStudioServer, synced: tuple[LabelQueue, int]
) -> None:
    queue, project = synced
    again = sync_queue(studio(label_studio), queue, "tags round", CLASSES, 1, document_root="/")
    assert again.project_id == project and again.created == 0 and again.already_there == 6
    assert len(studio(label_studio).tasks(project)) == 6


def test_annotations_come_back_and_review_decides(
    label_studio: LabelStudioServer, synced: tuple[LabelQueue, int]
) -> None:
    queue, project = synced
    s = studio(label_studio)
    by_path = tasks_by_path(s, project)

    def tid(name: str) -> int:
        return int(by_path[f"feedback/{name}.jpg"]["id"])

    # a: corrected by the annotator (a dent, not the predicted scratch), accepted by the reviewer
    a = annotate(s, tid("a"), [rect(20, 25, 30, 20, "dent", 80, 60)])
    set_verdict(s, a, "accept")
    # b: rejected by the reviewer; c: "nothing to find", accepted; d: waits for review
    b = annotate(s, tid("b"), [rect(5, 5, 10, 10, "scratch", 80, 60), review("reject")])
    annotate(s, tid("c"), [review("accept")])
    annotate(s, tid("d"), [rect(5, 5, 10, 10, "scratch", 80, 60)])

    decisions, export, requeued = review_project(s, project, ReviewPolicy("reviewer"))
    states = {d.path: d.state for d in decisions}
    assert states == {
        "feedback/a.jpg": ImageState.ACCEPTED,
        "feedback/b.jpg": ImageState.REJECTED,
        "feedback/c.jpg": ImageState.ACCEPTED,
        "feedback/d.jpg": ImageState.IN_REVIEW,
        "feedback/e.jpg": ImageState.QUEUED,
        "feedback/f.jpg": ImageState.QUEUED,
    }
    assert requeued == [b]
    assert sorted(t["data"]["image"] for t in export) == ["feedback/a.jpg", "feedback/c.jpg"]
    # the rejected task is back in Label Studio's queue, its annotation kept as history
    b_task = tasks_by_path(s, project)["feedback/b.jpg"]
    assert b_task["is_labeled"] is False and [x["was_cancelled"] for x in b_task["annotations"]] == [True]

    # the export, written into the store, is what the data pipeline's importer reads
    store = Path(queue.raw_images)
    (store / export_key(project)).parent.mkdir(exist_ok=True)
    (store / export_key(project)).write_bytes(export_bytes(export))
    found = ingest.ingest(open_source(str(store)), "auto", CLASSES, None, None)
    labels = {c.path: c.labels for c in found.candidates}
    assert found.format == "label-studio"
    assert {p for p, lab in labels.items() if lab.status == LabelStatus.LABELED} == {
        "feedback/a.jpg",
        "feedback/c.jpg",
    }
    (dent,) = labels["feedback/a.jpg"].boxes
    assert dent.class_id == 1 and (dent.x1, dent.y1) == pytest.approx((0.2, 0.25))
    assert labels["feedback/c.jpg"].boxes == []  # labelled: no defect, not unlabeled
    assert labels["feedback/a.jpg"].labeling_job == f"label-studio:{label_studio.url}/projects/{project}"

    # review again: nothing changes, nothing is sent back twice
    again, export2, requeued2 = review_project(s, project, ReviewPolicy("reviewer"))
    assert {d.path: d.state for d in again} == states and requeued2 == [] and export2 == export


def test_agreement_and_named_reviewers_on_the_server(label_studio: LabelStudioServer, tmp_path: Path) -> None:
    """Two annotators (real users of the server) per task in ``agreement`` mode; in
    ``reviewer`` mode with a reviewer list, only that person's verdict counts."""
    s = studio(label_studio)
    users = {u.email: int(u.id or 0) for u in s.client.users.list()}
    for email in ("ann1@visionloop.test", "ann2@visionloop.test", "lead@visionloop.test"):
        if email not in users:
            users[email] = int(s.client.users.create(email=email, username=email.split("@")[0]).id or 0)
    queue = queue_of(make_store(tmp_path / "raw"))
    result = sync_queue(s, queue, "two annotators", CLASSES, 2, document_root="/")
    assert s.client.projects.get(id=result.project_id).maximum_annotations == 2
    t = {p.split("/")[-1][0]: int(task["id"]) for p, task in tasks_by_path(s, result.project_id).items()}
    one, two = users["ann1@visionloop.test"], users["ann2@visionloop.test"]

    def by(task: int, user: int, result_: list[dict[str, object]]) -> int:
        return int(s.client.annotations.create(id=task, result=result_, completed_by=user).id or 0)

    by(t["a"], one, [rect(10, 10, 30, 30, "scratch", 80, 60)])
    by(t["a"], two, [rect(12, 11, 29, 30, "scratch", 80, 60)])  # agrees (IoU > 0.5)
    by(t["b"], one, [rect(10, 10, 30, 30, "scratch", 80, 60)])
    by(t["b"], two, [rect(60, 60, 30, 30, "scratch", 80, 60)])  # disagrees
    by(t["c"], one, [rect(10, 10, 30, 30, "dent", 80, 60)])  # one so far
    decisions, export, requeued = review_project(s, result.project_id, ReviewPolicy("agreement"))
    states = {d.path[-5]: d.state for d in decisions}
    assert (states["a"], states["b"], states["c"]) == (
        ImageState.ACCEPTED,
        ImageState.REJECTED,
        ImageState.IN_REVIEW,
    )
    assert len(requeued) == 2 and [e["data"]["image"] for e in export] == ["feedback/a.jpg"]

    # reviewer mode, only lead@ may review: an annotator's own "accept" waits, the lead's counts
    policy = ReviewPolicy("reviewer", frozenset({"lead@visionloop.test"}))
    self_accepted = by(t["d"], one, [rect(10, 10, 30, 30, "scratch", 80, 60), review("accept")])
    decisions, _, _ = review_project(s, result.project_id, policy, requeue=False)
    assert {d.path[-5]: d.state for d in decisions}["d"] == ImageState.IN_REVIEW
    # the lead signs in to the web UI and saves the annotation with their verdict
    label_studio.set_password("lead@visionloop.test", "lead-password-1")
    lead = label_studio.session("lead@visionloop.test", "lead-password-1")
    current = lead.get(f"/api/annotations/{self_accepted}/").json()
    saved = lead.patch(f"/api/annotations/{self_accepted}/", json={"result": current["result"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["updated_by"] == users["lead@visionloop.test"]
    decisions, _, _ = review_project(s, result.project_id, policy, requeue=False)
    d = next(x for x in decisions if x.path == "feedback/d.jpg")
    assert d.state == ImageState.ACCEPTED and d.reviewer == "lead@visionloop.test"
