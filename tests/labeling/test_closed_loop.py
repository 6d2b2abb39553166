"""The loop, end to end, with every part real: model v1 is trained, gated and published;
the edge runtime serving it spools the field images it is unsure about and uploads them
to the raw image store; the labeling pipeline sends them to Label Studio with v1's
pre-labels; they are annotated there through the API (one rejected, one left alone);
the next labeling run pulls them, makes a new data set version holding exactly the
accepted labels, trains v2 on it, the gate promotes it, and the edge runtime swaps to
v2. Every spooled image is accounted for: labelled, rejected or still queued.

Which model the gate prefers must not depend on the CPU's kernels: v1 is trained for a
single epoch (a first, rough model: the gate's absolute floor is 0 here), v2 for
``V2_EPOCHS`` on the larger data set, so v2 is decisively better on any machine, and the
test also checks that the gate's verdict follows from the figures it recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from zenml.client import Client
from zenml.io import fileio

from edge_runtime.channel import ChannelClient
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.storage import LocalStore
from pipelines.launch import (
    LabelRunResult,
    run_data_pipeline,
    run_deployment_pipeline,
    run_labeling_pipeline,
    run_training_pipeline,
)
from tests.factories import detection_set
from tests.label_studio_server import LabelStudioServer
from tests.labeling.helpers import annotate, rect, review, studio, tasks_by_path
from visionloop.config import VisionloopConfig
from visionloop.data.dataset import ImageDataset
from visionloop.deploy.signing import parse_private_key
from visionloop.labeling.types import ImageState

MODEL = "squares-loop"
SIGNING_SEED = "3c" * 32
SIZE = 128
V2_EPOCHS = 10  # the retrain after labeling; v1 has 1


def loop_config(tmp: Path, server: LabelStudioServer) -> VisionloopConfig:
    return VisionloopConfig.model_validate(
        {
            "name": "squares-loop",
            "model_name": MODEL,
            "data": {"source": str(detection_set(tmp / "base", n=24, size=SIZE, seed=11)), "format": "yolo"},
            "tune": {"trials": 0},
            "train": {"epochs": 1, "imgsz": SIZE, "batch": 8},
            "export": {"int8": False},
            "deploy": {
                "channel": str(tmp / "channel"),
                "gate": {"min_map50": 0.0, "max_regression": 0.0},
                "staging": {"latency_images": 5, "max_latency_p95_ms": 5000, "max_model_mb": 50},
                "self_test_images": 2,
            },
            "label": {"url": server.url, "raw_images": str(tmp / "raw"), "retrain_after": 6},
        }
    )


def truth(field: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """sha256 of each field image -> its true squares (YOLO cx, cy, w, h, normalised)."""
    out = {}
    for image in sorted(field.glob("*.jpg")):
        rows = [line.split() for line in image.with_suffix(".txt").read_text().splitlines() if line.strip()]
        out[hashlib.sha256(image.read_bytes()).hexdigest()] = [tuple(map(float, r[1:])) for r in rows]
    return out  # type: ignore[return-value]


def boxes_as_annotator(rows: list[tuple[float, float, float, float]]) -> list[dict[str, Any]]:
    return [
        rect(100 * (cx - w / 2), 100 * (cy - h / 2), 100 * w, 100 * h, "square", SIZE, SIZE)
        for cx, cy, w, h in rows
    ]


class Loop:
    def __init__(self, tmp: Path, server: LabelStudioServer) -> None:
        self.config = loop_config(tmp, server)
        self.server = server
        self.field = detection_set(tmp / "field", n=20, size=SIZE, seed=99)
        self.truth = truth(self.field)
        public = parse_private_key(SIGNING_SEED, "test").public_raw
        self.edge = EdgeRuntime(
            # a first, rough model: every image it finds nothing on goes back too
            RuntimeConfig(
                model=MODEL, state_dir=tmp / "edge", poll_s=3600, device_id="line-3", empty_sample_rate=1.0
            ),
            ChannelClient(LocalStore(tmp / "channel"), public),
            feedback_store=LocalStore(tmp / "raw"),
        )
        self.rounds: list[LabelRunResult] = []
        self.spooled: set[str] = set()
        self.served: list[str] = []
        self.base_artifact_id = ""


@pytest.fixture(scope="module")
def loop(zenml_stack: str, label_studio: LabelStudioServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("VISIONLOOP_SIGNING_KEY", SIGNING_SEED)
    mp.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    w = Loop(tmp_path_factory.mktemp("loop"), label_studio)
    # v1: a first, quickly trained model in production
    data = run_data_pipeline(w.config.data)
    w.base_artifact_id = data.artifact_id
    v1 = run_training_pipeline(w.config, data.artifact_id)
    deployed = run_deployment_pipeline(w.config, data.artifact_id, v1.registration.model_version)
    assert deployed.outcome.stage == "production"
    # the edge serves v1 and sends back what it is unsure about
    w.edge.start(background=False)
    assert w.edge.agent.check_once()
    w.served.append(w.edge.current.version_id if w.edge.current else "")
    for image in sorted(w.field.glob("*.jpg")):
        answer = w.edge.predict(image.read_bytes(), source=image.name)
        if answer["feedback"] and answer["feedback"]["spool"] == "spooled":
            w.spooled.add(hashlib.sha256(image.read_bytes()).hexdigest())
    assert w.edge.uploader is not None
    w.edge.uploader.drain()
    # round 1: the spooled images go to Label Studio with v1's pre-labels
    w.rounds.append(run_labeling_pipeline(w.config))
    # the retrain that the labels start trains longer than the first, rough model
    w.config.train.epochs = V2_EPOCHS
    yield w
    w.edge.stop()
    mp.undo()


def test_uncertain_images_reach_label_studio_with_v1_prelabels(loop: Loop) -> None:
    first = loop.rounds[0]
    assert len(loop.spooled) >= 9, "the first model should be unsure about many field images"
    raw = {p.stem for p in (Path(loop.config.label.raw_images or "") / "feedback").glob("*.jpg")}
    assert raw == loop.spooled  # uploaded, named by content hash
    assert first.labeling_round.created_tasks == len(loop.spooled)
    assert first.production_version == "1" and not first.triggered
    tasks = studio(loop.server).tasks(first.labeling_round.project_id)
    assert {t["data"]["sha256"] for t in tasks} == loop.spooled
    assert all(t["predictions"][0]["model_version"] == f"{MODEL}:1" for t in tasks)
    uncertainty = [t["data"]["uncertainty"] for t in sorted(tasks, key=lambda t: t["id"])]
    assert uncertainty == sorted(uncertainty, reverse=True)
    assert all(t["data"]["edge_device_id"] == "line-3" for t in tasks)


@pytest.fixture(scope="module")
def annotated(loop: Loop) -> dict[str, str]:
    """Label every task as a person would, from the true squares: one is rejected by the
    reviewer, one is left for later; the rest accepted. Then run the next round."""
    s = studio(loop.server)
    project = loop.rounds[0].labeling_round.project_id
    tasks = sorted(s.tasks(project), key=lambda t: t["id"])
    outcome: dict[str, str] = {}
    for i, t in enumerate(tasks):
        sha = t["data"]["sha256"]
        if i == 1:
            outcome[sha] = "queued"
            continue
        verdict = "reject" if i == 2 else "accept"
        annotate(s, int(t["id"]), boxes_as_annotator(loop.truth[sha]) + [review(verdict)])
        outcome[sha] = "rejected" if verdict == "reject" else "accepted"
    loop.rounds.append(run_labeling_pipeline(loop.config))
    assert loop.edge.agent.check_once()
    loop.served.append(loop.edge.current.version_id if loop.edge.current else "")
    return outcome


def test_the_new_data_set_holds_exactly_the_accepted_labels(loop: Loop, annotated: dict[str, str]) -> None:
    second = loop.rounds[1]
    dataset: ImageDataset = Client().get_artifact_version(second.dataset_artifact_id).load()
    base: ImageDataset = Client().get_artifact_version(loop.base_artifact_id).load()
    base_labeled = {r.sha256 for r in base.records if r.labeled}
    new = {r.sha256: r for r in dataset.records if r.labeled and r.sha256 not in base_labeled}
    accepted = {sha for sha, o in annotated.items() if o == "accepted"}
    assert set(new) == accepted
    for sha, r in new.items():
        got = sorted((round(b.x1), round(b.y1), round(b.x2), round(b.y2)) for b in r.boxes)
        want = sorted(
            (
                round((cx - w / 2) * SIZE),
                round((cy - h / 2) * SIZE),
                round((cx + w / 2) * SIZE),
                round((cy + h / 2) * SIZE),
            )
            for cx, cy, w, h in loop.truth[sha]
        )
        assert got == want
        assert (
            r.labeling_job
            and r.labeling_job.startswith("label-studio:")
            and r.split in ("train", "val", "test")
        )
    assert dataset.manifest.parent_version == base.version_id
    assert second.new_labels == len(accepted) >= loop.config.label.retrain_after


def test_v2_is_trained_promoted_and_served(loop: Loop, annotated: dict[str, str]) -> None:
    second = loop.rounds[1]
    assert second.triggered and second.training is not None and second.deployment is not None
    assert second.training.registration.model_version == "2"
    assert second.training.registration.dataset_version_id == second.dataset_version_id
    decision = second.deployment.decision
    outcome = second.deployment.outcome
    assert decision.production_version == "1"
    # the gate measured both on the same test split, and its verdict is its checks' verdict
    assert decision.production is not None
    against = {c.name: c for c in decision.checks}["mAP50 against production"]
    assert against.value == round(decision.candidate.map50, 4)
    assert against.limit == round(decision.production.map50 - loop.config.deploy.gate.max_regression, 4)
    assert decision.passed == all(c.passed for c in decision.checks), decision.reasons
    assert outcome.stage == "production" and outcome.version == "2", decision.reasons
    assert loop.served == ["1", "2"]


def test_every_spooled_image_is_accounted_for(loop: Loop, annotated: dict[str, str]) -> None:
    r = loop.rounds[1].labeling_round
    states = {d.sha256: d.state for d in r.decisions}
    assert set(states) == loop.spooled
    expected = {"accepted": ImageState.ACCEPTED, "rejected": ImageState.REJECTED, "queued": ImageState.QUEUED}
    assert states == {sha: expected[o] for sha, o in annotated.items()}
    counts = r.counts()
    assert counts["accepted"] + counts["rejected"] + counts["queued"] == len(loop.spooled)
    assert counts["in_review"] == counts["quarantined"] == 0
    rejected_sha = next(sha for sha, o in annotated.items() if o == "rejected")
    back = {t["data"]["sha256"]: t for t in tasks_by_path(studio(loop.server), r.project_id).values()}
    assert back[rejected_sha]["is_labeled"] is False  # back in Label Studio's queue
    # the round is an artifact with an HTML view in the dashboard, every image listed
    artifact = loop.rounds[1].run.steps["pull_annotations"].outputs["labeling_round"][0]
    (html,) = [v for v in artifact.visualizations or [] if str(v.type.value) == "html"]
    with fileio.open(html.uri, "r") as fh:
        page = fh.read()
    assert r.project_url in page and all(d.path in page for d in r.decisions)
