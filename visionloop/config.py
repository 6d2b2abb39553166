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
    train: float = Field(0.7, ge=0, le=1)
    val: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, ge=0, le=1)
    seed: int = 0


class DataSettings(StrictModel):
    source: str
    format: Literal["auto", "yolo", "coco", "label-studio", "ground-truth", "none"] = "auto"
    class_names: list[str] | None = None
    group_pattern: str | None = None
    s3_endpoint: str | None = None
    qa: QASettings = Field(default_factory=QASettings)
    split: SplitSettings = Field(default_factory=SplitSettings)


class VisionloopConfig(StrictModel):
    name: str
    data: DataSettings


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
    return config


def cache_dir() -> Path:
    """Where visionloop keeps caches that speed up re-runs (``$VISIONLOOP_CACHE_DIR``,
    default ``~/.cache/visionloop``). Deleting it is always safe."""
    return Path(os.environ.get("VISIONLOOP_CACHE_DIR", Path.home() / ".cache" / "visionloop"))
