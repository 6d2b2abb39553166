"""What the active stack's file adds to a pipeline run: its ZenML ``settings`` (Docker
image, orchestrator resources), its per-step configurations (a step operator and
resources for the training step only) and, when asked for, its ``schedules`` entry.

Pipelines stay free of environment details: ``pipelines/launch.py`` passes these to
``pipeline.with_options(...)``; the local stack's file has none of them.
"""

from __future__ import annotations

from typing import Any

from stacks.bootstrap import active_env
from stacks.spec import StackError, expand, read_spec, step_base


def pipeline_steps(pipeline: Any) -> set[str]:
    """Names of the steps a pipeline's module imports (the steps it can invoke)."""
    from zenml.steps import BaseStep

    source = getattr(pipeline, "entrypoint", None)
    names = getattr(source, "__globals__", {})
    return {v.name for v in names.values() if isinstance(v, BaseStep)}


def run_options(pipeline: Any, schedule: str | None = None, env: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``pipeline.with_options`` from ``stacks/<env>.yaml``
    (default: the active stack's file). ``schedule``: the ``schedules`` key to attach
    (``data``); an error names the file when it has no such schedule."""
    env = env or active_env()
    spec = read_spec(env)
    options: dict[str, Any] = {}
    if spec.get("settings"):
        options["settings"] = expand(spec["settings"], "settings", env)
    present = pipeline_steps(pipeline)
    steps = {
        step_id: expand(conf or {}, f"steps.{step_id}", env)
        for step_id, conf in (spec.get("steps") or {}).items()
        if step_base(step_id) in present
    }
    if steps:
        options["step_configurations"] = steps
    if schedule is not None:
        from zenml.config.schedule import Schedule

        entry = (spec.get("schedules") or {}).get(schedule)
        if not entry:
            raise StackError(
                f"stacks/{env}.yaml has no schedules.{schedule}: schedules run on orchestrators "
                "that support them (kubernetes, sagemaker); on the local stacks use a cron line "
                "(README, Schedules and triggers)"
            )
        options["schedule"] = Schedule(**expand(entry, f"schedules.{schedule}", env))
    return options
