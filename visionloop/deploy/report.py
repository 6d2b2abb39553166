"""HTML pages of the promotion decision and the staging report (dashboard visualizations)."""

from __future__ import annotations

import html

from visionloop.data.render import STYLE, _table
from visionloop.deploy.types import Check, PromotionDecision, StagingReport
from visionloop.training.types import Metrics


def _checks(checks: list[Check]) -> str:
    rows = [
        [
            "pass" if c.passed else "FAIL",
            c.name,
            c.value if c.value is not None else "",
            c.limit or "",
            c.detail,
        ]
        for c in checks
    ]
    return _table(rows, ["", "check", "value", "limit", "detail"])


def _verdict(passed: bool, text: str) -> str:
    return f"<p class='{'ok' if passed else 'bad'}'><b>{html.escape(text)}</b></p>"


def _fmt(m: Metrics | None, key: str) -> str:
    return f"{getattr(m, key):.4f}" if m is not None else "-"


def decision_html(d: PromotionDecision) -> str:
    head = [
        "",
        f"candidate (version {d.candidate_version})",
        f"production ({d.production_version or 'none'})",
    ]
    rows = [
        [label, _fmt(d.candidate, key), _fmt(d.production, key)]
        for label, key in (
            ("mAP50", "map50"),
            ("mAP50-95", "map50_95"),
            ("precision", "precision"),
            ("recall", "recall"),
        )
    ]
    classes = sorted(set(d.candidate.per_class) | set(d.production.per_class if d.production else {}))
    for name in classes:
        c = d.candidate.per_class.get(name, {})
        p = d.production.per_class.get(name, {}) if d.production else {}
        rows.append(
            [
                f"recall of {name}",
                f"{c.get('recall', 0):.4f}" if c else "-",
                f"{p.get('recall', 0):.4f}" if p else "-",
            ]
        )
    return "".join(
        [
            STYLE,
            f"<h2>Promotion gate: {html.escape(d.model_name)} version {html.escape(d.candidate_version)}</h2>",
            _verdict(d.passed, "passed: goes to staging" if d.passed else "rejected: production unchanged"),
            "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in d.reasons) + "</ul>",
            f"<p>Both measured by the edge runtime on the same test split ({d.test_images} images) of data set "
            f"version {html.escape(d.dataset_version_id[:12])}, at {html.escape(d.decided_at)}.</p>",
            "<h3>Candidate and production side by side</h3>",
            _table(rows, head),
            "<h3>Checks</h3>",
            _checks(d.checks),
        ]
    )


def staging_html(r: StagingReport) -> str:
    if r.skipped:
        return (
            STYLE
            + f"<h2>Staging: {html.escape(r.model_name)} {html.escape(r.version)}</h2><p>Not staged: "
            + (html.escape("; ".join(r.reasons)) + "</p>")
        )
    return "".join(
        [
            STYLE,
            f"<h2>Staging checks: {html.escape(r.model_name)} version {html.escape(r.version)}</h2>",
            _verdict(r.passed, "passed" if r.passed else "failed: stays at staging, not promoted"),
            f"<p>Pulled from {html.escape(r.channel)} and verified (manifest sha256 "
            f"{html.escape(r.manifest_sha256[:16])}…, {r.size_bytes / 2**20:.2f} MB); latency "
            f"{html.escape(str(r.latency_ms))} ms.</p>",
            _checks(r.checks),
        ]
    )
