"""The status page's labeling, monitoring, devices and models pages rendered from the
project's own types (a labeling round, drift decisions, an overview), as ui.readers
hands them over."""

from __future__ import annotations

from ui.html import table
from ui.loop_pages import devices_page, labeling_page, monitoring_page
from ui.pages import models_page
from ui.readers import LabelingView, Overview
from visionloop.labeling.types import (
    ImageState,
    LabelingRound,
    LabelQueue,
    Quarantined,
    QueueItem,
    RawImage,
    TaskDecision,
)
from visionloop.monitoring.drift import DriftDecision


def _round() -> LabelingRound:
    def decision(i: int, state: ImageState) -> TaskDecision:
        return TaskDecision(task_id=i, sha256=f"{i:064x}", path=f"line-2/part_{i}.jpg", state=state)

    return LabelingRound(
        model_name="tags-detector",
        raw_images="/data/raw",
        studio_url="http://127.0.0.1:8080",
        project_id=3,
        project_title="visionloop tags",
        project_url="http://127.0.0.1:8080/projects/3",
        review_mode="reviewer",
        created_tasks=3,
        already_there=1,
        decisions=[
            decision(1, ImageState.ACCEPTED),
            decision(2, ImageState.QUEUED),
            decision(3, ImageState.QUEUED),
            decision(4, ImageState.REJECTED),
        ],
        quarantined=[Quarantined(path="bad.jpg", sha256=None, reason="not an image")],
        labeled_before=2,
        found=7,
    )


def test_labeling_page_shows_the_queue_the_round_and_the_images_by_state() -> None:
    queue = LabelQueue(
        raw_images="/data/raw",
        found=7,
        labeled_before=2,
        items=[
            QueueItem(
                image=RawImage(sha256="a" * 64, path="x.jpg", size=10), width=8, height=8, uncertainty=0.5
            )
        ]
        * 4,
    )
    text = labeling_page(
        "tags-detector", LabelingView("visionloop_labeling-1", "2026-12-04 03:00", _round(), queue)
    )
    assert "visionloop_labeling-1 (2026-12-04 03:00)" in text
    assert 'href="http://127.0.0.1:8080/projects/3"' in text
    # queued 2 + rejected 1 wait; in review 0
    assert (
        'queue size (waiting for a label or a review)</td><td class="num"><span class="num">3</span>' in text
    )
    for state, n in [
        ("accepted", 1),
        ("queued", 2),
        ("rejected", 1),
        ("quarantined", 1),
        ("labeled before", 2),
    ]:
        assert f'<td>{state}</td><td class="num"><span class="num">{n}</span>' in text, state
    assert "line-2/part_4.jpg" in text


def test_labeling_page_says_plainly_when_there_is_no_round() -> None:
    assert "No labeling round yet." in labeling_page("m", None)


def _decision(enough: bool, drift: bool, when: str, features: list[str] | None = None) -> DriftDecision:
    return DriftDecision(
        reference="f" * 64,
        window={"since": f"{when}T00:00:00+00:00", "until": f"{when}T12:00:00+00:00"},
        current_images=120 if enough else 4,
        reference_images=500,
        enough_data=enough,
        drift=drift,
        drifted_features=features or [],
        low_confidence_share=0.125,
        action="label" if drift else "none",
        model="tags-detector:3",
        reasons=["brightness drifted"] if drift else [],
    )


def test_monitoring_page_shows_each_decision_in_words_newest_first() -> None:
    decisions = [
        ("r3", "2026-12-03 12:00", _decision(True, True, "2026-12-03", ["brightness"])),
        ("r2", "2026-12-02 12:00", _decision(True, False, "2026-12-02")),
        ("r1", "2026-12-01 12:00", _decision(False, False, "2026-12-01")),
    ]
    text = monitoring_page("tags-detector", decisions)
    rows = text.split('id="decisions"')[1].split("<tr>")[2:]
    assert "drift</strong>" in rows[0] and "brightness" in rows[0] and "label" in rows[0]
    assert "no drift" in rows[1]
    assert "too little data" in rows[2]
    assert "2026-12-01 00:00 → 2026-12-01 12:00" in rows[2]
    # the strip over time runs oldest to newest: amber, green, red
    strip = text.split('id="timeline"')[1]
    assert strip.index("#d4a72c") < strip.index("#2da44e") < strip.index("#cf222e")
    assert "No monitoring run yet." in monitoring_page("m", [])


def test_devices_page_lists_heartbeats_and_says_when_there_are_none() -> None:
    empty = devices_page("m", "/srv/channel", [])
    assert "heartbeats appear here once devices report" in empty and "devices/m/" in empty
    beat = {"key": "devices/m/cam-1.json", "version": "3", "at": "2026-12-04T03:00:00Z"}
    assert "<td>cam-1.json</td>" in devices_page("m", "/srv/channel", [beat])


def test_models_page_escapes_what_people_wrote_and_names_the_pointers() -> None:
    overview = Overview(
        model="tags-detector",
        versions=[
            {
                "version": "1",
                "stage": "production",
                "test_map50": 0.91234,
                "test_map50_95": 0.5,
                "dataset_version_id": "abcdef0123456789",
                "staging_checks_passed": True,
                "created": "2026-12-04 03:00",
                "history": [
                    {"stage": "production", "at": "2026-12-04T03:01:00", "by": "ana", "why": "<b>ok</b>"}
                ],
            }
        ],
        channel="/srv/channel",
        pointers={"staging": None, "production": "1"},
        verified=False,
    )
    text = models_page(overview)
    assert "&lt;b&gt;ok&lt;/b&gt;" in text and "<b>ok</b>" not in text
    assert "0.912" in text and "0.91234" not in text
    assert "→ version 1" in text and "→ nothing" in text
    assert "read without verification" in text


def test_table_escapes_cells() -> None:
    assert "<td>&lt;script&gt;</td>" in table(["a"], [["<script>"]])
