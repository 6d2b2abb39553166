"""The declaration of a hierarchy, read from YAML (``configs/cifar10_tree.yaml``).

A parent classifier sorts an image into a group; each group has a child that names
its class: a classifier (``task: classify``, its classes are class folders of
``data.source``) or a detector (``task: detect``, trained on a detection source of its
own, read by the detection data pipeline's importers). Defaults live here; a file
states what differs. Node names: ``parent`` and the group names; model names
``<name>-parent``, ``<name>-<group>``, ``<name>-flat`` (the comparison) and
``<name>-bundle``.

Labels of the leaf data set: a classifier group's images carry their class, a detector
group's images the group's name (whole images: the parent learns the group from them;
their boxes ride along for the end-to-end detection figures).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from visionloop.config import (
    REPO_ROOT,
    DataSettings,
    GateSettings,
    ServingThresholds,
    StagingSettings,
    StrictModel,
    TrainSettings,
)
from visionloop.training.classify import ClassifierParams

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder and a channel file name
PARENT = "parent"
FLAT = "flat"
BUNDLE = "bundle"


class HierarchyData(StrictModel):
    """``source``: a folder of ``<split>/<class>/*`` (``train``, ``val``, ``test``) or
    ``<class>/*``. ``val_fraction`` of the train images (``test_fraction`` of all, when
    the source has no ``test`` folder) are set aside, by a seeded hash of each image's
    bytes: not by label, so correcting a label never moves an image between splits."""

    source: str
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0
    min_side: int = Field(8, ge=1)


class ClassifierSettings(StrictModel):
    """``weights``: ``abd`` (YOLOv8n-cls with the ABD detection backbone), a model YAML
    (from scratch) or a local ``-cls`` ``.pt``; the rest is ``ClassifierParams``."""

    weights: str = "abd"
    epochs: int = Field(30, ge=1)
    imgsz: int = Field(32, ge=16)
    batch: int = Field(64, ge=1)
    lr0: float = Field(0.002, gt=0)
    optimizer: str = "AdamW"
    patience: int = Field(100, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    scale: float = Field(0.5, ge=0, lt=1)
    fliplr: float = Field(0.5, ge=0, le=1)
    erasing: float = Field(0.4, ge=0, le=1)
    auto_augment: str | None = "randaugment"
    seed: int = 0
    device: str = "cpu"
    workers: int = Field(0, ge=0)

    def params(self) -> ClassifierParams:
        return ClassifierParams(**self.model_dump(exclude={"weights"}))

    def merged(self, overrides: dict[str, object]) -> ClassifierSettings:
        return ClassifierSettings(**{**self.model_dump(), **overrides})


class ParentSpec(StrictModel):
    """How the parent's training images are drawn from every group. ``balance``:
    ``group`` (each group gives the same number, ``per_group`` or as many as the
    smallest group has, drawn by a seeded hash of the bytes, whatever their leaf
    label), ``class`` (each leaf class gives the same number, ``per_class`` or the
    smallest class's count) or ``none`` (every image)."""

    balance: Literal["group", "class", "none"] = "group"
    per_group: int | None = Field(None, ge=1)
    per_class: int | None = Field(None, ge=1)
    train: dict[str, object] = Field(default_factory=dict)


class GroupSpec(StrictModel):
    """A group and its child.

    ``task: classify`` (default): a classifier of ``classes`` (at least two), whose
    images are the class folders of the hierarchy's ``data.source``; ``train``
    overrides the hierarchy's classifier settings; the node gate is the hierarchy's.

    ``task: detect``: a detector of ``classes`` trained on ``data`` (the detection
    use cases' ``DataSettings``: a folder in the metal-tags format, YOLO, COCO or Label
    Studio, with QA and a group-aware split); ``train`` overrides the detection
    ``TrainSettings``; ``gate`` is the detection gate (mAP50 / mAP50-95 thresholds, no
    regression); ``thresholds.conf`` the score a box needs to be returned.

    ``min_conf``: below it the child's answer (a classifier's probability, a
    detector's best box score) falls back to the parent's group; default
    ``bundle.child_min_conf``."""

    task: Literal["classify", "detect"] = "classify"
    classes: list[str] = Field(min_length=1)
    train: dict[str, object] = Field(default_factory=dict)
    data: DataSettings | None = None
    gate: GateSettings | None = None
    thresholds: ServingThresholds = Field(default_factory=ServingThresholds)
    min_conf: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _check_task(self) -> GroupSpec:
        if self.task == "classify":
            if len(self.classes) < 2:
                raise ValueError(
                    f"a classifier child needs at least 2 classes, got {self.classes}; "
                    "a group of one class needs no child (or make it `task: detect`)"
                )
            if self.data is not None or self.gate is not None:
                raise ValueError(
                    "`data` and `gate` belong to a detector child (`task: detect`); a classifier "
                    "child's images are class folders of the hierarchy's data.source"
                )
            return self
        if self.data is None:
            raise ValueError(
                "a detector child (`task: detect`) needs `data:` with its detection source, e.g. "
                "{source: ../data/metal-tags, format: ground-truth}"
            )
        if self.data.class_names is not None and self.data.class_names != self.classes:
            raise ValueError(
                f"data.class_names {self.data.class_names} differ from the group's classes {self.classes}: "
                "leave data.class_names out (the group's classes are used, in their order)"
            )
        self.data.class_names = list(self.classes)  # the importers map label ids to these names
        if self.gate is None:
            self.gate = GateSettings()
        return self


class FlatSpec(StrictModel):
    """The comparison: one classifier over every leaf class on the same train images.
    ``epochs: auto`` gives it the hierarchy's budget: as many image-epochs as the parent
    and the children together."""

    enabled: bool = True
    epochs: int | Literal["auto"] = "auto"
    train: dict[str, object] = Field(default_factory=dict)


class NodeGate(StrictModel):
    """A node's own gate, on its own test split: top-1 and per-class recall floors, and
    how far it may fall behind the node's production version on the same split."""

    min_top1: float = Field(0.5, ge=0, le=1)
    min_class_recall: float = Field(0.0, ge=0, le=1)
    max_regression: float = Field(0.0, ge=0, le=1)


class BundleGate(StrictModel):
    """The bundle's gate, end to end on the leaf test split: top-1 (a fallback to the
    group counts as wrong) and hierarchical F on the classifier groups' images, the
    mAP50 of each detector group's boxes through the bundle (an image the parent sends
    elsewhere loses its boxes), and no regression against the production bundle
    measured on the same split."""

    min_top1: float = Field(0.3, ge=0, le=1)
    min_hierarchical_f: float = Field(0.0, ge=0, le=1)
    min_detector_map50: float = Field(0.0, ge=0, le=1)
    max_regression: float = Field(0.0, ge=0, le=1)
    require_node_gates: bool = True


class BundleSpec(StrictModel):
    child_min_conf: float = Field(0.5, ge=0, le=1)
    uncertain_high: float = Field(0.5, ge=0, le=1)  # answers below it are sent back as feedback
    gate: BundleGate = Field(default_factory=BundleGate)


class HierarchyDeploy(StrictModel):
    """Where bundles go: as ``DeploySettings`` of the detection use cases."""

    channel: str | None = None
    s3_endpoint: str | None = None
    require_approval: bool = False
    signing_secret: str = "visionloop-signing-key"
    self_test_images: int = Field(4, ge=1, le=32)
    staging: StagingSettings = Field(default_factory=StagingSettings)


class HierarchySpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    data: HierarchyData
    train: ClassifierSettings = Field(default_factory=ClassifierSettings)
    parent: ParentSpec = Field(default_factory=ParentSpec)
    groups: dict[str, GroupSpec] = Field(min_length=2)
    flat: FlatSpec = Field(default_factory=FlatSpec)
    gate: NodeGate = Field(default_factory=NodeGate)
    bundle: BundleSpec = Field(default_factory=BundleSpec)
    deploy: HierarchyDeploy = Field(default_factory=HierarchyDeploy)

    @model_validator(mode="after")
    def _check(self) -> HierarchySpec:
        seen: dict[str, str] = {}
        for group, spec in self.groups.items():
            for label in (group, *spec.classes):
                if not NAME.match(label):
                    raise ValueError(
                        f"{label!r}: group and class names are letters, digits, '.', '_' and '-'"
                    )
            if group in (PARENT, FLAT, BUNDLE):
                raise ValueError(f"group name {group!r} is reserved; rename the group")
            for c in spec.classes:
                if c in seen:
                    raise ValueError(f"class {c!r} is declared in the groups {seen[c]!r} and {group!r}")
                if c in self.groups:
                    raise ValueError(f"class {c!r} has the name of a group; leaf and group names must differ")
                seen[c] = group
        return self

    # --- names -------------------------------------------------------------------

    @property
    def classifier_groups(self) -> list[str]:
        return [g for g, spec in self.groups.items() if spec.task == "classify"]

    @property
    def detector_groups(self) -> list[str]:
        return [g for g, spec in self.groups.items() if spec.task == "detect"]

    @property
    def leaf_classes(self) -> list[str]:
        """The classes a classifier child names (the class folders of ``data.source``)."""
        return [c for g in self.classifier_groups for c in self.groups[g].classes]

    @property
    def leaf_labels(self) -> list[str]:
        """The labels of the leaf data set: each classifier group's classes, and each
        detector group's name (its images are whole images of the group)."""
        return [
            c for g, spec in self.groups.items() for c in (spec.classes if spec.task == "classify" else [g])
        ]

    @property
    def group_of(self) -> dict[str, str]:
        """Leaf class of a classifier child -> its group (what hierarchical metrics score)."""
        return {c: g for g in self.classifier_groups for c in self.groups[g].classes}

    @property
    def label_group(self) -> dict[str, str]:
        """A leaf data set label -> its group (a detector group's label is the group)."""
        return {**self.group_of, **{g: g for g in self.detector_groups}}

    @property
    def tasks(self) -> dict[str, str]:
        return {g: spec.task for g, spec in self.groups.items()}

    @property
    def declared(self) -> dict[str, list[str]]:
        return {g: list(spec.classes) for g, spec in self.groups.items()}

    def model_name(self, node: str) -> str:
        return f"{self.name}-{node}"

    @property
    def nodes(self) -> list[str]:
        return [PARENT, *self.groups]

    @property
    def classifier_nodes(self) -> list[str]:
        """The nodes trained on a classification data set drawn from the leaf set."""
        return [PARENT, *self.classifier_groups]

    def is_detector(self, node: str) -> bool:
        return node in self.groups and self.groups[node].task == "detect"

    def node_classes(self, node: str) -> list[str]:
        if node == PARENT:
            return list(self.groups)
        if node == FLAT:
            return self.leaf_labels
        return list(self.groups[node].classes)

    def node_settings(self, node: str) -> ClassifierSettings:
        if node == PARENT:
            return self.train.merged(self.parent.train)
        if node == FLAT:
            return self.train.merged(self.flat.train)
        if self.is_detector(node):
            raise ValueError(f"group {node!r} has a detector child: see detector_settings")
        return self.train.merged(self.groups[node].train)

    def detector_settings(self, group: str) -> TrainSettings:
        """A detector child's training settings: the detection defaults with the group's ``train``."""
        return TrainSettings(**{**TrainSettings().model_dump(), **self.groups[group].train})

    def detector_gate(self, group: str) -> GateSettings:
        gate = self.groups[group].gate
        assert gate is not None  # set by GroupSpec's validator for a detector child
        return gate

    def child_min_conf(self, group: str) -> float:
        own = self.groups[group].min_conf
        return self.bundle.child_min_conf if own is None else own


def settings_hash(settings: BaseModel, classes: list[str], code_files: list[Path]) -> str:
    """What decides a node's training besides its data: settings, classes and the code
    that trains it. The same hash and data set version: the node's model is reused."""
    digest = hashlib.sha256(json.dumps([settings.model_dump(), classes], sort_keys=True).encode())
    for path in sorted(code_files):
        digest.update(path.read_bytes())
    return digest.hexdigest()


class HierarchySpecError(ValueError):
    pass


def load_hierarchy(path: str | Path) -> HierarchySpec:
    """Read and validate a hierarchy YAML; errors name the file and the field. A
    relative ``data.source`` or ``deploy.channel`` is taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise HierarchySpecError(
            f"hierarchy file {path} not found (the bundled one is {REPO_ROOT / 'configs' / 'cifar10_tree.yaml'})"
        )
    try:
        spec = HierarchySpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise HierarchySpecError(f"{path}: {exc}") from exc
    if "://" not in spec.data.source and not os.path.isabs(spec.data.source):
        spec.data.source = str((path.parent / spec.data.source).resolve())
    channel = spec.deploy.channel
    if channel and "://" not in channel and not os.path.isabs(channel):
        spec.deploy.channel = str((path.parent / channel).resolve())
    for group in spec.groups.values():
        data = group.data
        if data is not None and "://" not in data.source and not os.path.isabs(data.source):
            data.source = str((path.parent / data.source).resolve())
    return spec
