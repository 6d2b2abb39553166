"""A hierarchy end to end on the session's fresh ZenML store, with real MLflow and a real
signed channel folder, on a small copy of the bundled cifar10-tree set (two groups of
two classes, 32 px, one epoch):

1. the first run trains the parent and both children (a pipeline run and a model
   version each), and promotes a bundle of them that an edge runtime loads and serves;
2. a label fixed inside the vehicle group retrains the vehicle child alone (no other
   node pipeline runs), and the new bundle, pinning the new child with the unchanged
   parent and animal child, goes to production; the edge runtime swaps to it;
3. a bundle pinning a vehicle child that was trained for other classes than the
   group declares is refused at promotion with the reason, through ``run.py``; nothing
   changes in production, on the channel or on the device.
"""

from __future__ import annotations

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
from tests.hierarchy.helpers import GROUPS, tiny_cifar
from visionloop import constants
from visionloop.deploy.signing import parse_private_key
from visionloop.hierarchy.spec import load_hierarchy

SIGNING_SEED = "6b" * 32
NAME = "toy-tree"
BUNDLE = f"{NAME}-bundle"


def write_spec(path: Path, data: Path, channel: Path, groups: dict[str, list[str]]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": NAME,
                "data": {"source": str(data), "val_fraction": 0.25},
                "train": {"epochs": 1, "imgsz": 32, "batch": 16},
                "groups": {g: {"classes": c} for g, c in groups.items()},
                "flat": {"enabled": False},
                "gate": {"min_top1": 0.0},
                "bundle": {"child_min_conf": 0.5, "gate": {"min_top1": 0.0, "max_regression": 1.0}},
                "deploy": {"channel": str(channel), "self_test_images": 3, "staging": {"latency_images": 5}},
            }
        )
    )
    return path


def stage_of(model: str, version: str) -> str:
    v = Client().get_model_version(model, version)
    return str(getattr(v.stage, "value", v.stage) or "none")


def node_runs() -> list[Any]:
    runs = Client().list_pipeline_runs(
        pipeline_name=constants.HIERARCHY_NODE_PIPELINE, size=100, hydrate=True
    )
    return list(runs.items)


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tiny_cifar(tmp / "data", train=8, test=3)
        self.channel = tmp / "channel"
        self.spec_path = write_spec(tmp / "tree.yaml", self.data, self.channel, GROUPS)
        public = parse_private_key(SIGNING_SEED, "test").public_raw
        config = RuntimeConfig(model=BUNDLE, state_dir=tmp / "device", device_id="test", threads=1)
        self.runtime = EdgeRuntime(config, ChannelClient(LocalStore(self.channel), public), None)
        self.runtime.start(background=False)
        self.runs: dict[str, HierarchyRunResult] = {}
        self.served: dict[str, dict[str, Any]] = {}
        self.node_runs: dict[str, list[Any]] = {}

    def image(self) -> bytes:
        return sorted((self.data / "test" / "ship").iterdir())[0].read_bytes()

    def step(self, label: str, **kwargs: Any) -> HierarchyRunResult:
        before = {r.id for r in node_runs()}
        self.runs[label] = run_hierarchy(load_hierarchy(self.spec_path), **kwargs)
        self.node_runs[label] = [r for r in node_runs() if r.id not in before]
        assert self.runtime.agent.check_once()
        self.served[label] = self.runtime.predict(self.image())
        return self.runs[label]


@pytest.fixture(scope="module")
def world(zenml_stack, tmp_path_factory, monkeypatch_module):  # type: ignore[no-untyped-def]
    monkeypatch_module.setenv("VISIONLOOP_SIGNING_KEY", SIGNING_SEED)
    w = World(tmp_path_factory.mktemp("hierarchy"))
    w.step("first")
    moved = sorted((w.data / "train" / "airplane").iterdir())[0]
    moved.rename(w.data / "train" / "ship" / f"relabelled-{moved.name}")  # a label fixed inside a group
    w.step("second")
    yield w
    w.runtime.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_first_run_trains_every_node_and_promotes_a_bundle_the_edge_serves(world: World) -> None:
    first = world.runs["first"].summary()
    assert {k: n["status"] for k, n in first["nodes"].items()} == {
        "parent": "trained",
        "vehicle": "trained",
        "animal": "trained",
    }
    assert sorted(r.model_version.model.name for r in world.node_runs["first"]) == [
        f"{NAME}-animal",
        f"{NAME}-parent",
        f"{NAME}-vehicle",
    ]
    bundle = first["bundle"]
    assert (
        bundle["stage"] == "production" and bundle["gate_passed"] and bundle["pointers"]["production"] == "1"
    )
    assert bundle["end_to_end"]["images"] == 12 and 0 <= bundle["end_to_end"]["hierarchical_f"] <= 1
    for node in ("parent", "animal"):  # promoted with the bundle (vehicle: see the next test)
        assert stage_of(f"{NAME}-{node}", first["nodes"][node]["version"]) == "production"
    served = world.served["first"]
    assert served["model"] == BUNDLE and served["version"] == "1"
    path = served["hierarchy"]["path"]
    assert [p["node"] for p in path][0] == "parent" and path[1]["node"] in GROUPS
    assert served["hierarchy"]["product"] == pytest.approx(path[0]["prob"] * path[1]["prob"], abs=1e-5)


def test_retraining_one_child_runs_only_its_pipeline_and_the_edge_swaps(world: World) -> None:
    first, second = world.runs["first"].summary(), world.runs["second"].summary()
    assert second["leaf_dataset_version_id"] != first["leaf_dataset_version_id"]
    assert {k: n["status"] for k, n in second["nodes"].items()} == {
        "parent": "unchanged",
        "vehicle": "trained",
        "animal": "unchanged",
    }
    assert [r.model_version.model.name for r in world.node_runs["second"]] == [f"{NAME}-vehicle"]
    pins = second["bundle"]["pins"]
    assert (
        pins["parent"] == first["bundle"]["pins"]["parent"]
        and pins["animal"] == first["bundle"]["pins"]["animal"]
    )
    assert pins["vehicle"] != first["bundle"]["pins"]["vehicle"]
    assert second["bundle"]["stage"] == "production" and second["bundle"]["archived_version"] == "1"
    assert second["bundle"]["pointers"]["production"] == "2"
    # the nodes follow the bundle: the new child in production, the one it replaced archived
    assert stage_of(f"{NAME}-vehicle", second["nodes"]["vehicle"]["version"]) == "production"
    assert stage_of(f"{NAME}-vehicle", first["nodes"]["vehicle"]["version"]) == "archived"
    # the device swapped to the new bundle and routes through the new child
    assert world.runtime.current is not None and world.runtime.current.version_id == "2"
    described = world.runtime.current.describe()
    assert (
        f"{described['children']['vehicle']['model']}:{described['children']['vehicle']['version']}"
        == pins["vehicle"]
    )
    assert world.served["second"]["version"] == "2"
    assert world.runtime.agent.status.swaps == 2


def test_a_bundle_whose_child_was_trained_for_other_classes_is_refused(world: World) -> None:
    import run

    # a vehicle child trained for other classes (a declaration that swapped the groups' classes)
    other = write_spec(
        world.tmp / "other.yaml",
        world.data,
        world.channel,
        {"vehicle": GROUPS["animal"], "animal": GROUPS["vehicle"]},
    )
    wrong = run_hierarchy(load_hierarchy(other), only=["vehicle"], deploy=False).nodes["vehicle"]
    # its data set has the animal child's records, so ZenML may take the training from the cache
    assert wrong.status in ("trained", "re-gated") and wrong.model == f"{NAME}-vehicle"
    classes = Client().get_model_version(f"{NAME}-vehicle", wrong.version).run_metadata["class_names"]
    assert sorted(classes) == ["cat", "frog"]

    result = CliRunner().invoke(
        run.cli,
        ["hierarchy", "--config", str(world.spec_path), "--pin", f"vehicle={wrong.version}", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    bundle = summary["bundle"]
    assert bundle["stage"] == "rejected" and not bundle["gate_passed"]
    expected = (
        f"the versions do not fit together: child {NAME}-vehicle version {wrong.version} of group 'vehicle' was "
        "trained for the classes ['cat', 'frog'], the group declares ['airplane', 'ship']"
    )
    assert bundle["reasons"] == [expected]
    assert "was REFUSED" in result.output and "['cat', 'frog']" in result.output
    assert bundle["production_version"] == "2" and bundle["pointers"] == {}
    assert stage_of(BUNDLE, bundle["version"]) == "none" and stage_of(BUNDLE, "2") == "production"
    pointer = ChannelClient(
        LocalStore(world.channel), parse_private_key(SIGNING_SEED, "t").public_raw
    ).pointer(BUNDLE, "production")
    assert pointer is not None and pointer.version == "2"
    assert world.runtime.agent.check_once() and world.runtime.current.version_id == "2"  # type: ignore[union-attr]
