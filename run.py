"""visionloop's command line.

Examples:
    python run.py                       # the main job: local stack, metal-tags data, training
    python run.py data --json           # the data pipeline; last line is a JSON summary
    python run.py train --config configs/metal_tags.yaml
    python run.py data --source s3://raw-images/batch1 --format coco
    python run.py stack                 # what is active
    python run.py stack register local  # register (idempotent) and activate a stack
    python run.py stack check kubernetes   # check a stack file against ZenML's classes, offline
    python run.py --stack local-s3 train   # any command on another stack, for this command only
    python run.py --stack kubernetes data --schedule   # the stack file's schedule, on its orchestrator
    python run.py dashboard             # ZenML dashboard + MLflow UI, offline; prints their URLs
    python run.py ui                    # the loop's status page: models, cards, FP/FN, try it, labeling
    python run.py trigger-server --token-file trigger-token   # start runs over HTTP
    python run.py deploy                # gate, stage and promote the latest model version
    python run.py promote metal-tags-detector 3 --to production --reason "reviewed"
    python run.py rollback metal-tags-detector
    python run.py models metal-tags-detector   # versions, stages and channel pointers
    python run.py monitor               # edge prediction logs against the training data (drift)
    python run.py --stack kubernetes monitor --schedule   # hourly, on the orchestrator
    python run.py label                 # a labeling round in Label Studio (prints the project URL)
    python run.py hierarchy --config configs/cifar10_tree.yaml   # parent + children, bundle, channel
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from stacks.bootstrap import quiet_zenml_env

quiet_zenml_env()

REPO_ROOT = Path(__file__).resolve().parent
# the main job's use case: $VISIONLOOP_CONFIG, else the bundled metal-tags demo
DEFAULT_CONFIG = Path(os.environ.get("VISIONLOOP_CONFIG") or REPO_ROOT / "configs" / "metal_tags.yaml")
FORMATS = ["auto", "yolo", "coco", "label-studio", "ground-truth", "none"]
ENVIRONMENTS = sorted(p.stem for p in (REPO_ROOT / "stacks").glob("*.yaml"))

no_cache_option = click.option("--no-cache", is_flag=True, help="Run every step even if nothing changed.")


def _inherited_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """A command's ``--config``, else the one given before the command
    (``python run.py --config X data``), else the metal-tags demo's."""
    if value is not None:
        return value
    root = ctx.find_root()
    if root is not ctx and root.params.get("config_path") is not None:
        return Path(root.params["config_path"])
    return DEFAULT_CONFIG


def config_option(help_text: str) -> Any:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        default=None,
        callback=_inherited_config,
        help=f"{help_text} [default: the one before the command, else configs/metal_tags.yaml]",
    )


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print a one-line JSON summary as the last line."
)


def emit(summary: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    for line in lines:
        click.echo(line)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True, default=str))


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def data_lines(summary: dict[str, Any]) -> list[str]:
    qa = summary["qa"]
    return [
        f"Data set version {summary['dataset_version_id']}",
        f"  source      {summary['source']} ({summary['label_format']})",
        f"  images      {summary['images']} ({summary['labeled']} labelled, "
        f"{summary['unlabeled']} unlabeled)",
        f"  splits      {counts(summary['per_split'])}",
        "  boxes       "
        + ("; ".join(f"{name}: {counts(per)}" for name, per in summary["boxes_per_class"].items()) or "none"),
        f"  QA          {qa['total']} in = {qa['accepted']} accepted + {qa['quarantined']} quarantined"
        + (f" ({counts(qa['quarantined_by_rule'])})" if qa["quarantined_by_rule"] else ""),
        *split_lines(summary.get("splits") or {}),
        f"  cached      {', '.join(summary['cached_steps']) or 'no step'}",
    ]


def counts(values: dict[str, Any]) -> str:
    """``{"train": 110, "val": 23}`` as ``train 110, val 23``: words, not a dict."""
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"


def split_lines(splits: dict[str, Any]) -> list[str]:
    """How the splits were made, and what straddles the source's declared splits."""
    if splits.get("mode") != "source":
        lines = ["  split mode  auto (group-aware, stratified, seeded)"]
    else:
        lines = [f"  split mode  source: kept {counts(splits['declared'])}"]
        if splits.get("carved"):
            lines.append(f"              carved from the source's train split: {counts(splits['carved'])}")
        if splits.get("assigned"):
            lines.append(f"              no declared split, split here: {counts(splits['assigned'])}")
    leaks = splits.get("straddling_groups", 0) + splits.get("identical_images", 0)
    if leaks:
        lines.append(
            f"  LEAKAGE     {splits['straddling_groups']} capture group(s) and {splits['identical_images']} "
            "identical image(s) straddle the source's splits (QA report):"
        )
        lines += [f"              - {e}" for e in splits.get("examples", [])]
    return lines


def load(config_path: Path) -> Any:
    from visionloop.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))


def run_data(
    config_path: Path, overrides: dict[str, Any], enable_cache: bool, schedule: bool = False
) -> tuple[dict[str, Any], str]:
    """Run the data pipeline; return its summary and the data set artifact's id (with
    ``schedule``: hand it to the orchestrator with the stack's schedule; no id)."""
    from pipelines.launch import run_data_pipeline
    from stacks.bootstrap import ensure_stack

    config = load(config_path)
    for key, value in overrides.items():
        if value is not None:
            setattr(config.data, key, value)
    if overrides.get("source") and overrides.get("format") is None:
        config.data.format = "auto"
    ensure_stack("local", activate=not _has_active_stack())
    if schedule:
        from pipelines.launch import schedule_data_pipeline
        from stacks.bootstrap import StackError

        try:
            return schedule_data_pipeline(config.data), ""
        except StackError as exc:
            fail(str(exc))
    try:
        result = run_data_pipeline(config.data, enable_cache=enable_cache)
    except Exception as exc:
        from visionloop.data.importers import LabelFormatError
        from visionloop.data.sources import SourceError

        if isinstance(exc, (LabelFormatError, SourceError)):
            fail(str(exc))
        raise
    return result.summary(), result.artifact_id


def run_train(config_path: Path, enable_cache: bool, deploy: bool = False) -> dict[str, Any]:
    """The data pipeline (cached when nothing changed), then the training pipeline on
    the data set version it produced, then (``deploy``) the deployment pipeline."""
    from pipelines.launch import run_training_pipeline

    data_summary, artifact_id = run_data(config_path, {}, enable_cache)
    for line in data_lines(data_summary):
        click.echo(line)
    result = run_training_pipeline(load(config_path), artifact_id, enable_cache=enable_cache)
    summary: dict[str, Any] = {"data": data_summary, "training": result.summary()}
    if deploy:
        for line in train_lines(summary):
            click.echo(line)
        registration = result.registration
        if result.reused and _in_production(registration.model_name, registration.model_version):
            summary["deployment"] = None  # nothing changed: no gate, no new pointer
            summary["unchanged"] = True
        else:
            summary["deployment"] = run_deploy(config_path, artifact_id, registration.model_version)
    return summary


def _in_production(model: str, version: str) -> bool:
    from steps.deployment import control_plane

    production = control_plane.version_in_stage(model, control_plane.PRODUCTION)
    return production is not None and str(production.name) == str(version)


def unchanged_lines(summary: dict[str, Any]) -> list[str]:
    t = summary["training"]
    return [
        f"Model {t['model']} version {t['model_version']} is UNCHANGED and stays in production: the data, "
        "the settings and the code are those it was trained from, so no version was registered and "
        "nothing was published (python run.py --no-cache trains anew)"
    ]


def run_deploy(config_path: Path, artifact_id: str, model_version: str) -> dict[str, Any]:
    from pipelines.launch import run_deployment_pipeline
    from visionloop.deploy.signing import SigningKeyError

    try:
        return run_deployment_pipeline(load(config_path), artifact_id, model_version).summary()
    except SigningKeyError as exc:
        fail(str(exc))
        raise


def deploy_lines(summary: dict[str, Any]) -> list[str]:
    d = summary
    gate = d["gate"]
    prod = (
        f"production version {gate['production_version']}: mAP50 {gate['production_map50']:.4f}  "
        f"mAP50-95 {gate['production_map50_95']:.4f}"
        if gate["production_version"]
        else "no production version yet (thresholds alone)"
    )
    stage = {
        "production": f"is in PRODUCTION (archived: {d['archived_version'] or 'none'})",
        "staging": "waits at STAGING"
        + (" for approval" if d["waiting_for_approval"] else " (checks failed)"),
        "rejected": f"was REJECTED; production stays at version {d['production_version'] or 'none'}",
    }[d["stage"]]
    lines = [
        f"Model {d['model']} version {d['model_version']} {stage}",
        f"  gate        {'passed' if gate['passed'] else 'failed'}: candidate mAP50 {gate['candidate_map50']:.4f}  "
        f"mAP50-95 {gate['candidate_map50_95']:.4f}; {prod}",
    ]
    lines += [f"              - {r}" for r in gate["reasons"]]
    if not d["staging"]["skipped"]:
        lines.append(
            f"  staging     {'passed' if d['staging']['passed'] else 'FAILED'}; latency "
            + latency_words(d["staging"]["latency_ms"])
        )
        if not d["staging"]["passed"]:
            lines += [f"              - {r}" for r in d["staging"]["reasons"]]
    lines += [f"  next        {r}" for r in d["reasons"] if r.startswith("waiting")]
    lines.append(
        f"  channel     {d['channel']}  pointers {counts(d['pointers']) if d['pointers'] else '(unchanged)'}"
    )
    if d.get("public_key"):
        lines.append(f"  public key  {d['public_key']} (give it to devices: edge_runtime --public-key)")
    return lines


def train_lines(summary: dict[str, Any]) -> list[str]:
    t = summary["training"]
    int8 = t["int8"]
    return [
        f"Model {t['model']} version {t['model_version']} (MLflow run {t['mlflow_run_id']}, "
        f"registered version {t['mlflow_model_version']})",
        f"  test split  mAP50 {t['test']['map50']:.4f}  mAP50-95 {t['test']['map50_95']:.4f}  "
        f"({t['test']['images']} held-out images)",
        f"  ONNX        mAP50 {t['onnx']['map50']:.4f}  parity {'ok' if t['parity_ok'] else 'FAILED'}: "
        + parity_words(t["parity"]),
        f"  INT8        {'kept' if int8 and int8['kept'] else 'not kept'}"
        + (f", mAP50 {int8['map50']:.4f}" if int8 else ""),
        f"  training    {t['train_seconds']:.0f} s at {t.get('imgsz')} px; "
        + (
            "REUSED: nothing changed since the run that trained it"
            if t.get("reused")
            else f"cached steps: {', '.join(t['cached_steps']) or 'none'}"
        ),
        *(f"  tuning      {o}" for o in t.get("tuning_overrides", [])),
        "  see it:     mlflow ui --backend-store-uri " + mlflow_uri(),
    ]


def latency_words(latency: Any) -> str:
    if not isinstance(latency, dict) or not latency:
        return "not measured"
    parts = [f"{k} {latency[k]:.1f} ms" for k in ("p50", "p95") if isinstance(latency.get(k), int | float)]
    return ", ".join(parts) + (f" over {int(latency['n'])} images" if latency.get("n") else "")


def parity_words(parity: dict[str, Any]) -> str:
    """ONNX against PyTorch in words: the mAP50 difference and the share of boxes found again."""
    diff = parity.get("map50_diff")
    share = parity.get("boxes_matched_share")
    words = [f"mAP50 {diff:+.4f}" if isinstance(diff, int | float) else ""]
    if isinstance(share, int | float):
        words.append(f"{share:.0%} of the PyTorch boxes found again")
    return ", ".join(w for w in words if w)


def mlflow_uri() -> str:
    from zenml.client import Client

    tracker: Any = Client().active_stack.experiment_tracker
    return str(tracker.get_tracking_uri()) if tracker is not None else "(no experiment tracker)"


def _has_active_stack() -> bool:
    """True when the user already activated a visionloop stack (keep it)."""
    from zenml.client import Client

    return bool(Client().active_stack_model.name.startswith("visionloop-"))


def use_stack(env: str) -> None:
    """``--stack ENV``: register the stack of ``stacks/ENV.yaml`` if needed and use it
    for this command only (``ZENML_ACTIVE_STACK_ID``); ``stack register ENV`` is what
    makes it the active stack."""
    import os

    from zenml.client import Client

    from stacks.bootstrap import StackError, ensure_stack, s3_environment

    try:
        name = ensure_stack(env, activate=False)
    except StackError as exc:
        fail(str(exc))
        raise
    except KeyError as exc:  # a flavor ZenML does not know: its integration is not installed
        fail(f"stacks/{env}.yaml: {exc}; install the stack's integrations (docs/deploy.md)")
        raise
    os.environ["ZENML_ACTIVE_STACK_ID"] = str(Client().get_stack(name).id)
    s3_environment(env)


@click.group(invoke_without_command=True)
@config_option("Use-case configuration for the main job.")
@click.option(
    "--stack",
    "stack_env",
    type=click.Choice(ENVIRONMENTS),
    help="Run on the stack of stacks/ENV.yaml (registered if needed) for this command only.",
)
@no_cache_option
@json_option
@click.pass_context
def cli(ctx: click.Context, config_path: Path, stack_env: str | None, no_cache: bool, as_json: bool) -> None:
    """visionloop: a closed-loop MLOps system for computer vision on ZenML.

    With no command, runs the main job on the local stack: the data pipeline on the
    bundled metal-tags set, the training pipeline (tune, train, evaluate on the test
    split, export ONNX and INT8, register a model version), then the deployment pipeline
    (gate against production, publish to the local model channel, staging checks,
    production).
    """
    if stack_env is not None:
        use_stack(stack_env)
    if ctx.invoked_subcommand is not None:
        return
    summary = run_train(config_path, enable_cache=not no_cache, deploy=True)
    lines = unchanged_lines(summary) if summary.get("unchanged") else deploy_lines(summary["deployment"])
    summary["edge_command"] = edge_command(load(config_path))
    if summary["edge_command"]:
        lines += [
            "",
            "Serve it on a device (uncertain images go back to the raw image store):",
            "  " + summary["edge_command"],
        ]
    emit({"job": "main", **summary}, as_json, lines)


def edge_argv(config: Any, state_dir: str = "edge-state", port: int | None = None) -> list[str] | None:
    """The edge runtime's arguments that serve the production model of ``config`` from its
    channel and send feedback to its raw image store (None when nothing is in production)."""
    from pipelines.launch import raw_image_store, resolve_channel
    from steps.deployment import control_plane

    name = config.registered_model_name
    production = control_plane.version_in_stage(name, control_plane.PRODUCTION)
    if production is None:
        return None
    key = production.run_metadata.get("public_key_uri") or "<the channel's public key>"
    argv = ["serve", "--channel", resolve_channel(config), "--model", name, "--public-key", str(key)]
    argv += ["--feedback", raw_image_store(config), "--state-dir", state_dir]
    return argv + (["--port", str(port)] if port is not None else [])


def edge_command(config: Any) -> str | None:
    argv = edge_argv(config)
    return "python -m edge_runtime " + " ".join(argv) if argv else None


@cli.command()
@click.argument("source")
@click.option(
    "--name", help="The use case's name (default: the source folder's name); the file is configs/NAME.yaml."
)
@click.option(
    "--task",
    type=click.Choice(["detect", "classify"]),
    default="detect",
    show_default=True,
    help="What the model does.",
)
@click.option("--format", "label_format", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--class-names", help="Comma-separated class names in class-id order, for labels that carry ids only."
)
@click.option("--s3-endpoint", help="S3 API endpoint for an s3:// source, e.g. http://127.0.0.1:5000.")
@click.option("--device", help="Training device (default: cuda:0 when torch sees a GPU, else cpu).")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the configuration (default: configs/NAME.yaml).",
)
@click.option(
    "--budget",
    "budget_min",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Minutes the full training may take on a CPU (epochs are fitted to it).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
@json_option
def init(
    source: str,
    name: str | None,
    task: str,
    label_format: str,
    class_names: str | None,
    s3_endpoint: str | None,
    device: str | None,
    output: Path | None,
    budget_min: float,
    force: bool,
    as_json: bool,
) -> None:
    """Inspect SOURCE (a folder or s3://bucket/prefix) and write a use-case
    configuration derived from it, each setting with the reason it was chosen.

    \b
    Example:
        python run.py init ~/data/steel-defects --name steel
        python run.py --config configs/steel.yaml
    """
    from visionloop.data.importers import LabelFormatError
    from visionloop.data.profile import profile_source
    from visionloop.data.sources import SourceError, open_source
    from visionloop.onboarding import derive, render_yaml, slug

    if task == "classify":
        fail(
            "init writes detection configurations for now; classifiers are trained as the nodes of "
            "a hierarchy: start from configs/cifar10_tree.yaml (python run.py hierarchy --config ...)"
        )
    name = slug(name or source.rstrip("/").rsplit("/", 1)[-1])
    target = output or REPO_ROOT / "configs" / f"{name}.yaml"
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to overwrite it, or --name to write another")
    if "://" not in source and not Path(source).is_dir():
        fail(f"{source}: no such folder (init takes a folder or an s3://bucket/prefix)")
    names = [n.strip() for n in class_names.split(",") if n.strip()] if class_names else None
    try:
        profile = profile_source(open_source(source, s3_endpoint), label_format, names)
        derived = derive(profile, name, device or _default_device(), budget_s=budget_min * 60)
    except LabelFormatError as exc:
        hint = " (init: pass --class-names a,b,...)" if "class_names" in str(exc) else ""
        fail(f"{exc}{hint}")
        raise
    except (SourceError, ValueError) as exc:
        fail(str(exc))
        raise
    target = target.resolve()
    shown = str(target.relative_to(REPO_ROOT) if target.is_relative_to(REPO_ROOT) else target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml(derived, profile, target, shown))
    config = load(target)  # what was written loads as a valid configuration
    lines = [
        *profile.lines(),
        "",
        f"Wrote {shown} (model {config.registered_model_name}):",
        *(f"  {key:<18} {s.value}  ({s.why})" for key, s in derived.settings.items()),
        "",
        "Next:",
        f"  python run.py --config {shown} data   # the data pipeline alone: QA, splits, leakage check",
        f"  python run.py --config {shown}        # the main job: data, tune, train, gate, publish",
        "  python run.py dashboard   # the runs, the QA report, the evaluation report",
    ]
    summary = {
        "config": str(target),
        "name": name,
        "profile": profile.model_dump(),
        "settings": {k: s.value for k, s in derived.settings.items()},
    }
    emit(summary, as_json, lines)


def _default_device() -> str:
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


@cli.command()
@config_option("Use-case configuration (data section).")
@click.option("--source", help="A folder or s3://bucket/prefix instead of the config's source.")
@click.option(
    "--format",
    "label_format",
    type=click.Choice(FORMATS),
    help="Label format of --source (default: auto-detect).",
)
@click.option("--class-names", help="Comma-separated class names, in class-id order.")
@click.option(
    "--group-pattern",
    help="Regex on the file name; its 'group' (or first) group is the capture group kept in one split.",
)
@click.option(
    "--group-field",
    help="A label field (CSV column, COCO image key, Label Studio data key) "
    "naming the capture group, instead of --group-pattern.",
)
@click.option("--s3-endpoint", help="S3 API endpoint, e.g. http://127.0.0.1:5000 for a local server.")
@click.option(
    "--schedule",
    is_flag=True,
    help="Hand the pipeline to the stack's orchestrator with its schedules.data instead of running it now.",
)
@no_cache_option
@json_option
def data(
    config_path: Path,
    source: str | None,
    label_format: str | None,
    class_names: str | None,
    group_pattern: str | None,
    group_field: str | None,
    s3_endpoint: str | None,
    schedule: bool,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Run the data pipeline: ingest, QA, version and split.

    \b
    python run.py data
    python run.py data --source ./my-images --format yolo --json
    """
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    overrides = {
        "source": source,
        "format": label_format,
        "class_names": names,
        "group_pattern": group_pattern,
        "group_field": group_field,
        "s3_endpoint": s3_endpoint,
    }
    summary, _ = run_data(config_path, overrides, enable_cache=not no_cache, schedule=schedule)
    if schedule:
        emit(summary, as_json, [f"Data pipeline scheduled ({summary['schedule']}) on {summary['source']}"])
        return
    emit(summary, as_json, data_lines(summary))


@cli.command()
@config_option("Use-case configuration (data, tune, train, export sections).")
@no_cache_option
@json_option
def train(config_path: Path, no_cache: bool, as_json: bool) -> None:
    """Run the data pipeline, then tune, train, evaluate, export and register a model.

    \b
    python run.py train
    python run.py train --config configs/my_use_case.yaml --json
    """
    summary = run_train(config_path, enable_cache=not no_cache)
    emit(summary, as_json, train_lines(summary))


@cli.command()
@config_option("Use-case configuration (data and deploy sections).")
@click.option("--model-version", help="The model version to deploy (default: the latest).")
@json_option
def deploy(config_path: Path, model_version: str | None, as_json: bool) -> None:
    """Gate a model version against production, stage it in the channel, promote it.

    \b
    python run.py deploy                       # the latest version of the configured model
    python run.py deploy --model-version 3 --json
    """
    from zenml.client import Client

    config = load(config_path)
    _, artifact_id = run_data(config_path, {}, enable_cache=True)
    if model_version is None:
        try:
            model_version = str(Client().get_model_version(config.registered_model_name).name)
        except KeyError:
            fail(f"model {config.registered_model_name} has no version yet: run `python run.py train` first")
    summary = run_deploy(config_path, artifact_id, str(model_version))
    emit(summary, as_json, deploy_lines(summary))


channel_option = click.option(
    "--channel",
    help="The model channel (folder or s3://...); default: where the model was published, "
    "else the configured one.",
)


def control_plane_call(
    config_path: Path,
    model: str,
    channel: str | None,
    action: Any,
    version: str | None = None,
    key_optional: bool = False,
) -> dict[str, Any]:
    """Run a control-plane action with the model's channel and the signing key;
    refusals become one clear error line."""
    from edge_runtime.channel import VerificationError
    from edge_runtime.storage import StorageError
    from pipelines.launch import resolve_channel
    from stacks.bootstrap import ensure_stack
    from steps.deployment import control_plane
    from visionloop.deploy.signing import SigningKeyError

    config = load(config_path)
    ensure_stack("local", activate=not _has_active_stack())
    if is_bundle(model):
        fail(
            f"{model} is a hierarchy bundle: the node versions it pins move with it. Use "
            "`python run.py hierarchy --config <its hierarchy config> --promote VERSION` or `--rollback`"
        )
    try:
        channel = channel or control_plane.recorded_channel(model, version) or resolve_channel(config)
        try:
            key = control_plane.signing_key(config.deploy.signing_secret)
        except SigningKeyError:
            if not key_optional:
                raise
            key = None
        publisher = (
            control_plane.publisher(channel, key, config.deploy.s3_endpoint, config.deploy.pointer_ttl_hours)
            if key
            else None
        )
        result: dict[str, Any] = action(control_plane, publisher)
        return result
    except (control_plane.PromotionError, SigningKeyError, VerificationError, StorageError) as exc:
        fail(str(exc))
        raise


def is_bundle(model: str) -> bool:
    """Whether ``model`` is a hierarchy's bundle model (its versions hold a bundle manifest)."""
    from zenml.client import Client

    from visionloop import constants

    try:
        latest = Client().get_model_version(model)
    except KeyError:
        return False
    return latest.get_artifact(constants.BUNDLE_MANIFEST) is not None


def change_lines(change: dict[str, Any]) -> list[str]:
    return [
        f"Model {change['model']} version {change['version']} is now in {change['stage']}"
        + (f"; version {change['archived']} archived" if change["archived"] else ""),
        f"  channel     {change['channel']} (pointer sequence {change['pointer_sequence']})",
    ]


@cli.command()
@click.argument("model")
@click.argument("version")
@click.option("--to", "stage", type=click.Choice(["staging", "production"]), required=True)
@click.option("--reason", default="", help="Why (recorded with who and when).")
@click.option("--by", "who", help="Who approves (default: the current user).")
@click.option("--force", is_flag=True, help="Promote to production without passed staging checks.")
@channel_option
@config_option("Use-case configuration (deploy section: channel, signing secret).")
@json_option
def promote(
    model: str,
    version: str,
    stage: str,
    reason: str,
    who: str | None,
    force: bool,
    channel: str | None,
    config_path: Path,
    as_json: bool,
) -> None:
    """Move a model version to staging or production (ZenML, MLflow and the channel).

    \b
    python run.py promote metal-tags-detector 3 --to production --reason "reviewed the staging report"
    """
    from dataclasses import asdict

    def action(cp: Any, publisher: Any) -> dict[str, Any]:
        return asdict(
            cp.promote(model, version, stage, publisher, who, reason or "approved with run.py promote", force)
        )

    change = control_plane_call(config_path, model, channel, action, version)
    emit(change, as_json, change_lines(change))


@cli.command()
@click.argument("model")
@click.option("--reason", default="", help="Why (recorded with who and when).")
@click.option("--by", "who", help="Who rolls back (default: the current user).")
@channel_option
@config_option("Use-case configuration (deploy section: channel, signing secret).")
@json_option
def rollback(
    model: str, reason: str, who: str | None, channel: str | None, config_path: Path, as_json: bool
) -> None:
    """Put the previous production version of MODEL back in production."""
    from dataclasses import asdict

    change = control_plane_call(
        config_path, model, channel, lambda cp, pub: asdict(cp.rollback(model, pub, who, reason))
    )
    emit(change, as_json, change_lines(change))


@cli.command()
@click.argument("model", required=False)
@channel_option
@config_option("Use-case configuration (model name, channel).")
@json_option
def models(model: str | None, channel: str | None, config_path: Path, as_json: bool) -> None:
    """Versions of a model with their stages, and the channel's stage pointers."""
    name = model or load(config_path).registered_model_name
    info = control_plane_call(
        config_path, name, channel, lambda cp, pub: cp.status(name, pub), key_optional=True
    )
    where = (
        f"channel {info['channel']}, pointers {info['pointers']}"
        if "channel" in info
        else "no signing key here: channel pointers not verified, not shown"
    )
    lines = [
        f"Model {name}  ({where})",
        "  version  stage       created           test mAP50  mAP50-95  staging  last change",
    ]
    lines += [model_line(v) for v in info["versions"]]
    emit(info, as_json, lines)


def _fixed(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def model_line(v: dict[str, Any]) -> str:
    """One version as a row: rounded figures, words for flags, who changed its stage, when and why."""
    checks = {True: "passed", False: "FAILED", None: "not run"}.get(v.get("staging_checks_passed"), "-")
    change = v.get("last_change") or {}
    last = (
        f"{change.get('stage', '?')} {str(change.get('at', ''))[:16].replace('T', ' ')} by {change.get('by') or '?'}"
        + (f": {change['why']}" if change.get("why") else "")
        if change
        else ""
    )
    return (
        f"  {v['version']:>7}  {v['stage']:<10}  {v.get('created') or '-':<16}  {_fixed(v.get('test_map50')):>10}  "
        f"{_fixed(v.get('test_map50_95')):>8}  {checks:<7}  {last}"
    )


@cli.command()
@config_option("Use-case configuration (model name, monitor section).")
@click.option(
    "--since", type=click.DateTime(), help="Start of the window (default: window_hours before --until)."
)
@click.option("--until", type=click.DateTime(), help="End of the window (default: now).")
@click.option("--logs", help="Folder or s3:// prefix of the edge prediction logs (default: the stack's).")
@click.option(
    "--schedule",
    is_flag=True,
    help="Hand the pipeline to the stack's orchestrator with its schedules.monitor instead of running it now.",
)
@json_option
def monitor(
    config_path: Path, since: Any, until: Any, logs: str | None, schedule: bool, as_json: bool
) -> None:
    """Compare the edge's prediction logs with the production model's data set version
    (Evidently), decide whether they drifted, and act on it (monitor.on_drift).

    \b
    python run.py monitor                       # the last 24 hours
    python run.py monitor --since 2026-11-01 --until 2026-11-08 --json
    python run.py --stack kubernetes monitor --schedule   # every run: the window_hours before it
    """
    from datetime import UTC

    from pipelines.launch import run_monitoring_pipeline, schedule_monitoring_pipeline
    from stacks.bootstrap import ensure_stack
    from stacks.spec import StackError
    from steps.monitoring import MonitorError

    config = load(config_path)
    if schedule:
        if since or until:
            fail("--schedule takes no --since/--until: each scheduled run watches the window_hours before it")
        try:
            planned = schedule_monitoring_pipeline(config, logs, config_path.stem)
        except StackError as exc:
            fail(str(exc))
            raise
        emit(
            planned,
            as_json,
            [
                f"Monitoring pipeline scheduled ({planned['schedule']}) for {planned['model']}'s "
                f"production version, the last {planned['window_hours']} h of {planned['logs']}",
                f"  on drift    {planned['on_drift']}",
            ],
        )
        return
    ensure_stack("local", activate=not _has_active_stack())
    as_utc = [t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t for t in (since, until)]
    try:
        result = run_monitoring_pipeline(config, as_utc[0], as_utc[1], logs, config_path.stem)
    except MonitorError as exc:
        fail(str(exc))
        raise
    summary = result.summary()
    log = summary["log"]
    follow_up = summary["follow_up"]
    lines = [
        f"Monitoring {summary['model']}: "
        + (
            "DRIFT"
            if summary["drift"]
            else "no drift"
            if summary["enough_data"]
            else "TOO LITTLE DATA for a verdict"
        )
        + " "
        f"({summary['current_images']} images, logs {summary['logs']})",
        *[f"  - {r}" for r in summary["reasons"]],
        f"  log lines   {log.get('lines', 0)} read, {log.get('malformed', 0)} malformed, {log.get('empty', 0)} empty",
        f"  action      {summary['action']}"
        + (f": {result.decision.follow_up.describe()}" if follow_up else ""),
    ]
    # a run that asked the trigger service for the follow-up itself leaves nothing to start here
    action = "none" if follow_up else summary["action"]
    if action == "retrain":
        summary["retrain"] = run_train(config_path, enable_cache=True, deploy=True)["deployment"]
        lines += deploy_lines(summary["retrain"])
    elif action == "label":
        from pipelines.launch import run_labeling_pipeline
        from visionloop.labeling.studio import LabelStudioError

        try:
            summary["labeling"] = run_labeling_pipeline(config).summary()
            lines += label_lines(summary["labeling"])
        except (LabelStudioError, RuntimeError) as exc:  # the drift verdict still stands
            summary["labeling"] = {"error": str(exc)}
            lines.append(f"  labeling    FAILED: {exc}; run `python run.py label` once Label Studio is up")
    emit(summary, as_json, lines)


def label_lines(s: dict[str, Any]) -> list[str]:
    images = s["images"]
    lines = [
        f"Labeling round: Label Studio project {s['project']!r} (id {s['project_id']})",
        f"  open        {s['project_url']}",
        f"  tasks       {s['created_tasks']} created now, {s['already_there']} already there "
        f"(raw images: {s['raw_images']})",
        "  images      "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in images.items())
        + f" (= {sum(images.values())})",
        f"  labels      {s['new_labels']} new since the production data set "
        f"(version {s['production_version'] or 'none'}); retrain at {s['retrain_after']}",
        f"  data set    {s['dataset_version_id']} (from {s['base_version_id'][:12]})",
    ]
    if s["requeued_annotations"]:
        lines.append(f"  rejected    {s['requeued_annotations']} annotations sent back to the queue")
    feedback = s.get("feedback") or {}
    if feedback:
        skipped = sum(c.get("empty_skipped", 0) for c in feedback.get("devices", {}).values())
        lines.append(
            f"  feedback    queued now: {feedback['uncertain']} uncertain, {feedback['no_detection_sampled']} "
            f"with no detection (a sample), {feedback['other']} other; the devices did not send "
            f"{skipped} image(s) with no detection ({', '.join(feedback.get('devices', {})) or 'no device counters'})"
        )
    if not sum(images.values()):
        lines.append(
            f"  empty       the raw image store {s['raw_images']} holds no image yet: start each device with "
            f"`python -m edge_runtime serve ... --feedback {s['raw_images']}` so that the images it is "
            "unsure about are uploaded there (docs/edge_runtime.md), or copy images into it"
        )
    if s["deployment"]:
        lines += train_lines({"training": s["training"]}) + deploy_lines(s["deployment"])
    elif s["retrain"]:
        lines.append(
            "  next        enough new labels: run `python run.py label` without --no-retrain to train"
        )
    return lines


@cli.command()
@config_option("Use-case configuration (model name, data and label sections).")
@click.option("--url", help="Label Studio URL (default: label.url of the config).")
@click.option(
    "--no-retrain",
    is_flag=True,
    help="Do not train even when enough new labels came back (label.retrain_after).",
)
@json_option
def label(config_path: Path, url: str | None, no_retrain: bool, as_json: bool) -> None:
    """Start or continue the labeling round in Label Studio.

    Sends the raw image store's unlabeled images (the edge's feedback included), most
    uncertain first and pre-labelled by the production model, to the project; reads
    back what was annotated, keeps what review accepted, sends rejected annotations back
    to the queue, and makes the new data set version. With label.retrain_after new
    labels, trains and deploys on it. The API key: $LABEL_STUDIO_API_KEY or the ZenML
    secret label.api_key_secret.

    \b
    python run.py label                      # prints the project URL to open
    python run.py label --url http://localhost:8080 --json
    """
    from pipelines.launch import LabelingError, run_labeling_pipeline
    from stacks.bootstrap import ensure_stack
    from visionloop.labeling.studio import LabelStudioError

    config = load(config_path)
    if url:
        config.label.url = url
    ensure_stack("local", activate=not _has_active_stack())
    try:
        result = run_labeling_pipeline(config, retrain=not no_retrain)
    except (LabelStudioError, LabelingError) as exc:
        fail(str(exc))
        raise
    summary = result.summary()
    emit(summary, as_json, label_lines(summary))


HIERARCHY_CONFIG = REPO_ROOT / "configs" / "cifar10_tree.yaml"


def _pct(m: dict[str, Any] | None, key: str) -> str:
    return f"{m[key]:.4f}" if m else "-"


def hierarchy_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        f"Hierarchy {s['hierarchy']}: leaf data set {s['leaf_dataset_version_id'][:12]} "
        f"({s['leaf_images']} images {s['per_split']})"
    ]
    nodes = {**s["nodes"], **({"flat": s["flat"]} if s["flat"] else {})}
    for key, n in nodes.items():
        if n.get("task") == "detect":
            figures = (
                f"test mAP50 {n['test_map50']:.4f} mAP50-95 {n['test_map50_95']:.4f}"
                if n.get("test_map50") is not None and n.get("test_map50_95") is not None
                else ""
            )
        else:
            figures = f"test top-1 {n['test_top1']:.4f}" if n["test_top1"] is not None else ""
        secs = f"trained in {n['train_seconds']:.0f} s" if n["train_seconds"] else ""
        gate = {True: "gate passed", False: "gate FAILED", None: ""}[n["gate_passed"]]
        lines.append(
            f"  {key:<10} {n['model']} v{n['version']:<4} {n['status']:<9} {figures}  {secs}  {gate}"
        )
    b = s["bundle"]
    if s["unchanged_bundle"]:
        lines.append(f"Bundle unchanged: production version {s['unchanged_bundle']} pins these node versions")
    if b is None:
        return lines
    stage = {
        "production": f"is in PRODUCTION (archived: {b['archived_version'] or 'none'})",
        "staging": "waits at STAGING",
        "rejected": "was REFUSED; production stays at " + (b["production_version"] or "none"),
    }[b["stage"]]
    e, nf, flat = b["end_to_end"], b["no_fallback"], b["flat"]
    lines += [
        f"Bundle {b['model']} version {b['version']} {stage}",
        "  pins        " + ", ".join(f"{k}={v}" for k, v in b["pins"].items()),
        *[f"  reason      {r}" for r in b["reasons"]],
        f"  end to end  top-1 {_pct(e, 'top1')}  group {_pct(e, 'group_accuracy')}  fallback "
        f"{_pct(e, 'fallback_rate')}  hP {_pct(e, 'hierarchical_precision')}  hR {_pct(e, 'hierarchical_recall')}  "
        f"hF {_pct(e, 'hierarchical_f')}",
        f"  no fallback top-1 {_pct(nf, 'top1')}  hF {_pct(nf, 'hierarchical_f')}",
    ]
    for group, d in (b.get("detectors") or {}).items():
        lines.append(
            f"  detector {group}: {d['images']} images, routed {d['routed']:.3f}, fallback {d['fallback_rate']:.3f}, "
            f"mAP50 {d['map50']:.4f} mAP50-95 {d['map50_95']:.4f} through the bundle "
            f"(alone {d['child_map50']:.4f} / {d['child_map50_95']:.4f}), {d['routed_in']} other images routed in"
        )
    if flat:
        lines.append(
            f"  flat model  top-1 {_pct(flat, 'top1')}  group {_pct(flat, 'group_accuracy')}  hF {_pct(flat, 'hierarchical_f')}"
        )
    lines.append(f"  channel     {b['channel']}  pointers {b['pointers'] or '(unchanged)'}")
    return lines


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=HIERARCHY_CONFIG,
    show_default=True,
    help="Hierarchy declaration (YAML): parent, groups, children and their classes.",
)
@click.option("--only", multiple=True, help="Train only this node (if changed); keep the others. Repeatable.")
@click.option(
    "--pin", "pins", multiple=True, help="NODE=VERSION: bundle that version of a node as it is. Repeatable."
)
@click.option(
    "--retrain", is_flag=True, help="Train every node even when its data and settings are unchanged."
)
@click.option(
    "--flat/--no-flat", "flat", default=None, help="Also train the flat comparison (default: flat.enabled)."
)
@click.option("--no-deploy", is_flag=True, help="Train the nodes only: no bundle, no channel.")
@click.option(
    "--promote", "promote_version", help="Promote this staged bundle version and its nodes to production."
)
@click.option(
    "--rollback",
    "to_previous",
    is_flag=True,
    help="Put the previous production bundle and the node versions it pins back in production.",
)
@click.option("--reason", default="", help="With --rollback: why (recorded with who and when).")
@click.option(
    "--channel", help="The model channel (folder or s3://...); default: deploy.channel, else the stack's."
)
@no_cache_option
@json_option
def hierarchy(
    config_path: Path,
    only: tuple[str, ...],
    pins: tuple[str, ...],
    retrain: bool,
    flat: bool | None,
    no_deploy: bool,
    promote_version: str | None,
    to_previous: bool,
    reason: str,
    channel: str | None,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Train a parent/child hierarchy and ship it as one bundle.

    The data pipeline makes the leaf data set and one per node; each node whose data or
    settings changed gets its own training pipeline run and model version (the others
    are reused, not run); the bundle pipeline pins the versions together, checks they
    fit, measures them end to end (and the flat model beside them), gates, stages the
    bundle in the channel and promotes it with its nodes.

    \b
    python run.py hierarchy                                  # configs/cifar10_tree.yaml
    python run.py hierarchy --only vehicle --json            # retrain one child
    python run.py hierarchy --pin vehicle=3                  # bundle an older child version
    python run.py hierarchy --promote 4 --no-flat            # after deploy.require_approval
    python run.py hierarchy --rollback --reason "line 3"     # previous bundle and its nodes
    python run.py hierarchy --config configs/tags_tree.yaml  # a detector child beside classifiers
    """
    from pipelines.hierarchy_launch import (
        HierarchyError,
        promote_bundle_version,
        rollback_bundle,
        run_hierarchy,
    )
    from stacks.bootstrap import ensure_stack
    from steps.deployment.control_plane import PromotionError
    from visionloop.deploy.signing import SigningKeyError
    from visionloop.hierarchy.spec import HierarchySpecError, load_hierarchy

    try:
        spec = load_hierarchy(config_path)
    except HierarchySpecError as exc:
        fail(str(exc))
        raise
    bad = [p for p in pins if "=" not in p]
    if bad:
        fail(f"--pin takes NODE=VERSION, e.g. --pin vehicle=3; got {', '.join(bad)}")
    ensure_stack("local", activate=not _has_active_stack())
    try:
        if promote_version or to_previous:
            if to_previous:
                change = rollback_bundle(spec, None, reason)
            else:
                change = promote_bundle_version(
                    spec, promote_version or "", None, "approved with run.py hierarchy --promote"
                )
            emit(
                change,
                as_json,
                [*change_lines(change), *[f"  node        {v}" for v in change["nodes"].values()]],
            )
            return
        result = run_hierarchy(
            spec,
            only=list(only) or None,
            pins=dict(p.split("=", 1) for p in pins),
            retrain=retrain,
            compare_flat=flat,
            deploy=not no_deploy,
            channel=channel,
            enable_cache=not no_cache,
        )
    except (HierarchyError, PromotionError, SigningKeyError) as exc:
        fail(str(exc))
        raise
    summary = result.summary()
    emit(summary, as_json, hierarchy_lines(summary))


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def stack(ctx: click.Context, as_json: bool) -> None:
    """Show the active stack (or register one with `stack register ENV`)."""
    if ctx.invoked_subcommand is not None:
        return
    from stacks.bootstrap import describe_active_stack

    info = describe_active_stack()
    lines = [f"Active stack: {info['stack']}  (store: {info['store']})"]
    lines += [f"  {kind:<20} {c['name']} ({c['flavor']})" for kind, c in info["components"].items()]
    lines.append(f"  artifacts at        {info['artifact_store_path']}")
    emit(info, as_json, lines)


@stack.command("register")
@click.argument("env", type=click.Choice(ENVIRONMENTS), default="local")
@click.option("--no-activate", is_flag=True, help="Register only; keep the active stack.")
@json_option
def stack_register(env: str, no_activate: bool, as_json: bool) -> None:
    """Register the stack of stacks/ENV.yaml (idempotent) and activate it."""
    from stacks.bootstrap import StackError, describe_active_stack, ensure_stack

    try:
        name = ensure_stack(env, activate=not no_activate)
    except StackError as exc:
        fail(str(exc))
    info = {"registered": name, **describe_active_stack()}
    emit(info, as_json, [f"Stack {name} registered; active: {info['stack']}"])


@stack.command("check")
@click.argument("env", type=click.Choice(ENVIRONMENTS))
@json_option
def stack_check(env: str, as_json: bool) -> None:
    """Check stacks/ENV.yaml against ZenML's flavor classes, offline: no store, no
    cloud (its ${VARIABLES} must be set; their values are checked too)."""
    from stacks.spec import StackError, validate

    try:
        spec = validate(env)
    except StackError as exc:
        fail(str(exc))
        raise
    components = {kind: c["flavor"] for kind, c in (spec.get("components") or {}).items()}
    lines = [f"stacks/{env}.yaml is valid: " + ", ".join(f"{k} {v}" for k, v in components.items())]
    emit({"env": env, "valid": True, "components": components}, as_json, lines)


@cli.command()
@config_option("Use-case configuration (model name, deploy and label sections).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="HTTP port (0: any free one).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="The device's state folder (default: ~/.cache/visionloop/edge/MODEL).",
)
def serve(config_path: Path, port: int, state_dir: Path | None) -> None:
    """Serve the production model on this machine as a device would: the edge runtime
    on 127.0.0.1 (its page at http://127.0.0.1:PORT/), following the local channel,
    sending the images it is unsure about to the raw image store that `run.py label`
    reads. Runs until Ctrl-C.

    \b
    python run.py serve
    curl -s -H "X-Image-Name: part.jpg" --data-binary @part.jpg http://127.0.0.1:8080/v1/predict
    """
    from stacks.bootstrap import ensure_stack
    from visionloop.config import cache_dir

    config = load(config_path)
    ensure_stack("local", activate=not _has_active_stack())
    folder = state_dir or cache_dir() / "edge" / config.registered_model_name
    argv = edge_argv(config, str(folder), port)
    if argv is None:
        fail(f"no version of {config.registered_model_name} is in production yet: run `python run.py` first")
        return
    click.echo("python -m edge_runtime " + " ".join(argv))
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "edge_runtime", *argv])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8300, show_default=True)
@config_option("Use-case configuration (the model shown, its serving threshold and channel).")
def ui(host: str, port: int, config_path: Path) -> None:
    """The loop's status page, offline, until Ctrl-C: versions and stages, model cards,
    the test split's false positives and negatives, "try it", labeling, monitoring and
    devices. It reads ZenML, MLflow and the channel and writes nothing (docs/ui.md).

    \b
    python run.py ui
    python run.py ui --config configs/steel.yaml --port 8301
    """
    from stacks.bootstrap import ensure_stack
    from ui.app import create_app
    from ui.serve import serve as serve_ui
    from visionloop.config import cache_dir

    config = load(config_path)
    ensure_stack("local", activate=not _has_active_stack())
    logs = cache_dir() / "ui"
    click.echo(f"Starting the status page of {config.registered_model_name} (its logs: {logs}) ...")
    app = create_app(config)
    serve_ui(app, host, port, logs, lambda url: click.echo(f"Status page  {url}  (Ctrl-C stops it)"))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address both servers bind to.")
@click.option("--port", type=click.IntRange(1, 65535), default=8237, show_default=True, help="ZenML's port.")
@click.option(
    "--mlflow-port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="The MLflow UI's port (0: no MLflow UI).",
)
def dashboard(host: str, port: int, mlflow_port: int) -> None:
    """Serve ZenML's dashboard (runs, artifacts and their visualizations) and the MLflow
    UI of the active stack, offline, until Ctrl-C; prints both URLs.

    \b
    python run.py dashboard
    python run.py --stack local-s3 dashboard --port 8300 --mlflow-port 5300
    """
    import threading

    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StoreType

    from stacks import dashboard as dash
    from stacks.bootstrap import ensure_stack
    from visionloop.config import cache_dir

    store = GlobalConfiguration().store_configuration
    if store.type == StoreType.REST:
        fail(
            f"this client uses the ZenML server {store.url}: its dashboard is there (`zenml logout` to go local)"
        )
    ensure_stack("local", activate=not _has_active_stack())
    dash.skip_onboarding()
    uri = dash.tracking_uri()
    logs = cache_dir() / "dashboard"
    logs.mkdir(parents=True, exist_ok=True)
    mlflow = (
        dash.start_mlflow_ui(uri, host, mlflow_port, logs / "mlflow-ui.log") if uri and mlflow_port else None
    )
    zen_url = f"http://{host}:{port}"
    mlflow_url = f"http://{host}:{mlflow_port}" if mlflow else None
    click.echo(f"Starting the dashboards (their logs: {logs}) ...")

    def announce() -> None:
        ok = dash.wait_for(f"{zen_url}/health", 120) and (not mlflow_url or dash.wait_for(mlflow_url, 120))
        if not ok:
            click.echo(f"error: a server did not come up; see {logs}", err=True)
            return
        click.echo(f"ZenML dashboard  {zen_url}")
        click.echo(f"MLflow UI        {mlflow_url or '(none)'}  tracking store {uri}")
        click.echo("Both answer; Ctrl-C stops them.")

    threading.Thread(target=announce, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a `kill` stops the MLflow UI too
    try:
        dash.serve_zenml(host, port, logs / "zenml-access.log")
    finally:
        dash.stop(mlflow)


@cli.command("trigger-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="0: any free port."
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the bearer token (else $VISIONLOOP_TRIGGER_TOKEN).",
)
@click.option(
    "--config-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO_ROOT / "configs",
    show_default=True,
    help="The use-case configurations a request may name.",
)
@click.option("--default-config", default="metal_tags", show_default=True, help="When a request names none.")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Run logs (default: <cache>/trigger).")
@click.pass_context
def trigger_server(
    ctx: click.Context,
    host: str,
    port: int,
    token_file: Path | None,
    config_dir: Path,
    default_config: str,
    state_dir: Path | None,
) -> None:
    """Start runs over HTTP: `POST /v1/runs` with `Authorization: Bearer TOKEN` and
    `{"job": "train"|"main"|"label"|"monitor", "config": NAME}`; `GET /v1/runs/ID` for
    its state. Scheduled monitoring runs ask it for a drift's follow-up (monitor.trigger_url).

    \b
    openssl rand -hex 32 > trigger-token
    python run.py trigger-server --token-file trigger-token
    curl -H "Authorization: Bearer $(cat trigger-token)" -d '{"job": "train"}' http://127.0.0.1:8787/v1/runs
    """
    import logging
    import os

    from visionloop.config import cache_dir
    from visionloop.trigger import TriggerHTTPServer, TriggerService

    token = token_file.read_text().strip() if token_file else os.environ.get("VISIONLOOP_TRIGGER_TOKEN", "")
    if not token:
        fail("no token: pass --token-file FILE or set $VISIONLOOP_TRIGGER_TOKEN (openssl rand -hex 32)")
    stack_env = ctx.find_root().params.get("stack_env")
    prefix = [sys.executable, str(REPO_ROOT / "run.py"), *(["--stack", stack_env] if stack_env else [])]

    def command(job: str, config: Path) -> list[str]:
        return [*prefix, *([] if job == "main" else [job]), "--config", str(config), "--json"]

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        service = TriggerService(token, config_dir, state_dir or cache_dir() / "trigger", command)
    except ValueError as exc:
        fail(str(exc))
        raise
    server = TriggerHTTPServer((host, port), service, default_config)
    click.echo(f"Trigger listening on http://{host}:{server.server_address[1]}  (configs in {config_dir})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
        server.server_close()


class _LazyChannel(click.Group):
    """``run.py channel ...``, whose commands are loaded when one is used: importing
    them pulls in ZenML's step modules, seconds that every other command (``--help``,
    ``init``, ``serve``) would otherwise pay at start."""

    def _group(self) -> click.Group:
        from steps.deployment.cli import channel

        return channel

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


cli.add_command(
    _LazyChannel(name="channel", help="The model channel: pointer freshness and the keys devices trust.")
)

if __name__ == "__main__":
    cli()
