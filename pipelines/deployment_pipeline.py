"""The deployment pipeline: gate a model version against production on the current
test split, publish it to the channel's staging pointer and check it there, then put
it in production (or leave it waiting for approval)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client

from steps.deployment import gate_model, promote_model, stage_model
from visionloop import constants


@pipeline(name=constants.DEPLOYMENT_PIPELINE, enable_cache=False)
def deployment_pipeline(dataset_artifact_id: str, channel: str, deploy: dict[str, Any]) -> None:
    """Runs in the context of the candidate's ZenML model version (``Model(name,
    version=...)`` in the pipeline options); ``dataset_artifact_id`` is the current data
    set version, whose test split both candidate and production are measured on."""
    dataset = Client().get_artifact_version(dataset_artifact_id)
    decision = gate_model(dataset, gate=deploy["gate"])
    staging = stage_model(decision, dataset, channel=channel, deploy=deploy)
    promote_model(decision, staging, channel=channel, deploy=deploy)
