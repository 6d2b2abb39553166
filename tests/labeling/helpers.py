"""Shared parts of the labeling tests: a Studio on the test server, and annotating a
task through the API as a person in the labeling UI would."""

from __future__ import annotations

from typing import Any

from tests.label_studio_server import LabelStudioServer
from visionloop.labeling.studio import Studio


def studio(server: LabelStudioServer) -> Studio:
    return Studio(server.url, server.token)


def rect(x: float, y: float, w: float, h: float, name: str, width: int, height: int) -> dict[str, Any]:
    """A rectangle region as the labeling UI submits it (percent of the image)."""
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [name]},
    }


def review(choice: str) -> dict[str, Any]:
    return {"from_name": "review", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}


def annotate(s: Studio, task_id: int, result: list[dict[str, Any]]) -> int:
    """Submit an annotation (POST /api/tasks/<id>/annotations/); returns its id."""
    made = s.client.annotations.create(id=task_id, result=result, lead_time=3.5)
    return int(made.id or 0)


def set_verdict(s: Studio, annotation_id: int, choice: str) -> None:
    """A reviewer opens the annotation, sets the review choice and updates it."""
    current = s.client.annotations.get(id=annotation_id)
    result = [r for r in (current.result or []) if r.get("from_name") != "review"] + [review(choice)]
    s.client.annotations.update(id=annotation_id, result=result)


def tasks_by_path(s: Studio, project_id: int) -> dict[str, dict[str, Any]]:
    return {t["data"]["path"]: t for t in s.tasks(project_id)}
