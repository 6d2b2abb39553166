"""Step: publish the bundle (and its node versions) to the channel, point staging at it,
and check it as the edge runtime pulls it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from edge_runtime.bundle import LoadedBundle
from edge_runtime.channel import ChannelClient
from edge_runtime.model import ModelRejected
from edge_runtime.serving import load_served
from materializers.hierarchy_report_materializers import BundleOutcomeMaterializer
from steps.deployment import control_plane
from steps.hierarchy.nodes import node_entry
from visionloop.deploy.types import Check
from visionloop.hierarchy import evaluate
from visionloop.hierarchy.dataset import ClassificationDataset, test_records
from visionloop.hierarchy.release import bundle_release, node_release, self_test_samples
from visionloop.hierarchy.spec import HierarchyDeploy, HierarchySpec
from visionloop.hierarchy.types import BundleDecision, BundleManifest, BundleOutcome

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=BundleOutcomeMaterializer)
def stage_bundle(
    decision: BundleDecision,
    manifest: BundleManifest,
    leaf: ClassificationDataset,
    spec: dict[str, Any],
    channel: str,
    deploy: dict[str, Any],
    code_commit: str | None = None,
) -> Annotated[BundleOutcome, "bundle_staging"]:
    """A refused bundle stops here (production unchanged), with the gate's reasons. A
    passed one: each node version gets its own signed version folder (``classify``, or
    ``detect`` for a detector child), the bundle a ``hierarchy`` folder holding every
    node's ONNX file, with self-test samples of every group; the bundle gets the
    staging pointer and stage; then the edge runtime's code pulls, verifies, loads and
    self-tests it, and the published copy must give the gate's end-to-end top-1 (and
    each detector group's mAP50) within the latency and size budgets."""
    h, d = HierarchySpec.model_validate(spec), HierarchyDeploy(**deploy)
    outcome = BundleOutcome(
        bundle_model=decision.bundle_model,
        version=decision.candidate_version,
        stage="rejected",
        channel=channel,
        pins=decision.pins,
    )
    if not decision.passed:
        outcome.reasons = ["refused at promotion: " + "; ".join(decision.reasons), "production unchanged"]
        return outcome
    key = control_plane.signing_key(d.signing_secret, create=True)
    publisher = control_plane.publisher(channel, key, d.s3_endpoint)
    records, images = test_records(leaf)
    samples = self_test_samples(records, images, h.label_group, d.self_test_images)
    models = {}
    for node_key, node in manifest.nodes.items():
        _, blob = node_entry(node.model, node.version)
        models[node_key] = blob.data
        fields = {"dataset_version_id": node.dataset_version_id, "node": node_key, "hierarchy": h.name}
        own = samples
        if node.task == "detect":  # a detector's own self-test: images of its group
            own = self_test_samples(records, images, h.label_group, d.self_test_images, node_key)
        publisher.publish(
            node_release(
                node,
                blob,
                own,
                h.bundle.uncertain_high,
                fields,
                h.groups[node_key].thresholds if node_key in h.groups else None,
            )
        )
    e = decision.candidate.end_to_end
    assert e is not None  # a passed gate measured it
    release = bundle_release(
        decision.bundle_model,
        decision.candidate_version,
        manifest,
        models,
        evaluate.make_bundle(manifest, models),
        samples,
        h.bundle.uncertain_high,
        {
            "pins": manifest.pins(),
            "code_commit": code_commit,
            "metrics": {"top1": e.top1, "hierarchical_f": e.hierarchical_f},
            "pipeline_run": get_step_context().pipeline_run.name,
        },
    )
    published = publisher.publish(release)
    control_plane.set_stage(
        decision.bundle_model,
        decision.candidate_version,
        control_plane.STAGING,
        publisher,
        "hierarchy pipeline",
        "; ".join(decision.reasons),
    )
    client = ChannelClient(publisher.store, key.public_raw)
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="visionloop-bundle-staging-") as tmp:
        verified = client.fetch_stage(decision.bundle_model, control_plane.STAGING, Path(tmp))
        assert verified is not None and verified.version == decision.candidate_version
        try:
            loaded = load_served(verified)
            checks.append(
                Check(name="loads and passes its self-test on the device side", passed=True, value="yes")
            )
        except ModelRejected as exc:
            loaded = None
            checks.append(
                Check(
                    name="loads and passes its self-test on the device side",
                    passed=False,
                    value="no",
                    detail=str(exc),
                )
            )
        if isinstance(loaded, LoadedBundle):
            published_figures = evaluate.evaluate_bundle(loaded.bundle, leaf, h.declared)
            top1 = published_figures.end_to_end.top1
            latency = evaluate.bundle_latency(loaded.bundle, images, d.staging.latency_images)
            size = sum(f.stat().st_size for f in Path(verified.path).rglob("*.onnx"))
            checks += [
                Check(
                    name="end-to-end top-1 of the published copy equals the gate's",
                    passed=abs(top1 - e.top1) <= 1e-9,
                    value=top1,
                    limit=e.top1,
                ),
                *[
                    Check(
                        name=f"detector {g}: mAP50 of the published copy equals the gate's",
                        passed=abs(route.map50 - decision.candidate.detectors[g].map50) <= 1e-9,
                        value=route.map50,
                        limit=decision.candidate.detectors[g].map50,
                    )
                    for g, route in published_figures.detectors.items()
                    if g in decision.candidate.detectors
                ],
                Check(
                    name="latency p95 (ms)",
                    passed=latency["p95"] <= d.staging.max_latency_p95_ms,
                    value=latency["p95"],
                    limit=d.staging.max_latency_p95_ms,
                ),
                Check(
                    name="models size (MB)",
                    passed=size <= d.staging.max_model_mb * 2**20,
                    value=round(size / 2**20, 2),
                    limit=d.staging.max_model_mb,
                ),
            ]
    passed = all(c.passed for c in checks)
    outcome.stage = "staging"
    outcome.staging_checks = checks
    outcome.reasons = ["staging checks passed" if passed else "staging checks failed: production unchanged"]
    log_metadata(
        metadata={
            "staging_checks_passed": passed,
            "channel_uri": published.uri,
            "channel_root": channel,
            "manifest_sha256": published.manifest_sha256,
            "public_key_uri": publisher.public_key_file(),
        },
        infer_model=True,
    )
    logger.info(
        "Bundle %s version %s staged at %s: %s",
        decision.bundle_model,
        decision.candidate_version,
        published.uri,
        outcome.reasons[0],
    )
    return outcome
