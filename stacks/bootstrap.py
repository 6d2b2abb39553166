"""Register and activate a stack from ``stacks/<env>.yaml``, idempotently and without
prompts (``zenml stack import`` prompts and refuses other ZenML versions; the
``Client`` API does neither).

A component that exists with the same flavor is reused; one with another flavor is an
error that names the component and the command to remove it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

STACKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = STACKS_DIR.parent


class StackError(RuntimeError):
    pass


def quiet_zenml_env() -> None:
    """Analytics off, no prompts, no telemetry; call before importing zenml."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def stack_spec(env: str) -> dict[str, Any]:
    path = STACKS_DIR / f"{env}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))
        raise StackError(f"no stack file {path}; known environments: {', '.join(known)}")
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


def ensure_repository() -> None:
    """``zenml init`` in the repository root, so step sources resolve from there."""
    from zenml.client import Client

    if not (REPO_ROOT / ".zen").is_dir():
        Client.initialize(root=REPO_ROOT)


def ensure_stack(env: str = "local", activate: bool = True) -> str:
    """Register the stack of ``env`` if missing and activate it; return its name."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StackComponentType

    GlobalConfiguration().analytics_opt_in = False
    ensure_repository()
    client = Client()
    spec = stack_spec(env)
    components: dict[StackComponentType, str] = {}
    for kind, comp in spec["components"].items():
        ctype = StackComponentType(kind)
        name, flavor = comp["name"], comp["flavor"]
        existing = client.list_stack_components(name=name, type=ctype)
        if existing.items:
            if existing.items[0].flavor_name != flavor:
                raise StackError(
                    f"{kind} {name!r} exists with flavor {existing.items[0].flavor_name}, "
                    f"the stack file wants {flavor}: remove it with "
                    f"`zenml {kind.replace('_', '-')} delete {name}` and run again"
                )
        else:
            client.create_stack_component(
                name=name,
                flavor=flavor,
                component_type=ctype,
                configuration=comp.get("configuration") or {},
            )
        components[ctype] = name
    stack_name: str = spec["name"]
    if not client.list_stacks(name=stack_name).items:
        client.create_stack(name=stack_name, components=components)
    if activate and client.active_stack_model.name != stack_name:
        client.activate_stack(stack_name)
    return stack_name


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
    from zenml.config.global_config import GlobalConfiguration

    env = env or active_env()
    value = (stack_spec(env).get("visionloop") or {}).get(name)
    if not value:
        raise StackError(f"stacks/{env}.yaml names no visionloop.{name}")
    return str(value).replace("{local_stores}", GlobalConfiguration().local_stores_path)


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
