"""Launching a hierarchy: the data pipeline, one training pipeline per node whose data or
settings changed, then the bundle pipeline; and reading back what they made.

A node is trained only when no version of its model was trained on the same node data
set version with the same settings and training code (``settings_hash``); otherwise
that version is reused and its pipeline is not run. So a change that touches one
child's data (a label fixed inside a group, images of its classes changed) retrains
that child alone, and the new bundle pins the new child with the unchanged others.

A detector child's data set is the detection data set version of its group's source
(made by the detection data steps inside the hierarchy's data pipeline); its pipeline
runs the detection training steps and the detection gate
(``pipelines/hierarchy_detector_pipeline.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zenml.models import PipelineRunResponse

from pipelines.launch import cached_steps, code_commit, data_parameters, output
from stacks.options import run_options
from visionloop import constants
from visionloop.config import REPO_ROOT
from visionloop.data.dataset import ImageDataset
from visionloop.hierarchy.dataset import ClassificationDataset
from visionloop.hierarchy.spec import FLAT, ClassifierSettings, HierarchySpec, settings_hash


class HierarchyError(RuntimeError):
    """A hierarchy run cannot go on; the message says why and what to do."""


@dataclass
class NodeOutcome:
    node: str
    model: str
    version: str
    status: str  # trained | re-gated (training from the cache) | unchanged | kept | pinned
    dataset_version_id: str = ""
    task: str = "classify"
    test_top1: float | None = None  # a classifier's, ONNX through the edge runtime
    test_map50: float | None = None  # a detector's, likewise
    test_map50_95: float | None = None
    train_seconds: float | None = None
    gate_passed: bool | None = None
    run: str | None = None
    cached_steps: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class HierarchyRunResult:
    spec: HierarchySpec
    leaf_artifact_id: str
    leaf_version_id: str
    leaf_stats: dict[str, Any]
    data_run: PipelineRunResponse
    nodes: dict[str, NodeOutcome]
    flat: NodeOutcome | None = None
    bundle_run: PipelineRunResponse | None = None
    decision: Any = None
    outcome: Any = None
    unchanged_bundle: str | None = None  # the production bundle already pins these versions

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hierarchy": self.spec.name,
            "leaf_dataset_version_id": self.leaf_version_id,
            "leaf_images": self.leaf_stats["images"],
            "per_split": self.leaf_stats["per_split"],
            "data_cached_steps": cached_steps(self.data_run),
            "nodes": {k: n.summary() for k, n in self.nodes.items()},
            "trained": [k for k, n in self.nodes.items() if n.status == "trained"],
            "flat": self.flat.summary() if self.flat else None,
            "bundle": None,
            "unchanged_bundle": self.unchanged_bundle,
        }
        if self.decision is not None and self.outcome is not None and self.bundle_run is not None:
            d, o = self.decision, self.outcome
            e = d.candidate.end_to_end
            out["bundle"] = {
                "run": self.bundle_run.name,
                "model": o.bundle_model,
                "version": o.version,
                "stage": o.stage,
                "pins": d.pins,
                "gate_passed": d.passed,
                "reasons": d.reasons,
                "outcome_reasons": o.reasons,
                "production_version": o.production_version,
                "archived_version": o.archived_version,
                "channel": o.channel,
                "pointers": o.pointers,
                "end_to_end": e.model_dump(exclude={"leaf"}) if e else None,
                "detectors": {g: r.model_dump() for g, r in d.candidate.detectors.items()},
                "no_fallback": d.candidate.no_fallback.model_dump(exclude={"leaf"})
                if d.candidate.no_fallback
                else None,
                "flat": d.candidate.flat.model_dump(exclude={"leaf"}) if d.candidate.flat else None,
                "latency_ms": d.candidate.latency_ms,
            }
        return out


def fit_code() -> list[Any]:
    from steps.hierarchy.cache_policy import FIT_CODE

    return [REPO_ROOT / p for p in FIT_CODE]


def detector_code() -> list[Any]:
    from steps.training.cache_policy import FIT_CODE

    return [REPO_ROOT / p for p in FIT_CODE]


def flat_settings(spec: HierarchySpec, datasets: dict[str, ClassificationDataset]) -> ClassifierSettings:
    """The flat model's settings; ``flat.epochs: auto`` gives it as many image-epochs
    as the parent and the classifier children are trained for together."""
    settings = spec.node_settings(FLAT)
    if spec.flat.epochs != "auto":
        return settings.merged({"epochs": spec.flat.epochs})
    budget = sum(
        len(datasets[n].split("train")) * spec.node_settings(n).epochs for n in spec.classifier_nodes
    )
    flat_images = max(1, len(datasets[FLAT].split("train")))
    return settings.merged({"epochs": max(1, round(budget / flat_images))})


def matching_version(model: str, dataset_version_id: str, digest: str, gate: dict[str, Any]) -> Any:
    """The newest version of ``model`` trained on that data set version with those
    settings and judged by that gate (a changed gate re-runs the node's pipeline, whose
    training steps then come from the cache)."""
    from steps.deployment import control_plane

    for v in sorted(control_plane.all_versions(model), key=lambda v: v.number, reverse=True):
        meta = v.run_metadata
        if (
            meta.get("dataset_version_id") == dataset_version_id
            and meta.get("settings_hash") == digest
            and meta.get("gate_settings") == gate
        ):
            return v
    return None


def existing_version(model: str, version: str | None = None) -> Any:
    """``version`` of ``model``, or its production version, or its newest; None if none."""
    from steps.deployment import control_plane

    if version is not None:
        return control_plane.model_version(model, version)
    return control_plane.version_in_stage(model, control_plane.PRODUCTION) or next(
        iter(sorted(control_plane.all_versions(model), key=lambda v: v.number, reverse=True)), None
    )


def _outcome(node: str, model: str, mv: Any, status: str, dataset_version_id: str = "") -> NodeOutcome:
    meta = mv.run_metadata
    return NodeOutcome(
        node=node,
        model=model,
        version=str(mv.name),
        status=status,
        dataset_version_id=str(meta.get("dataset_version_id", dataset_version_id)),
        task=str(meta.get("task", "classify")),
        test_top1=meta.get("test_top1"),
        test_map50=meta.get("node_map50"),
        test_map50_95=meta.get("node_map50_95"),
        train_seconds=meta.get("train_seconds"),
        gate_passed=meta.get("gate_passed"),
    )


def _run_node_pipeline(
    spec: HierarchySpec, node: str, pipeline: Any, kind: str, enable_cache: bool, **params: Any
) -> Any:
    """One node's pipeline in the context of its own ZenML model; the hydrated run."""
    from zenml import Model

    name = spec.model_name(node)
    model = Model(
        name=name,
        description=f"visionloop {node} {kind} of {spec.name}",
        tags=["visionloop", spec.name, "hierarchy", *([kind] if kind == "detector" else [])],
    )
    run = pipeline.with_options(enable_cache=enable_cache, model=model, **run_options(pipeline))(
        node=node, model_name=name, code_commit=code_commit(), **params
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    return run.get_hydrated_version()


def _trained(run: Any, reg: Any, train_seconds: float, train_step: str) -> NodeOutcome:
    """A node trained by ``run`` (re-gated when its training came from the cache)."""
    cached = cached_steps(run)
    return NodeOutcome(
        node=reg.node,
        model=reg.model_name,
        version=reg.model_version,
        status="re-gated" if train_step in cached else "trained",
        dataset_version_id=reg.dataset_version_id,
        task=reg.task,
        test_top1=reg.test_top1,
        test_map50=reg.test_map50,
        test_map50_95=reg.test_map50_95,
        train_seconds=train_seconds,
        gate_passed=reg.gate_passed,
        run=run.name,
        cached_steps=cached,
    )


def train_node(
    spec: HierarchySpec,
    node: str,
    artifact_id: str,
    settings: ClassifierSettings,
    digest: str,
    enable_cache: bool,
) -> NodeOutcome:
    """A classifier node: ``pipelines/hierarchy_node_pipeline.py``."""
    from pipelines.hierarchy_node_pipeline import hierarchy_node_pipeline

    run = _run_node_pipeline(
        spec,
        node,
        hierarchy_node_pipeline,
        "classifier",
        enable_cache,
        dataset_artifact_id=artifact_id,
        settings=settings.model_dump(),
        settings_hash=digest,
        gate=spec.gate.model_dump(),
    )
    report = output(run, "evaluate_classifier", constants.NODE_REPORT)
    return _trained(
        run, output(run, "register_node", "node_registration"), report.train_seconds, "train_classifier"
    )


def train_detector(
    spec: HierarchySpec, group: str, artifact_id: str, digest: str, enable_cache: bool
) -> NodeOutcome:
    """The detector child of ``group``: the detection training steps and gate
    (``pipelines/hierarchy_detector_pipeline.py``)."""
    from pipelines.hierarchy_detector_pipeline import hierarchy_detector_pipeline

    settings = spec.detector_settings(group)
    run = _run_node_pipeline(
        spec,
        group,
        hierarchy_detector_pipeline,
        "detector",
        enable_cache,
        dataset_artifact_id=artifact_id,
        params=settings.model_dump(exclude={"weights"}),
        weights=settings.weights,
        settings=settings.model_dump(),
        settings_hash=digest,
        gate=spec.detector_gate(group).model_dump(),
        evaluation={"device": settings.device},
    )
    report = output(run, "evaluate_model", constants.EVALUATION_REPORT)
    return _trained(
        run, output(run, "register_detector", "node_registration"), report.train_seconds, "train_model"
    )


def detector_node(
    spec: HierarchySpec,
    group: str,
    artifact_id: str,
    dataset_version_id: str,
    retrain: bool,
    enable_cache: bool,
) -> NodeOutcome:
    """A detector child: reused when a version was trained on that detection data set
    version with the same settings and code and judged by the same gate, else trained."""
    digest = settings_hash(spec.detector_settings(group), spec.node_classes(group), detector_code())
    name = spec.model_name(group)
    gate = spec.detector_gate(group).model_dump()
    same = None if retrain else matching_version(name, dataset_version_id, digest, gate)
    if same is not None:
        return _outcome(group, name, same, "unchanged", dataset_version_id)
    return train_detector(spec, group, artifact_id, digest, enable_cache)


def run_hierarchy(
    spec: HierarchySpec,
    only: list[str] | None = None,
    pins: dict[str, str] | None = None,
    retrain: bool = False,
    compare_flat: bool | None = None,
    deploy: bool = True,
    channel: str | None = None,
    enable_cache: bool = True,
) -> HierarchyRunResult:
    """Data, each node that needs it, then the bundle (with ``deploy``). ``only``: train
    these nodes (when changed) and keep the others' production versions; ``pins``: use
    these versions as they are; ``retrain``: train every node even when unchanged;
    ``compare_flat``: also train (or reuse) the flat model (default ``flat.enabled``)."""
    from pipelines.hierarchy_data_pipeline import hierarchy_data_pipeline
    from visionloop.data.sources import fingerprint, open_source

    pins = dict(pins or {})
    unknown = sorted((set(pins) | set(only or [])) - {*spec.nodes, FLAT})
    if unknown:
        raise HierarchyError(
            f"no node {', '.join(unknown)} in {spec.name}; nodes: {', '.join(spec.nodes)}, {FLAT}"
        )
    with_flat = spec.flat.enabled if compare_flat is None else compare_flat
    classifier_nodes = [*spec.classifier_nodes, *([FLAT] if with_flat else [])]
    node_names = [*spec.nodes, *([FLAT] if with_flat else [])]
    data_run = hierarchy_data_pipeline.with_options(
        enable_cache=enable_cache, **run_options(hierarchy_data_pipeline)
    )(
        spec=spec.model_dump(),
        source_fingerprint=fingerprint(open_source(spec.data.source)),
        nodes=classifier_nodes,
        detectors={g: detector_data(spec, g) for g in spec.detector_groups},
    )
    if data_run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    data_run = data_run.get_hydrated_version()
    leaf_step = f"leaf_with_{spec.detector_groups[-1]}" if spec.detector_groups else "ingest_classes"
    leaf_artifact = data_run.steps[leaf_step].outputs[constants.LEAF_DATASET][0]
    leaf: ClassificationDataset = leaf_artifact.load()
    artifacts = {
        n: data_run.steps[f"node_data_{n}"].outputs[constants.NODE_DATASET][0] for n in classifier_nodes
    } | {
        g: data_run.steps[f"detect_data_{g}"].outputs[constants.IMAGE_DATASET][0]
        for g in spec.detector_groups
    }
    datasets: dict[str, ClassificationDataset | ImageDataset] = {n: a.load() for n, a in artifacts.items()}
    outcomes: dict[str, NodeOutcome] = {}
    for node in node_names:
        name = spec.model_name(node)
        ds = datasets[node]
        if node in pins:
            outcomes[node] = _outcome(node, name, existing_version(name, pins[node]), "pinned")
            continue
        if only and node not in only:
            kept = existing_version(name)
            if kept is None:
                raise HierarchyError(
                    f"node {node} ({name}) has no version yet: run without --only to train it"
                )
            outcomes[node] = _outcome(node, name, kept, "kept")
            continue
        if spec.is_detector(node):
            outcomes[node] = detector_node(
                spec, node, str(artifacts[node].id), ds.version_id, retrain, enable_cache
            )
        else:
            classifier_sets = {k: v for k, v in datasets.items() if isinstance(v, ClassificationDataset)}
            settings = flat_settings(spec, classifier_sets) if node == FLAT else spec.node_settings(node)
            digest = settings_hash(settings, spec.node_classes(node), fit_code())
            same = None if retrain else matching_version(name, ds.version_id, digest, spec.gate.model_dump())
            if same is not None:
                outcomes[node] = _outcome(node, name, same, "unchanged", ds.version_id)
            else:
                outcomes[node] = train_node(
                    spec, node, str(artifacts[node].id), settings, digest, enable_cache
                )
    flat = outcomes.pop(FLAT, None)
    result = HierarchyRunResult(
        spec=spec,
        leaf_artifact_id=str(leaf_artifact.id),
        leaf_version_id=leaf.version_id,
        leaf_stats=leaf.stats(),
        data_run=data_run,
        nodes=outcomes,
        flat=flat,
    )
    if deploy:
        same = production_pins(spec)
        if (
            same is not None
            and same[1] == {k: f"{n.model}:{n.version}" for k, n in outcomes.items()}
            and not retrain
        ):
            result.unchanged_bundle = same[0]
        else:
            run_bundle(result, channel, flat.version if flat else None)
    return result


def detector_data(spec: HierarchySpec, group: str) -> dict[str, Any]:
    """The detection data pipeline's parameters for a detector group's source (its
    listing fingerprinted now: new or changed files make a new data set version)."""
    data = spec.groups[group].data
    if data is None:
        raise HierarchyError(f"group {group} of {spec.name} is a detector group without `data:`")
    try:
        return data_parameters(data)
    except FileNotFoundError as exc:
        raise HierarchyError(f"the detection source of group {group}: {exc}") from exc


def production_pins(spec: HierarchySpec) -> tuple[str, dict[str, str]] | None:
    """(version, pins) of the production bundle, or None."""
    from steps.deployment import control_plane

    mv = control_plane.version_in_stage(spec.model_name("bundle"), control_plane.PRODUCTION)
    if mv is None:
        return None
    pins = mv.run_metadata.get("pins")
    return (str(mv.name), dict(pins)) if isinstance(pins, dict) else None


def run_bundle(result: HierarchyRunResult, channel: str | None, flat_version: str | None) -> None:
    """The bundle pipeline on the node versions of ``result``; fills in its outcome."""
    from zenml import Model

    from pipelines.hierarchy_bundle_pipeline import hierarchy_bundle_pipeline
    from steps.deployment.control_plane import default_channel

    spec = result.spec
    model = Model(
        name=spec.model_name("bundle"),
        description=f"visionloop bundle of {spec.name}: which parent and child versions belong together",
        tags=["visionloop", spec.name, "hierarchy", "bundle"],
    )
    run = hierarchy_bundle_pipeline.with_options(model=model, **run_options(hierarchy_bundle_pipeline))(
        leaf_artifact_id=result.leaf_artifact_id,
        spec=spec.model_dump(),
        pins={k: n.version for k, n in result.nodes.items()},
        channel=channel or spec.deploy.channel or default_channel(),
        deploy=spec.deploy.model_dump(),
        flat_version=flat_version,
        code_commit=code_commit(),
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    result.bundle_run = run.get_hydrated_version()
    result.decision = output(result.bundle_run, "gate_bundle", constants.BUNDLE_DECISION)
    result.outcome = output(result.bundle_run, "promote_bundle", constants.BUNDLE_OUTCOME)


def promote_bundle_version(spec: HierarchySpec, version: str, who: str | None, why: str) -> dict[str, Any]:
    """``python run.py hierarchy --promote VERSION``: a staged bundle and its node
    versions to production, as one (after a required approval)."""
    import getpass

    from steps.deployment import control_plane
    from steps.hierarchy.control import promote_as_one

    name = spec.model_name("bundle")
    target = control_plane.model_version(name, version)
    manifest = control_plane.load_artifact(target, constants.BUNDLE_MANIFEST)
    channel = (
        control_plane.recorded_channel(name, version)
        or spec.deploy.channel
        or control_plane.default_channel()
    )
    key = control_plane.signing_key(spec.deploy.signing_secret)
    publisher = control_plane.publisher(channel, key, spec.deploy.s3_endpoint)
    change, nodes = promote_as_one(name, version, manifest, publisher, who or getpass.getuser(), why)
    return {**change.__dict__, "nodes": nodes, "pins": manifest.pins()}


def rollback_bundle(spec: HierarchySpec, who: str | None, why: str) -> dict[str, Any]:
    """``python run.py hierarchy --rollback``: the previous production bundle back in
    production, and with it the node versions it pins (ZenML stages, MLflow aliases,
    the nodes' channel pointers), not only the bundle's channel pointer."""
    import getpass

    from steps.deployment import control_plane
    from steps.hierarchy.control import rollback_as_one

    name = spec.model_name("bundle")
    current = control_plane.version_in_stage(name, control_plane.PRODUCTION)
    channel = (
        control_plane.recorded_channel(name, str(current.name) if current is not None else None)
        or spec.deploy.channel
        or control_plane.default_channel()
    )
    key = control_plane.signing_key(spec.deploy.signing_secret)
    publisher = control_plane.publisher(channel, key, spec.deploy.s3_endpoint)
    change, nodes = rollback_as_one(name, publisher, who or getpass.getuser(), why)
    manifest = control_plane.load_artifact(
        control_plane.model_version(name, change.version), constants.BUNDLE_MANIFEST
    )
    return {**change.__dict__, "nodes": nodes, "pins": manifest.pins()}


__all__ = [
    "HierarchyError",
    "HierarchyRunResult",
    "promote_bundle_version",
    "rollback_bundle",
    "run_hierarchy",
]
