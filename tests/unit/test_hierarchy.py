"""The hierarchy's domain code: the declaration and its errors, the leaf and node data
sets (ids that ignore where a file sat, a parent sample that a label fix inside a group
leaves alone), hierarchical metrics on hand-checked cases, and the gates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hierarchy.helpers import GROUPS, colour_models, manifest, tiny_cifar
from visionloop.data.blobstore import LocalBlobStore
from visionloop.hierarchy.dataset import ingest, node_dataset
from visionloop.hierarchy.gate import bundle_checks, bundle_reasons, fit_checks, node_checks
from visionloop.hierarchy.metrics import classifier_metrics, hierarchy_metrics
from visionloop.hierarchy.spec import BundleGate, HierarchySpec, HierarchySpecError, NodeGate, load_hierarchy

REPO = Path(__file__).resolve().parents[2]


def spec_for(source: Path, **extra: object) -> HierarchySpec:
    return HierarchySpec.model_validate(
        {
            "name": "toy",
            "data": {"source": str(source), "val_fraction": 0.25},
            "groups": {g: {"classes": c} for g, c in GROUPS.items()},
            **extra,
        }
    )


def test_the_bundled_declaration_loads() -> None:
    spec = load_hierarchy(REPO / "configs" / "cifar10_tree.yaml")
    assert spec.nodes == ["parent", "vehicle", "animal"] and len(spec.leaf_classes) == 10
    assert Path(spec.data.source) == REPO / "data" / "cifar10-tree"
    assert spec.group_of["truck"] == "vehicle" and spec.model_name("parent") == "cifar10-tree-parent"


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"a": {"classes": ["x", "y"]}, "b": {"classes": ["y", "z"]}}, "declared in the groups 'a' and 'b'"),
        ({"a": {"classes": ["x", "y"]}, "parent": {"classes": ["z", "w"]}}, "reserved"),
        ({"a": {"classes": ["x", "b"]}, "b": {"classes": ["z", "w"]}}, "has the name of a group"),
        ({"a": {"classes": ["x/1", "y"]}, "b": {"classes": ["z", "w"]}}, "letters, digits"),
        ({"a": {"classes": ["x"]}, "b": {"classes": ["z", "w"]}}, "at least 2"),
    ],
)
def test_bad_declarations_are_refused_with_the_reason(groups: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"name": "h", "data": {"source": "."}, "groups": groups}))
    with pytest.raises(HierarchySpecError, match=message):
        load_hierarchy(path)


def test_leaf_and_node_data_sets(tmp_path: Path) -> None:
    data = tiny_cifar(tmp_path / "src", train=10, test=4)
    (data / "train" / "dog").mkdir()  # an undeclared class: ignored
    shutil.copy(next((data / "train" / "cat").iterdir()), data / "train" / "dog" / "x.jpg")
    (data / "train" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    spec = spec_for(data)
    leaf, report = ingest(data, spec, LocalBlobStore(tmp_path / "blobs"))
    assert (
        report.total == 57
        and report.accepted == 56
        and len(report.rejected) == 1
        and len(report.ignored) == 1
    )
    assert report.rejected[0]["rule"] == "undecodable"
    assert leaf.stats()["per_split"]["test"] == 16 and leaf.class_names == ["airplane", "ship", "cat", "frog"]
    parent = node_dataset(leaf, spec, "parent")
    assert parent.class_names == ["vehicle", "animal"] and {r.label for r in parent.records} == {
        "vehicle",
        "animal",
    }
    train = parent.split("train")
    assert sum(r.label == "vehicle" for r in train) == sum(
        r.label == "animal" for r in train
    )  # balanced by group
    vehicle = node_dataset(leaf, spec, "vehicle")
    assert {r.label for r in vehicle.records} == {
        "airplane",
        "ship",
    } and vehicle.manifest.parent_version == leaf.version_id

    # a label fixed inside a group (a file moved from airplane to ship): the leaf and
    # vehicle data sets change, the parent's and animal's do not; nor do the splits
    moved = sorted((data / "train" / "airplane").iterdir())[0]
    moved.rename(data / "train" / "ship" / f"fixed-{moved.name}")
    leaf2, _ = ingest(data, spec, LocalBlobStore(tmp_path / "blobs"))
    assert leaf2.version_id != leaf.version_id
    assert node_dataset(leaf2, spec, "vehicle").version_id != vehicle.version_id
    assert node_dataset(leaf2, spec, "parent").version_id == parent.version_id
    assert node_dataset(leaf2, spec, "animal").version_id == node_dataset(leaf, spec, "animal").version_id
    assert {r.sha256: r.split for r in leaf2.records} == {r.sha256: r.split for r in leaf.records}


def test_parent_balance_by_class_and_caps(tmp_path: Path) -> None:
    data = tiny_cifar(tmp_path / "src", train=10, test=2)
    leaf, _ = ingest(data, spec_for(data), LocalBlobStore(tmp_path / "blobs"))
    by_class = node_dataset(leaf, spec_for(data, parent={"balance": "class", "per_class": 3}), "parent")
    assert len(by_class.split("train")) == 12
    capped = node_dataset(leaf, spec_for(data, parent={"balance": "group", "per_group": 5}), "parent")
    assert len(capped.split("train")) == 10
    everything = node_dataset(leaf, spec_for(data, parent={"balance": "none"}), "parent")
    assert len(everything.split("train")) == len(leaf.split("train"))


def test_hierarchical_metrics_on_hand_checked_cases() -> None:
    group_of = {"airplane": "vehicle", "ship": "vehicle", "cat": "animal", "frog": "animal"}
    truth = ["airplane", "ship", "cat", "frog"]
    # right leaf; wrong leaf in the right group; a fallback to the right group; wrong group
    answers = ["airplane", "airplane", "animal", "ship"]
    m = hierarchy_metrics(truth, answers, group_of)
    # |P & T|: 2 + 1 + 1 + 0 = 4; |P|: 2 + 2 + 1 + 2 = 7; |T| = 8
    assert m.hierarchical_precision == round(4 / 7, 4) and m.hierarchical_recall == 0.5
    assert m.hierarchical_f == round(2 * (4 / 7) * 0.5 / (4 / 7 + 0.5), 4)
    assert m.top1 == 0.25 and m.fallback_rate == 0.25 and m.top1_answered == round(1 / 3, 4)
    assert m.group_accuracy == 0.75
    c = classifier_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert c.top1 == round(2 / 3, 4) and c.confusion == [[1, 1], [0, 1]]
    assert c.per_class["a"] == {"precision": 1.0, "recall": 0.5, "support": 2.0}


def test_node_gate_and_bundle_gate() -> None:
    good = classifier_metrics(["a", "b"], ["a", "b"], ["a", "b"])
    worse = classifier_metrics(["a", "b"], ["a", "a"], ["a", "b"])
    checks = node_checks(worse, good, NodeGate(min_top1=0.4, max_regression=0.1), "3")
    assert [c.name for c in checks if not c.passed] == ["top-1 against production"]
    strict = node_checks(worse, None, NodeGate(min_top1=0.6, min_class_recall=0.5), None)
    assert [c.name for c in strict if not c.passed] == ["top-1 threshold", "recall of class b"]

    models = colour_models()
    ok = manifest(models)
    assert all(c.passed for c in fit_checks(ok))
    bad = manifest(models, vehicle_classes=["cat", "frog"])
    e2e = hierarchy_metrics(["airplane"], ["airplane"], {"airplane": "vehicle"})
    checks = bundle_checks(bad, e2e, None, BundleGate(min_top1=0.0), None)
    reasons = bundle_reasons(checks, None)
    assert reasons == [
        "the versions do not fit together: child toy-vehicle version 1 of group 'vehicle' was trained for the "
        "classes ['cat', 'frog'], the group declares ['airplane', 'ship']"
    ]
