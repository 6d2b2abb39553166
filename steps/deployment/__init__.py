"""Steps of the deployment pipeline: gate, stage (publish and check), promote."""

from steps.deployment.gate_model import gate_model
from steps.deployment.promote_model import promote_model
from steps.deployment.stage_model import stage_model

__all__ = ["gate_model", "promote_model", "stage_model"]
