"""Launching pipelines with a use-case configuration and reading back what they made.

Kept apart from ``run.py`` so that the command line stays thin and tests launch
pipelines exactly as users do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zenml.models import PipelineRunResponse

from pipelines.data_pipeline import data_pipeline
from stacks.options import run_options
from steps.monitoring import production_target
from visionloop import constants
from visionloop.config import REPO_ROOT, DataSettings, VisionloopConfig
from visionloop.data.dataset import ImageDataset
from visionloop.data.sources import fingerprint, open_source
from visionloop.data.split import split_summary
from visionloop.data.types import QuarantineReport


def cached_steps(run: PipelineRunResponse) -> list[str]:
    """Names of the steps of ``run`` that were taken from the cache."""
    return sorted(n for n, s in run.steps.items() if s.status.value == "cached")


@dataclass
class DataRunResult:
    artifact_id: str
    run: PipelineRunResponse
    dataset: ImageDataset
    report: QuarantineReport

    @property
    def cached_steps(self) -> list[str]:
        return cached_steps(self.run)

    def summary(self) -> dict[str, Any]:
        stats = self.dataset.stats()
        return {
            "pipeline": constants.DATA_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "dataset_version_id": self.dataset.version_id,
            "source": self.dataset.manifest.source,
            "label_format": self.dataset.manifest.label_format,
            "images": stats["images"],
            "labeled": stats["labeled"],
            "unlabeled": stats["unlabeled"],
            "per_split": stats["per_split"],
            "boxes_per_class": stats["boxes_per_class"],
            "images_per_class": stats["images_per_class"],
            "qa": {
                "total": self.report.total,
                "accepted": self.report.accepted,
                "quarantined": self.report.quarantined,
                "quarantined_by_rule": self.report.counts_by_rule(),
                "ignored_files": len(self.report.ignored),
            },
            "splits": split_summary(self.dataset.manifest.split_plan, self.report.leakage),
            "cached_steps": self.cached_steps,
        }


def output(run: PipelineRunResponse, step: str, name: str) -> Any:
    return run.steps[step].outputs[name][0].load()


def data_parameters(settings: DataSettings) -> dict[str, Any]:
    source = open_source(settings.source, settings.s3_endpoint)
    return {
        "source": source.uri,
        "source_fingerprint": fingerprint(source),
        "label_format": settings.format,
        "class_names": settings.class_names,
        "group_pattern": settings.group_pattern,
        "group_field": settings.group_field,
        "s3_endpoint": settings.s3_endpoint,
        "qa_settings": settings.qa.model_dump(),
        "split_settings": settings.split.model_dump(),
    }


def schedule_data_pipeline(settings: DataSettings) -> dict[str, Any]:
    """Hand the data pipeline to the orchestrator with the active stack's
    ``schedules.data`` instead of running it now. Each scheduled run re-reads the source
    (the cache is off: the listing's fingerprint is taken when a run starts here, not
    there), so new raw images become a new data set version."""
    options = run_options(data_pipeline, schedule="data")
    data_pipeline.with_options(enable_cache=False, **options)(**data_parameters(settings))
    schedule = options["schedule"]
    return {
        "pipeline": constants.DATA_PIPELINE,
        "schedule": schedule.cron_expression or f"every {schedule.interval_second}",
        "source": settings.source,
    }


def run_data_pipeline(settings: DataSettings, enable_cache: bool = True) -> DataRunResult:
    """Fingerprint the source (so new or changed files invalidate the cache), run the
    data pipeline on the active stack and load its outputs."""
    run = data_pipeline.with_options(enable_cache=enable_cache, **run_options(data_pipeline))(
        **data_parameters(settings)
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    run = run.get_hydrated_version()
    return DataRunResult(
        artifact_id=str(run.steps["split_dataset"].outputs[constants.IMAGE_DATASET][0].id),
        run=run,
        dataset=output(run, "split_dataset", constants.IMAGE_DATASET),
        report=output(run, "check_images", constants.QUARANTINE_REPORT),
    )


@dataclass
class TrainRunResult:
    """``reused``: nothing changed since the run that made this model version, so no
    pipeline ran and no version was registered; ``run`` is that earlier run."""

    run: PipelineRunResponse
    registration: Any
    report: Any
    tuning: Any = None
    reused: bool = False

    @property
    def cached_steps(self) -> list[str]:
        return cached_steps(self.run)

    def summary(self) -> dict[str, Any]:
        r, reg = self.report, self.registration
        return {
            "pipeline": constants.TRAINING_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "model": reg.model_name,
            "model_version": reg.model_version,
            "mlflow_run_id": reg.mlflow_run_id,
            "mlflow_model_version": reg.mlflow_model_version,
            "dataset_version_id": reg.dataset_version_id,
            "test": {
                "map50": round(r.test.map50, 4),
                "map50_95": round(r.test.map50_95, 4),
                "precision": round(r.test.precision, 4),
                "recall": round(r.test.recall, 4),
                "images": r.test.images,
            },
            "onnx": {"map50": round(r.onnx.map50, 4), "map50_95": round(r.onnx.map50_95, 4)},
            "int8": (
                {"map50": round(r.int8.map50, 4), "map50_95": round(r.int8.map50_95, 4), "kept": r.int8_kept}
                if r.int8
                else None
            ),
            "parity": r.parity,
            "parity_ok": r.parity_ok,
            "train_seconds": round(r.train_seconds, 1),
            "imgsz": self.tuning.best_params.imgsz if self.tuning else None,
            "tuning_overrides": [o.describe() for o in self.tuning.overrides] if self.tuning else [],
            "reused": self.reused,
            "cached_steps": self.cached_steps,
        }


def code_commit() -> str | None:
    """The git commit of the working tree (with ``-dirty`` when it has changes)."""
    import subprocess

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=REPO_ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def base_params(config: VisionloopConfig) -> Any:
    """The configured training parameters (``train`` section) as ``TrainParams``."""
    from visionloop.training.types import TrainParams

    return TrainParams(**config.train.model_dump(exclude={"weights"}))


def run_training_pipeline(
    config: VisionloopConfig, dataset_artifact_id: str, enable_cache: bool = True, reuse: bool = True
) -> TrainRunResult:
    """Tune, train, evaluate, export and register a model for ``config`` on the data
    set artifact ``dataset_artifact_id``; one ZenML model version per run. When an
    earlier run trained a version from exactly these inputs (``training_key``), that
    version is returned and nothing runs (``reuse=False``: run anyway, registering a new
    version from the cached steps)."""
    from zenml import Model

    from pipelines.training_pipeline import training_pipeline
    from visionloop.training.tuning import TUNED, search_space, trial_params

    t = config.train
    base = base_params(config)
    tune = config.tune
    space = search_space(base, tune.space.lr0, tune.space.augment, tune.space.imgsz)
    trials = trial_params(base, **space, trials=tune.trials, epochs=tune.epochs, seed=tune.seed)
    written = sorted(name for name in TUNED if name in t.model_fields_set)
    e = config.export
    parameters: dict[str, Any] = {
        "dataset_artifact_id": dataset_artifact_id,
        "trials": [p.model_dump() for p in trials],
        "base_params": base.model_dump(),
        "weights": t.weights,
        "tune_subset": tune.subset,
        "opset": e.opset,
        "int8": e.int8,
        "calibration_images": e.calibration_images,
        "evaluation": {
            "parity_max_map50_diff": e.parity_max_map50_diff,
            "parity_min_match_share": e.parity_min_match_share,
            "int8_max_map50_drop": e.int8_max_map50_drop,
            "device": t.device,
            "serving_conf": config.deploy.thresholds.conf,
        },
        "model_name": config.registered_model_name,
        "code_commit": code_commit(),
        "written": written,
    }
    key = training_key(parameters)
    if enable_cache and reuse:
        earlier = find_trained_version(config.registered_model_name, key)
        if earlier is not None:
            return earlier
    model = Model(
        name=config.registered_model_name,
        description=f"visionloop detector for {config.name}",
        tags=["visionloop", config.name],
    )
    options = run_options(training_pipeline)
    run = training_pipeline.with_options(enable_cache=enable_cache, model=model, **options)(
        **parameters, training_key=key
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    return training_result(run.get_hydrated_version())


def training_result(run: PipelineRunResponse, reused: bool = False) -> TrainRunResult:
    return TrainRunResult(
        run=run,
        registration=output(run, "register_model", "model_registration"),
        report=output(run, "evaluate_model", constants.EVALUATION_REPORT),
        tuning=output(run, "select_params", constants.TUNING_RESULT),
        reused=reused,
    )


def training_key(parameters: dict[str, Any]) -> str:
    """A hash of everything a training run is made from: the data set artifact, the
    trials, the parameters, the weights, the export and evaluation settings, and the
    source of the training pipeline, its steps and the code they run (the files of the
    steps' cache policies), so that an edit re-trains even in a tree that was already
    dirty. The code commit is left out: a commit that changes none of that code changes
    no model. The same key means the same model."""
    import hashlib
    import json

    from steps.training.cache_policy import EVALUATION_CODE

    digest = hashlib.sha256()
    stable = {k: v for k, v in parameters.items() if k != "code_commit"}
    digest.update(json.dumps(stable, sort_keys=True, default=str).encode())
    code = sorted({*EVALUATION_CODE, "pipelines/training_pipeline.py"}) + sorted(
        str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "steps" / "training").glob("*.py")
    )
    for name in code:
        path = REPO_ROOT / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()


def find_trained_version(model_name: str, key: str) -> TrainRunResult | None:
    """The model version an earlier run trained from exactly these inputs, with that
    run's outputs; None when there is none (or its run is gone)."""
    from zenml.client import Client

    client = Client()
    try:
        versions = client.list_model_versions(model=model_name, size=50, sort_by="desc:number")
    except KeyError:
        return None
    for version in versions:
        if version.run_metadata.get("training_key") != key:
            continue
        for run_id in version.pipeline_run_ids.values():
            run = client.get_pipeline_run(run_id)
            if run.pipeline is not None and run.pipeline.name == constants.TRAINING_PIPELINE:
                return training_result(run, reused=True)
    return None


@dataclass
class DeployRunResult:
    run: PipelineRunResponse
    decision: Any
    staging: Any
    outcome: Any
    channel: str
    public_key: str | None = None

    def summary(self) -> dict[str, Any]:
        d, s, o = self.decision, self.staging, self.outcome
        return {
            "pipeline": constants.DEPLOYMENT_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "model": o.model_name,
            "model_version": o.version,
            "stage": o.stage,
            "waiting_for_approval": o.waiting_for_approval,
            "production_version": o.production_version,
            "archived_version": o.archived_version,
            "gate": {
                "passed": d.passed,
                "reasons": d.reasons,
                "candidate_map50": round(d.candidate.map50, 4),
                "candidate_map50_95": round(d.candidate.map50_95, 4),
                "production_version": d.production_version,
                "production_map50": round(d.production.map50, 4) if d.production else None,
                "production_map50_95": round(d.production.map50_95, 4) if d.production else None,
            },
            "staging": {
                "passed": s.passed,
                "skipped": s.skipped,
                "latency_ms": s.latency_ms,
                "reasons": s.reasons,
            },
            "channel": self.channel,
            "public_key": self.public_key,
            "pointers": o.pointers,
            "reasons": o.reasons,
        }


def resolve_channel(config: VisionloopConfig) -> str:
    """The configured channel, else ``$VISIONLOOP_CHANNEL``, else the active stack's."""
    from steps.deployment.control_plane import default_channel

    return config.deploy.channel or default_channel()


def run_deployment_pipeline(
    config: VisionloopConfig, dataset_artifact_id: str, model_version: str
) -> DeployRunResult:
    """Gate, stage and promote ``model_version`` of the configured model, measured on
    the data set artifact ``dataset_artifact_id``'s test split."""
    from zenml import Model

    from pipelines.deployment_pipeline import deployment_pipeline

    channel = resolve_channel(config)
    model = Model(name=config.registered_model_name, version=model_version)
    run = deployment_pipeline.with_options(model=model, **run_options(deployment_pipeline))(
        dataset_artifact_id=dataset_artifact_id, channel=channel, deploy=config.deploy.model_dump()
    )
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    run = run.get_hydrated_version()
    return DeployRunResult(
        run=run,
        decision=output(run, "gate_model", constants.PROMOTION_DECISION),
        staging=output(run, "stage_model", constants.STAGING_REPORT),
        outcome=output(run, "promote_model", constants.PROMOTION_OUTCOME),
        channel=channel,
        public_key=_public_key_uri(config.registered_model_name, model_version),
    )


def _public_key_uri(model_name: str, version: str) -> str | None:
    from zenml.client import Client

    value = Client().get_model_version(model_name, version).run_metadata.get("public_key_uri")
    return str(value) if value else None


@dataclass
class MonitorRunResult:
    run: PipelineRunResponse
    decision: Any
    logs: str

    def summary(self) -> dict[str, Any]:
        d = self.decision
        return {
            "pipeline": constants.MONITORING_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "logs": self.logs,
            "reference": d.reference,
            "window": d.window,
            "current_images": d.current_images,
            "enough_data": d.enough_data,
            "drift": d.drift,
            "drifted_features": d.drifted_features,
            "confidence_collapse": d.confidence_collapse,
            "low_confidence_share": d.low_confidence_share,
            "log": {k: v for k, v in d.log.items() if k != "examples"},
            "action": d.action,
            "model": d.model,
            "follow_up": d.follow_up.model_dump() if d.follow_up else None,
            "reasons": d.reasons,
        }


def monitoring_parameters(
    config: VisionloopConfig,
    since: datetime | None,
    until: datetime | None,
    logs: str | None,
    config_name: str | None,
) -> dict[str, Any]:
    """The monitoring pipeline's parameters. Without ``since``/``until`` the run picks
    its window when it executes (a scheduled run: the ``window_hours`` before it)."""
    from stacks.bootstrap import stack_setting
    from stacks.spec import StackError

    settings = config.monitor.model_copy()
    if settings.trigger_config is None and config_name:
        settings.trigger_config = config_name
    if not settings.trigger_url:  # the stack's trigger service, if its file names one
        try:
            settings.trigger_url = stack_setting("trigger_url") or None
        except StackError:
            settings.trigger_url = None
    return {
        "model_name": config.registered_model_name,
        "logs": logs or settings.logs or stack_setting("edge_logs"),
        "settings": settings.model_dump(),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "s3_endpoint": config.deploy.s3_endpoint,
        "thresholds": config.deploy.thresholds.model_dump(),
    }


def run_monitoring_pipeline(
    config: VisionloopConfig,
    since: datetime | None = None,
    until: datetime | None = None,
    logs: str | None = None,
    config_name: str | None = None,
) -> MonitorRunResult:
    """Compare the prediction logs of [since, until) (default: the last
    ``monitor.window_hours``) with the production model's data set version.
    ``config_name``: how the trigger service knows this configuration (for a follow-up
    asked through ``monitor.trigger_url``)."""
    from pipelines.monitoring_pipeline import monitoring_pipeline

    production_target(config.registered_model_name)  # a clear error before anything starts
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=config.monitor.window_hours)
    params = monitoring_parameters(config, since, until, logs, config_name)
    run = monitoring_pipeline.with_options(**run_options(monitoring_pipeline))(**params)
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    run = run.get_hydrated_version()
    return MonitorRunResult(
        run=run, decision=output(run, "detect_drift", constants.DRIFT_DECISION), logs=params["logs"]
    )


def schedule_monitoring_pipeline(
    config: VisionloopConfig, logs: str | None = None, config_name: str | None = None
) -> dict[str, Any]:
    """Hand the monitoring pipeline to the orchestrator with the active stack's
    ``schedules.monitor``. Each run resolves the production model and its window (the
    ``window_hours`` before it) when it executes; a drift's follow-up goes through
    ``monitor.trigger_url`` (without one, the decision is recorded and nothing starts)."""
    from pipelines.monitoring_pipeline import monitoring_pipeline

    options = run_options(monitoring_pipeline, schedule="monitor")
    params = monitoring_parameters(config, None, None, logs, config_name)
    monitoring_pipeline.with_options(**options)(**params)
    schedule = options["schedule"]
    settings = config.monitor
    follow_up = (
        "none (monitor.on_drift: none)"
        if settings.on_drift == "none"
        else f"{settings.on_drift} through {settings.trigger_url}"
        if settings.trigger_url
        else f"NOT started: {settings.on_drift} needs monitor.trigger_url in scheduled runs"
    )
    return {
        "pipeline": constants.MONITORING_PIPELINE,
        "schedule": schedule.cron_expression or f"every {schedule.interval_second}",
        "model": config.registered_model_name,
        "logs": params["logs"],
        "window_hours": settings.window_hours,
        "on_drift": follow_up,
    }


@dataclass
class LabelRunResult:
    run: PipelineRunResponse
    labeling_round: Any
    merge: Any
    dataset_artifact_id: str
    production_version: str | None
    retrain_after: int
    training: TrainRunResult | None = None
    deployment: DeployRunResult | None = None
    queue: Any = None

    @property
    def dataset_version_id(self) -> str:
        return str(self.merge.version)

    @property
    def new_labels(self) -> int:
        return int(self.merge.added)

    @property
    def triggered(self) -> bool:
        return self.new_labels >= self.retrain_after

    def summary(self) -> dict[str, Any]:
        r = self.labeling_round
        return {
            "pipeline": constants.LABELING_PIPELINE,
            "run": self.run.name,
            "status": self.run.status.value,
            "label_studio": r.studio_url,
            "project_id": r.project_id,
            "project": r.project_title,
            "project_url": r.project_url,
            "raw_images": r.raw_images,
            "created_tasks": r.created_tasks,
            "already_there": r.already_there,
            "images": r.counts(),
            "requeued_annotations": len(r.requeued),
            "feedback": self.queue.feedback() if self.queue is not None else None,
            "export": r.export_path,
            "production_version": self.production_version,
            "dataset_version_id": self.dataset_version_id,
            "base_version_id": self.merge.base_version,
            "new_labels": self.new_labels,
            "retrain_after": self.retrain_after,
            "retrain": self.triggered,
            "training": self.training.summary() if self.training else None,
            "deployment": self.deployment.summary() if self.deployment else None,
        }


class LabelingError(RuntimeError):
    pass


def labeling_base(config: VisionloopConfig, enable_cache: bool = True) -> tuple[str, str | None]:
    """(data set artifact id, production version): the production model's data set
    version, or, with no production model yet, the data pipeline's on the configured
    source."""
    from steps.deployment import control_plane

    production = control_plane.version_in_stage(config.registered_model_name, control_plane.PRODUCTION)
    if production is not None:
        artifact = production.get_artifact(constants.IMAGE_DATASET)
        if artifact is None:
            raise LabelingError(
                f"{config.registered_model_name} version {production.name} has no linked {constants.IMAGE_DATASET}"
            )
        return str(artifact.id), str(production.name)
    return run_data_pipeline(config.data, enable_cache=enable_cache).artifact_id, None


def raw_image_store(config: VisionloopConfig) -> str:
    """``label.raw_images``, else ``$VISIONLOOP_RAW_IMAGES``, else the active stack's; a
    local folder is created when missing (the edge may not have sent anything yet)."""
    import os

    from stacks.bootstrap import stack_setting

    raw = config.label.raw_images or os.environ.get("VISIONLOOP_RAW_IMAGES") or stack_setting("raw_images")
    if "://" not in raw:
        os.makedirs(raw, exist_ok=True)
    return raw


def run_labeling_pipeline(config: VisionloopConfig, retrain: bool = True) -> LabelRunResult:
    """One labeling round: queue the raw store's unlabeled images in Label Studio, pull
    and review what was annotated, make the new data set version; then, when the new
    labels reach ``label.retrain_after`` (and ``retrain``), train and deploy on it."""
    from zenml.client import Client

    from pipelines.labeling_pipeline import labeling_pipeline
    from steps.labeling.studio_client import studio

    studio(config.label).check()  # Label Studio down or the key wrong: say so before anything runs
    base_id, production_version = labeling_base(config)
    base = Client().get_artifact_version(base_id).load()
    title = config.label.project or f"visionloop {config.name}"
    try:
        run = _run_labeling(labeling_pipeline, config, base_id, list(base.class_names), title)
    except RuntimeError as exc:
        step, error = failed_step(constants.LABELING_PIPELINE)
        if error is None:
            raise
        raise LabelingError(
            f"the labeling run failed in step {step}: {error}. Re-run `python run.py label` to resume: "
            "tasks already in Label Studio are not created again and no annotation is lost"
        ) from exc
    if run is None:
        raise RuntimeError("the orchestrator returned no run; see the ZenML dashboard")
    run = run.get_hydrated_version()
    merged = run.steps["merge_labeled_images"].outputs[constants.IMAGE_DATASET][0]
    result = LabelRunResult(
        run=run,
        labeling_round=output(run, "pull_annotations", constants.LABELING_ROUND),
        queue=output(run, "gather_images", constants.LABEL_QUEUE),
        merge=output(run, "merge_labeled_images", constants.LABEL_MERGE),
        dataset_artifact_id=str(merged.id),
        production_version=production_version,
        retrain_after=config.label.retrain_after,
    )
    if retrain and result.triggered:
        result.training = run_training_pipeline(config, result.dataset_artifact_id)
        result.deployment = run_deployment_pipeline(
            config, result.dataset_artifact_id, str(result.training.registration.model_version)
        )
    return result


def failed_step(pipeline_name: str) -> tuple[str | None, str | None]:
    """(step name, the exception's last line) of the newest run of ``pipeline_name``
    that failed, from the step's recorded exception."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(
        pipeline_name=pipeline_name, sort_by="desc:created", size=1, hydrate=True
    )
    if not runs.items:
        return None, None
    for name, step in runs.items[0].steps.items():
        info = step.exception_info
        if step.status.value == "failed" and info is not None:
            lines = [line for line in info.traceback.strip().splitlines() if line.strip()]
            return name, lines[-1] if lines else None
    return None, None


def _run_labeling(
    pipeline: Any, config: VisionloopConfig, base_id: str, class_names: list[str], title: str
) -> Any:
    return pipeline(
        raw_images=raw_image_store(config),
        base_dataset_artifact_id=base_id,
        model_name=config.registered_model_name,
        class_names=class_names,
        project_title=title,
        label=config.label.model_dump(),
        prelabel_conf=config.deploy.thresholds.conf,
        group_pattern=config.data.group_pattern,
        qa_settings=config.data.qa.model_dump(),
        split_settings=config.data.split.model_dump(),
    )
