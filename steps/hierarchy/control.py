"""Promoting and rolling back a bundle as one: the bundle's channel pointer (what devices
switch on), then every pinned node version, through the control plane of
``steps/deployment/control_plane.py`` (channel pointer, ZenML stage, MLflow aliases,
stage history)."""

from __future__ import annotations

from steps.deployment import control_plane
from steps.deployment.control_plane import PromotionError, StageChange
from visionloop import constants
from visionloop.deploy.channel import ChannelPublisher
from visionloop.hierarchy.types import BundleManifest


def promote_as_one(
    bundle_model: str,
    version: str,
    manifest: BundleManifest,
    publisher: ChannelPublisher,
    who: str,
    why: str,
    run: str | None = None,
) -> tuple[StageChange, dict[str, str]]:
    """Production for the bundle version, then for each node version it pins that is
    not in production yet (its previous production version is archived). Returns the
    bundle's stage change and, per node, what happened."""
    target = control_plane.model_version(bundle_model, version)
    if not control_plane.staging_passed(target):
        raise PromotionError(
            f"{bundle_model} version {version} has not passed its staging checks; run "
            "`python run.py hierarchy` (which stages it) before promoting it"
        )
    change = control_plane.set_stage(
        bundle_model, version, control_plane.PRODUCTION, publisher, who, why, run
    )
    return change, nodes_to_production(
        manifest, publisher, who, f"pinned by {bundle_model} version {version}", run
    )


def nodes_to_production(
    manifest: BundleManifest, publisher: ChannelPublisher, who: str, why: str, run: str | None = None
) -> dict[str, str]:
    """Every node version a bundle pins to production (each model's previous holder is
    archived); per node, what happened."""
    nodes = {}
    for key, node in manifest.nodes.items():
        holder = control_plane.version_in_stage(node.model, control_plane.PRODUCTION)
        if holder is not None and str(holder.name) == node.version:
            nodes[key] = f"{node.model}:{node.version} already in production"
            continue
        control_plane.set_stage(node.model, node.version, control_plane.PRODUCTION, publisher, who, why, run)
        nodes[key] = f"{node.model}:{node.version} now in production" + (
            f" ({holder.name} archived)" if holder is not None else ""
        )
    return nodes


def rollback_as_one(
    bundle_model: str, publisher: ChannelPublisher, who: str, why: str
) -> tuple[StageChange, dict[str, str]]:
    """The previous production bundle back in production (its channel pointer, ZenML
    stage and MLflow alias, as ``control_plane.rollback`` does for one model), then the
    node versions it pins: each back in production, the versions that replaced them
    archived. Returns the bundle's stage change and, per node, what happened."""
    current = control_plane.version_in_stage(bundle_model, control_plane.PRODUCTION)
    change = control_plane.rollback(bundle_model, publisher, who, why)
    restored = control_plane.model_version(bundle_model, change.version)
    manifest: BundleManifest = control_plane.load_artifact(restored, constants.BUNDLE_MANIFEST)
    reason = f"rollback of {bundle_model} to version {change.version}" + (
        f" from {current.name}" if current is not None else ""
    )
    return change, nodes_to_production(manifest, publisher, who, reason + (f": {why}" if why else ""))
