"""Reading and checking ``stacks/<env>.yaml``.

A stack file holds what differs in one environment:

``components``   one entry per stack component type: ``name``, ``flavor`` and the
                 flavor's ``configuration``
``secrets``      ZenML secrets that registration creates from the environment
``settings``     ZenML settings for every pipeline run on this stack (``docker``,
                 ``resources``, ``orchestrator``, ``<component type>.<flavor>``)
``steps``        per step (invocation id, e.g. ``train_model``): a ZenML step
                 configuration (``step_operator``, ``settings``, ...)
``schedules``    per pipeline (``data``): a ZenML ``Schedule`` (``cron_expression``, ...)
``visionloop``   visionloop's own places: ``channel``, ``edge_logs``, ``raw_images``,
                 ``s3_endpoint``, ``mlflow_artifacts`` (where MLflow keeps the files of
                 the training experiment when its tracking store is a local database)

Strings may hold ``${VAR}`` or ``${VAR:-default}`` (from the environment, read when the
stack is registered or used, never stored in the file) and ``{local_stores}`` (ZenML's
local store folder).

ZenML's own configuration classes ignore keys they do not know, so a misspelt field
would silently do nothing; here every key is checked against the flavor's class
(recursively) and every value validated by it, and an error names the file and the
field.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

STACKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = STACKS_DIR.parent
TOP_LEVEL = ("name", "components", "secrets", "settings", "steps", "schedules", "visionloop")
VISIONLOOP_KEYS = ("channel", "edge_logs", "raw_images", "s3_endpoint", "mlflow_artifacts", "trigger_url")
SCHEDULABLE = ("data", "monitor")  # pipelines whose parameters stay meaningful when a schedule repeats them
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StackError(RuntimeError):
    pass


def stack_file(env: str) -> Path:
    path = STACKS_DIR / f"{env}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))
        raise StackError(f"no stack file {path}; known environments: {', '.join(known)}")
    return path


def read_spec(env: str) -> dict[str, Any]:
    """The stack file as written (placeholders not expanded)."""
    path = stack_file(env)
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise StackError(f"{rel(path)}: expected a mapping at the top level")
    return spec


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def expand(value: Any, where: str, env: str, strict: bool = True) -> Any:
    """``value`` with ``${VAR}``, ``${VAR:-default}`` and ``{local_stores}`` filled in,
    recursively. A variable that is unset (and has no default) is an error naming the
    field when ``strict``; otherwise it becomes ``<VAR>``."""
    if isinstance(value, dict):
        return {k: expand(v, f"{where}.{k}".lstrip("."), env, strict) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, f"{where}[{i}]", env, strict) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        got = os.environ.get(name)
        if got:
            return got
        if default is not None:
            return default
        if strict:
            raise StackError(
                f"stacks/{env}.yaml: {where} needs ${{{name}}}: set {name} in the environment "
                f"(it is never written in the stack file)"
            )
        return f"<{name}>"

    out = PLACEHOLDER.sub(fill, value)
    if "{local_stores}" in out:
        from zenml.config.global_config import GlobalConfiguration

        out = out.replace("{local_stores}", GlobalConfiguration().local_stores_path)
    return out


# --- checking against ZenML's classes --------------------------------------------------


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``Optional[X]`` or ``X | None``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def check_fields(model: type[BaseModel], data: Any, where: str, path: str) -> None:
    """Every key of ``data`` is a field of ``model`` (recursively into nested models),
    then ``model`` validates the values. Raises ``StackError`` naming ``path`` and the
    field."""
    if not isinstance(data, dict):
        raise StackError(f"{path}: {where} must be a mapping, got {type(data).__name__}")
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        fields[name] = info
        if info.alias:
            fields[info.alias] = info
    from zenml.utils.secret_utils import is_secret_field, is_secret_reference

    values = dict(data)
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise StackError(f"{path}: {where}.{key} is not a field of ZenML's {model.__name__}{hint}")
        if is_secret_reference(value):
            if not is_secret_field(fields[key]):
                raise StackError(
                    f"{path}: {where}.{key}: {value} is a secret reference, but {model.__name__}.{key} "
                    "is not a secret field (ZenML resolves references only in secret fields)"
                )
            values[key] = "secret-reference"  # resolved by ZenML when the component is used
        sub = _nested_model(fields[key].annotation)
        if sub is not None and isinstance(value, dict):
            check_fields(sub, value, f"{where}.{key}", path)
    try:
        model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise StackError(
            f"{path}: {where}{'.' + loc if loc else ''}: {err['msg']} ({model.__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - ZenML's validators raise their own types
        raise StackError(f"{path}: {where}: {exc} ({model.__name__})") from None


def flavor_of(component_type: str, flavor: str, path: str, where: str) -> Any:
    """ZenML's flavor class for ``(component_type, flavor)``: the built-in ones and every
    integration's (their configuration classes import without the integration's SDKs)."""
    from zenml.enums import StackComponentType
    from zenml.stack.flavor_registry import FlavorRegistry

    try:
        ctype = StackComponentType(component_type)
    except ValueError:
        known = ", ".join(t.value for t in StackComponentType)
        raise StackError(f"{path}: {where}: unknown component type {component_type!r} ({known})") from None
    registry = FlavorRegistry()
    candidates = [f() for f in registry.builtin_flavors + registry.integration_flavors]
    of_type = [f for f in candidates if f.type == ctype]
    for f in of_type:
        if f.name == flavor:
            return f
    names = sorted({f.name for f in of_type})
    raise StackError(f"{path}: {where}.flavor: no {component_type} flavor {flavor!r} ({', '.join(names)})")


def settings_class(flavor: Any) -> type[BaseModel] | None:
    """The settings class of a flavor: its configuration class derives from it."""
    from zenml.config.base_settings import BaseSettings
    from zenml.stack.stack_component import StackComponentConfig

    for cls in flavor.config_class.__mro__:
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseSettings)
            and not issubclass(cls, StackComponentConfig)
            and cls is not BaseSettings
        ):
            return typing.cast(type[BaseModel], cls)
    return None


def check_settings(
    settings: Any, where: str, path: str, flavors: dict[str, Any], step_operator: Any = None
) -> None:
    """ZenML settings keys: ``docker``, ``resources``, ``<component type>`` (the stack's
    component of that type; for ``step_operator`` the step's) or ``<type>.<flavor>``."""
    from zenml.config import DockerSettings, ResourceSettings

    if not isinstance(settings, dict):
        raise StackError(f"{path}: {where} must be a mapping")
    for key, value in settings.items():
        cls: type[BaseModel] | None
        if key == "docker":
            cls = DockerSettings
        elif key == "resources":
            cls = ResourceSettings
        else:
            kind, _, flavor_name = str(key).partition(".")
            flavor = step_operator if kind == "step_operator" and not flavor_name else flavors.get(kind)
            if flavor_name:
                flavor = flavor_of(kind, flavor_name, path, f"{where}.{key}")
            if flavor is None:
                raise StackError(
                    f"{path}: {where}.{key}: this stack has no {kind} component "
                    "(settings keys: docker, resources, <component type>[.<flavor>])"
                )
            cls = settings_class(flavor)
            if cls is None:
                raise StackError(f"{path}: {where}.{key}: the {flavor.name} {kind} flavor takes no settings")
        check_fields(cls, value, f"{where}.{key}", path)


def known_steps() -> set[str]:
    """Names of visionloop's steps: functions decorated with ``@step`` under ``steps/``
    (read from the source, so a step module's imports are not needed)."""
    import ast

    names: set[str] = set()
    for source in sorted((REPO_ROOT / "steps").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    if isinstance(target, ast.Name) and target.id == "step":
                        names.add(node.name)
    return names


def step_base(invocation_id: str) -> str:
    """``tune_trial_3`` -> ``tune_trial``: the step behind an invocation id."""
    return re.sub(r"_\d+$", "", invocation_id)


def validate(env: str) -> dict[str, Any]:
    """Check ``stacks/<env>.yaml`` against ZenML's classes without touching any store
    or cloud (its ``${VAR}`` must be set: their values are checked too); return the
    spec with them filled in. Raises ``StackError`` naming the file and the field."""
    from zenml.config.schedule import Schedule
    from zenml.config.step_configurations import StepConfigurationUpdate

    path = rel(stack_file(env))
    raw = read_spec(env)
    secrets = raw.get("secrets") or {}  # filled from the environment only when registering
    spec = expand({k: v for k, v in raw.items() if k != "secrets"}, "", env, strict=True)
    for name, fields in secrets.items():
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise StackError(f"{path}: secrets.{name} must map field names to strings")
    for key in spec:
        if key not in TOP_LEVEL:
            raise StackError(f"{path}: unknown top-level key {key!r} (known: {', '.join(TOP_LEVEL)})")
    if not isinstance(spec.get("name"), str):
        raise StackError(f"{path}: name: the stack's name is required")
    flavors: dict[str, Any] = {}
    components = spec.get("components") or {}
    for kind, comp in components.items():
        where = f"components.{kind}"
        if not isinstance(comp, dict) or not comp.get("name") or not comp.get("flavor"):
            raise StackError(f"{path}: {where} needs a name and a flavor")
        extra = set(comp) - {"name", "flavor", "configuration"}
        if extra:
            raise StackError(f"{path}: {where}: unknown keys {sorted(extra)} (name, flavor, configuration)")
        flavor = flavor_of(kind, comp["flavor"], path, where)
        check_fields(flavor.config_class, comp.get("configuration") or {}, f"{where}.configuration", path)
        flavors[kind] = flavor
    for needed in ("orchestrator", "artifact_store"):
        if needed not in flavors:
            raise StackError(f"{path}: components.{needed} is required")
    check_settings(spec.get("settings") or {}, "settings", path, flavors)
    step_names = known_steps()
    for step_id, conf in (spec.get("steps") or {}).items():
        where = f"steps.{step_id}"
        if step_base(step_id) not in step_names:
            close = difflib.get_close_matches(step_base(step_id), sorted(step_names), n=1)
            raise StackError(
                f"{path}: {where}: no step named {step_id!r}"
                + (f" (did you mean {close[0]}?)" if close else "")
            )
        conf = dict(conf or {})
        settings = conf.pop("settings", {})
        check_fields(StepConfigurationUpdate, conf, where, path)
        operator = None
        if conf.get("step_operator") not in (None, False):
            comp = components.get("step_operator") or {}
            if conf["step_operator"] is not True and conf["step_operator"] != comp.get("name"):
                raise StackError(
                    f"{path}: {where}.step_operator: {conf['step_operator']!r} is not this stack's step operator "
                    f"({comp.get('name') or 'none configured under components.step_operator'})"
                )
            operator = flavors.get("step_operator")
        check_settings(settings, f"{where}.settings", path, flavors, operator)
    schedules = spec.get("schedules") or {}
    orchestrator = flavors["orchestrator"].config_class.model_validate(
        components["orchestrator"].get("configuration") or {}
    )
    if schedules and not orchestrator.is_schedulable:
        raise StackError(
            f"{path}: schedules: the {components['orchestrator']['flavor']} orchestrator runs no "
            "schedules; on this stack use a cron line (README, Schedules and triggers)"
        )
    for pipeline_key, schedule in schedules.items():
        where = f"schedules.{pipeline_key}"
        if pipeline_key not in SCHEDULABLE:
            raise StackError(f"{path}: {where}: schedulable pipelines are {', '.join(SCHEDULABLE)}")
        check_fields(Schedule, schedule, where, path)
    for key in spec.get("visionloop") or {}:
        if key not in VISIONLOOP_KEYS:
            raise StackError(f"{path}: visionloop.{key} is unknown (known: {', '.join(VISIONLOOP_KEYS)})")
    return spec
