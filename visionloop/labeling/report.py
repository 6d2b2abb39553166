"""The labeling round as an HTML page (its dashboard visualization)."""

from __future__ import annotations

import html

from visionloop.data.render import STYLE, _table
from visionloop.labeling.types import LabelingRound

MAX_ROWS = 500


def round_html(r: LabelingRound) -> str:
    counts = r.counts()
    accounted = sum(counts.values())
    link = html.escape(r.project_url)
    parts = [
        STYLE,
        f"<h2>Labeling round: {html.escape(r.project_title)}</h2>",
        f"<p>Label Studio project <a href='{link}' target='_blank'>{link}</a> · review: "
        f"{html.escape(r.review_mode)} · raw images {html.escape(r.raw_images)}</p>",
        f"<p>{r.created_tasks} tasks created now, {r.already_there} already there; "
        f"{len(r.requeued)} rejected annotations sent back to the queue.</p>",
        _table([[k, v] for k, v in counts.items()] + [["accounted for", accounted]], ["state", "images"]),
        f"<p>Accepted labels exported to {html.escape(r.export_path)}.</p>",
    ]
    rows = [
        [d.state.value, d.path, d.task_id or "", d.boxes, ", ".join(d.annotators), d.reviewer or "", d.reason]
        for d in sorted(r.decisions, key=lambda d: (d.state.value, d.path))[:MAX_ROWS]
    ]
    parts.append(_table(rows, ["state", "image", "task", "boxes", "annotators", "reviewer", "why"]))
    if r.quarantined:
        parts.append("<h3>Not sent</h3>")
        parts.append(_table([[q.path, q.reason] for q in r.quarantined[:MAX_ROWS]], ["image", "reason"]))
    return "".join(parts)
