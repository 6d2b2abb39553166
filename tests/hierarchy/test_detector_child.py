"""A hierarchy with a detector child end to end on the session's fresh ZenML store (real
MLflow, a real signed channel folder, an edge runtime): two classifier groups from a
small copy of cifar10-tree and a ``tag`` group whose child is a scratch detector trained
on a small copy of metal-tags (its Ground Truth CSV read by the detection importer, QA
and split by the detection data steps, trained, evaluated and gated by the detection
steps; one epoch at 160 px):

1. the first run trains the parent (on every group's images, the tag photos as whole
   images labelled ``tag``), both classifier children and the detector, each as its own
   ZenML model with its own gate; the bundle records the detector with its mAP and
   box threshold, is measured on the tag photos end to end and goes to production; the
   edge runtime serves it and answers a tag photo with the path and the detector's boxes;
2. a box corrected in the detection labels retrains the detector alone (no classifier
   node pipeline runs) and a new bundle goes to production;
3. ``run.py hierarchy --rollback`` puts the first bundle back, and with it the first
   detector version (ZenML stage, channel pointer); the version it replaced is archived,
   and the device swaps back.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from zenml.client import Client

from edge_runtime.channel import ChannelClient
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.storage import LocalStore
from pipelines.hierarchy_launch import HierarchyRunResult, run_hierarchy
from tests.hierarchy.helpers import GROUPS, tiny_cifar, tiny_metal_tags
from visionloop import constants
from visionloop.deploy.signing import parse_private_key
from visionloop.hierarchy.spec import load_hierarchy

SIGNING_SEED = "7c" * 32
NAME = "mixed-tree"
BUNDLE = f"{NAME}-bundle"
DETECTOR = f"{NAME}-tag"


def write_spec(path: Path, cifar: Path, tags: Path, channel: Path) -> Path:
    groups: dict[str, Any] = {g: {"classes": c} for g, c in GROUPS.items()}
    groups["tag"] = {
        "task": "detect",
        "classes": ["scratch"],
        "data": {"source": str(tags), "format": "ground-truth", "group_pattern": "^(?P<group>.+?)-cropped-"},
        "train": {"epochs": 1, "imgsz": 160, "batch": 8},
        "gate": {"min_map50": 0.0, "max_regression": 1.0},  # one epoch: any figure passes
        "min_conf": 0.05,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "name": NAME,
                "data": {"source": str(cifar), "val_fraction": 0.25},
                "train": {"epochs": 1, "imgsz": 32, "batch": 16},
                "parent": {"train": {"epochs": 4}},
                "groups": groups,
                "flat": {"enabled": False},
                "gate": {"min_top1": 0.0},
                "bundle": {
                    "child_min_conf": 0.5,
                    "gate": {"min_top1": 0.0, "min_detector_map50": 0.0, "max_regression": 1.0},
                },
                "deploy": {"channel": str(channel), "self_test_images": 4, "staging": {"latency_images": 5}},
            }
        )
    )
    return path


def stage_of(model: str, version: str) -> str:
    v = Client().get_model_version(model, version)
    return str(getattr(v.stage, "value", v.stage) or "none")


def runs_of(pipeline: str) -> list[Any]:
    return list(Client().list_pipeline_runs(pipeline_name=pipeline, size=100, hydrate=True).items)


def node_run_models(before: set[Any]) -> list[str]:
    runs = runs_of(constants.HIERARCHY_NODE_PIPELINE) + runs_of(constants.HIERARCHY_DETECTOR_PIPELINE)
    return sorted(r.model_version.model.name for r in runs if r.id not in before)


def all_node_run_ids() -> set[Any]:
    return {
        r.id
        for p in (constants.HIERARCHY_NODE_PIPELINE, constants.HIERARCHY_DETECTOR_PIPELINE)
        for r in runs_of(p)
    }


def fix_a_box(labels: Path) -> None:
    """Widen the first box of the first labelled photo with a scratch by 4 pixels."""
    with labels.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    for row in rows:
        if row["annotations"] not in ("", "[]"):
            boxes = ast.literal_eval(row["annotations"])
            boxes[0]["width"] += 4
            row["annotations"] = repr(boxes)
            break
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        # not the pipeline test's copy (8 per class): its first run must train, not hit this one's cache
        self.cifar = tiny_cifar(tmp / "cifar", train=6, test=3)
        self.tags = tiny_metal_tags(tmp / "tags", bad=32, good=4)
        self.channel = tmp / "channel"
        self.spec_path = write_spec(tmp / "mixed.yaml", self.cifar, self.tags, self.channel)
        self.public = parse_private_key(SIGNING_SEED, "test").public_raw
        config = RuntimeConfig(model=BUNDLE, state_dir=tmp / "device", device_id="test", threads=1)
        self.runtime = EdgeRuntime(config, ChannelClient(LocalStore(self.channel), self.public), None)
        self.runtime.start(background=False)
        self.runs: dict[str, HierarchyRunResult] = {}
        self.trained: dict[str, list[str]] = {}
        self.stages: dict[str, dict[str, str]] = {}

    def tag_photos(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted((self.tags / "bad").iterdir())]

    def step(self, label: str) -> HierarchyRunResult:
        before = all_node_run_ids()
        self.runs[label] = run_hierarchy(load_hierarchy(self.spec_path))
        self.trained[label] = node_run_models(before)
        self.stages[label] = {k: stage_of(n.model, n.version) for k, n in self.runs[label].nodes.items()}
        assert self.runtime.agent.check_once()
        return self.runs[label]


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def world(zenml_stack, tmp_path_factory, monkeypatch_module):  # type: ignore[no-untyped-def]
    monkeypatch_module.setenv("VISIONLOOP_SIGNING_KEY", SIGNING_SEED)
    w = World(tmp_path_factory.mktemp("detector-child"))
    w.step("first")
    w.served = [w.runtime.predict(b) for b in w.tag_photos()[:8]]  # type: ignore[attr-defined]
    fix_a_box(w.tags / "labels.csv")
    w.step("second")
    yield w
    w.runtime.stop()


def test_first_run_trains_a_detector_child_and_bundles_it(world: World) -> None:
    first = world.runs["first"].summary()
    nodes = first["nodes"]
    assert {k: (n["status"], n["task"]) for k, n in nodes.items()} == {
        "parent": ("trained", "classify"),
        "vehicle": ("trained", "classify"),
        "animal": ("trained", "classify"),
        "tag": ("trained", "detect"),
    }
    assert world.trained["first"] == sorted(f"{NAME}-{n}" for n in ("animal", "parent", "tag", "vehicle"))
    tag = nodes["tag"]
    assert 0 <= tag["test_map50"] <= 1 and 0 <= tag["test_map50_95"] <= tag["test_map50"] + 1e-9
    assert tag["gate_passed"] is True and tag["test_top1"] is None
    # its own ZenML model version: the detection gate's verdict and figures, the hierarchy's record
    meta = Client().get_model_version(DETECTOR, tag["version"]).run_metadata
    assert meta["task"] == "detect" and meta["class_names"] == ["scratch"] and meta["gate_passed"] is True
    assert meta["gate_settings"]["min_map50"] == 0.0 and meta["node_map50"] == tag["test_map50"]
    assert meta["dataset_version_id"] == tag["dataset_version_id"] and "test_map50" in meta

    # the parent learned the tag group from the photos as whole images
    leaf = Client().get_artifact_version(world.runs["first"].leaf_artifact_id).load()
    assert "tag" in leaf.class_names and any(r.label == "tag" and r.boxes is not None for r in leaf.records)
    parent = Client().get_model_version(f"{NAME}-parent", nodes["parent"]["version"]).run_metadata
    assert sorted(parent["class_names"]) == ["animal", "tag", "vehicle"]

    bundle = first["bundle"]
    assert bundle["stage"] == "production" and bundle["gate_passed"], bundle["reasons"]
    route = bundle["detectors"]["tag"]
    assert route["images"] == sum(r.label == "tag" and r.split == "test" for r in leaf.records) > 0
    assert 0 <= route["map50"] <= route["child_map50"] + 1e-9 and 0 <= route["routed"] <= 1
    assert bundle["end_to_end"]["images"] == 12  # the classifier groups' test images
    decision = world.runs["first"].decision
    manifest_tag = decision.candidate.nodes["tag"]
    assert manifest_tag["task"] == "detect" and manifest_tag["test_map50"] == tag["test_map50"]
    assert any(c.name == "detector tag: mAP50 through the bundle threshold" for c in decision.checks)
    assert world.stages["first"] == dict.fromkeys(nodes, "production")  # promoted with the bundle


def test_the_edge_serves_the_detector_child_behind_the_parent(world: World) -> None:
    described = world.runtime.current.describe()  # type: ignore[union-attr]
    assert described["version"] == "2"  # after the second run; the first answers are below
    assert described["children"]["tag"]["task"] == "detect"
    assert described["children"]["tag"]["min_conf"] == 0.05 and described["children"]["tag"]["conf"] == 0.25
    served = world.served  # type: ignore[attr-defined]
    routed = [s for s in served if s["hierarchy"]["path"][0]["class"] == "tag"]
    assert routed, [s["hierarchy"]["path"] for s in served]  # the parent sends tag photos to the detector
    for s in routed:
        h = s["hierarchy"]
        assert s["version"] == "1" and h["path"][1]["node"] == "tag" and h["path"][1]["model"] == DETECTOR
        assert "detections" in h
        parent_prob = h["path"][0]["prob"]
        for box in h["detections"]:
            assert box["class_name"] == "scratch" and box["score"] >= 0.05
            assert box["product"] == pytest.approx(box["score"] * parent_prob, abs=1e-5)
        assert h["fallback"] == (not h["detections"])
        assert h["answer"] == ("tag" if h["fallback"] else "scratch")


def test_a_corrected_box_retrains_the_detector_alone(world: World) -> None:
    first, second = world.runs["first"].summary(), world.runs["second"].summary()
    assert {k: n["status"] for k, n in second["nodes"].items()} == {
        "parent": "unchanged",
        "vehicle": "unchanged",
        "animal": "unchanged",
        "tag": "trained",
    }
    assert world.trained["second"] == [DETECTOR]
    assert second["nodes"]["tag"]["dataset_version_id"] != first["nodes"]["tag"]["dataset_version_id"]
    bundle = second["bundle"]
    assert bundle["stage"] == "production", bundle["reasons"] + bundle["outcome_reasons"]
    assert bundle["version"] == "2" and bundle["archived_version"] == "1"
    assert bundle["pins"]["tag"] == f"{DETECTOR}:{second['nodes']['tag']['version']}"
    assert bundle["pins"]["parent"] == first["bundle"]["pins"]["parent"]
    assert stage_of(DETECTOR, first["nodes"]["tag"]["version"]) == "archived"
    assert world.runtime.current is not None and world.runtime.current.version_id == "2"


def test_rolling_back_the_bundle_restores_its_nodes_stages(world: World) -> None:
    import run

    first, second = world.runs["first"].summary(), world.runs["second"].summary()
    v1, v2 = first["nodes"]["tag"]["version"], second["nodes"]["tag"]["version"]
    # the generic commands would move the bundle without its nodes: they refuse
    for args in (["rollback", BUNDLE], ["promote", BUNDLE, "1", "--to", "production"]):
        refused = CliRunner().invoke(run.cli, args)
        assert refused.exit_code == 2 and "is a hierarchy bundle" in refused.output, refused.output
        assert "run.py hierarchy" in refused.output
    assert stage_of(BUNDLE, "2") == "production"
    result = CliRunner().invoke(
        run.cli, ["hierarchy", "--config", str(world.spec_path), "--rollback", "--reason", "test", "--json"]
    )
    assert result.exit_code == 0, result.output
    change = json.loads(result.output.strip().splitlines()[-1])
    assert change["model"] == BUNDLE and change["version"] == "1" and change["archived"] == "2"
    assert change["nodes"]["tag"] == f"{DETECTOR}:{v1} now in production ({v2} archived)"
    assert change["nodes"]["parent"].endswith("already in production")
    assert stage_of(BUNDLE, "1") == "production" and stage_of(BUNDLE, "2") == "archived"
    assert stage_of(DETECTOR, v1) == "production" and stage_of(DETECTOR, v2) == "archived"
    client = ChannelClient(LocalStore(world.channel), world.public)
    assert client.pointer(BUNDLE, "production").version == "1"  # type: ignore[union-attr]
    assert client.pointer(DETECTOR, "production").version == v1  # type: ignore[union-attr]
    history = Client().get_model_version(DETECTOR, v1).run_metadata["stage_history"]
    assert history[-1]["stage"] == "production" and "rollback of" in history[-1]["why"]
    assert world.runtime.agent.check_once() and world.runtime.current.version_id == "1"  # type: ignore[union-attr]
