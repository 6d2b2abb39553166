"""Register and activate a stack from ``stacks/<env>.yaml``, idempotently and without
prompts (``zenml stack import`` prompts and refuses other ZenML versions; the
``Client`` API does neither).

A component that exists with the same flavor is reused, its configuration brought in
line with the file; one with another flavor is an error that names the component and
the command to remove it. Before anything is registered the file is checked against
ZenML's flavor classes (``stacks/spec.py``). The file's ``secrets`` become ZenML
secrets, their values read from the environment at registration.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from stacks.spec import StackError, expand, read_spec, validate

STACKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = STACKS_DIR.parent


__all__ = ["StackError", "ensure_stack", "stack_setting", "stack_channel", "describe_active_stack"]


# ZenML log lines that mislead a visionloop user and that no ZenML setting turns off:
# the login hint (``python run.py dashboard`` is the way here), the Pro advertisement on
# every model version, and the autologging warning for frameworks visionloop never uses.
QUIET_LOG_LINES = {
    "zenml.pipelines.pipeline_definition": ("zenml login --local",),
    "zenml.orchestrators.step_run_utils": ("ZenML Pro",),
    "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker": (
        "Failed to disable MLflow autologging",
    ),
}


class _DropLines(logging.Filter):
    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.needles)


def quiet_zenml_env() -> None:
    """Analytics off, no prompts, no telemetry, none of ``QUIET_LOG_LINES``; call before
    importing zenml."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    for name, needles in QUIET_LOG_LINES.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in target.filters):
            target.addFilter(_DropLines(needles))


def stack_spec(env: str) -> dict[str, Any]:
    """The stack file as written (placeholders not expanded)."""
    return read_spec(env)


def ensure_repository() -> None:
    """``zenml init`` in the repository root, so step sources resolve from there."""
    from zenml.client import Client

    if not (REPO_ROOT / ".zen").is_dir():
        Client.initialize(root=REPO_ROOT)


def _differs(stored: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The update that turns ``stored`` into ``wanted`` (None removes a key); empty
    when they agree."""
    update: dict[str, Any] = {k: v for k, v in wanted.items() if stored.get(k) != v}
    update.update({k: None for k in stored if k not in wanted and stored[k] is not None})
    return update


def ensure_secrets(env: str) -> None:
    """Create or update the file's ``secrets`` from the environment. A secret whose
    variables are unset is kept as it is when it exists (made once, e.g. with
    ``zenml secret create``); otherwise the error names the variable."""
    from zenml.client import Client

    client = Client()
    for name, fields in (read_spec(env).get("secrets") or {}).items():
        try:
            existing = client.get_secret(name, allow_partial_name_match=False, allow_partial_id_match=False)
        except KeyError:
            existing = None
        try:
            values = expand(fields, f"secrets.{name}", env, strict=True)
        except StackError:
            if existing is not None:
                continue
            raise
        values = {k: str(v) for k, v in values.items()}
        if existing is None:
            client.create_secret(name, values)
        elif existing.secret_values != values:
            client.update_secret(name, add_or_update_values=values)


def check_secret_references(env: str, components: dict[str, Any]) -> None:
    """Every ``{{secret.key}}`` in a component's configuration names a ZenML secret
    that exists and has that key; otherwise the error says how to create it."""
    from zenml.client import Client
    from zenml.utils.secret_utils import is_secret_reference, parse_secret_reference

    client = Client()
    for kind, comp in components.items():
        for field, value in (comp.get("configuration") or {}).items():
            if not is_secret_reference(value):
                continue
            ref = parse_secret_reference(value)
            try:
                values = client.get_secret(ref.name, allow_partial_name_match=False).secret_values
            except KeyError:
                values = None
            if values is None or ref.key not in values:
                raise StackError(
                    f"stacks/{env}.yaml: components.{kind}.configuration.{field} needs the ZenML secret "
                    f"{ref.name!r} with the key {ref.key!r}: `zenml secret create {ref.name} --{ref.key}=...`"
                )


def ensure_stack(env: str = "local", activate: bool = True) -> str:
    """Register the stack of ``env`` if missing (or bring its components in line with
    the file) and activate it; return its name."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StackComponentType

    GlobalConfiguration().analytics_opt_in = False
    ensure_repository()
    client = Client()
    spec = read_spec(env)
    wanted = expand(spec.get("components") or {}, "components", env, strict=True)
    plan: list[tuple[str, StackComponentType, str, str, dict[str, Any], Any]] = []
    for kind, comp in wanted.items():
        ctype = StackComponentType(kind)
        name, flavor = comp["name"], comp["flavor"]
        configuration = comp.get("configuration") or {}
        existing = client.list_stack_components(name=name, type=ctype)
        if existing.items:
            found = existing.items[0]
            if found.flavor_name != flavor:
                raise StackError(
                    f"{kind} {name!r} exists with flavor {found.flavor_name}, "
                    f"the stack file wants {flavor}: remove it with "
                    f"`zenml {kind.replace('_', '-')} delete {name}` and run again"
                )
            plan.append((kind, ctype, name, flavor, configuration, found))
        else:
            plan.append((kind, ctype, name, flavor, configuration, None))
    stack_name: str = spec["name"]
    changes = [p for p in plan if p[5] is None or _differs(p[5].configuration, p[4])]
    if changes or not client.list_stacks(name=stack_name).items:
        validate(env)  # a typo fails here, naming the file and field, before anything is written
    ensure_secrets(env)
    check_secret_references(env, wanted)
    components: dict[StackComponentType, str] = {}
    for _kind, ctype, name, flavor, configuration, found in plan:
        if found is None:
            client.create_stack_component(
                name=name, flavor=flavor, component_type=ctype, configuration=configuration
            )
        elif update := _differs(found.configuration, configuration):
            client.update_stack_component(name, ctype, configuration=update)
        components[ctype] = name
    if not client.list_stacks(name=stack_name).items:
        client.create_stack(name=stack_name, components=components)
    ensure_mlflow_experiment(env, wanted.get("experiment_tracker"))
    if activate and client.active_stack_model.name != stack_name:
        client.activate_stack(stack_name)
    s3_environment()
    return stack_name


def ensure_mlflow_experiment(env: str, tracker: dict[str, Any] | None) -> None:
    """With ``visionloop.mlflow_artifacts`` and a tracking store of its own, create the
    training pipeline's MLflow experiment with its artifacts there (ZenML would create
    it with MLflow's default, ``./mlruns`` of the working directory)."""
    location = (read_spec(env).get("visionloop") or {}).get("mlflow_artifacts")
    uri = ((tracker or {}).get("configuration") or {}).get("tracking_uri")
    if not location or not uri or (tracker or {}).get("flavor") != "mlflow":
        return
    import mlflow

    from visionloop.constants import TRAINING_PIPELINE

    location = str(expand(location, "visionloop.mlflow_artifacts", env, strict=True)).rstrip("/")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(TRAINING_PIPELINE) is None:
        client.create_experiment(TRAINING_PIPELINE, artifact_location=f"{location}/{TRAINING_PIPELINE}")


def s3_environment(env: str | None = None) -> None:
    """For a stack whose ``visionloop.s3_endpoint`` is set, point the S3 clients that
    read no ZenML configuration (MLflow's artifact upload, boto3 in the channel and
    raw image stores) at it, unless the environment already names one."""
    spec = read_spec(env or active_env())
    raw = (spec.get("visionloop") or {}).get("s3_endpoint")
    if not raw:
        return
    endpoint = str(expand(raw, "visionloop.s3_endpoint", env or active_env(), strict=True))
    os.environ.setdefault("VISIONLOOP_S3_ENDPOINT", endpoint)
    os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", endpoint)


def active_env() -> str:
    """The environment (``stacks/<env>.yaml``) whose stack is active; ``local`` when the
    active stack is not one of visionloop's."""
    from zenml.client import Client

    active = Client().active_stack_model.name
    for path in sorted(STACKS_DIR.glob("*.yaml")):
        if (yaml.safe_load(path.read_text()) or {}).get("name") == active:
            return path.stem
    return "local"


def stack_setting(name: str, env: str | None = None) -> str:
    """``visionloop.<name>`` of ``stacks/<env>.yaml`` (default: the active stack's
    environment), with ``{local_stores}`` replaced by ZenML's local store folder."""
    env = env or active_env()
    value = (stack_spec(env).get("visionloop") or {}).get(name)
    if not value:
        raise StackError(f"stacks/{env}.yaml names no visionloop.{name}")
    return str(expand(value, f"visionloop.{name}", env, strict=True))


def stack_channel(env: str | None = None) -> str:
    """The model channel of ``env`` (default: the active stack's environment)."""
    return stack_setting("channel", env)


def describe_active_stack() -> dict[str, Any]:
    from zenml.client import Client

    client = Client()
    stack = client.active_stack
    return {
        "stack": stack.name,
        "store": client.zen_store.url,
        "components": {
            str(c.type.value): {"name": c.name, "flavor": c.flavor} for c in stack.components.values()
        },
        "artifact_store_path": stack.artifact_store.path,
        "repository_root": str(client.root) if client.root else None,
    }
