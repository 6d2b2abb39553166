"""HTML page of the drift decision (the dashboard visualization of ``drift_decision``;
Evidently's own report is the ``drift_report`` artifact)."""

from __future__ import annotations

import html

from visionloop.data.render import STYLE, _table
from visionloop.monitoring.drift import DriftDecision


def decision_html(d: DriftDecision) -> str:
    verdict = "DRIFT" if d.drift else ("not enough data" if not d.enough_data else "no drift")
    rows = [
        [
            "DRIFT" if f.drifted else "",
            f.feature,
            f"{f.reference_mean:.4f}",
            f"{f.current_mean:.4f}",
            f"{f.method} {f.score:.3g}",
            f.threshold,
        ]
        for f in d.features
    ]
    log = d.log
    return "".join(
        [
            STYLE,
            f"<h2>Monitoring: {html.escape(verdict)}</h2>",
            f"<p class='{'bad' if d.drift else 'ok'}'><b>{html.escape('; '.join(d.reasons))}</b></p>",
            f"<p>Action: <b>{html.escape(d.action)}</b>"
            + (f" ({html.escape(d.follow_up.describe())})" if d.follow_up else "")
            + f". Window {html.escape(str(d.window))}: "
            f"{d.current_images} images against {d.reference_images} of data set version "
            f"{html.escape(d.reference[:12])}"
            + (f" (production model {html.escape(d.model)})" if d.model else "")
            + f". Low-confidence share: {d.low_confidence_share}.</p>",
            f"<p>Log lines: {log.get('lines', 0)}, used {log.get('used', 0)}, empty {log.get('empty', 0)}, "
            f"malformed {log.get('malformed', 0)}, outside the window {log.get('outside_window', 0)}.</p>",
            "<ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in log.get("examples", [])) + "</ul>",
            _table(rows, ["", "feature", "reference mean", "current mean", "test score", "threshold"]),
        ]
    )
