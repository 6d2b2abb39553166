"""``run.py init``: settings derived from a data profile, written as a commented
use-case YAML that ``python run.py --config FILE`` runs as it is.

Every derived value carries the reason it was chosen; the YAML shows it as a comment.
The rules (sizes in pixels, times measured on 2 CPU cores, BENCHMARKS.md):
- ``train.imgsz``: the median longer image side rounded up to a multiple of 32, never
  above the native size, capped at 640, or at 1280 when over a quarter of the boxes
  would be small at 640;
- ``tune.space``: lr0 around the training lr0, imgsz the training imgsz;
- ``train.epochs``: about ``TARGET_STEPS`` optimizer steps, capped on a CPU so that the
  training fits ``CPU_BUDGET_S``; ``train.batch`` by device and resolution;
- the split mode (``source`` when the source declares splits) and a group pattern when
  file names look like crops or frames of one capture.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from visionloop.data.profile import SMALL_SIDE_PX, DataProfile

TARGET_STEPS = 1500  # optimizer steps a fine-tune from the offline checkpoint gets
CPU_SECONDS_PER_IMAGE_480 = (
    0.19  # one training image at 480 px on 2 cores (metal-tags: 30 s/epoch, 157 images)
)
CPU_EPOCH_OVERHEAD_S = 2.0  # validation and data loading, per epoch
CPU_BUDGET_S = 30 * 60  # the full training's default budget on a CPU
MAX_IMGSZ = 640
MAX_IMGSZ_SMALL_OBJECTS = 1280


@dataclass
class Setting:
    """One derived value and why."""

    value: Any
    why: str


@dataclass
class DerivedConfig:
    name: str
    source: str
    format: str
    class_names: list[str]
    device: str
    settings: dict[str, Setting] = field(default_factory=dict)  # dotted key -> setting

    def value(self, key: str) -> Any:
        return self.settings[key].value


def slug(text: str) -> str:
    """A config and model name from a folder name: ``NEU-DET v2`` -> ``neu-det-v2``."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out or "dataset"


def round32(value: float) -> int:
    return max(32, int(math.ceil(value / 32.0)) * 32)


def cpu_epoch_seconds(images: int, imgsz: int) -> float:
    """About how long one epoch over ``images`` takes at ``imgsz`` on 2 CPU cores."""
    return CPU_EPOCH_OVERHEAD_S + images * CPU_SECONDS_PER_IMAGE_480 * (imgsz / 480) ** 2


def derive(
    profile: DataProfile, name: str, device: str = "cpu", budget_s: float = CPU_BUDGET_S
) -> DerivedConfig:
    """The settings for ``profile`` on ``device`` (``cpu``, ``cuda:0``, ``mps``); on a CPU
    the full training is fitted to ``budget_s`` seconds."""
    if not profile.labeled:
        raise ValueError(
            f"{profile.source}: no labelled image ({profile.images} images, "
            + ("no label files found" if profile.format == "none" else f"{profile.format} labels")
            + "); "
            "label some first (python run.py label) or point init at the labelled copy"
        )
    derived = DerivedConfig(
        name=name,
        source=profile.source,
        format=profile.format,
        class_names=profile.class_names,
        device=device,
    )
    s = derived.settings
    native = profile.long_side.median or 640
    small = profile.small_share
    cap = MAX_IMGSZ_SMALL_OBJECTS if small > 0.25 else MAX_IMGSZ
    imgsz = min(round32(native), cap)
    why = f"median longer image side {native:.0f} px, rounded up to a multiple of 32"
    if round32(native) > cap:
        why = f"median longer image side {native:.0f} px, capped at {cap}" + (
            f" ({small:.0%} of boxes would be under {SMALL_SIDE_PX} px at 640)" if cap > MAX_IMGSZ else ""
        )
    s["train.imgsz"] = Setting(imgsz, why)
    gpu = device != "cpu"
    batch = (32 if imgsz <= 640 else 16) if gpu else (16 if imgsz <= 320 else 8)
    s["train.batch"] = Setting(batch, f"{'GPU' if gpu else 'CPU'} at {imgsz} px")
    declared = profile.declared_splits
    n_train = declared.get("train", 0) if declared else round(0.7 * profile.labeled)
    n_train = max(1, n_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    epochs = min(100, max(10, math.ceil(TARGET_STEPS / steps_per_epoch)))
    why = f"about {TARGET_STEPS} steps: {n_train} train images / batch {batch} = {steps_per_epoch} steps an epoch"
    if not gpu:
        epoch_s = cpu_epoch_seconds(n_train, imgsz)
        fit = max(3, int(budget_s // epoch_s))
        if fit < epochs:
            epochs = fit
            why = (
                f"what fits {budget_s / 60:g} min on a 2-core CPU (about {epoch_s:.0f} s an epoch); "
                f"{min(100, math.ceil(TARGET_STEPS / steps_per_epoch))} would give about {TARGET_STEPS} steps"
            )
    s["train.epochs"] = Setting(epochs, why)
    s["train.device"] = Setting(device, "found on this machine" if gpu else "no GPU found on this machine")
    s["tune.space.imgsz"] = Setting([imgsz], "the training imgsz (add sizes to tune the resolution)")
    s["tune.space.lr0"] = Setting([0.001, 0.002, 0.004], "around the training lr0 0.002")
    tune_epochs = max(1, min(5, epochs // 5))
    trial_s = cpu_epoch_seconds(n_train // 2, imgsz) * tune_epochs
    trials = 2 if gpu or 2 * trial_s <= budget_s / 2 else 0
    s["tune.trials"] = Setting(
        trials,
        "two trials on half the train groups"
        if trials
        else f"off: two trials would take about {2 * trial_s / 60:.0f} min on this CPU",
    )
    s["tune.epochs"] = Setting(tune_epochs, "a fifth of the training's epochs, at most 5")
    if declared:
        missing = [x for x in ("train", "val", "test") if x not in declared]
        why = f"the source declares {declared}; they are kept"
        if missing:
            why += f" ({', '.join(missing)} carved out of its train split, group-aware)"
        s["data.split.mode"] = Setting("source", why)
    else:
        s["data.split.mode"] = Setting(
            "auto", "the source declares no split: 70/15/15, group-aware, stratified"
        )
    if profile.group_pattern:
        s["data.group_pattern"] = Setting(
            profile.group_pattern,
            f"file names look like parts of one capture ({profile.groups} groups, "
            f"{profile.grouped_share:.0%} of images in groups of 2+, e.g. {', '.join(profile.group_examples[:2])}): "
            "a group stays in one split",
        )
    return derived


def _nest(settings: dict[str, Setting]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, setting in settings.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = setting
    return out


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _emit(node: dict[str, Any], indent: int, lines: list[str]) -> None:
    for key, value in node.items():
        pad = "  " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            _emit(value, indent + 1, lines)
        elif isinstance(value, Setting):
            lines.append(f"{pad}{key}: {_scalar(value.value)}".ljust(40) + f"  # {value.why}")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")


def render_yaml(derived: DerivedConfig, profile: DataProfile, config_path: Path, shown: str) -> str:
    """The use-case YAML: every derived value with its reason as a comment. A local
    source is written relative to the file's folder when it is beside it or one level
    up (as the bundled configs name ``../data/...``), else as an absolute path."""
    source = derived.source
    if "://" not in source:
        absolute = Path(source).resolve()
        relative = os.path.relpath(absolute, config_path.parent.resolve())
        source = str(absolute) if relative.startswith("../..") else relative
    tree: dict[str, Any] = {
        "name": derived.name,
        "data": {
            "source": source,
            "format": derived.format,
            "class_names": derived.class_names,
        },
    }
    settings = _nest(derived.settings)
    tree["data"].update(settings.pop("data", {}))
    tree.update(settings)
    tree["deploy"] = {
        "gate": {"min_map50": Setting(0.5, "the default floor: raise it once you know your model")}
    }
    lines = [
        f"# {derived.name}: written by `python run.py init` from {derived.source}.",
        f"# {profile.images} images ({profile.labeled} labelled), classes: {', '.join(profile.class_names)}.",
        "# Only what differs from the defaults in visionloop/config.py is stated; each value says why.",
        f"#   python run.py --config {shown}",
    ]
    _emit(tree, 0, lines)
    return "\n".join(lines) + "\n"
