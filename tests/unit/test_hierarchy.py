"""The hierarchy's domain code: the declaration and its errors, the leaf and node data
sets (ids that ignore where a file sat, a parent sample that a label fix inside a group
leaves alone), hierarchical metrics on hand-checked cases, and the gates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hierarchy.helpers import GROUPS, colour_models, manifest, tiny_cifar
from visionloop.data.blobstore import LocalBlobStore
from visionloop.data.dataset import ImageDataset
from visionloop.hierarchy.dataset import ingest, node_dataset, with_detector_group
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


# --- detector children ---------------------------------------------------------------


def test_a_declaration_with_a_detector_child_loads() -> None:
    spec = load_hierarchy(REPO / "configs" / "tags_tree.yaml")
    assert spec.nodes == ["parent", "vehicle", "animal", "tag"] and spec.detector_groups == ["tag"]
    assert spec.classifier_nodes == ["parent", "vehicle", "animal"]
    tag = spec.groups["tag"]
    assert tag.data is not None and Path(tag.data.source) == REPO / "data" / "metal-tags"
    assert tag.data.class_names == ["scratch"] and tag.data.format == "ground-truth"
    assert spec.detector_gate("tag").min_map50 == 0.5 and spec.detector_settings("tag").imgsz == 320
    assert spec.child_min_conf("tag") == 0.3 and spec.child_min_conf("vehicle") == 0.5
    assert spec.leaf_labels[-1] == "tag" and "scratch" not in spec.leaf_labels
    assert spec.label_group["tag"] == "tag" and "scratch" not in spec.group_of
    assert spec.tasks == {"vehicle": "classify", "animal": "classify", "tag": "detect"}


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"task": "detect", "classes": ["scratch"]}, "needs `data:`"),
        ({"classes": ["x", "y"], "data": {"source": "."}}, "belong to a detector child"),
        (
            {"task": "detect", "classes": ["scratch"], "data": {"source": ".", "class_names": ["dent"]}},
            "differ from the group's classes",
        ),
    ],
)
def test_bad_detector_declarations_are_refused(group: dict, message: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "h.yaml"
    groups = {"a": {"classes": ["p", "q"]}, "b": group}
    path.write_text(yaml.safe_dump({"name": "h", "data": {"source": "."}, "groups": groups}))
    with pytest.raises(HierarchySpecError, match=message):
        load_hierarchy(path)


def detection_set(blobs: LocalBlobStore, photos: list[Path], widen: float = 0.0) -> ImageDataset:
    """A detection data set version of tag photos, one scratch box each, splits in turn."""
    import hashlib

    from PIL import Image

    from visionloop.data.dataset import DatasetManifest
    from visionloop.data.types import Box, ImageRecord, LabelStatus

    records = []
    for i, photo in enumerate(photos):
        data = photo.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        blobs.put(sha, ".jpg", data)
        w, h = Image.open(photo).size
        records.append(
            ImageRecord(
                sha256=sha,
                path=photo.name,
                width=w,
                height=h,
                status=LabelStatus.LABELED,
                boxes=[Box(0, 10.0, 10.0, 60.0 + widen, 80.0)],
                source="test",
                group=photo.name,
                split=("train", "train", "val", "test")[i % 4],
            )
        )
    return ImageDataset(DatasetManifest(class_names=["scratch"], records=records), blobs)


def mixed_spec(source: Path) -> HierarchySpec:
    groups: dict = {g: {"classes": c} for g, c in GROUPS.items()}
    groups["tag"] = {"task": "detect", "classes": ["scratch"], "data": {"source": "."}}
    return HierarchySpec.model_validate(
        {"name": "mixed", "data": {"source": str(source), "val_fraction": 0.25}, "groups": groups}
    )


def test_a_detector_groups_images_join_the_leaf_set_as_whole_images(tmp_path: Path) -> None:
    from tests.hierarchy.helpers import METAL_TAGS

    data = tiny_cifar(tmp_path / "src", train=10, test=4)
    spec = mixed_spec(data)
    blobs = LocalBlobStore(tmp_path / "blobs")
    leaf, _ = ingest(data, spec, blobs)
    assert leaf.class_names == ["airplane", "ship", "cat", "frog", "tag"] and len(leaf.records) == 56
    photos = sorted((METAL_TAGS / "bad").iterdir())[:16]
    joined, duplicates = with_detector_group(leaf, detection_set(blobs, photos), spec, "tag")
    tags = [r for r in joined.records if r.label == "tag"]
    assert duplicates == 0 and len(tags) == 16 and all(r.boxes and r.boxes[0].x2 == 60.0 for r in tags)
    assert {r.split for r in tags} == {"train", "val", "test"}  # the detection set's splits, kept
    parent = node_dataset(joined, spec, "parent")
    assert parent.class_names == ["vehicle", "animal", "tag"]
    train = parent.split("train")
    assert {r.label for r in train} == {"vehicle", "animal", "tag"}
    assert all(r.boxes is None for r in parent.records)  # whole images: the parent sees no boxes
    per_group = [sum(r.label == g for r in train) for g in ("vehicle", "animal", "tag")]
    assert per_group == [8, 8, 8]  # balanced by group: the tag group's 8 train photos are the fewest
    vehicle = node_dataset(joined, spec, "vehicle")
    assert (
        vehicle.version_id == node_dataset(leaf, spec, "vehicle").version_id
    )  # classifier children unchanged
    with pytest.raises(ValueError, match="detector child"):
        node_dataset(joined, spec, "tag")
    # a box corrected: the leaf set changes (it keeps the boxes), the parent's does not
    corrected, _ = with_detector_group(leaf, detection_set(blobs, photos, widen=4.0), spec, "tag")
    assert corrected.version_id != joined.version_id
    assert node_dataset(corrected, spec, "parent").version_id == parent.version_id
    # a detection set of other classes than the group declares is refused
    other = detection_set(blobs, photos)
    other.manifest.class_names = ["dent"]
    with pytest.raises(ValueError, match=r"has the classes \['dent'\], the group declares \['scratch'\]"):
        with_detector_group(leaf, other, spec, "tag")


def test_a_detector_route_through_the_bundle(abd_onnx: Path, tmp_path: Path) -> None:
    """Photos the parent sends elsewhere lose their boxes: the route's mAP is the child's
    on the photos routed to it; the routed share and the images routed in are counted."""
    import io

    from PIL import Image

    from edge_runtime.detector import OnnxDetector
    from tests.hierarchy.helpers import METAL_TAGS, detector_manifest
    from visionloop.data.types import Box
    from visionloop.hierarchy import evaluate
    from visionloop.hierarchy.dataset import ClassRecord

    models = {**colour_models(), "vehicle": abd_onnx.read_bytes()}
    names = OnnxDetector(abd_onnx).class_names
    m = detector_manifest(models, names)
    bundle = evaluate.make_bundle(m, models)
    detector = bundle.children["vehicle"].detector
    assert detector is not None
    records, images = [], []
    photo = Image.open(sorted(METAL_TAGS.glob("*/*.jpg"))[0]).convert("RGB")
    for i, tint in enumerate([(255, 0, 0), (255, 0, 0), (0, 255, 0), (0, 255, 0)]):
        buf = io.BytesIO()
        Image.blend(photo, Image.new("RGB", photo.size, tint), 0.6 - 0.1 * (i % 2)).save(buf, format="PNG")
        data = buf.getvalue()
        label = "vehicle" if i < 3 else "cat"  # the third photo is misrouted, the fourth a cat routed right
        found = detector.predict(data, conf=0.1) if label == "vehicle" else []
        boxes = [Box(d.class_id, *d.box) for d in found]  # its own boxes as the truth
        records.append(
            ClassRecord(sha256=str(i), path=str(i), label=label, split="test", width=1, height=1, boxes=boxes)
        )
        images.append(data)
    results = evaluate.route_all(bundle, images)
    assert [r.group for r in results] == ["vehicle", "vehicle", "animal", "animal"]
    route = evaluate.detector_route(bundle, "vehicle", names, records, images, results)
    assert route.images == 3 and route.routed == round(2 / 3, 4) and route.routed_in == 0
    assert route.child_map50 > 0.9 and route.map50 < route.child_map50  # the misrouted photo's boxes lost
    with_fallback, _ = evaluate.end_to_end(
        results, [r.label for r in records], {"cat": "animal"}, {"vehicle"}
    )
    assert with_fallback.images == 1  # only the classifier group's image is scored as a leaf


def test_bundle_gate_checks_each_detector_route() -> None:
    from visionloop.hierarchy.types import DetectorRoute

    models = colour_models()
    route = DetectorRoute(
        group="tag",
        images=10,
        routed=0.9,
        fallback_rate=0.1,
        map50=0.42,
        map50_95=0.2,
        child_map50=0.5,
        child_map50_95=0.25,
    )
    e2e = hierarchy_metrics(["airplane"], ["airplane"], {"airplane": "vehicle"})
    gate = BundleGate(min_top1=0.0, min_detector_map50=0.45, max_regression=0.01)
    prod = route.model_copy(update={"map50": 0.6})
    checks = bundle_checks(manifest(models), e2e, e2e, gate, "1", {"tag": route}, {"tag": prod})
    failed = [c.name for c in checks if not c.passed]
    assert failed == [
        "detector tag: mAP50 through the bundle threshold",
        "detector tag: mAP50 through the bundle against production",
    ]
    reasons = bundle_reasons(checks, "1")
    assert reasons[0].startswith("detector tag: mAP50 through the bundle threshold: 0.42 is below 0.45")
