"""The pages about the rest of the loop: labeling, monitoring and the devices."""

from __future__ import annotations

from typing import Any

from ui.html import Html, empty, esc, link, num, page, table
from ui.readers import LabelingView

DECISIONS_SHOWN = 100


def labeling_page(model: str, view: LabelingView | None) -> str:
    """Queue size, the last round and the raw images by state."""
    body = "<h1>Labeling</h1>"
    if view is None:
        body += empty(
            "No labeling round yet.",
            "python run.py label queues the raw image store's new images in Label Studio "
            "(pre-labelled by the production model) and pulls back what was reviewed.",
        )
        return page("Labeling", body, model, "labeling")
    r = view.labeling_round
    counts = r.counts()
    waiting = counts.get("queued", 0) + counts.get("rejected", 0) + counts.get("in_review", 0)
    sent = len(view.queue.items) if view.queue is not None else r.created_tasks + r.already_there
    facts = [
        ["last round", f"{view.run_name} ({view.created})"],
        ["Label Studio project", link(r.project_url, r.project_title) if r.project_url else r.project_title],
        ["raw image store", r.raw_images],
        ["queue size (waiting for a label or a review)", num(waiting, 0)],
        ["images sent this round", num(sent, 0)],
        ["tasks created / already there", f"{r.created_tasks} / {r.already_there}"],
        ["review", r.review_mode],
        ["accepted labels exported", r.export_path or "-"],
    ]
    body += table(["", ""], facts, "labeling-facts")
    body += "<h2>Images by state</h2>"
    body += table(
        ["state", "images"], [[k.replace("_", " "), num(v, 0)] for k, v in counts.items()], "states"
    )
    if r.decisions:
        rows = [
            [
                d.path,
                d.state.value.replace("_", " "),
                ", ".join(d.annotators) or "-",
                d.reviewer or "-",
                d.reason,
            ]
            for d in r.decisions[:DECISIONS_SHOWN]
        ]
        more = len(r.decisions) - DECISIONS_SHOWN
        body += f"<h2>Tasks{f' (first {DECISIONS_SHOWN}; {more} more)' if more > 0 else ''}</h2>"
        body += table(["image", "state", "annotators", "reviewer", "why"], rows, "tasks")
    return page("Labeling", body, model, "labeling")


def verdict(d: Any) -> Html:
    """One decision in words: too little data, drift (and why), or no drift."""
    if not d.enough_data:
        return Html('<strong style="color:#9a6700">too little data</strong>')
    if d.drift:
        return Html('<strong style="color:#cf222e">drift</strong>')
    return Html('<span style="color:#1a7f37">no drift</span>')


def _strip(decisions: list[tuple[str, str, Any]]) -> Html:
    """The decisions over time, oldest on the left, one coloured mark each."""
    colours = []
    for _, created, d in reversed(decisions):
        colour = "#d4a72c" if not d.enough_data else "#cf222e" if d.drift else "#2da44e"
        colours.append(
            f'<span title="{esc(created)}" style="display:inline-block;width:14px;height:28px;'
            f'margin-right:3px;background:{colour};border-radius:2px"></span>'
        )
    return Html(
        f'<div class="box" id="timeline">{"".join(colours)}<div class="note">oldest to newest: '
        "green no drift, red drift, amber too little data</div></div>"
    )


def monitoring_page(model: str, decisions: list[tuple[str, str, Any]]) -> str:
    """The drift decisions over time, newest first."""
    body = "<h1>Monitoring</h1>"
    if not decisions:
        body += empty(
            "No monitoring run yet.",
            "python run.py monitor compares the edge prediction logs of the last window with "
            "the production model's data set.",
        )
        return page("Monitoring", body, model, "monitoring")
    rows = []
    for _, created, d in decisions:
        window = f"{_short(d.window.get('since'))} → {_short(d.window.get('until'))}"
        rows.append(
            [
                created,
                window,
                d.model or "-",
                num(d.current_images, 0),
                verdict(d),
                ", ".join(d.drifted_features) or "-",
                num(d.low_confidence_share, 2),
                d.action,
                "; ".join(d.reasons),
            ]
        )
    headers = ["when", "window", "model", "images", "verdict", "drifted features", "low-conf share"]
    body += "<h2>Drift decisions over time</h2>" + _strip(decisions)
    body += "<h2>Each run, newest first</h2>" + table([*headers, "action", "why"], rows, "decisions")
    return page("Monitoring", body, model, "monitoring")


def _short(value: Any) -> str:
    return str(value or "?")[:16].replace("T", " ")


def devices_page(model: str, channel: str | None, heartbeats: list[dict[str, Any]]) -> str:
    """A placeholder until the fleet reports (issue 19): the heartbeats found, if any."""
    where = f"devices/{model}/ in the channel {channel}" if channel else f"devices/{model}/ in the channel"
    body = (
        "<h1>Devices</h1>"
        f'<p class="note">The fleet\'s heartbeats appear here once devices report them ({esc(where)}; '
        "issue 19).</p>"
    )
    if not heartbeats:
        body += empty("No device has reported yet.")
        return page("Devices", body, model, "devices")
    keys = sorted({k for h in heartbeats for k in h if k != "key"})[:10]
    rows = [[h["key"].rsplit("/", 1)[-1], *[_cell(h.get(k)) for k in keys]] for h in heartbeats]
    body += table(["device", *keys], rows, "devices")
    return page("Devices", body, model, "devices")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)[:120]
