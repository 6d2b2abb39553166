"""Step: the bundle and its node versions to production, as one."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, step

from materializers.hierarchy_report_materializers import BundleOutcomeMaterializer
from steps.deployment import control_plane
from steps.hierarchy.control import promote_as_one
from visionloop import constants
from visionloop.hierarchy.spec import HierarchyDeploy
from visionloop.hierarchy.types import BundleManifest, BundleOutcome


@step(enable_cache=False, output_materializers=BundleOutcomeMaterializer)
def promote_bundle(
    staging: BundleOutcome, manifest: BundleManifest, channel: str, deploy: dict[str, Any]
) -> Annotated[BundleOutcome, constants.BUNDLE_OUTCOME]:
    """Production once the gate and the staging checks passed, unless approval is
    required (then ``python run.py hierarchy --promote VERSION``)."""
    d = HierarchyDeploy(**deploy)
    outcome = staging.model_copy(deep=True)
    current = control_plane.version_in_stage(staging.bundle_model, control_plane.PRODUCTION)
    outcome.production_version = str(current.name) if current is not None else None
    if staging.stage == "rejected" or not all(c.passed for c in staging.staging_checks):
        return outcome
    if d.require_approval:
        outcome.reasons = [
            f"waiting at staging for approval: python run.py hierarchy --config ... --promote {staging.version}"
        ]
        return outcome
    key = control_plane.signing_key(d.signing_secret)
    publisher = control_plane.publisher(channel, key, d.s3_endpoint)
    change, nodes = promote_as_one(
        staging.bundle_model,
        staging.version,
        manifest,
        publisher,
        who="hierarchy pipeline",
        why="bundle gate and staging checks passed; no approval required",
        run=get_step_context().pipeline_run.name,
    )
    outcome.stage = "production"
    outcome.production_version = staging.version
    outcome.archived_version = change.archived
    outcome.reasons = ["gate and staging checks passed: bundle promoted to production", *nodes.values()]
    outcome.pointers = {
        stage: p.version
        for stage in (control_plane.STAGING, control_plane.PRODUCTION)
        if (p := publisher.pointer(staging.bundle_model, stage)) is not None
    }
    return outcome
