"""The status page of the loop (``python run.py ui``): a FastAPI app that reads ZenML,
the MLflow mirror and the model channel for one configured model, and writes nothing.

Routes (all server-rendered HTML, images served by the app):

* ``/``: every version with its stage, test metrics and stage history, and what the
  channel's pointers name;
* ``/versions/{v}``: the model card; ``/versions/{v}/report``: the evaluation report's
  HTML as its materializer wrote it; ``/versions/{v}/plots/{name}.png``;
* ``/versions/{v}/gallery``: the test split's false positives and negatives at the
  serving threshold (computed once per version, kept in memory);
* ``/try``: upload an image, see what the production version detects;
* ``/labeling``, ``/monitoring``, ``/devices``.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import UnidentifiedImageError

from edge_runtime.detector import ImageTooLarge, OnnxDetector
from ui import loop_pages, pages, readers
from ui.gallery import Gallery, build_gallery, draw_boxes
from ui.html import esc, page
from visionloop.config import VisionloopConfig

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
MATCH_IOU = 0.5
BOX_COLOUR = (225, 50, 40)


class Memo:
    """Per-version results that never change (a version's artifacts are immutable),
    each computed once, under its own lock (other pages are not held up meanwhile)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._values: dict[tuple[str, str], Any] = {}

    def get(self, kind: str, version: str, make: Any) -> Any:
        key = (kind, version)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = make()
            return self._values[key]


def create_app(config: VisionloopConfig) -> FastAPI:
    """The app for the model ``config`` configures (``config.registered_model_name``)."""
    model = config.registered_model_name
    thresholds = config.deploy.thresholds
    memo = Memo()
    app = FastAPI(title="visionloop", docs_url=None, redoc_url=None, openapi_url=None)

    def html(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status)

    @app.exception_handler(readers.NotFound)
    def not_found(request: Request, exc: readers.NotFound) -> HTMLResponse:
        return html(page("Not found", f'<h1>Not found</h1><div class="error">{esc(exc)}</div>', model), 404)

    def version_of(version: str) -> Any:
        return memo.get("version", version, lambda: readers.model_version(model, version))

    def report_of(version: str) -> Any:
        return memo.get("report", version, lambda: readers.evaluation_report(version_of(version)))

    def detector_of(version: str) -> OnnxDetector:
        return memo.get(
            "detector",
            version,
            lambda: readers.detector(version_of(version), thresholds.conf, thresholds.iou),
        )

    def gallery_of(version: str) -> Gallery:
        def make() -> Gallery:
            det = detector_of(version)
            _, samples = readers.test_samples(version_of(version))
            return build_gallery(samples, readers.predictor(det), det.class_name, MATCH_IOU)

        return memo.get("gallery", version, make)

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"ok": True, "model": model})

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return html(pages.models_page(readers.overview(config)))

    @app.get("/versions/{version}", response_class=HTMLResponse)
    def card(version: str) -> HTMLResponse:
        mv = readers.model_version(model, version)  # fresh: the stage may have changed
        stage = str(getattr(mv.stage, "value", mv.stage) or "none")
        return html(pages.card_page(model, mv, report_of(version), stage, readers.history(mv)))

    @app.get("/versions/{version}/report", response_class=HTMLResponse)
    def report(version: str) -> HTMLResponse:
        return html(memo.get("report_html", version, lambda: readers.report_html(version_of(version))))

    @app.get("/versions/{version}/plots/{name}.png")
    def plot(version: str, name: str) -> Response:
        data = report_of(version).plots.get(name)
        if data is None:
            raise readers.NotFound(f"{model} version {version}'s evaluation report has no {name!r} plot")
        return Response(data, media_type="image/png")

    @app.get("/versions/{version}/gallery", response_class=HTMLResponse)
    def gallery(version: str) -> HTMLResponse:
        return html(pages.gallery_page(model, version, gallery_of(version), thresholds.conf, MATCH_IOU))

    @app.get("/versions/{version}/gallery/{index}.jpg")
    def gallery_image(version: str, index: int) -> Response:
        items = gallery_of(version).items
        if not 0 <= index < len(items):
            raise readers.NotFound(
                f"the gallery of version {version} has {len(items)} images, not {index + 1}"
            )
        return Response(items[index].jpeg, media_type="image/jpeg")

    def production() -> str | None:
        mv = readers.production_version(model)
        return str(mv.name) if mv is not None else None

    @app.get("/try", response_class=HTMLResponse)
    def try_form() -> HTMLResponse:
        return html(pages.try_page(model, production(), thresholds.conf))

    @app.post("/try", response_class=HTMLResponse)
    def try_upload(image: UploadFile = File(...)) -> HTMLResponse:  # noqa: B008 - FastAPI's idiom
        version = production()
        name = image.filename or "upload"
        data = image.file.read(MAX_UPLOAD_BYTES + 1)
        if version is None:
            return html(pages.try_page(model, None, thresholds.conf))
        if len(data) > MAX_UPLOAD_BYTES:
            error = f"{name} is over the {MAX_UPLOAD_BYTES // 2**20} MB allowed"
            return html(pages.try_page(model, version, thresholds.conf, error=error), 413)
        try:
            detections = detector_of(version).predict(data)
            boxes = [(d.box, f"{d.class_name} {d.score:.2f}", BOX_COLOUR) for d in detections]
            jpeg = draw_boxes(data, boxes, max_side=1024, min_side=512)
        except (UnidentifiedImageError, ImageTooLarge, OSError) as exc:
            error = f"{name} could not be read as an image: {exc}"
            return html(pages.try_page(model, version, thresholds.conf, error=error), 400)
        return html(pages.try_page(model, version, thresholds.conf, detections, jpeg, name))

    @app.get("/labeling", response_class=HTMLResponse)
    def labeling() -> HTMLResponse:
        return html(loop_pages.labeling_page(model, readers.labeling(model)))

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring() -> HTMLResponse:
        return html(loop_pages.monitoring_page(model, readers.monitoring(model)))

    @app.get("/devices", response_class=HTMLResponse)
    def devices() -> HTMLResponse:
        channel = readers.channel_of(config, model)
        return html(
            loop_pages.devices_page(
                model, channel, readers.devices(channel, model, config.deploy.s3_endpoint)
            )
        )

    return app
