"""The edge runtime's bundle: routing, the product of the probabilities, the fallback to
the parent below the child threshold (from the manifest or the runtime's override),
refusing nodes that do not fit, the self-test, and a runtime serving a bundle from a
signed channel and swapping to the next one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.bundle import LoadedBundle, fit_problems
from edge_runtime.channel import ChannelClient
from edge_runtime.model import ModelRejected
from edge_runtime.runtime import EdgeRuntime, RuntimeConfig
from edge_runtime.serving import load_served
from edge_runtime.storage import LocalStore
from tests.deploy.channel_helpers import key
from tests.hierarchy.helpers import CHILD_W, colour_classifier, colour_models, edge_bundle, manifest, solid
from visionloop.deploy.channel import ChannelPublisher
from visionloop.hierarchy.release import bundle_release, hierarchy_section

RED_BLUE = (230, 20, 200)  # vehicle, surely; blue: ship, fairly sure
RED_GREY = (230, 20, 38)  # vehicle; the child is unsure (ship, about 0.55)
GREEN = (20, 230, 0)  # animal; no blue: cat


def probs(rgb: tuple[int, int, int]) -> tuple[float, float]:
    r, g, b = (c / 255 for c in rgb)
    parent = 1 / (1 + np.exp(-(8 * r - 8 * g) * 2))  # vehicle against animal
    child = 1 / (1 + np.exp(-(8 * b - 1)))  # the second class against the first
    return float(parent), float(child)


def test_routes_through_the_parent_and_multiplies_the_probabilities() -> None:
    bundle = edge_bundle(colour_models(), child_min_conf=0.6)
    result = bundle.predict(Image.open(io.BytesIO(solid(RED_BLUE))))
    p_parent, p_child = probs(RED_BLUE)
    assert result.group == "vehicle" and result.leaf == "ship" and not result.fallback
    assert [s["node"] for s in result.path] == ["parent", "vehicle"]
    assert result.path[0]["prob"] == pytest.approx(p_parent, abs=1e-3)
    assert result.path[1]["prob"] == pytest.approx(p_child, abs=1e-3)
    assert result.product == pytest.approx(p_parent * p_child, abs=1e-3) and result.prob == result.product
    doc = result.to_dict()
    assert doc["answer"] == "ship" and doc["level"] == "leaf" and doc["path"][1]["model"] == "toy-vehicle"


def test_falls_back_to_the_parent_below_the_child_threshold() -> None:
    bundle = edge_bundle(colour_models(), child_min_conf=0.6)
    image = Image.open(io.BytesIO(solid(RED_GREY)))
    result = bundle.predict(image)
    assert result.leaf_prob < 0.6 and result.fallback
    assert result.answer == "vehicle" and result.to_dict()["level"] == "group"
    assert result.prob == pytest.approx(result.group_prob)
    assert not bundle.predict(image, child_min_conf=0.4).fallback  # the threshold is configurable
    animal = bundle.predict(Image.open(io.BytesIO(solid(GREEN))))
    assert animal.group == "animal" and animal.answer == "cat"


def test_fit_problems_name_the_node_its_classes_and_the_declaration() -> None:
    models = colour_models()
    assert fit_problems(hierarchy_section(manifest(models))) == []
    problems = fit_problems(hierarchy_section(manifest(models, vehicle_classes=["cat", "frog"])))
    assert len(problems) == 1
    assert "toy-vehicle version 1 of group 'vehicle'" in problems[0]
    assert "['cat', 'frog']" in problems[0] and "['airplane', 'ship']" in problems[0]


def publish(root: Path, version: str, models: dict[str, bytes], **kw: object) -> None:
    m = manifest(models, **kw)  # type: ignore[arg-type]
    samples = [solid(RED_BLUE), solid(GREEN), solid(RED_GREY)]
    release = bundle_release(
        "toy-bundle", version, m, models, edge_bundle(models, m.child_min_conf), samples, 0.5, {}
    )
    publisher = ChannelPublisher(LocalStore(root), key(1))
    publisher.publish(release)
    publisher.set_pointer("toy-bundle", "production", version, reason="test")


def test_device_refuses_a_bundle_whose_nodes_do_not_fit(tmp_path: Path) -> None:
    models = colour_models()
    publish(tmp_path / "channel", "1", models, vehicle_classes=["cat", "frog"])
    client = ChannelClient(LocalStore(tmp_path / "channel"), key(1).public_raw)
    verified = client.fetch_stage("toy-bundle", "production", tmp_path / "device")
    assert verified is not None
    with pytest.raises(ModelRejected, match="do not fit together: child toy-vehicle version 1"):
        load_served(verified)


def test_device_refuses_a_bundle_that_fails_its_self_test(tmp_path: Path) -> None:
    models = colour_models()
    publish(tmp_path / "channel", "1", models)
    client = ChannelClient(LocalStore(tmp_path / "channel"), key(1).public_raw)
    verified = client.fetch_stage("toy-bundle", "production", tmp_path / "device")
    assert verified is not None
    assert isinstance(load_served(verified), LoadedBundle)
    # the same verified folder with a child that answers the other way round
    (verified.path / "children" / "vehicle.onnx").write_bytes(colour_classifier(-CHILD_W))
    with pytest.raises(ModelRejected, match="self-test of the bundle failed"):
        load_served(verified)


def test_runtime_serves_a_bundle_spools_fallbacks_and_swaps_to_the_next(tmp_path: Path) -> None:
    models = colour_models()
    channel = tmp_path / "channel"
    publish(channel, "1", models)
    config = RuntimeConfig(model="toy-bundle", state_dir=tmp_path / "state", device_id="test", threads=1)
    runtime = EdgeRuntime(config, ChannelClient(LocalStore(channel), key(1).public_raw), None)
    runtime.start(background=False)
    assert runtime.agent.check_once() and runtime.current is not None and runtime.current.version_id == "1"
    sure = runtime.predict(solid(RED_BLUE))
    assert sure["hierarchy"]["answer"] == "ship" and sure["feedback"] is None
    assert sure["version"] == "1" and len(sure["hierarchy"]["path"]) == 2
    unsure = runtime.predict(solid(RED_GREY, fmt="JPEG"))
    assert unsure["hierarchy"]["fallback"] and unsure["hierarchy"]["answer"] == "vehicle"
    assert (
        unsure["feedback"]["reason"].startswith("child vehicle below 0.6")
        and unsure["feedback"]["spool"] == "spooled"
    )
    line = json.loads(runtime.predlog.path.read_text().splitlines()[-1])
    assert line["version"] == "1" and line["feedback"] == unsure["feedback"]["reason"]
    assert runtime.health()["status"] == "ok"

    # a new bundle version (a stricter threshold): the agent swaps to it
    publish(channel, "2", models, child_min_conf=0.999)
    assert runtime.agent.check_once() and runtime.current.version_id == "2"  # type: ignore[union-attr]
    assert runtime.predict(solid(RED_BLUE))["hierarchy"]["fallback"]
    described = runtime.current.describe()  # type: ignore[union-attr]
    assert described["task"] == "hierarchy" and described["children"]["vehicle"]["classes"] == [
        "airplane",
        "ship",
    ]
    runtime.stop()


def test_a_detector_child_answers_with_its_best_detection_or_falls_back(abd_onnx: Path) -> None:
    """A group's child may be a detector: its best detection names the leaf, its score
    is the child's probability; nothing detected falls back to the parent's group."""
    from edge_runtime.bundle import HierarchyBundle, Node
    from edge_runtime.classifier import OnnxClassifier
    from edge_runtime.detector import OnnxDetector
    from tests.conftest import METAL_TAGS
    from tests.hierarchy.helpers import GROUPS

    models = colour_models()
    detector = OnnxDetector(abd_onnx, conf=0.05)
    parent = Node(
        "parent", "toy-parent", "1", "classify", ["animal", "vehicle"], OnnxClassifier(models["parent"])
    )
    children = {
        "vehicle": Node("vehicle", "coco", "1", "detect", detector.class_names, detector=detector),
        "animal": Node(
            "animal", "toy-animal", "1", "classify", GROUPS["animal"], OnnxClassifier(models["animal"])
        ),
    }
    bundle = HierarchyBundle(parent, children, child_min_conf=0.05)
    tag = Image.open(sorted(METAL_TAGS.glob("*/*.jpg"))[0]).convert("RGB")
    reddish = Image.blend(tag, Image.new("RGB", tag.size, (255, 0, 0)), 0.6)  # routed to vehicle
    result = bundle.predict(reddish)
    assert result.group == "vehicle" and result.path[1]["model"] == "coco"
    assert result.detections and not result.fallback  # the ABD model finds something on a tag
    best = result.detections[0]
    assert result.leaf == best.class_name and result.leaf_prob == best.score
    assert result.to_dict()["detections"][0]["class_name"] == best.class_name
    empty = bundle.predict(Image.new("RGB", (320, 320), (255, 0, 0)))  # a flat red image: nothing
    assert empty.group == "vehicle" and empty.fallback and empty.answer == "vehicle" and empty.leaf is None


def tag_photo_reddish() -> bytes:
    """A metal-tags photo tinted red, so the colour parent routes it to vehicle."""
    from tests.conftest import METAL_TAGS

    tag = Image.open(sorted(METAL_TAGS.glob("*/*.jpg"))[0]).convert("RGB")
    buf = io.BytesIO()
    Image.blend(tag, Image.new("RGB", tag.size, (255, 0, 0)), 0.6).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_a_detector_child_bundle_is_published_loaded_and_answers_with_boxes(
    abd_onnx: Path, tmp_path: Path
) -> None:
    """A bundle whose vehicle child is a detector goes through the channel like any
    bundle: the device loads it (fit, self-test with the detector's boxes), routes a
    photo the parent sends to vehicle to the detector and answers with the path and the
    boxes that reach the child's own threshold (0.1), each with score x parent probability;
    an image where no box reaches it falls back to the parent's group."""
    from edge_runtime.detector import OnnxDetector
    from tests.hierarchy.helpers import detector_manifest
    from visionloop.hierarchy import evaluate

    models = {**colour_models(), "vehicle": abd_onnx.read_bytes()}
    names = OnnxDetector(abd_onnx).class_names
    m = detector_manifest(models, names, min_conf=0.1)
    photo = tag_photo_reddish()
    samples = [photo, solid(GREEN), solid((255, 0, 0), size=(320, 320))]
    release = bundle_release("toy-bundle", "1", m, models, evaluate.make_bundle(m, models), samples, 0.5, {})
    assert release.fields["hierarchy"]["tasks"] == {"vehicle": "detect", "animal": "classify"}
    child = release.fields["hierarchy"]["children"]["vehicle"]
    assert child["task"] == "detect" and child["conf"] == 0.05 and child["min_conf"] == 0.1
    publisher = ChannelPublisher(LocalStore(tmp_path / "channel"), key(1))
    publisher.publish(release)
    publisher.set_pointer("toy-bundle", "production", "1", reason="test")
    verified = ChannelClient(LocalStore(tmp_path / "channel"), key(1).public_raw).fetch_stage(
        "toy-bundle", "production", tmp_path / "device"
    )
    assert verified is not None
    loaded = load_served(verified)
    assert isinstance(loaded, LoadedBundle)
    described = loaded.describe()["children"]["vehicle"]
    assert described["task"] == "detect" and described["min_conf"] == 0.1 and described["conf"] == 0.05

    result = loaded.predict(Image.open(io.BytesIO(photo)))
    assert result.group == "vehicle" and result.path[1]["model"] == "toy-detector"
    doc = result.to_dict()
    assert doc["detections"] and not doc["fallback"] and doc["answer"] == result.leaf
    assert all(d["score"] >= 0.1 for d in doc["detections"])
    for d in doc["detections"]:
        assert d["product"] == pytest.approx(d["score"] * result.group_prob, abs=1e-5)
    found = loaded.bundle.children["vehicle"].detector.predict(photo)  # type: ignore[union-attr]
    below = [d for d in found if d.score < 0.1]
    assert below and len(doc["detections"]) == len(found) - len(below)  # below 0.1: not returned
    # a runtime override of the child threshold applies to a detector child too
    assert loaded.predict(Image.open(io.BytesIO(photo)), child_min_conf=0.999).fallback

    empty = loaded.predict(Image.new("RGB", (320, 320), (255, 0, 0))).to_dict()
    assert empty["fallback"] and empty["answer"] == "vehicle" and empty["detections"] == []
    assert empty["level"] == "group" and empty["prob"] == pytest.approx(empty["path"][0]["prob"], abs=1e-6)


def test_fit_problems_cover_a_detector_child(abd_onnx: Path) -> None:
    """A detector child must have been trained for its group's declared classes, and be a
    detector where the group declares one."""
    from edge_runtime.detector import OnnxDetector
    from tests.hierarchy.helpers import detector_manifest

    models = {**colour_models(), "vehicle": abd_onnx.read_bytes()}
    names = OnnxDetector(abd_onnx).class_names
    assert fit_problems(hierarchy_section(detector_manifest(models, names))) == []
    wrong = fit_problems(hierarchy_section(detector_manifest(models, names, declared=["scratch"])))
    assert wrong == [
        f"child toy-detector version 1 of group 'vehicle' was trained for the classes {sorted(names)}, "
        "the group declares ['scratch']"
    ]
    classifier = fit_problems(hierarchy_section(detector_manifest(models, names, task="classify")))
    assert classifier == [
        "child toy-detector version 1 of group 'vehicle' is a classify model, the group declares a detect child"
    ]
