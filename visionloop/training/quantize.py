"""Static INT8 quantization of an exported YOLO detector for CPU edge inference.

``quantize_int8`` runs onnxruntime's ``quantize_static`` in QDQ format: weights
(per output channel) and activations are calibrated on real images, letterboxed by
``edge_runtime.preprocess.letterbox`` exactly as the edge runtime will feed them, so
the activation ranges seen in calibration are the ones seen in production.

Why the head's box decoding stays float
---------------------------------------
The last layer of an ultralytics detector (``Detect``, exported as ``/model.<N>/...``)
has two kinds of node:

* its conv branches, ``cv2`` (box distribution logits, 4 x reg_max channels) and
  ``cv3`` (class logits): ordinary convolutions that quantize as well as the backbone;
* the decoding: reshape/concat of the three scales, the DFL (a softmax over reg_max
  bins and a fixed 1x1 conv that takes their expectation), the anchor-point and
  stride arithmetic that turns distances into pixel boxes, the class sigmoid and the
  final concat. An 8-bit tensor has one scale: the final concat holds box coordinates
  in pixels (0 to the input size) and class probabilities (0 to 1) together, so with
  one step of about imgsz / 255 pixels every score rounds to 0 and nothing is ever
  detected (and boxes would be off by up to a step, ~2 px at 480). Measured on metal-tags at 480 px: mAP50 0.83 float, 0.0 with the whole
  graph quantized (every output score exactly 0).

``head_decode_nodes`` finds those decoding nodes by name, generically (the highest
``/model.<N>/`` index is the head, whatever the model's depth or size), and
``quantize_int8`` passes them as ``nodes_to_exclude``. They are a small share of the
FLOPs and stay float, while every convolution, the head's ``cv2``/``cv3`` included,
runs in 8 bits; only the edge from those convolutions into the decoding is
dequantized.

Data types (see ``benchmarks/quantize_check.py``): weights signed int8 per channel,
activations *unsigned* int8 ("U8S8") with ``reduce_range`` (7-bit weights). On an
x86 CPU with AVX2 and no VNNI, onnxruntime's signed-activation ("S8S8") kernels were
about 1.5x *slower* than float, while U8S8 was faster than float at the same mAP.
onnxruntime recommends ``reduce_range`` for U8S8 on CPUs without VNNI, where the
8-bit products can saturate; it cost no measurable accuracy here and is harmless on
VNNI or ARM CPUs. Pass ``activations="int8", reduce_range=False`` for S8S8.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

from edge_runtime.preprocess import letterbox

LAYER_RE = re.compile(r"^/model\.(\d+)/")
CONV_BRANCHES = ("cv2", "cv3")
ACTIVATION_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class QuantizationError(ValueError):
    """The model or the calibration data cannot be used for quantization."""


def head_layer_index(model: onnx.ModelProto) -> int:
    """The highest ``/model.<N>/`` index among the node names: the Detect layer."""
    indices = [int(m.group(1)) for n in model.graph.node if (m := LAYER_RE.match(n.name))]
    if not indices:
        raise QuantizationError(
            "no node is named /model.<N>/...: not an ultralytics export, cannot locate the detection head"
        )
    return max(indices)


def head_decode_nodes(model: onnx.ModelProto, conv_branches: Sequence[str] = CONV_BRANCHES) -> list[str]:
    """Names of the detection head's decoding nodes, in graph order.

    The nodes of the last ``/model.<N>/`` layer except those inside its conv branches
    (``/model.<N>/cv2.``, ``/model.<N>/cv3.``), plus every node downstream of them (the
    output's post-processing, whatever its names). See the module docstring for why
    they must stay float.
    """
    index = head_layer_index(model)
    prefix = f"/model.{index}/"
    branches = tuple(f"{prefix}{b}." for b in conv_branches)
    seeds = {
        n.name for n in model.graph.node if n.name.startswith(prefix) and not n.name.startswith(branches)
    }
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    selected = set(seeds)
    queue = deque(n for n in model.graph.node if n.name in seeds)
    while queue:
        node = queue.popleft()
        for tensor in node.output:
            for consumer in consumers.get(tensor, []):
                if consumer.name and consumer.name not in selected:
                    selected.add(consumer.name)
                    queue.append(consumer)
    return [n.name for n in model.graph.node if n.name in selected]


def model_input(model: onnx.ModelProto) -> tuple[str, int, int]:
    """(name, height, width) of the single image input ``(1, 3, H, W)`` of a static-shape model."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise QuantizationError(f"expected one image input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 4 or shape[1] != 3 or shape[2] is None or shape[3] is None:
        raise QuantizationError(
            f"input {inputs[0].name!r} has shape {shape}; quantization needs a static (1, 3, H, W) "
            "model: export with dynamic=False"
        )
    return inputs[0].name, int(shape[2]), int(shape[3])


def load_tensor(path: Path, height: int, width: int) -> np.ndarray:
    """The model input for one image, letterboxed as on the edge."""
    with Image.open(path) as image:
        tensor, _ = letterbox(image, height, width)
    return tensor


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds letterboxed images, one ``{input_name: (1, 3, H, W) float32}`` per call."""

    def __init__(self, images: Sequence[Path], input_name: str, height: int, width: int) -> None:
        self.images = [Path(p) for p in images]
        self.input_name, self.height, self.width = input_name, height, width
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.images):
            return None
        path = self.images[self._next]
        self._next += 1
        return {self.input_name: load_tensor(path, self.height, self.width)}

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.images = self.images[start_index:end_index]
        self._next = 0


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    excluded_nodes: int
    calibration_images: int
    seconds: float
    size_float: int
    size_int8: int
    calibration_method: str
    preprocessed: bool

    @property
    def compression(self) -> float:
        return self.size_float / self.size_int8 if self.size_int8 else 0.0


def pick_calibration_images(images: Sequence[Path], max_images: int, seed: int) -> list[Path]:
    """Up to ``max_images`` existing files, a seeded sample independent of the input order."""
    paths = sorted({Path(p) for p in images}, key=str)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise QuantizationError(
            f"calibration image not found: {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if len(paths) > max_images:
        paths = sorted(random.Random(seed).sample(paths, max_images), key=str)
    return paths


def quantize_int8(
    float_model: Path,
    out_path: Path,
    calibration_images: Sequence[Path],
    *,
    per_channel: bool = True,
    exclude_head: bool = True,
    calibration_method: str = "MinMax",
    max_images: int = 64,
    seed: int = 0,
    preprocess: bool = False,
    activations: str = "uint8",
    reduce_range: bool = True,
) -> QuantizeResult:
    """Write a static INT8 (QDQ) copy of ``float_model`` to ``out_path``.

    Calibration uses up to ``max_images`` of ``calibration_images`` (a sample drawn with
    ``seed`` when there are more), letterboxed to the model's fixed input size. With
    ``exclude_head`` the head's box decoding (``head_decode_nodes``) stays float.

    ``activations`` ("uint8" or "int8") and ``reduce_range`` (7-bit weights): see the
    module docstring; the defaults are the fastest on x86 CPUs. ``calibration_method``:
    MinMax (default; ~1 GB and ~10 s for 48 images at 480 px), Percentile (99.999th;
    no better mAP measured, ~5x the time and ~7 GB), Entropy (with onnxruntime's
    default 128 bins it picks the same ranges as MinMax). ``preprocess`` runs
    onnxruntime's ``quant_pre_process`` (shape inference and graph optimisation)
    first; on ultralytics exports, already simplified by onnxslim, it gave the same
    outputs and latency at twice the time, so it is off by default (onnxruntime logs
    a warning that suggests it). The same inputs, in any order, give the same file.

    Raises ``FileNotFoundError`` for a missing model and ``QuantizationError`` for no
    (or missing) calibration images or an unsuitable model.
    """
    float_model, out_path = Path(float_model), Path(out_path)
    if not float_model.is_file():
        raise FileNotFoundError(f"float ONNX model not found: {float_model}")
    method = CALIBRATION_METHODS.get(calibration_method.lower())
    if method is None:
        raise QuantizationError(
            f"unknown calibration_method {calibration_method!r}; use one of MinMax, Entropy, Percentile"
        )
    activation_type = ACTIVATION_TYPES.get(activations)
    if activation_type is None:
        raise QuantizationError(f"unknown activations {activations!r}; use int8 or uint8")
    if max_images < 1:
        raise QuantizationError(f"max_images must be >= 1, got {max_images}")
    if not calibration_images:
        raise QuantizationError(f"no calibration images given to quantize {float_model}")
    images = pick_calibration_images(calibration_images, max_images, seed)
    start = time.perf_counter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="visionloop-quantize-") as tmp:
        source = float_model
        if preprocess:
            source = Path(tmp) / "preprocessed.onnx"
            quant_pre_process(str(float_model), str(source))
        try:
            model = onnx.load(str(source))
        except Exception as exc:
            raise QuantizationError(f"{float_model} is not a readable ONNX model: {exc}") from exc
        try:
            name, height, width = model_input(model)
            excluded = head_decode_nodes(model) if exclude_head else []
        except QuantizationError as exc:
            raise QuantizationError(f"{float_model}: {exc}") from exc
        quantize_static(
            model,
            str(out_path),
            ImageCalibrationReader(images, name, height, width),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
            nodes_to_exclude=excluded,
            calibrate_method=method,
        )
    return QuantizeResult(
        path=out_path,
        excluded_nodes=len(excluded),
        calibration_images=len(images),
        seconds=time.perf_counter() - start,
        size_float=float_model.stat().st_size,
        size_int8=out_path.stat().st_size,
        calibration_method=method.name,
        preprocessed=preprocess,
    )


def cpu_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_outputs(float_path: Path, int8_path: Path, images: Sequence[Path]) -> dict[str, Any]:
    """Max / mean absolute difference of the raw first output, float vs int8, over ``images``.

    Also the same for the class-score rows alone (rows 4: of a YOLO ``(1, 4 + nc, A)``
    output), where the box rows (pixels) would otherwise dominate.
    """
    if not images:
        raise QuantizationError("compare_outputs needs at least one image")
    sessions = [cpu_session(Path(float_path)), cpu_session(Path(int8_path))]
    inp = sessions[0].get_inputs()[0]
    height, width = int(inp.shape[2]), int(inp.shape[3])
    diffs, score_diffs = [], []
    for path in images:
        feed = {inp.name: load_tensor(Path(path), height, width)}
        a, b = (np.asarray(s.run(None, feed)[0], dtype=np.float32) for s in sessions)
        if a.shape != b.shape:
            raise QuantizationError(f"output shapes differ: float {a.shape} vs int8 {b.shape}")
        d = np.abs(a - b)
        diffs.append(d)
        if d.ndim == 3 and d.shape[1] > 4:
            score_diffs.append(d[:, 4:])
    all_d = np.concatenate([d.ravel() for d in diffs])
    out: dict[str, Any] = {
        "images": len(images),
        "max_abs": float(all_d.max()),
        "mean_abs": float(all_d.mean()),
    }
    if score_diffs:
        s = np.concatenate([d.ravel() for d in score_diffs])
        out.update(score_max_abs=float(s.max()), score_mean_abs=float(s.mean()))
    return out
