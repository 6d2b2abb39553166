"""A parent/child model hierarchy served as one release: a bundle (manifest task
``hierarchy``).

The bundle's version folder holds every node's ONNX file, and its manifest pins them::

    "hierarchy": {
        "name": "cifar10-tree",
        "groups": {"vehicle": ["airplane", ...], "animal": [...]},   # the declaration
        "parent": {"file": "parent.onnx", "model": ..., "version": ..., "classes": [groups]},
        "tasks": {"vehicle": "classify", "tag": "detect"},                # optional
        "children": {"vehicle": {"file": "children/vehicle.onnx", "model": ..., "version": ...,
                                 "task": "classify" | "detect", "classes": [...],
                                 "min_conf": 0.3,                 # optional, per child
                                 "conf": 0.25, "iou": 0.7},       # a detector's box score and NMS IoU
                     ...},
        "child_min_conf": 0.5
    }

Routing: the parent names a group (its most probable class); that group's child names
the leaf (a classifier's most probable class, or a detector's best box). The answer
carries the path with both probabilities and their product; a detector child's answer
also carries its boxes that reach the child threshold, each with its score and the
score times the parent's probability. When the child's probability is below the child
threshold (the child's ``min_conf``, else ``child_min_conf``; a runtime override wins
over both), or no box of a detector child reaches it, the answer falls back to the
parent's: the group, with the parent's probability.

Loading refuses a bundle whose nodes do not fit together: the parent's classes must be
the declared groups, each child's classes the classes declared for its group, and,
where the manifest declares the groups' tasks, each child of that task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from edge_runtime import classifier as cls
from edge_runtime import selftest as det_selftest
from edge_runtime.channel import VerifiedVersion, member_path
from edge_runtime.classifier import OnnxClassifier, top_classes
from edge_runtime.detector import Detection, OnnxDetector
from edge_runtime.model import ModelRejected, ServedVersion, Thresholds

DEFAULT_CHILD_MIN_CONF = 0.5


@dataclass(frozen=True)
class Node:
    """One node of a loaded bundle: its model name and version, and its predictor."""

    key: str  # "parent" or the group name
    model: str
    version: str
    task: str  # "classify" or "detect"
    classes: list[str]
    classifier: OnnxClassifier | None = None
    detector: OnnxDetector | None = None
    min_conf: float | None = None  # the child threshold of this node, when not the bundle's

    def step(self, label: str, prob: float) -> dict[str, Any]:
        return {"node": self.key, "model": self.model, "version": self.version, "class": label, "prob": prob}


@dataclass
class HierarchyResult:
    """One routed prediction. ``answer`` is a leaf class, or the group on a fallback."""

    group: str
    group_prob: float
    leaf: str | None
    leaf_prob: float
    fallback: bool
    path: list[dict[str, Any]]
    child_min_conf: float
    detections: list[Detection] = field(
        default_factory=list
    )  # a detector child's boxes at or above the threshold
    child_task: str = "classify"

    @property
    def answer(self) -> str:
        return self.group if self.fallback or self.leaf is None else self.leaf

    @property
    def product(self) -> float:
        return self.group_prob * self.leaf_prob

    @property
    def prob(self) -> float:
        """The probability of the answer: the product, or the parent's on a fallback."""
        return self.group_prob if self.fallback else self.product

    def to_dict(self) -> dict[str, Any]:
        out = {
            "answer": self.answer,
            "level": "group" if self.fallback else "leaf",
            "prob": round(self.prob, 6),
            "product": round(self.product, 6),
            "fallback": self.fallback,
            "child_min_conf": self.child_min_conf,
            "path": [{**p, "prob": round(float(p["prob"]), 6)} for p in self.path],
        }
        if self.child_task == "detect":
            out["detections"] = [
                {**d.to_dict(), "product": round(d.score * self.group_prob, 6)} for d in self.detections
            ]
        return out


class HierarchyBundle:
    """The parent and one child per group, routed as the module docstring says."""

    def __init__(self, parent: Node, children: dict[str, Node], child_min_conf: float) -> None:
        self.parent = parent
        self.children = children
        self.child_min_conf = child_min_conf

    def threshold(self, child: Node, override: float | None = None) -> float:
        """The child threshold: the runtime's override, else the child's own, else the bundle's."""
        if override is not None:
            return override
        return self.child_min_conf if child.min_conf is None else child.min_conf

    def predict(self, image: Image.Image, child_min_conf: float | None = None) -> HierarchyResult:
        assert self.parent.classifier is not None
        top = top_classes(self.parent.classifier.probs(image), self.parent.classes, 1)[0]
        child = self.children[top.class_name]
        threshold = self.threshold(child, child_min_conf)
        path = [self.parent.step(top.class_name, top.prob)]
        leaf: str | None = None
        leaf_prob = 0.0
        detections: list[Detection] = []
        if child.classifier is not None:
            best = child.classifier.predict(image, top=1)[0]
            leaf, leaf_prob = best.class_name, best.prob
        elif child.detector is not None:
            found = child.detector.predict(image)  # boxes above the detector's conf, best first
            if found:
                leaf, leaf_prob = found[0].class_name, found[0].score
            detections = [d for d in found if d.score >= threshold]
        path.append(child.step(leaf if leaf is not None else "(nothing detected)", leaf_prob))
        return HierarchyResult(
            group=top.class_name,
            group_prob=top.prob,
            leaf=leaf,
            leaf_prob=leaf_prob,
            fallback=leaf is None or leaf_prob < threshold,
            path=path,
            child_min_conf=threshold,
            detections=detections,
            child_task=child.task,
        )

    # --- self-test --------------------------------------------------------------------

    def expectations(self, images: dict[str, bytes]) -> dict[str, dict[str, Any]]:
        """Per sample: the parent's two best classes, the routed group, and the child's
        answer (its two best classes, or a detector's detections)."""
        assert self.parent.classifier is not None
        out: dict[str, dict[str, Any]] = {}
        for name, data in images.items():
            parent = cls.expectations(self.parent.classifier, {name: data})[name]
            group = self.parent.classes[int(parent[0][0])]
            child = self.children[group]
            out[name] = {
                "parent": parent,
                "group": group,
                "child": self._child_expectation(child, name, data),
            }
        return out

    def _child_expectation(self, child: Node, name: str, data: bytes) -> list[list[float]]:
        if child.classifier is not None:
            return cls.expectations(child.classifier, {name: data})[name]
        assert child.detector is not None
        return det_selftest.expectations(child.detector, {name: data}, child.detector.conf)[name]

    def self_test(self, folder: Path, recorded: dict[str, dict[str, Any]]) -> list[str]:
        if not recorded:
            return ["the manifest ships no self-test samples for the bundle"]
        problems: list[str] = []
        for name, expected in recorded.items():
            data = member_path(folder, name).read_bytes()
            found = self.expectations({name: data})[name]
            issues = cls.compare(expected["parent"], found["parent"])
            if not issues and found["group"] == expected["group"]:
                child = self.children[expected["group"]]
                if child.classifier is not None:
                    issues = cls.compare(expected["child"], found["child"])
                else:
                    assert child.detector is not None
                    issues = det_selftest.compare(expected["child"], found["child"], child.detector.conf)
            problems += [f"{name}: {p}" for p in issues]
        return problems


def fit_problems(hierarchy: dict[str, Any]) -> list[str]:
    """Why the nodes a bundle manifest pins do not fit its declared groups (empty: they
    fit). The same rule as the control plane's check before promotion."""
    groups: dict[str, list[str]] = hierarchy.get("groups") or {}
    tasks: dict[str, str] = hierarchy.get("tasks") or {}
    parent = hierarchy.get("parent") or {}
    children: dict[str, dict[str, Any]] = hierarchy.get("children") or {}
    problems = []
    if sorted(parent.get("classes", [])) != sorted(groups):
        problems.append(
            f"parent {parent.get('model')} version {parent.get('version')} was trained for the groups "
            f"{sorted(parent.get('classes', []))}, the bundle declares {sorted(groups)}"
        )
    for group, classes in groups.items():
        child = children.get(group)
        if child is None:
            problems.append(f"group {group!r} has no child model")
            continue
        task = str(child.get("task", "classify"))
        if group in tasks and task != tasks[group]:
            problems.append(
                f"child {child.get('model')} version {child.get('version')} of group {group!r} is a "
                f"{task} model, the group declares a {tasks[group]} child"
            )
        if sorted(child.get("classes", [])) != sorted(classes):
            problems.append(
                f"child {child.get('model')} version {child.get('version')} of group {group!r} was trained "
                f"for the classes {sorted(child.get('classes', []))}, the group declares {sorted(classes)}"
            )
    problems += [f"child for undeclared group {g!r}" for g in children if g not in groups]
    return problems


@dataclass
class LoadedBundle(ServedVersion):
    """A verified ``hierarchy`` release ready to serve (immutable once in the serving slot)."""

    version: VerifiedVersion
    bundle: HierarchyBundle
    model_file: str
    thresholds: Thresholds
    variant: str = "float"
    loaded_at: float = field(default_factory=time.time)
    note: str = ""

    def predict(self, image: Image.Image, child_min_conf: float | None = None) -> HierarchyResult:
        return self.bundle.predict(image, child_min_conf)

    def describe(self) -> dict[str, Any]:
        m = self.version.manifest
        b = self.bundle
        return {
            "model": self.name,
            "version": self.version_id,
            "task": "hierarchy",
            "variant": self.variant,
            "manifest_sha256": self.version.manifest_sha256,
            "hierarchy": m["hierarchy"].get("name"),
            "parent": {"model": b.parent.model, "version": b.parent.version, "classes": b.parent.classes},
            "children": {
                g: {
                    "model": c.model,
                    "version": c.version,
                    "task": c.task,
                    "classes": c.classes,
                    "min_conf": b.threshold(c),
                    **({"conf": c.detector.conf, "iou": c.detector.iou} if c.detector is not None else {}),
                }
                for g, c in b.children.items()
            },
            "child_min_conf": b.child_min_conf,
            **self.provenance(),
        }


def _node(verified: VerifiedVersion, key: str, entry: dict[str, Any], threads: int | None) -> Node:
    what = f"{verified.model} version {verified.version}"
    task = str(entry.get("task", "classify"))
    classes = [str(c) for c in entry.get("classes", [])]
    path = verified.file(str(entry["file"]))
    min_conf = float(entry["min_conf"]) if entry.get("min_conf") is not None else None
    try:
        if task == "classify":
            clf = OnnxClassifier(path, classes, threads)
            return Node(key, entry["model"], str(entry["version"]), task, classes, clf, min_conf=min_conf)
        if task == "detect":
            det = OnnxDetector(
                path,
                classes,
                conf=float(entry.get("conf", 0.25)),
                iou=float(entry.get("iou", 0.7)),
                threads=threads,
            )
            return Node(
                key, entry["model"], str(entry["version"]), task, classes, detector=det, min_conf=min_conf
            )
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise ModelRejected(f"{what}: node {key} ({entry['file']}) does not load: {exc}") from exc
    raise ModelRejected(f"{what}: node {key} has the unknown task {task!r}")


def load_bundle(verified: VerifiedVersion, threads: int | None = None) -> LoadedBundle:
    """Load every node of a verified bundle, check that they fit together, self-test;
    raises ``ModelRejected``."""
    what = f"{verified.model} version {verified.version}"
    manifest = verified.manifest
    hierarchy = manifest.get("hierarchy")
    if not isinstance(hierarchy, dict) or "parent" not in hierarchy or "children" not in hierarchy:
        raise ModelRejected(
            f"{what}: a hierarchy release needs a 'hierarchy' section with parent and children"
        )
    problems = fit_problems(hierarchy)
    if problems:
        raise ModelRejected(f"{what}: its models do not fit together: " + "; ".join(problems))
    parent = _node(verified, "parent", hierarchy["parent"], threads)
    if parent.classifier is None:
        raise ModelRejected(f"{what}: the parent must be a classifier")
    children = {g: _node(verified, g, e, threads) for g, e in hierarchy["children"].items()}
    conf = float(hierarchy.get("child_min_conf", DEFAULT_CHILD_MIN_CONF))
    bundle = HierarchyBundle(parent, children, conf)
    self_test = manifest.get("self_test") or {}
    try:
        problems = bundle.self_test(verified.path, self_test.get("expected", {}).get("bundle", {}))
    except Exception as exc:  # a model that loads but cannot run, or an unreadable sample
        raise ModelRejected(f"{what}: self-test of the bundle crashed: {exc}") from exc
    if problems:
        raise ModelRejected(
            f"{what}: self-test of the bundle failed, {len(problems)} problems: {problems[:3]}"
        )
    return LoadedBundle(verified, bundle, str(manifest["model_file"]), Thresholds.from_manifest(manifest))
