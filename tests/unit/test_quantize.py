"""Static INT8 quantization of an exported detector (the ABD YOLOv8n checkpoint at 160 px)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

from edge_runtime.preprocess import letterbox
from visionloop.training.quantize import (
    ImageCalibrationReader,
    QuantizationError,
    compare_outputs,
    head_decode_nodes,
    quantize_int8,
)

METAL_TAGS = Path(__file__).resolve().parents[2] / "data" / "metal-tags"
IMGSZ = 160


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("export")
    weights = folder / "abd.pt"
    shutil.copyfile(abd_checkpoint(), weights)
    return Path(YOLO(str(weights)).export(format="onnx", imgsz=IMGSZ, dynamic=False))


@pytest.fixture(scope="module")
def images() -> list[Path]:
    return sorted((METAL_TAGS / "bad").glob("*.jpg"))[:8]


@pytest.fixture(scope="module")
def quantized(float_onnx: Path, images: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    return quantize_int8(float_onnx, out, images)


def last_index(model: onnx.ModelProto) -> int:
    return max(int(m.group(1)) for n in model.graph.node if (m := re.match(r"/model\.(\d+)/", n.name)))


def test_head_decode_nodes_are_the_detect_decoding(float_onnx: Path) -> None:
    model = onnx.load(str(float_onnx))
    names = head_decode_nodes(model)
    index = last_index(model)
    assert names and len(set(names)) == len(names)
    assert all(n.startswith(f"/model.{index}/") for n in names)
    assert not [n for n in names if re.match(rf"/model\.{index}/cv[23]\.", n)]
    by_name = {n.name: n for n in model.graph.node}
    dfl_ops = {by_name[n].op_type for n in names if "/dfl/" in n}
    assert {"Softmax", "Conv"} <= dfl_ops
    # the node that produces the graph output is part of the decoding
    output = model.graph.output[0].name
    assert any(output in by_name[n].output for n in names)
    # and the head's conv branches are not: they are what gets quantized
    assert any(n.name.startswith(f"/model.{index}/cv2.") and n.op_type == "Conv" for n in model.graph.node)


def test_head_decode_nodes_find_the_last_layer_and_what_follows() -> None:
    """Depth is not hard-coded: a 6-layer graph with a post-processing node after the head."""

    def node(op: str, name: str, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
        return helper.make_node(op, inputs, outputs, name=name)

    nodes = [
        node("Relu", "/model.4/act/Relu", ["x"], ["a"]),
        node("Relu", "/model.5/cv2.0/cv2.0.0/act/Relu", ["a"], ["b"]),
        node("Relu", "/model.5/cv3.0/cv3.0.0/act/Relu", ["a"], ["c"]),
        node("Concat", "/model.5/Concat", ["b", "c"], ["d"]),
        node("Softmax", "/model.5/dfl/Softmax", ["d"], ["e"]),
        node("Identity", "post/Identity", ["e"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    names = head_decode_nodes(helper.make_model(graph))
    assert names == ["/model.5/Concat", "/model.5/dfl/Softmax", "post/Identity"]


def test_head_decode_nodes_needs_an_ultralytics_graph() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(QuantizationError, match="/model"):
        head_decode_nodes(helper.make_model(graph))


def test_calibration_reader_feeds_letterboxed_images(images: list[Path]) -> None:
    reader = ImageCalibrationReader(images[:3], "images", IMGSZ, IMGSZ)
    feeds = list(iter(reader.get_next, None))
    assert len(feeds) == len(reader) == 3
    with Image.open(images[0]) as im:
        expected, _ = letterbox(im, IMGSZ, IMGSZ)
    assert feeds[0]["images"].shape == (1, 3, IMGSZ, IMGSZ)
    np.testing.assert_array_equal(feeds[0]["images"], expected)
    reader.rewind()
    assert reader.get_next() is not None


def test_quantize_int8_gives_a_smaller_runnable_model(float_onnx: Path, quantized, images) -> None:
    int8 = quantized.path
    onnx.checker.check_model(str(int8))
    assert quantized.calibration_images == len(images)
    assert quantized.excluded_nodes == len(head_decode_nodes(onnx.load(str(float_onnx))))
    assert quantized.size_int8 == int8.stat().st_size < quantized.size_float / 2
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    feed = ImageCalibrationReader(images[:1], "images", IMGSZ, IMGSZ).get_next()
    assert feed is not None
    outputs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for p in (float_onnx, int8)
    ]
    assert outputs[0].shape == outputs[1].shape
    assert outputs[1].dtype == np.float32 and np.isfinite(outputs[1]).all()
    diff = compare_outputs(float_onnx, int8, images[:2])
    assert diff["images"] == 2 and np.isfinite(diff["max_abs"])
    assert diff["score_mean_abs"] < 0.05  # class scores in [0, 1] stay close


def test_excluded_nodes_stay_float(float_onnx: Path, quantized) -> None:
    """Every decoding node is still there with its op type; no QuantizeLinear reads any of
    their outputs; each of their inputs that comes from another decoding node or from a
    weight is float, not a DequantizeLinear (only the edge from the quantized cv2/cv3
    convolutions into the decoding is dequantized)."""
    excluded = head_decode_nodes(onnx.load(str(float_onnx)))
    float_nodes = {n.name: n for n in onnx.load(str(float_onnx)).graph.node}
    q_model = onnx.load(str(quantized.path))
    q_nodes = {n.name: n for n in q_model.graph.node}
    producer = {o: n for n in q_model.graph.node for o in n.output}
    float_producer = {o: n.name for n in float_nodes.values() for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in q_model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    initializers = {i.name: i for i in q_model.graph.initializer}
    float_initializers = {i.name: i.data_type for i in onnx.load(str(float_onnx)).graph.initializer}
    excluded_set = set(excluded)
    for name in excluded:
        node = q_nodes[name]
        assert node.op_type == float_nodes[name].op_type
        for out in node.output:
            assert all(c.op_type != "QuantizeLinear" for c in consumers.get(out, [])), name
        for original_input, actual in zip(float_nodes[name].input, node.input, strict=True):
            if float_producer.get(original_input) in excluded_set or original_input in float_initializers:
                assert actual == original_input, (name, actual)
                assert actual not in producer or producer[actual].name in excluded_set
            if actual in initializers:
                assert initializers[actual].data_type == float_initializers[actual], (name, actual)
    dfl_conv = next(q_nodes[n] for n in excluded if "/dfl/" in n and q_nodes[n].op_type == "Conv")
    assert initializers[dfl_conv.input[1]].data_type == TensorProto.FLOAT


def test_quantize_int8_is_deterministic(float_onnx: Path, quantized, images, tmp_path: Path) -> None:
    again = quantize_int8(float_onnx, tmp_path / "again.onnx", list(reversed(images)))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (quantized.path, again.path)]
    assert digest[0] == digest[1]


def test_max_images_takes_a_seeded_sample(float_onnx: Path, images, tmp_path: Path) -> None:
    result = quantize_int8(float_onnx, tmp_path / "few.onnx", images, max_images=2, exclude_head=False)
    assert result.calibration_images == 2 and result.excluded_nodes == 0


def test_errors_name_the_file(float_onnx: Path, images, tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        quantize_int8(missing, tmp_path / "out.onnx", images)
    with pytest.raises(QuantizationError, match=re.escape(str(float_onnx))):
        quantize_int8(float_onnx, tmp_path / "out.onnx", [])
    ghost = tmp_path / "ghost.jpg"
    with pytest.raises(QuantizationError, match=re.escape(str(ghost))):
        quantize_int8(float_onnx, tmp_path / "out.onnx", [*images[:2], ghost])
    with pytest.raises(QuantizationError, match="calibration_method"):
        quantize_int8(float_onnx, tmp_path / "out.onnx", images, calibration_method="median")
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"not a model")
    with pytest.raises(QuantizationError, match=re.escape(str(not_onnx))):
        quantize_int8(not_onnx, tmp_path / "out.onnx", images)
    dynamic = tmp_path / "dynamic.onnx"
    model = onnx.load(str(float_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(model, str(dynamic))
    with pytest.raises(QuantizationError, match=re.escape(str(dynamic)) + ".*dynamic=False"):
        quantize_int8(dynamic, tmp_path / "out.onnx", images)
    assert not (tmp_path / "out.onnx").exists()
