"""A bundle of a hierarchy: pin node versions together, measure them end to end, gate,
stage in the channel and promote them as one."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.hierarchy import assemble_bundle, gate_bundle, promote_bundle, stage_bundle
from visionloop import constants


@pipeline(name=constants.HIERARCHY_BUNDLE_PIPELINE, enable_cache=False)
def hierarchy_bundle_pipeline(
    leaf_artifact_id: str,
    spec: dict[str, Any],
    pins: dict[str, str],
    channel: str,
    deploy: dict[str, Any],
    flat_version: str | None = None,
    code_commit: str | None = None,
) -> None:
    """Runs in the context of the bundle's ZenML model (``Model(<hierarchy>-bundle)``);
    ``pins`` maps ``parent`` and each group to the node version it bundles."""
    leaf = Client().get_artifact_version(leaf_artifact_id)
    manifest, evaluation = assemble_bundle(leaf, spec, pins, flat_version)
    decision = gate_bundle(manifest, evaluation, leaf, spec)
    staging = stage_bundle(decision, manifest, leaf, spec, channel, deploy, code_commit)
    promote_bundle(staging, manifest, channel, deploy)
