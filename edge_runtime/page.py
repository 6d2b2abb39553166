"""The device's own page (``GET /``): what it serves, its health and counters, the last
predictions drawn on thumbnails of their images, and a form to try an image.

``Recent`` keeps the last ``size`` predictions in memory: a thumbnail (at most
``imagestats.THUMB`` pixels a side, already made for the prediction log, so nothing more
is decoded) and the detections, boxes scaled to it. Bounded: ``size`` entries of one
small RGB image each (256 x 256 x 3 bytes at most, under 4 MB for the default 24).
Rendering (JPEG encoding, drawing) happens when the page is asked for, never on the
request path. The page is plain HTML with inline CSS and a few lines of script; it
loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

COLORS = ((230, 60, 60), (40, 160, 230), (250, 190, 30), (60, 200, 110), (200, 80, 220))


@dataclass(frozen=True)
class RecentPrediction:
    time: str
    source: str
    sha256: str
    size: tuple[int, int]  # the original image's
    thumb: Image.Image
    detections: list[dict[str, Any]] = field(default_factory=list)  # boxes in original pixels
    feedback: str | None = None
    latency_ms: float = 0.0


class Recent:
    """The last ``size`` predictions, newest first; thread-safe."""

    def __init__(self, size: int = 24) -> None:
        self.size = size
        self._items: deque[RecentPrediction] = deque(maxlen=max(1, size))
        self._lock = threading.Lock()

    def add(self, item: RecentPrediction) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items.appendleft(item)

    def items(self) -> list[RecentPrediction]:
        with self._lock:
            return list(self._items)


def draw_boxes(
    image: Image.Image, detections: list[dict[str, Any]], size: tuple[int, int] | None = None
) -> Image.Image:
    """An RGB copy of ``image`` with the detections drawn: class, score and box (xyxy
    pixels of an image of ``size``, default ``image``'s own, scaled to ``image``)."""
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    width, height = size or out.size
    sx, sy = out.width / max(1, width), out.height / max(1, height)
    line = max(2, round(max(out.size) / 250))
    draw = ImageDraw.Draw(out)
    for d in detections:
        x1, y1, x2, y2 = d["box"]
        color = COLORS[int(d.get("class_id", 0)) % len(COLORS)]
        draw.rectangle([x1 * sx, y1 * sy, x2 * sx, y2 * sy], outline=color, width=line)
        draw.text((x1 * sx + 2, max(0.0, y1 * sy - 11)), f"{d['class_name']} {d['score']:.2f}", fill=color)
    return out


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def drawn(item: RecentPrediction) -> bytes:
    """The thumbnail as JPEG with the boxes drawn (scaled from the original image)."""
    return jpeg(draw_boxes(item.thumb, item.detections, item.size))


STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em} .ok{color:#17803d} .bad{color:#b42318}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px}
figcaption{font-size:.8em;max-width:256px;word-break:break-all} img{display:block}
form{background:#fff;border:1px solid #ddd;padding:.8em;display:inline-block}
</style>"""

SCRIPT = """<script>
async function tryImage(ev) {
  ev.preventDefault();
  const file = document.getElementById('image').files[0];
  if (!file) return;
  const headers = {'Content-Type': 'application/octet-stream', 'X-Image-Name': file.name};
  const token = document.getElementById('token').value;
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const answer = await fetch('/v1/predict', {method: 'POST', body: file, headers: headers});
  const text = await answer.text();
  document.getElementById('answer').textContent = answer.status + ' ' + text;
  if (answer.ok) {
    const q = token ? '?token=' + encodeURIComponent(token) : '';
    setTimeout(() => { window.location.href = '/' + q; }, 300);
  }
}
</script>"""


def _cell(value: Any) -> str:
    return html.escape(str(value))


def render(
    health: dict[str, Any], model: dict[str, Any] | None, recent: list[RecentPrediction], token: str
) -> str:
    """The page: ``health`` as ``/healthz`` answers it, ``model`` as ``/v1/model`` does
    (None: no model yet), the recent predictions, newest first."""
    state = str(health.get("status", "?"))
    ok = state in ("ok", "serving")
    title = f"{model['model']} version {model['version']}" if model else "no model loaded yet"
    rows = "".join(
        f"<tr><th>{_cell(k)}</th><td>{_cell(v)}</td></tr>"
        for k, v in sorted(health.items())
        if not isinstance(v, dict | list)
    )
    nested = "".join(
        f"<tr><th>{_cell(k)}</th><td><code>{_cell(v)}</code></td></tr>"
        for k, v in sorted(health.items())
        if isinstance(v, dict | list)
    )
    figures = []
    for item in recent:
        src = "data:image/jpeg;base64," + base64.b64encode(drawn(item)).decode()
        top = sorted(item.detections, key=lambda d: -d["score"])
        found = ", ".join(f"{d['class_name']} {d['score']:.2f}" for d in top[:4]) or "no detection"
        if len(top) > 4:
            found += f" and {len(top) - 4} more"
        feedback = f"; sent back: {item.feedback}" if item.feedback else ""
        figures.append(
            f"<figure><img src='{src}' alt='{_cell(item.source)}' width='{item.thumb.width}' "
            f"height='{item.thumb.height}'><figcaption><b>{_cell(item.source)}</b> "
            f"<code>{_cell(item.sha256[:12])}</code><br>{_cell(item.time)}, {item.latency_ms:.0f} ms: "
            f"{_cell(found)}{_cell(feedback)}</figcaption></figure>"
        )
    token_field = html.escape(token, quote=True)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>visionloop edge: "
        + _cell(title)
        + "</title>"
        + STYLE
        + SCRIPT
        + "</head><body>"
        + f"<h1>{_cell(title)}</h1>"
        + f"<p class='{'ok' if ok else 'bad'}'>status: {_cell(state)}</p>"
        + "<h2>Try an image</h2><form onsubmit='tryImage(event)'>"
        + "<input type='file' id='image' accept='image/*'> "
        + f"<input type='hidden' id='token' value='{token_field}'>"
        + "<button type='submit'>Predict</button><pre id='answer'></pre></form>"
        + f"<h2>Last {len(recent)} predictions</h2>"
        + (f"<div class='grid'>{''.join(figures)}</div>" if figures else "<p>None yet.</p>")
        + f"<h2>Health and counters</h2><table>{rows}{nested}</table>"
        + f"<p><small>page made {time.strftime('%Y-%m-%d %H:%M:%S')}; "
        + "JSON: <code>/healthz</code>, <code>/v1/model</code>, <code>POST /v1/predict</code></small></p>"
        + "</body></html>"
    )
