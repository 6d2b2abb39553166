"""Label Studio down, or failing half-way through a sync or a pull: a clear error that
names the server and what failed, and a re-run that resumes without duplicating a task
or losing an annotation. The failures come from a proxy in front of the real server."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.launch import LabelingError, run_labeling_pipeline
from tests.factories import detection_set
from tests.label_studio_server import LabelStudioServer
from tests.labeling.flaky_proxy import FlakyProxy
from tests.labeling.helpers import annotate, rect, review, studio, tasks_by_path
from tests.labeling.test_label_studio import CLASSES, make_store, queue_of
from visionloop.config import VisionloopConfig
from visionloop.labeling.review import ReviewPolicy
from visionloop.labeling.rounds import review_project, sync_queue
from visionloop.labeling.studio import LabelStudioError, Studio

IMPORT = r"^POST /api/projects/\d+/import"
READ_TASKS = r"^GET /api/tasks/\?fields=all"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(
        LabelStudioError, match=rf"Label Studio at {url}: signing in .* failed: cannot connect"
    ):
        Studio(url, "some-token", timeout=5).check()


def test_errors_mid_sync_then_a_rerun_resumes(label_studio: LabelStudioServer, tmp_path: Path) -> None:
    queue = queue_of(make_store(tmp_path / "raw"))
    with FlakyProxy(label_studio.url, IMPORT, allow=1) as proxy:
        flaky = Studio(proxy.url, label_studio.token, timeout=10)
        with pytest.raises(LabelStudioError, match=r"importing 2 tasks into project \d+ failed: HTTP 503"):
            sync_queue(flaky, queue, "resume after 503", CLASSES, 1, document_root="/", batch_size=2)
    s = studio(label_studio)
    project = next(p.id for p in s.client.projects.list() if p.title == "resume after 503")
    first = tasks_by_path(s, int(project))
    assert len(first) == 2  # the first batch is in; the second failed
    # someone labels one of them while the sync is broken
    path, task = sorted(first.items())[0]
    annotate(s, int(task["id"]), [rect(10, 10, 20, 20, "scratch", 80, 60), review("accept")])

    again = sync_queue(s, queue, "resume after 503", CLASSES, 1, document_root="/", batch_size=2)
    assert again.project_id == project and again.created == 4 and again.already_there == 2
    tasks = s.tasks(int(project))
    assert Counter(t["data"]["sha256"] for t in tasks).most_common(1)[0][1] == 1  # no duplicate
    assert {t["data"]["sha256"] for t in tasks} == {i.image.sha256 for i in queue.items}
    decisions, export, _ = review_project(s, int(project), ReviewPolicy("reviewer"))
    assert [t["data"]["image"] for t in export] == [path]  # the annotation made meanwhile is kept


def test_dropped_connections_while_reading_annotations(
    label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    queue = queue_of(make_store(tmp_path / "raw"))
    s = studio(label_studio)
    result = sync_queue(s, queue, "pull drops", CLASSES, 1, document_root="/")
    for task in s.tasks(result.project_id)[:3]:
        annotate(s, int(task["id"]), [review("accept")])
    with FlakyProxy(label_studio.url, READ_TASKS, allow=0, status=0) as proxy:
        flaky = Studio(proxy.url, label_studio.token, timeout=10)
        with pytest.raises(LabelStudioError, match=rf"Label Studio at {proxy.url}: reading the annotations"):
            review_project(flaky, result.project_id, ReviewPolicy("reviewer"))
        assert proxy.failed >= 1
    _, export, _ = review_project(s, result.project_id, ReviewPolicy("reviewer"))
    assert len(export) == 3


def pipeline_config(tmp: Path, url: str) -> VisionloopConfig:
    return VisionloopConfig.model_validate(
        {
            "name": "faults",
            "data": {"source": str(detection_set(tmp / "base", n=8, size=96, seed=3)), "format": "yolo"},
            "label": {
                "url": url,
                "raw_images": str(make_store(tmp / "raw")),
                "batch_size": 2,
                "retrain_after": 100,
            },
        }
    )


def test_pipeline_failing_mid_sync_names_the_step_and_resumes(
    zenml_stack: str, label_studio: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    with FlakyProxy(label_studio.url, IMPORT, allow=2) as proxy:
        config = pipeline_config(tmp_path, proxy.url)
        with pytest.raises(LabelingError) as failure:
            run_labeling_pipeline(config)
    message = str(failure.value)
    assert "failed in step sync_label_studio" in message and "HTTP 503" in message and "Re-run" in message
    config.label.url = label_studio.url
    summary = run_labeling_pipeline(config).summary()
    assert summary["created_tasks"] == 2 and summary["already_there"] == 4
    assert summary["images"]["queued"] == 6 and summary["images"]["quarantined"] == 1
    tasks = studio(label_studio).tasks(summary["project_id"])
    assert len(tasks) == len({t["data"]["sha256"] for t in tasks}) == 6


def test_cli_with_label_studio_down(
    zenml_stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import run

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "any")
    url = f"http://127.0.0.1:{closed_port()}"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"name": "down", "data": {"source": str(tmp_path)}}))
    result = CliRunner().invoke(run.cli, ["label", "--config", str(config), "--url", url])
    assert result.exit_code == 2, result.output
    assert f"error: Label Studio at {url}: signing in" in result.output and "cannot connect" in result.output
