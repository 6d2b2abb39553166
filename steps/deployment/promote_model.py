"""Step: production, once the gate and the staging checks passed (unless a human
approval is required)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, step

from steps.deployment import control_plane
from visionloop import constants
from visionloop.config import DeploySettings
from visionloop.deploy.types import PromotionDecision, PromotionOutcome, StagingReport


@step(enable_cache=False)
def promote_model(
    decision: PromotionDecision, staging: StagingReport, channel: str, deploy: dict[str, Any]
) -> Annotated[PromotionOutcome, constants.PROMOTION_OUTCOME]:
    settings = DeploySettings(**deploy)
    name, version = decision.model_name, decision.candidate_version
    current = control_plane.version_in_stage(name, control_plane.PRODUCTION)
    outcome = PromotionOutcome(
        model_name=name,
        version=version,
        stage="rejected",
        production_version=str(current.name) if current is not None else None,
        channel=channel,
    )
    if not decision.passed:
        outcome.reasons = ["rejected by the gate: " + "; ".join(decision.reasons), "production unchanged"]
        return outcome
    outcome.stage = "staging"
    if not staging.passed:
        outcome.reasons = ["staging checks failed: " + "; ".join(staging.reasons), "production unchanged"]
        return outcome
    if settings.require_approval:
        outcome.waiting_for_approval = True
        outcome.reasons = [
            "waiting at staging for approval: "
            f"python run.py promote {name} {version} --to production --reason '...'"
        ]
        return outcome
    key = control_plane.signing_key(settings.signing_secret)
    publisher = control_plane.publisher(channel, key, settings.s3_endpoint, control_plane.ttl_of(settings))
    change = control_plane.set_stage(
        name,
        version,
        control_plane.PRODUCTION,
        publisher,
        who="deployment pipeline",
        why="gate and staging checks passed; no approval required",
        run=get_step_context().pipeline_run.name,
    )
    outcome.stage = "production"
    outcome.production_version = version
    outcome.archived_version = change.archived
    outcome.reasons = ["gate and staging checks passed: promoted to production"]
    outcome.pointers = {
        stage: p.version
        for stage in (control_plane.STAGING, control_plane.PRODUCTION)
        if (p := publisher.pointer(name, stage)) is not None
    }
    return outcome
