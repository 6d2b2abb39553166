"""The stack files checked against ZenML's own flavor configuration and settings classes
(the integrations' flavors; no store is written and no cloud is called): the four files
pass, and a typo or a wrong value anywhere fails with the file and the field named."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import stacks.spec
from stacks.spec import StackError, flavor_of, validate
from tests.conftest import REPO_ROOT
from tests.stacks.helpers import CLOUD_ENV

ENVIRONMENTS = ("local", "local-s3", "kubernetes", "sagemaker")


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in CLOUD_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_stack_file_is_valid(env: str, cloud_env: None) -> None:
    spec = validate(env)
    assert spec["name"] == f"visionloop-{env}"


def test_cloud_stacks_use_the_flavors_they_say(cloud_env: None) -> None:
    expected = {
        "kubernetes": {
            "orchestrator": "KubernetesOrchestratorConfig",
            "step_operator": "KubernetesStepOperatorConfig",
            "artifact_store": "S3ArtifactStoreConfig",
            "container_registry": "AWSContainerRegistryConfig",
            "image_builder": "KanikoImageBuilderConfig",
            "experiment_tracker": "MLFlowExperimentTrackerConfig",
        },
        "sagemaker": {
            "orchestrator": "SagemakerOrchestratorConfig",
            "step_operator": "SagemakerStepOperatorConfig",
            "artifact_store": "S3ArtifactStoreConfig",
            "container_registry": "AWSContainerRegistryConfig",
            "image_builder": "AWSImageBuilderConfig",
            "experiment_tracker": "MLFlowExperimentTrackerConfig",
        },
    }
    for env, classes in expected.items():
        spec = validate(env)
        got = {
            kind: flavor_of(kind, comp["flavor"], env, kind).config_class.__name__
            for kind, comp in spec["components"].items()
        }
        assert got == classes
        # only the training step asks for a step operator (the GPU)
        assert set(spec["steps"]) == {"train_model"} and spec["steps"]["train_model"]["step_operator"]
        assert spec["settings"]["docker"]["parent_image"] and spec["schedules"]["data"]["cron_expression"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


def _rename(path: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = doc
        for part in parents:
            node = node[part]
        node[new] = node.pop(last)

    return mutate


_DELETE = object()
K8S_OPERATOR = "steps/train_model/settings/step_operator/pod_settings"

BROKEN = [
    (
        "kubernetes",
        _rename("components/orchestrator/configuration/kubernetes_namespace", "kubernetes_namespce"),
        "components.orchestrator.configuration.kubernetes_namespce is not a field of ZenML's KubernetesOrchestratorConfig (did you mean kubernetes_namespace?)",
    ),
    (
        "kubernetes",
        _rename(f"{K8S_OPERATOR}/node_selectors", "node_selector"),
        "steps.train_model.settings.step_operator.pod_settings.node_selector is not a field of ZenML's KubernetesPodSettings",
    ),
    (
        "kubernetes",
        _rename("settings/docker/parent_image", "parent_imag"),
        "settings.docker.parent_imag is not a field of ZenML's DockerSettings",
    ),
    (
        "kubernetes",
        _set("steps/train_model/settings/resources/gpu_count", "one"),
        "steps.train_model.settings.resources.gpu_count",
    ),
    (
        "kubernetes",
        _set("components/orchestrator/flavor", "kubernets"),
        "components.orchestrator.flavor: no orchestrator flavor 'kubernets'",
    ),
    (
        "kubernetes",
        _rename("steps/train_model", "train_modle"),
        "steps.train_modle: no step named 'train_modle' (did you mean train_model?)",
    ),
    (
        "kubernetes",
        _rename("schedules/data/cron_expression", "cron_expresion"),
        "schedules.data.cron_expresion is not a field of ZenML's Schedule",
    ),
    (
        "kubernetes",
        _set("components/orchestrator/configuration/kubernetes_namespace", "{{k8s.namespace}}"),
        "is not a secret field",
    ),
    ("kubernetes", _rename("settings", "setings"), "unknown top-level key 'setings'"),
    (
        "kubernetes",
        _set("settings/step_operatorr", {}),
        "settings.step_operatorr: this stack has no step_operatorr component",
    ),
    (
        "sagemaker",
        _rename("components/orchestrator/configuration/execution_role", "execution_rol"),
        "SagemakerOrchestratorConfig",
    ),
    (
        "sagemaker",
        _set("components/orchestrator/configuration/execution_role", _DELETE),
        "execution_role: Field required",
    ),
    (
        "sagemaker",
        _rename("steps/train_model/settings/step_operator/estimator_args", "estimator_arg"),
        "is not a field of ZenML's SagemakerStepOperatorSettings (did you mean estimator_args?)",
    ),
    (
        "sagemaker",
        _set("steps/train_model/step_operator", "some-other-operator"),
        "is not this stack's step operator",
    ),
    (
        "sagemaker",
        _set("settings/orchestrator/volume_size_in_gb", "lots"),
        "settings.orchestrator.volume_size_in_gb",
    ),
    (
        "local",
        _set("schedules", {"data": {"cron_expression": "0 2 * * *"}}),
        "the local orchestrator runs no schedules",
    ),
    (
        "local-s3",
        _set("components/artifact_store/configuration/path", "http://bucket/zenml"),
        "components.artifact_store.configuration",
    ),
    ("local-s3", _set("visionloop/chanel", "s3://x/channel"), "visionloop.chanel is unknown"),
]


@pytest.mark.parametrize(
    "env, mutate, message", BROKEN, ids=[f"{e}-{m.split(':')[0][:40]}" for e, _, m in BROKEN]
)
def test_a_broken_stack_file_fails_naming_file_and_field(
    env: str,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
    tmp_path: Path,
    cloud_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = yaml.safe_load((REPO_ROOT / "stacks" / f"{env}.yaml").read_text())
    mutate(doc)
    (tmp_path / f"{env}.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(stacks.spec, "STACKS_DIR", tmp_path)
    with pytest.raises(StackError) as info:
        validate(env)
    assert f"{env}.yaml" in str(info.value) and message in str(info.value), str(info.value)


def test_an_unset_variable_is_named(monkeypatch: pytest.MonkeyPatch, cloud_env: None) -> None:
    monkeypatch.delenv("VISIONLOOP_BUCKET")
    with pytest.raises(
        StackError,
        match=r"stacks/kubernetes.yaml: components.artifact_store.configuration.path needs \$\{VISIONLOOP_BUCKET\}",
    ):
        validate("kubernetes")


def test_run_options_carry_settings_the_gpu_step_and_the_schedule(cloud_env: None) -> None:
    from zenml.config.schedule import Schedule

    from pipelines.data_pipeline import data_pipeline
    from pipelines.training_pipeline import training_pipeline
    from stacks.options import run_options

    train = run_options(training_pipeline, env="kubernetes")
    assert train["settings"]["docker"]["parent_image"] == "python:3.11-slim"
    assert set(train["step_configurations"]) == {"train_model"}
    assert train["step_configurations"]["train_model"]["settings"]["resources"]["gpu_count"] == 1
    training_pipeline.with_options(**train)  # ZenML takes them as they are
    data = run_options(data_pipeline, schedule="data", env="sagemaker")
    assert "step_configurations" not in data  # train_model is not a step of the data pipeline
    assert isinstance(data["schedule"], Schedule) and data["schedule"].cron_expression == "0 2 * * *"
    data_pipeline.with_options(**data)
    assert run_options(training_pipeline, env="local") == {}
    with pytest.raises(StackError, match="stacks/local.yaml has no schedules.data"):
        run_options(data_pipeline, schedule="data", env="local")


def test_monitoring_is_scheduled_hourly_and_asks_the_stacks_trigger_service(
    cloud_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.config.schedule import Schedule

    from pipelines.monitoring_pipeline import monitoring_pipeline
    from stacks.bootstrap import stack_setting
    from stacks.options import run_options

    for env in ("kubernetes", "sagemaker"):
        options = run_options(monitoring_pipeline, schedule="monitor", env=env)
        assert isinstance(options["schedule"], Schedule)
        assert options["schedule"].cron_expression == "0 * * * *"
        monitoring_pipeline.with_options(**options)  # ZenML takes them as they are
    assert stack_setting("trigger_url", "kubernetes") == "http://visionloop-trigger:8787"
    assert stack_setting("trigger_url", "sagemaker") == ""  # none unless VISIONLOOP_TRIGGER_URL says
    monkeypatch.setenv("VISIONLOOP_TRIGGER_URL", "https://trigger.example.com")
    assert stack_setting("trigger_url", "sagemaker") == "https://trigger.example.com"
    with pytest.raises(StackError, match="stacks/local.yaml has no schedules.monitor"):
        run_options(monitoring_pipeline, schedule="monitor", env="local")


def test_stack_check_command(cloud_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import run

    result = CliRunner().invoke(run.cli, ["stack", "check", "sagemaker", "--json"])
    assert result.exit_code == 0, result.output
    assert "stacks/sagemaker.yaml is valid" in result.output
    shutil.copy(REPO_ROOT / "stacks" / "kubernetes.yaml", tmp_path / "kubernetes.yaml")
    text = (tmp_path / "kubernetes.yaml").read_text().replace("max_parallelism:", "max_paralelism:")
    (tmp_path / "kubernetes.yaml").write_text(text)
    monkeypatch.setattr(stacks.spec, "STACKS_DIR", tmp_path)
    result = CliRunner().invoke(run.cli, ["stack", "check", "kubernetes"])
    assert result.exit_code == 2
    assert (
        "max_paralelism is not a field of ZenML's KubernetesOrchestratorConfig (did you mean max_parallelism?)"
        in result.output
    )


def test_ci_tests_every_push_and_deploys_from_main_with_what_the_stacks_need() -> None:
    import re

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["train-and-deploy"]
    assert any(step.get("run") == "make test" for step in test["steps"])
    assert deploy["needs"] == "test" and "refs/heads/main" in deploy["if"]
    runs = " ".join(step.get("run", "") for step in deploy["steps"])
    assert 'run.py --stack "$VISIONLOOP_STACK"' in runs and "stack check" in runs
    for env in ("kubernetes", "sagemaker"):
        text = (REPO_ROOT / "stacks" / f"{env}.yaml").read_text()
        needed = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))  # those without a default
        assert needed <= set(deploy["env"]), (
            f"{env}: the deploy job does not set {needed - set(deploy['env'])}"
        )
