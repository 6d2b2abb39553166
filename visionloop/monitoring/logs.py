"""Reading the edge runtime's prediction logs (JSONL) for a time window.

One line per served image, as ``edge_runtime.predlog`` writes it::

    {"time": "2026-11-22T10:00:00+00:00", "model": "tags", "version": "3", "latency_ms": 24.1,
     "boxes": 2, "max_score": 0.81, "box_sizes": [[30.5, 12.0], [8.0, 9.5]], "classes": [...],
     "brightness": 0.46, "contrast": 0.26, ..., "width": 450, "height": 300, "aspect": 1.5}

(the image figures are those of ``edge_runtime.imagestats``; an ``image`` object holding
them is read too).
Empty and malformed lines are counted, with the first few named by file and line, and
never stop the run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_runtime.imagestats import FEATURES
from edge_runtime.storage import Store
from visionloop.monitoring.reference import prediction_figures

MAX_EXAMPLES = 20
LOG_NAME = re.compile(r"\.jsonl(\.\d+)?$")  # predictions.jsonl, and predictions.jsonl.1 once rotated
PREDICTION_FIELDS = ("max_score", "boxes", "mean_box_area", "latency_ms")


@dataclass
class LogWindow:
    rows: list[dict[str, float]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lines: int = 0
    empty: int = 0
    malformed: int = 0
    outside_window: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, where: str, why: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {why}")

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "lines": self.lines,
            "used": len(self.rows),
            "empty": self.empty,
            "malformed": self.malformed,
            "outside_window": self.outside_window,
            "examples": self.examples,
        }


def parse_time(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    raise ValueError(f"time {value!r} is neither ISO 8601 nor epoch seconds")


def _number(doc: dict[str, Any], key: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}, not a finite number")
    return float(value)


def parse_line(line: str) -> tuple[datetime, dict[str, float]]:
    """One log line -> (time, flat row of image and prediction figures). Raises
    ValueError naming what is wrong."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    when = parse_time(doc.get("time"))
    nested = doc.get("image")
    image: dict[str, Any] = nested if isinstance(nested, dict) else doc
    missing = [name for name in FEATURES if name not in image]
    if missing:
        raise ValueError(f"no image statistics ({', '.join(missing)})")
    row = {name: _number(image, name) for name in FEATURES}
    row["max_score"] = _number(doc, "max_score")
    row["boxes"] = _number(doc, "boxes")
    sizes = doc.get("box_sizes") or []
    if not isinstance(sizes, list) or not all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(v, int | float) for v in s) for s in sizes
    ):
        raise ValueError("box_sizes is not a list of [width, height] pairs")
    row.update(prediction_figures(row["max_score"], sizes, row["width"], row["height"]))
    row["latency_ms"] = _number(doc, "latency_ms") if "latency_ms" in doc else float("nan")
    return when, row


def read_window(store: Store, prefix: str, since: datetime | None, until: datetime | None) -> LogWindow:
    """Every ``*.jsonl`` object (and rotated ``*.jsonl.1``) under ``prefix`` of ``store``,
    lines within [since, until)."""
    window = LogWindow()
    for key in store.list(prefix):
        if not LOG_NAME.search(key):
            continue
        data = store.get(key)
        if data is None:
            continue
        window.files.append(key)
        for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            window.lines += 1
            if not raw.strip():
                window.empty += 1
                continue
            try:
                when, row = parse_line(raw)
            except ValueError as exc:
                window.problem(f"{key}:{number}", str(exc))
                continue
            if (since is not None and when < since) or (until is not None and when >= until):
                window.outside_window += 1
                continue
            window.rows.append(row)
    return window
