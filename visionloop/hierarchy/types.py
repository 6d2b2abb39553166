"""Artifact types of the hierarchy pipelines (plain data, no ZenML)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from visionloop.deploy.types import Check
from visionloop.hierarchy.metrics import ClassifierMetrics, HierarchyMetrics


class NodeReport(BaseModel):
    """Held-out evaluation of one node's training run on its own test split: the ONNX
    file run by the edge runtime's classifier (the headline), ultralytics' predictions
    of the PyTorch weights, and their parity."""

    node: str
    model_name: str
    classes: list[str]  # in the model's output order
    dataset_version_id: str
    leaf_dataset_version_id: str | None = None
    test: ClassifierMetrics
    pytorch_top1: float
    parity: dict[str, float] = Field(default_factory=dict)
    parity_ok: bool = True
    train_seconds: float = 0.0
    epochs_run: int = 0
    train_images: int = 0
    weights: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    settings_hash: str = ""
    code_commit: str | None = None


class NodeRegistration(BaseModel):
    """What a node's training run registered: a classifier's test top-1, or a
    detector's test mAP50 and mAP50-95 (ONNX, through the edge runtime)."""

    node: str
    model_name: str
    model_version: str
    mlflow_run_id: str | None = None
    mlflow_model_version: str | None = None
    dataset_version_id: str
    task: Literal["classify", "detect"] = "classify"
    test_top1: float | None = None
    test_map50: float | None = None
    test_map50_95: float | None = None
    gate_passed: bool


class NodeDecision(BaseModel):
    """A node's own gate: the candidate and the node's production version measured by
    the same code on the same (current) node test split."""

    node: str
    model_name: str
    candidate_version: str
    production_version: str | None = None
    dataset_version_id: str
    candidate: ClassifierMetrics
    production: ClassifierMetrics | None = None
    checks: list[Check] = Field(default_factory=list)
    passed: bool
    reasons: list[str] = Field(default_factory=list)


class BundleNode(BaseModel):
    """One model version a bundle pins. A detector child also carries the score a box
    needs to be returned (``conf``), the NMS IoU, and its test mAP figures."""

    model: str
    version: str
    task: Literal["classify", "detect"] = "classify"
    classes: list[str]
    onnx_sha256: str
    dataset_version_id: str = ""
    gate_passed: bool = False
    gate_reasons: list[str] = Field(default_factory=list)
    test_top1: float = 0.0
    test_map50: float | None = None
    test_map50_95: float | None = None
    train_seconds: float = 0.0
    conf: float | None = None
    iou: float | None = None
    min_conf: float | None = None  # the child threshold of its group, when not the bundle's

    def figures(self) -> dict[str, Any]:
        """The node's own test figures, for reports."""
        if self.task == "detect":
            return {"test_map50": self.test_map50, "test_map50_95": self.test_map50_95}
        return {"test_top1": self.test_top1}


class DetectorRoute(BaseModel):
    """A detector group end to end on its test images (whole images of the group in the
    leaf test split): how many the parent sends to the group, how many of those fall
    back (no box at or above the child threshold), and the mAP of the boxes the bundle
    gives (the child's predictions on the images routed to it, nothing on the others;
    scored as ultralytics' validator does), beside the child's own mAP on all of them.
    ``routed_in``: images of other groups the parent sent to this detector."""

    group: str
    images: int
    routed: float
    fallback_rate: float
    map50: float
    map50_95: float
    child_map50: float
    child_map50_95: float
    routed_in: int = 0


class BundleManifest(BaseModel):
    """Which versions of parent and children belong together, and the declaration they
    were assembled for (groups and their classes)."""

    hierarchy: str
    groups: dict[str, list[str]]
    tasks: dict[str, str] = Field(default_factory=dict)  # declared task of each group's child
    parent: BundleNode
    children: dict[str, BundleNode]
    child_min_conf: float
    leaf_dataset_version_id: str

    @property
    def nodes(self) -> dict[str, BundleNode]:
        return {"parent": self.parent, **self.children}

    def pins(self) -> dict[str, str]:
        return {k: f"{n.model}:{n.version}" for k, n in self.nodes.items()}


class BundleEvaluation(BaseModel):
    """End-to-end figures of a bundle on the leaf test split (through the edge
    runtime's bundle code), per-node figures, and the flat model's when compared."""

    hierarchy: str
    leaf_dataset_version_id: str
    child_min_conf: float
    # on the classifier groups' images: with the fallback at child_min_conf
    end_to_end: HierarchyMetrics | None = None
    no_fallback: HierarchyMetrics | None = None  # the same bundle answering with the child always
    detectors: dict[str, DetectorRoute] = Field(default_factory=dict)  # on each detector group's images
    note: str = ""  # why there are no end-to-end figures (nodes that do not fit together)
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)  # version, test figures, train s
    flat: HierarchyMetrics | None = None
    flat_model: str | None = None
    flat_train_seconds: float | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict)


class BundleDecision(BaseModel):
    """The bundle's gate: the nodes fit together, each passed its own gate, and the end
    to end figures clear the thresholds and do not regress against production."""

    bundle_model: str
    candidate_version: str
    production_version: str | None = None
    pins: dict[str, str]
    candidate: BundleEvaluation
    production: HierarchyMetrics | None = None
    production_detectors: dict[str, DetectorRoute] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    passed: bool
    reasons: list[str] = Field(default_factory=list)


class BundleOutcome(BaseModel):
    """Where the bundle ended: rejected, waiting at staging, or in production."""

    bundle_model: str
    version: str
    stage: Literal["rejected", "staging", "production"]
    production_version: str | None = None
    archived_version: str | None = None
    channel: str = ""
    pins: dict[str, str] = Field(default_factory=dict)
    pointers: dict[str, str] = Field(default_factory=dict)
    staging_checks: list[Check] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
