"""Use-case configuration, read from YAML (``configs/*.yaml``).

Defaults live here; a use-case file states only what differs. Relative paths in a
file are resolved against the folder of that file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_runtime.imagestats import FEATURES as IMAGE_FEATURES

REPO_ROOT = Path(__file__).resolve().parent.parent


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QASettings(StrictModel):
    min_side: int = Field(32, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    max_file_bytes: int = Field(64 * 2**20, ge=1)
    mode_policy: Literal["convert", "reject"] = "convert"
    exif_policy: Literal["apply", "reject"] = "apply"
    box_tolerance: float = Field(0.01, ge=0, le=0.5)
    min_box_px: float = Field(1.0, ge=0)


class SplitSettings(StrictModel):
    """``mode``: ``source`` keeps the splits the source declares (a YOLO ``data.yaml``,
    ``train``/``val``/``test`` folders, one COCO file per split, a ``split`` column) and
    carves the ones it lacks out of its train split; ``auto`` splits here, group-aware,
    at ``train``/``val``/``test``. Unset: ``source`` when the source declares any split.
    The fractions are also the shares carved splits get."""

    mode: Literal["source", "auto"] | None = None
    train: float = Field(0.7, ge=0, le=1)
    val: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, ge=0, le=1)
    seed: int = 0


class DataSettings(StrictModel):
    source: str
    format: Literal["auto", "yolo", "coco", "label-studio", "ground-truth", "none"] = "auto"
    class_names: list[str] | None = None
    group_pattern: str | None = None
    group_field: str | None = None  # a CSV column, COCO image key or Label Studio data key
    s3_endpoint: str | None = None
    qa: QASettings = Field(default_factory=QASettings)
    split: SplitSettings = Field(default_factory=SplitSettings)


class SearchSpace(StrictModel):
    """Values tried by tuning; each trial takes one value of each list. A list left out
    is built around the training settings (``visionloop.training.tuning.search_space``):
    ``imgsz`` is ``train.imgsz`` alone, ``lr0`` spans half to twice ``train.lr0``, and
    ``augment`` is half and all of ``train.augment``. A tuned value that replaces one
    written in ``train`` is logged and recorded in the ``tuning_result`` artifact."""

    lr0: list[float] | None = Field(None, min_length=1)
    augment: list[float] | None = Field(None, min_length=1)
    imgsz: list[int] | None = Field(None, min_length=1)


class TuneSettings(StrictModel):
    trials: int = Field(2, ge=0, le=64)
    epochs: int = Field(4, ge=1)
    subset: float = Field(0.5, gt=0, le=1)
    seed: int = 0
    space: SearchSpace = Field(default_factory=SearchSpace)


class TrainSettings(StrictModel):
    """Full training. ``weights``: ``abd`` (the offline default checkpoint from the
    ABD-model package), a local ``.pt`` path, or a model YAML such as ``yolov8n.yaml``
    (from scratch). ``device``: ``cpu``, ``cuda:0``, ``mps``..."""

    weights: str = "abd"
    epochs: int = Field(25, ge=1)
    imgsz: int = Field(480, ge=32)
    batch: int = Field(8, ge=1)
    lr0: float = Field(0.002, gt=0)
    augment: float = Field(1.0, ge=0)
    optimizer: str = "AdamW"
    flipud: float = Field(0.5, ge=0, le=1)
    patience: int = Field(100, ge=0)
    device: str = "cpu"
    workers: int = Field(0, ge=0)
    seed: int = 0


class ExportSettings(StrictModel):
    opset: int = Field(17, ge=11)
    int8: bool = True
    int8_max_map50_drop: float = Field(0.01, ge=0)
    calibration_images: int = Field(48, ge=1)
    parity_max_map50_diff: float = Field(0.02, ge=0)
    parity_min_match_share: float = Field(0.9, ge=0, le=1)


class GateSettings(StrictModel):
    """Absolute thresholds a candidate must clear, and how far it may fall behind the
    production model (both measured on the same current test split)."""

    min_map50: float = Field(0.5, ge=0, le=1)
    min_map50_95: float = Field(0.0, ge=0, le=1)
    min_class_recall: float = Field(0.0, ge=0, le=1)  # per-class recall floor
    max_regression: float = Field(0.0, ge=0, le=1)  # allowed drop of mAP50 and mAP50-95


class StagingSettings(StrictModel):
    """Checks run on the staged version as the edge runtime loads it from the channel."""

    latency_images: int = Field(20, ge=1)
    max_latency_p95_ms: float = Field(1000.0, gt=0)
    max_model_mb: float = Field(50.0, gt=0)
    threads: int | None = Field(None, ge=1)  # onnxruntime intra-op threads (None: all cores)


class ServingThresholds(StrictModel):
    """What the manifest tells devices: the confidence a detection needs, NMS IoU, and
    the band of scores that counts as uncertain (sent back for labelling)."""

    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    uncertain_low: float = Field(0.25, ge=0, le=1)
    uncertain_high: float = Field(0.5, ge=0, le=1)


class DeploySettings(StrictModel):
    """``channel``: a folder or ``s3://`` prefix (default: the active stack's channel,
    or ``$VISIONLOOP_CHANNEL``). ``require_approval``: stop at staging until
    ``python run.py promote``. ``signing_secret``: the ZenML secret holding the
    channel's private key when ``$VISIONLOOP_SIGNING_KEY`` is not set."""

    channel: str | None = None
    s3_endpoint: str | None = None
    require_approval: bool = False
    gate: GateSettings = Field(default_factory=GateSettings)
    staging: StagingSettings = Field(default_factory=StagingSettings)
    thresholds: ServingThresholds = Field(default_factory=ServingThresholds)
    self_test_images: int = Field(4, ge=1, le=32)
    signing_secret: str = "visionloop-signing-key"
    # hours a published pointer stays fresh; devices report `channel: stale` after it
    # (refreshed by every deployment and by `python run.py channel refresh`)
    pointer_ttl_hours: float = Field(168.0, gt=0, le=24 * 366)


class MonitorSettings(StrictModel):
    """The monitoring pipeline. ``logs``: the folder or ``s3://`` prefix the edge
    runtimes write their prediction logs to (default: ``edge-logs`` beside the local
    channel). ``features`` are image statistics; ``prediction_features`` what the
    model answered (compared with its answers on the held-out splits of its data set
    version). A window with at least ``min_drifted_features`` features whose Evidently
    stat test (``method``; ``threshold``: p-value below it for tests, distance at or
    above it for distances) says drift, or whose share of images with no detection above
    ``low_confidence`` exceeds ``max_low_confidence_share``, is drift; ``on_drift`` says
    what it triggers. ``trigger_url``: the HTTP trigger service (``python run.py
    trigger-server``) the run itself asks for the follow-up job (``label`` or ``main``);
    scheduled runs need it, as no command is around them to start the job. Its token comes
    from ``$VISIONLOOP_TRIGGER_TOKEN`` or the ZenML secret ``trigger_token_secret`` (field
    ``token``); ``trigger_config`` names the configuration there (default: this file's
    name)."""

    logs: str | None = None
    window_hours: float = Field(24.0, gt=0)
    features: list[str] = Field(default_factory=lambda: list(IMAGE_FEATURES))
    # compared with the production model's answers on the held-out splits
    prediction_features: list[str] = Field(default_factory=lambda: ["max_score", "boxes", "mean_box_area"])
    # None: ``method`` (Evidently 0.7's mannw gave p = 1 for a clear drop in a check here)
    prediction_method: str | None = None
    method: str = "ks"
    threshold: float = Field(0.001, gt=0)
    min_drifted_features: int = Field(1, ge=1)
    min_images: int = Field(30, ge=2)
    reference_images: int = Field(2000, ge=10)
    low_confidence: float = Field(0.25, ge=0, le=1)
    max_low_confidence_share: float = Field(0.6, ge=0, le=1)
    on_drift: Literal["none", "label", "retrain"] = "label"
    trigger_url: str | None = None
    trigger_token_secret: str = "visionloop-trigger"
    trigger_config: str | None = None


class LabelSettings(StrictModel):
    """The labeling pipeline. ``url``: the Label Studio server; its API key comes from
    ``$LABEL_STUDIO_API_KEY`` or the ZenML secret ``api_key_secret`` (field ``api_key``).
    ``raw_images``: the raw image store (default: the active stack's). ``document_root``:
    the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (for a folder store).
    ``review``: ``reviewer`` (a reviewer accepts or rejects each annotation; with
    ``reviewers`` only their verdicts count) or ``agreement`` (two annotators agree at
    ``agreement_iou``). ``retrain_after``: accepted new labels since the production
    model's data set version that start training and deployment."""

    url: str = "http://localhost:8080"
    api_key_secret: str = "label-studio"
    project: str | None = None  # title; default "visionloop <name>"
    raw_images: str | None = None
    s3_endpoint: str | None = None
    document_root: str = "/"
    review: Literal["reviewer", "agreement"] = "reviewer"
    reviewers: list[str] = Field(default_factory=list)
    agreement_iou: float = Field(0.5, gt=0, le=1)
    max_tasks: int = Field(1000, ge=1)  # new tasks per round
    batch_size: int = Field(100, ge=1)
    scan_conf: float = Field(0.05, ge=0, le=1)  # lowest score looked at for uncertainty
    retrain_after: int = Field(50, ge=1)
    timeout_s: float = Field(30.0, gt=0)


class VisionloopConfig(StrictModel):
    name: str
    model_name: str | None = None
    data: DataSettings
    tune: TuneSettings = Field(default_factory=TuneSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    label: LabelSettings = Field(default_factory=LabelSettings)

    @property
    def registered_model_name(self) -> str:
        return self.model_name or f"{self.name}-detector"


class ConfigError(ValueError):
    pass


def load_config(path: str | Path) -> VisionloopConfig:
    """Read and validate a use-case YAML; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (the bundled one is configs/metal_tags.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        config = VisionloopConfig.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    source = config.data.source
    if "://" not in source and not os.path.isabs(source):
        config.data.source = str((path.parent / source).resolve())
    channel = config.deploy.channel
    if channel and "://" not in channel and not os.path.isabs(channel):
        config.deploy.channel = str((path.parent / channel).resolve())
    raw = config.label.raw_images
    if raw and "://" not in raw and not os.path.isabs(raw):
        config.label.raw_images = str((path.parent / raw).resolve())
    weights = config.train.weights
    if weights.endswith(".pt") and not os.path.isabs(weights) and (path.parent / weights).exists():
        config.train.weights = str((path.parent / weights).resolve())
    return config


def cache_dir() -> Path:
    """Where visionloop keeps caches that speed up re-runs (``$VISIONLOOP_CACHE_DIR``,
    default ``~/.cache/visionloop``). Deleting it is always safe."""
    return Path(os.environ.get("VISIONLOOP_CACHE_DIR", Path.home() / ".cache" / "visionloop"))
