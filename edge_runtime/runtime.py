"""The edge runtime put together: the update agent(s), prediction, the feedback spool
and uploader, the prediction log and shadow mode. The HTTP server (``server.py``) and
the folder watcher (``watch.py``) both call ``EdgeRuntime.predict``.

State folder layout (``--state-dir``)::

    <model>/<stage>/...     the agents' verified versions and state (see agent.py)
    spool/                  feedback waiting for upload (see spool.py)
    predictions.jsonl       the prediction log (see predlog.py)
    shadow.jsonl            where staging disagreed with production (shadow mode)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import UnidentifiedImageError

from edge_runtime import decode
from edge_runtime.agent import Backoff, StageAgent
from edge_runtime.channel import ChannelClient
from edge_runtime.detector import Detection, ImageTooLarge
from edge_runtime.imagestats import thumbnail
from edge_runtime.model import LoadedModel, Thresholds
from edge_runtime.page import Recent, RecentPrediction
from edge_runtime.predlog import PredictionLog
from edge_runtime.serving import Served, label_answer
from edge_runtime.shadow import Shadow
from edge_runtime.spool import FeedbackSpool, Uploader
from edge_runtime.storage import Store

log = logging.getLogger(__name__)


class NoModelError(RuntimeError):
    """No verified model is loaded yet (first start, channel not answering)."""


class BadImageError(ValueError):
    """The bytes are not an image Pillow can decode."""


class ImageTooLargeError(BadImageError):
    """The image is over the pixel cap or would decode to more than one image may take."""


@dataclass
class RuntimeConfig:
    model: str
    stage: str = "production"
    state_dir: Path = Path("edge-state")
    variant: str = "float"
    keep: int = 3
    poll_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    threads: int | None = None
    device_id: str = socket.gethostname()
    spool_max_bytes: int = 512 * 2**20
    upload_idle_s: float = 5.0
    predlog_max_bytes: int = 64 * 2**20
    shadow: bool = False
    max_inflight: int | None = None  # None: cores // threads (1 when threads is None)
    child_min_conf: float | None = None  # bundles: overrides the manifest's fallback threshold
    max_image_bytes: int = decode.DEFAULT_MAX_IMAGE_BYTES  # one image's decoding working set
    image_memory_bytes: int = decode.DEFAULT_MEMORY_BUDGET  # all images in flight together
    empty_sample_rate: float = 0.05  # share of images with no detection sent back (by image hash)
    recent: int = 24  # predictions kept, drawn on thumbnails, for the device's page (GET /)


def sampled(sha256: str, rate: float) -> bool:
    """Whether the image of ``sha256`` is in the ``rate`` share of images sampled: decided
    by its hash, so the same image always gets the same answer and a share ``rate`` of
    distinct images is taken."""
    return rate > 0 and int(sha256[:12], 16) / float(16**12) < rate


def inflight_limit(config: RuntimeConfig) -> int:
    """How many images are decoded and run at once; more requests wait their turn.

    onnxruntime already spreads one inference over ``threads`` cores (all of them by
    default); running more at once than the cores allow only adds latency to each and
    an activation buffer per concurrent run to the resident memory."""
    if config.max_inflight is not None:
        if config.max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, got {config.max_inflight}")
        return config.max_inflight
    if config.threads is None:
        return 1
    return max(1, usable_cores() // config.threads)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a
    container's cpuset), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


NO_DETECTION = "no detection above conf"


def feedback_reason(detections: list[Detection], thresholds: Thresholds) -> str | None:
    """Why an image may go back for labelling: nothing above ``conf`` (``NO_DETECTION``:
    a defect-free part, or a missed defect; only a sample of these is sent), or a
    detection scoring inside the uncertainty band ``[uncertain_low, uncertain_high)``;
    else None."""
    if not any(d.score > thresholds.conf for d in detections):
        return NO_DETECTION
    for d in detections:
        if thresholds.uncertain_low <= d.score < thresholds.uncertain_high:
            return f"uncertain score {d.score:.3f}"
    return None


class EdgeRuntime:
    def __init__(self, config: RuntimeConfig, client: ChannelClient, feedback_store: Store | None) -> None:
        self.config = config
        self.client = client
        self.state_dir = Path(config.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)

        def agent(stage: str) -> StageAgent:
            return StageAgent(
                client,
                config.model,
                stage,
                self.state_dir,
                variant=config.variant,
                keep=config.keep,
                poll_s=config.poll_s,
                backoff=Backoff(config.backoff_base_s, config.backoff_cap_s),
                threads=config.threads,
            )

        self.agent = agent(config.stage)
        self.shadow_agent = agent("staging") if config.shadow and config.stage != "staging" else None
        self.shadow = (
            Shadow(
                self._staging_detector,
                self.state_dir / "shadow.jsonl",
                decode=self.decoded,
            )
            if self.shadow_agent
            else None
        )
        self.memory = decode.MemoryBudget(max(config.image_memory_bytes, config.max_image_bytes))
        self.spool = FeedbackSpool(self.state_dir / "spool", config.spool_max_bytes)
        self.uploader = (
            Uploader(self.spool, feedback_store, idle_s=config.upload_idle_s) if feedback_store else None
        )
        self.predlog = PredictionLog(self.state_dir / "predictions.jsonl", config.predlog_max_bytes)
        self.inflight = inflight_limit(config)
        self._slots = threading.BoundedSemaphore(self.inflight)
        self._count_lock = threading.Lock()
        self.started_at = time.time()
        self.predictions = 0
        self.errors = 0
        self.empty_sampled = 0  # no detection, in the sample: sent back
        self.empty_skipped = 0  # no detection, not in the sample: not sent back
        self.uncertain = 0  # a score in the uncertainty band: sent back
        self.recent = Recent(config.recent)

    def _staging_detector(self) -> LoadedModel | None:
        """Shadow mode compares detections: the staging slot's model when it is a detector."""
        staging = self.shadow_agent.current if self.shadow_agent else None
        return staging if isinstance(staging, LoadedModel) else None

    def start(self, background: bool = True) -> None:
        """Restore the last good model from disk, then start polling and uploading."""
        for agent in (self.agent, self.shadow_agent):
            if agent is not None:
                agent.restore()
                if background:
                    agent.start()
        if background:
            self.predlog.start()
            if self.uploader:
                self.uploader.start()
            if self.shadow:
                self.shadow.start()

    def stop(self) -> None:
        for agent in (self.agent, self.shadow_agent):
            if agent is not None:
                agent.stop()
        if self.uploader:
            self.uploader.stop()
        if self.shadow:
            self.shadow.stop()
        self.predlog.stop()

    @property
    def current(self) -> Served | None:
        return self.agent.current

    def predict(self, data: bytes, source: str = "http") -> dict[str, Any]:
        """Detections for encoded image bytes, as a JSON-able dict; boxes xyxy in pixels of
        the (EXIF-oriented) image. Raises NoModelError or BadImageError."""
        loaded = self.agent.current  # one reference for the whole request: a swap cannot split it
        if loaded is None:
            raise NoModelError(
                f"no model loaded yet: {self.agent.status.last_error or 'waiting for the channel'}"
            )
        if not isinstance(loaded, LoadedModel):
            return self._predict_labels(loaded, data, source)
        with self._slots:
            started = time.perf_counter()
            with self.decoded(data) as image:
                detections = image.to_sent(loaded.predict(image.image))
                latency_ms = (time.perf_counter() - started) * 1000
                thumb = thumbnail(image.image)
        sha = hashlib.sha256(data).hexdigest()
        reason = self._feedback(feedback_reason(detections, loaded.thresholds), sha)
        spooled = None
        if reason is not None:
            spooled = self.spool.add(
                data,
                {
                    "model": loaded.name,
                    "version": loaded.version_id,
                    "variant": loaded.variant,
                    "reason": reason,
                    "scores": [round(d.score, 4) for d in detections],
                    "detections": [d.to_dict() for d in detections],
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "device_id": self.config.device_id,
                    "source": source,
                    "device_feedback": {  # the labeling round reports what was not sent
                        "uncertain": self.uncertain,
                        "empty_sampled": self.empty_sampled,
                        "empty_skipped": self.empty_skipped,
                    },
                },
                image.format,
                sha256=sha,
            )
            if spooled == "spooled" and self.uploader:
                self.uploader.wake()
        self.predlog.submit(
            thumb,
            detections,
            latency_ms,
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "model": loaded.name,
                "version": loaded.version_id,
                "variant": loaded.variant,
                "feedback": reason,
                "source": source,
                "sha256": sha,
                "device_id": self.config.device_id,
            },
            size=image.size,
        )
        self.recent.add(
            RecentPrediction(
                time=time.strftime("%Y-%m-%d %H:%M:%S"),
                source=source,
                sha256=sha,
                size=image.size,
                thumb=thumb,
                detections=[d.to_dict() for d in detections],
                feedback=reason,
                latency_ms=latency_ms,
            )
        )
        if self.shadow is not None:
            self.shadow.submit(None, data, loaded.version_id, detections)
        return {
            "model": loaded.name,
            "version": loaded.version_id,
            "variant": loaded.variant,
            "latency_ms": round(latency_ms, 3),
            "image_size": list(image.size),
            "detections": [d.to_dict() for d in detections],
            "feedback": {"reason": reason, "spool": spooled} if reason else None,
        }

    def _feedback(self, reason: str | None, sha256: str) -> str | None:
        """The reason an image is sent back, after sampling the images with no detection
        (``empty_sample_rate``: on a line of mostly good parts, sending all of them would
        flood the labeling queue); counted either way."""
        with self._count_lock:
            self.predictions += 1
            if reason == NO_DETECTION:
                if not sampled(sha256, self.config.empty_sample_rate):
                    self.empty_skipped += 1
                    return None
                self.empty_sampled += 1
                return f"{NO_DETECTION} (sampled at {self.config.empty_sample_rate:g})"
            if reason is not None:
                self.uncertain += 1
            return reason

    @contextlib.contextmanager
    def decoded(self, data: bytes) -> Iterator[decode.Decoded]:
        """``data`` decoded inside this runtime's memory budget (``edge_runtime.decode``);
        the decoded image is released when the block ends."""
        with contextlib.ExitStack() as stack:
            try:
                image = stack.enter_context(decode.decode(data, self.memory, self.config.max_image_bytes))
            except ImageTooLarge as exc:
                raise ImageTooLargeError(f"{exc} ({len(data)} bytes)") from exc
            except Exception as exc:  # Pillow's plugins raise many kinds on hostile bytes
                kind = "" if isinstance(exc, UnidentifiedImageError | OSError) else f"{type(exc).__name__}: "
                raise BadImageError(f"not a decodable image ({len(data)} bytes): {kind}{exc}") from exc
            yield image

    def _predict_labels(self, loaded: Served, data: bytes, source: str) -> dict[str, Any]:
        """A classifier's classes or a bundle's routed path (``edge_runtime.serving``);
        uncertain answers and a bundle's fallbacks to the parent go to the spool."""
        assert not isinstance(loaded, LoadedModel)
        with self._slots:
            started = time.perf_counter()
            with self.decoded(data) as image:
                answer, reason, prob = label_answer(loaded, image.image, self.config.child_min_conf)
                latency_ms = (time.perf_counter() - started) * 1000
                thumb = thumbnail(image.image)
        with self._count_lock:
            self.predictions += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        fields = {"model": loaded.name, "version": loaded.version_id, "variant": loaded.variant}
        spooled = None
        if reason is not None:
            meta = {
                **fields,
                "reason": reason,
                "time": now,
                "device_id": self.config.device_id,
                "source": source,
            }
            spooled = self.spool.add(data, {**meta, **answer}, image.format)
            if spooled == "spooled" and self.uploader:
                self.uploader.wake()
        log_fields = {
            **fields,
            "time": now,
            "feedback": reason,
            "source": source,
            "device_id": self.config.device_id,
        }
        self.predlog.submit(
            thumb, [], latency_ms, {**log_fields, "top_prob": round(prob, 4)}, size=image.size
        )
        return {
            **fields,
            "latency_ms": round(latency_ms, 3),
            "image_size": list(image.size),
            **answer,
            "feedback": {"reason": reason, "spool": spooled} if reason else None,
        }

    def count_error(self) -> None:
        with self._count_lock:
            self.errors += 1

    def channel_models(self) -> list[str]:
        """The model names the channel holds (``models/<name>/...``), for telling a
        mistyped ``--model`` from a channel nothing was published to yet; empty when the
        channel cannot be listed."""
        try:
            keys = self.client.store.list("models/")
        except Exception:  # the channel is down or refuses listing: nothing to tell
            return []
        return sorted({k.split("/")[1] for k in keys if k.count("/") >= 2})

    def health(self) -> dict[str, Any]:
        loaded = self.agent.current
        doc: dict[str, Any] = {
            "status": "ok" if loaded is not None else "no-model",
            "channel": self.agent.channel_state(),
            "model": self.config.model,
            "stage": self.config.stage,
            "version": loaded.version_id if loaded else None,
            "variant": loaded.variant if loaded else None,
            "uptime_s": round(time.time() - self.started_at, 1),
            "predictions": self.predictions,
            "errors": self.errors,
            "feedback": {
                "uncertain": self.uncertain,
                "empty_sampled": self.empty_sampled,
                "empty_skipped": self.empty_skipped,
                "empty_sample_rate": self.config.empty_sample_rate,
            },
            "max_inflight": self.inflight,
            "image_memory": {
                "budget_bytes": self.memory.total,
                "in_use_bytes": self.memory.used,
                "waited": self.memory.waited,
                "max_image_bytes": self.config.max_image_bytes,
            },
            "agent": self.agent.describe(),
            "spool": self.spool.describe(),
            "uploader_error": self.uploader.last_error if self.uploader else None,
            "predictions_log": {
                "path": str(self.predlog.path),
                "lines": self.predlog.lines,
                "dropped": self.predlog.dropped,
                "errors": self.predlog.errors,
            },
        }
        if self.shadow_agent is not None and self.shadow is not None:
            doc["shadow"] = {"agent": self.shadow_agent.describe(), **self.shadow.counters}
        return doc
