"""Step: publish the candidate to the channel, point staging at it, and check it as
the edge runtime pulls it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from edge_runtime.channel import ChannelClient
from materializers.report_materializers import StagingReportMaterializer
from steps.deployment import control_plane
from visionloop import constants
from visionloop.config import DeploySettings
from visionloop.data.dataset import ImageDataset
from visionloop.deploy.release import build_release, staging_checks
from visionloop.deploy.types import PromotionDecision, StagingReport
from visionloop.training import evaluate
from visionloop.training.types import EvaluationReport, ModelBlob

logger = get_logger(__name__)


@step(enable_cache=False, output_materializers=StagingReportMaterializer)
def stage_model(
    decision: PromotionDecision, dataset: ImageDataset, channel: str, deploy: dict[str, Any]
) -> Annotated[StagingReport, constants.STAGING_REPORT]:
    """A candidate that passed the gate gets an immutable, signed version folder in the
    channel (float ONNX, the INT8 file when evaluation kept it, self-test samples from
    the test split), the ZenML stage ``staging``, the MLflow alias ``staging`` and the
    channel's staging pointer. Then the edge runtime's code pulls it from the channel,
    verifies it and runs the staging checks on that copy."""
    settings = DeploySettings(**deploy)
    if not decision.passed:
        return StagingReport(
            model_name=decision.model_name,
            version=decision.candidate_version,
            skipped=True,
            reasons=["rejected by the gate: " + "; ".join(decision.reasons)],
        )
    model = get_step_context().model
    report: EvaluationReport = control_plane.load_artifact(model, constants.EVALUATION_REPORT)
    onnx_model: ModelBlob = control_plane.load_artifact(model, constants.ONNX_MODEL)
    int8_model: ModelBlob | None = None
    if report.int8_kept:
        int8_model = control_plane.load_artifact(model, constants.ONNX_INT8_MODEL)
    records, images = evaluate.test_images(dataset)
    key = control_plane.signing_key(settings.signing_secret, create=True)
    publisher = control_plane.publisher(channel, key, settings.s3_endpoint, control_plane.ttl_of(settings))
    release = build_release(
        decision.model_name,
        decision.candidate_version,
        onnx_model,
        int8_model,
        images[: settings.self_test_images],
        settings.thresholds,
        {
            "dataset_version_id": decision.dataset_version_id,
            "code_commit": report.code_commit,
            "metrics": {"map50": decision.candidate.map50, "map50_95": decision.candidate.map50_95},
            "pipeline_run": get_step_context().pipeline_run.name,
        },
    )
    published = publisher.publish(release)
    public_key_uri = publisher.public_key_file()
    control_plane.set_stage(
        decision.model_name,
        decision.candidate_version,
        control_plane.STAGING,
        publisher,
        who="deployment pipeline",
        why="; ".join(decision.reasons),
        run=get_step_context().pipeline_run.name,
    )
    client = ChannelClient(publisher.store, key.public_raw)
    with tempfile.TemporaryDirectory(prefix="visionloop-staging-") as tmp:
        verified = client.fetch_stage(decision.model_name, control_plane.STAGING, Path(tmp))
        assert verified is not None and verified.version == decision.candidate_version
        channel_map50 = evaluate.score(
            evaluate.onnx_predictions(verified.model_path.read_bytes(), images), records, dataset.class_names
        ).map50
        staging = staging_checks(
            verified,
            images,
            settings.staging,
            parity_ok=report.parity_ok,
            parity_detail=str(report.parity),
            gate_map50=decision.candidate.map50,
            channel_map50=channel_map50,
        )
    staging.channel = published.uri
    log_metadata(
        metadata={
            "staging_checks_passed": staging.passed,
            "staging_reasons": staging.reasons,
            "channel_uri": published.uri,
            "channel_root": channel,
            "manifest_sha256": published.manifest_sha256,
            "latency_p95_ms": staging.latency_ms.get("p95", -1.0),
            "signing_key_id": key.key_id,
            "public_key_uri": public_key_uri,
        },
        infer_model=True,
    )
    logger.info(
        "Staging checks of %s version %s: %s",
        decision.model_name,
        decision.candidate_version,
        "; ".join(staging.reasons),
    )
    return staging
