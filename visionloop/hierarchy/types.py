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
    """What a node's training run registered."""

    node: str
    model_name: str
    model_version: str
    mlflow_run_id: str | None = None
    mlflow_model_version: str | None = None
    dataset_version_id: str
    test_top1: float
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
    """One model version a bundle pins."""

    model: str
    version: str
    task: Literal["classify", "detect"] = "classify"
    classes: list[str]
    onnx_sha256: str
    dataset_version_id: str = ""
    gate_passed: bool = False
    gate_reasons: list[str] = Field(default_factory=list)
    test_top1: float = 0.0
    train_seconds: float = 0.0


class BundleManifest(BaseModel):
    """Which versions of parent and children belong together, and the declaration they
    were assembled for (groups and their classes)."""

    hierarchy: str
    groups: dict[str, list[str]]
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
    end_to_end: HierarchyMetrics | None = None  # with the fallback at child_min_conf
    no_fallback: HierarchyMetrics | None = None  # the same bundle answering with the child always
    note: str = ""  # why there are no end-to-end figures (nodes that do not fit together)
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)  # version, test top-1, train s
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
