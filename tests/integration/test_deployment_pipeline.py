"""The deployment pipeline and the control plane on the session's fresh ZenML store,
with real MLflow and a real channel folder: a first model goes to production on
thresholds alone, a better one replaces it (the old one archived), a worse one is
rejected with its reasons and changes nothing, with approval required a candidate
waits at staging until `run.py promote`, and `run.py rollback` restores the previous
version on the ZenML and MLflow sides and in the channel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from zenml.client import Client

from edge_runtime.channel import ChannelClient
from edge_runtime.storage import LocalStore
from pipelines.launch import DataRunResult, run_data_pipeline, run_deployment_pipeline, run_training_pipeline
from tests.factories import detection_set
from visionloop.config import VisionloopConfig

MODEL = "squares-deploy"
SIGNING_SEED = "5a" * 32


def config(
    data: Path, channel: Path, epochs: int, weights: str = "abd", approval: bool = False
) -> VisionloopConfig:
    return VisionloopConfig.model_validate(
        {
            "name": "squares-deploy",
            "model_name": MODEL,
            "data": {"source": str(data), "format": "yolo"},
            "tune": {"trials": 0},
            "train": {"epochs": epochs, "imgsz": 128, "batch": 8, "weights": weights},
            "export": {"int8": False},
            "deploy": {
                "channel": str(channel),
                "require_approval": approval,
                "gate": {"min_map50": 0.05, "max_regression": 0.0},
                "staging": {"latency_images": 10, "max_latency_p95_ms": 2000, "max_model_mb": 50},
                "self_test_images": 2,
            },
        }
    )


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = detection_set(tmp / "squares", n=48, size=128, seed=11)
        self.channel = tmp / "channel"
        self.dataset: DataRunResult | None = None
        self.runs: dict[str, dict[str, Any]] = {}

    def train_and_deploy(self, label: str, cfg: VisionloopConfig, reuse: bool = True) -> dict[str, Any]:
        if self.dataset is None:
            self.dataset = run_data_pipeline(cfg.data)
        trained = run_training_pipeline(cfg, self.dataset.artifact_id, reuse=reuse)
        deployed = run_deployment_pipeline(cfg, self.dataset.artifact_id, trained.registration.model_version)
        summary = deployed.summary()
        summary["trained"] = trained.summary()
        self.runs[label] = summary
        return summary

    def device(self) -> ChannelClient:
        from visionloop.deploy.signing import parse_private_key

        return ChannelClient(LocalStore(self.channel), parse_private_key(SIGNING_SEED, "test").public_raw)

    def pointer(self, stage: str) -> str | None:
        p = self.device().pointer(MODEL, stage)
        return p.version if p else None


def stage_of(version: str) -> str:
    v = Client().get_model_version(MODEL, version)
    return str(getattr(v.stage, "value", v.stage) or "none")


def mlflow_alias(alias: str) -> str | None:
    from steps.deployment.control_plane import mlflow_client

    try:
        mv = mlflow_client().get_model_version_by_alias(MODEL, alias)
    except Exception:  # noqa: BLE001 - no such alias
        return None
    return str(mv.tags.get("zenml_model_version"))


@pytest.fixture(scope="module")
def world(zenml_stack, tmp_path_factory, monkeypatch_module) -> World:  # type: ignore[no-untyped-def]
    monkeypatch_module.setenv("VISIONLOOP_SIGNING_KEY", SIGNING_SEED)
    w = World(tmp_path_factory.mktemp("deploy"))
    # A: a weak first model; B: trained longer; C: from scratch for one epoch (worse)
    w.train_and_deploy("A", config(w.data, w.channel, epochs=2))
    w.train_and_deploy("B", config(w.data, w.channel, epochs=10))
    w.train_and_deploy("C", config(w.data, w.channel, epochs=1, weights="yolov8n.yaml"))
    return w


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_first_model_goes_through_on_thresholds(world: World) -> None:
    a = world.runs["A"]
    assert a["gate"]["passed"] and a["gate"]["production_version"] is None
    assert any("thresholds alone" in r for r in a["gate"]["reasons"])
    assert a["staging"]["passed"] and a["stage"] == "production"


def test_better_model_replaces_production_and_archives_the_old(world: World) -> None:
    a, b = world.runs["A"], world.runs["B"]
    assert b["gate"]["production_version"] == a["model_version"]
    assert b["gate"]["candidate_map50_95"] >= b["gate"]["production_map50_95"]
    assert b["stage"] == "production" and b["archived_version"] == a["model_version"]
    assert b["staging"]["passed"] and b["staging"]["latency_ms"]["p95"] > 0


def test_worse_model_is_rejected_with_reasons_and_production_unchanged(world: World) -> None:
    b, c = world.runs["B"], world.runs["C"]
    assert c["stage"] == "rejected" and not c["gate"]["passed"]
    assert c["gate"]["production_version"] == b["model_version"]
    assert c["gate"]["candidate_map50"] < c["gate"]["production_map50"]
    assert any("against production" in r and "below" in r for r in c["gate"]["reasons"]), c["gate"]["reasons"]
    assert c["staging"]["skipped"]
    assert stage_of(c["model_version"]) == "none"
    assert stage_of(b["model_version"]) == "production"
    assert world.pointer("production") == b["model_version"]
    assert mlflow_alias("production") == b["model_version"]


def test_decision_artifact_has_both_sides_and_an_html_view(world: World) -> None:
    run = Client().get_pipeline_run(world.runs["C"]["run"])
    artifact = run.steps["gate_model"].outputs["promotion_decision"][0]
    decision = artifact.load()
    assert decision.production is not None and decision.candidate_version == world.runs["C"]["model_version"]
    html = [v for v in artifact.visualizations if str(v.type.value) == "html"]
    assert html, "the decision has no HTML visualization"
    content = Client().zen_store  # the visualization file exists in the artifact store
    from zenml.io import fileio

    assert content is not None and fileio.exists(html[0].uri)
    page = fileio.open(html[0].uri).read()
    page = page.decode() if isinstance(page, bytes) else page
    assert "rejected" in page and f"{decision.production.map50:.4f}" in page


def test_approval_required_waits_at_staging_until_promote(world: World) -> None:
    b = world.runs["B"]
    # D: the same training as B again, registered anew (reuse=False; a plain re-run would
    # reuse B's version): every step cached, a new model version, no regression
    d = world.train_and_deploy("D", config(world.data, world.channel, epochs=10, approval=True), reuse=False)
    assert d["trained"]["cached_steps"], "expected the training steps to come from the cache"
    assert d["stage"] == "staging" and d["waiting_for_approval"]
    assert stage_of(d["model_version"]) == "staging" and stage_of(b["model_version"]) == "production"
    assert (
        world.pointer("staging") == d["model_version"] and world.pointer("production") == b["model_version"]
    )
    assert mlflow_alias("staging") == d["model_version"] and mlflow_alias("production") == b["model_version"]

    import run

    result = CliRunner().invoke(
        run.cli,
        [
            "promote",
            MODEL,
            d["model_version"],
            "--to",
            "production",
            "--reason",
            "reviewed",
            "--by",
            "qa-lead",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    change = json.loads(result.output.strip().splitlines()[-1])
    assert change["version"] == d["model_version"] and change["archived"] == b["model_version"]
    assert stage_of(d["model_version"]) == "production" and stage_of(b["model_version"]) == "archived"
    assert world.pointer("production") == d["model_version"]
    assert mlflow_alias("production") == d["model_version"] and mlflow_alias("staging") is None
    history = Client().get_model_version(MODEL, d["model_version"]).run_metadata["stage_history"]
    assert (
        history[-1]["stage"] == "production"
        and history[-1]["by"] == "qa-lead"
        and history[-1]["why"] == "reviewed"
    )

    # rollback: B back in production everywhere
    result = CliRunner().invoke(run.cli, ["rollback", MODEL, "--reason", "line 3 complaints", "--json"])
    assert result.exit_code == 0, result.output
    change = json.loads(result.output.strip().splitlines()[-1])
    assert change["version"] == b["model_version"]
    assert stage_of(b["model_version"]) == "production" and stage_of(d["model_version"]) == "archived"
    assert world.pointer("production") == b["model_version"]
    assert mlflow_alias("production") == b["model_version"]
    got = world.device().fetch_stage(MODEL, "production", world.tmp / "device")
    assert got is not None and got.version == b["model_version"]


def test_promote_refuses_a_version_without_staging_checks(world: World) -> None:
    import run

    c = world.runs["C"]
    result = CliRunner().invoke(run.cli, ["promote", MODEL, c["model_version"], "--to", "production"])
    assert result.exit_code == 2 and "has not passed its staging checks" in result.output
    assert stage_of(c["model_version"]) == "none"


def test_signing_key_comes_from_a_zenml_secret_when_the_environment_names_none(
    zenml_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.deployment.control_plane import signing_key
    from visionloop.deploy.signing import SigningKeyError

    monkeypatch.delenv("VISIONLOOP_SIGNING_KEY", raising=False)
    monkeypatch.delenv("VISIONLOOP_SIGNING_KEY_FILE", raising=False)
    secret = "visionloop-test-signing-key"
    with pytest.raises(SigningKeyError, match="no channel signing key"):
        signing_key(secret)
    created = signing_key(secret, create=True)
    assert (
        Client()
        .get_secret(secret, allow_partial_name_match=False)
        .secret_values["private_key"]
        .startswith("-----BEGIN PRIVATE KEY-----")
    )
    assert signing_key(secret).key_id == created.key_id  # the same key next time, not a new one
    monkeypatch.setenv("VISIONLOOP_SIGNING_KEY", SIGNING_SEED)
    assert signing_key(secret).key_id != created.key_id  # the environment wins
