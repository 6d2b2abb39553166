"""YOLO object detection with onnxruntime: letterbox, run, decode, NMS, map back.

numpy, onnxruntime and Pillow only. It reproduces what ultralytics does for a YOLOv8
style ONNX file (``YOLO("model.onnx", task="detect").predict(image, imgsz=..., conf=...,
iou=...)``): the same letterbox (``edge_runtime.preprocess``), the same confidence
filter (score strictly above ``conf``, best class only), the same class-aware NMS
(boxes offset by ``class_id * 7680`` in float32, suppression when IoU is strictly above
``iou``), the same caps (30000 boxes into NMS, ``max_det`` out) and the same mapping of
boxes back to the original image (per-axis gains, clipped to the image).

Coordinate formats and layouts:

* model input: float32 RGB in [0, 1], NCHW ``(1, 3, height, width)``;
* raw model output: ``(1, 4 + nc, N)``, per candidate ``cx, cy, w, h`` in input pixels
  then ``nc`` class scores (sigmoid already applied, no objectness); an ONNX exported
  with ultralytics' ``nms=True`` gives ``(1, N, 6)`` instead, ``x1, y1, x2, y2, score,
  class_id`` per row, which ``OnnxDetector`` also reads;
* boxes returned by ``decode_yolo``/``nms`` inputs: xyxy (x1, y1, x2, y2) in the
  model's input pixels; boxes returned by ``OnnxDetector.predict*``: xyxy in pixels of
  the original image (x to the right, y down, origin at the top-left corner).
"""

from __future__ import annotations

import ast
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from edge_runtime.preprocess import Letterbox, letterbox

MAX_WH = 7680  # ultralytics' per-class box offset for class-aware NMS, in pixels
MAX_NMS = 30000  # ultralytics' cap on the boxes that go into NMS
DEFAULT_IMGSZ = 640

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Detection:
    """One detected object; ``box`` is xyxy in pixels of the original image."""

    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "score": self.score,
            "box": list(self.box),
        }


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with xyxy boxes (n, 4), computed in the boxes' dtype."""
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0).astype(boxes.dtype, copy=False)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression, like ``torchvision.ops.nms``.

    boxes: (n, 4) xyxy; scores: (n,). A box is dropped when its IoU with a kept,
    higher-scoring box is strictly above ``iou``. Returns the kept indices (int64) in
    order of decreasing score. Arithmetic stays in the boxes' dtype (float32 for model
    outputs, as torchvision does); the threshold comparison is in float64.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(boxes.dtype, np.floating):
        boxes = boxes.astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        overlap = box_iou(boxes[i], boxes[rest])
        order = rest[overlap.astype(np.float64) <= iou]
    return np.asarray(keep, dtype=np.int64)


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    """(n, 4) cx, cy, w, h -> (n, 4) x1, y1, x2, y2, in the input's dtype."""
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def _empty() -> Arrays:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)


def decode_yolo(
    output: np.ndarray,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
) -> Arrays:
    """Raw YOLOv8-style output -> (boxes (n, 4) xyxy input pixels float32, scores (n,) float32, class_ids (n,) int64).

    ``output`` is ``(1, 4 + nc, N)`` (or ``(4 + nc, N)``): ``cx, cy, w, h`` then the class
    scores of each of the N candidates. Each candidate keeps its best class; those
    scoring strictly above ``conf`` go, at most ``MAX_NMS`` of the best, into NMS, which
    is per class unless ``agnostic``. At most ``max_det`` detections come back, best first.
    ``multi_label``: every class scoring above ``conf`` makes its own candidate, as
    ultralytics' validator does (``model.val()``); predictions use the best class only.
    """
    pred = np.asarray(output, dtype=np.float32)
    if pred.ndim == 3:
        if pred.shape[0] != 1:
            raise ValueError(f"decode_yolo handles one image at a time, got a batch of {pred.shape[0]}")
        pred = pred[0]
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise ValueError(f"expected a (1, 4 + nc, N) output, got {np.shape(output)}")
    cls_scores = pred[4:]
    best = cls_scores.max(axis=0)
    cand = np.flatnonzero(best > conf)
    if not cand.size:
        return _empty()
    boxes = xywh2xyxy(np.ascontiguousarray(pred[:4, cand].T))
    if multi_label and cls_scores.shape[0] > 1:
        cand_scores = np.ascontiguousarray(cls_scores[:, cand].T)  # (k, nc)
        rows, class_ids = np.nonzero(cand_scores > conf)  # row-major, like torch.where
        boxes, scores, class_ids = boxes[rows], cand_scores[rows, class_ids], class_ids.astype(np.int64)
    else:
        class_ids = cls_scores[:, cand].argmax(axis=0).astype(np.int64)
        scores = best[cand]
    if len(scores) > MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:MAX_NMS]
        boxes, scores, class_ids = boxes[top], scores[top], class_ids[top]
    offset = 0 if agnostic else MAX_WH
    shifted = boxes + (class_ids[:, None] * offset).astype(boxes.dtype)
    keep = nms(shifted, scores, iou)[:max_det]
    return boxes[keep], scores[keep], class_ids[keep]


def decode_end2end(output: np.ndarray, conf: float, max_det: int) -> Arrays:
    """Output of a model exported with NMS inside, ``(1, N, 6)`` rows ``x1, y1, x2, y2, score, class_id``
    in input pixels -> the rows scoring strictly above ``conf``, at most ``max_det``, in model order."""
    pred = np.asarray(output)
    pred = pred[0] if pred.ndim == 3 else pred
    rows = pred[pred[:, 4] > conf][:max_det]
    return (
        rows[:, :4].astype(np.float32),
        rows[:, 4].astype(np.float32),
        rows[:, 5].round().astype(np.int64),
    )


def parse_names(raw: str | None) -> list[str] | None:
    """ultralytics' ``names`` metadata (``"{0: 'person', 1: 'car'}"``) -> a list indexed by class id."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        ids = {int(k): str(v) for k, v in value.items()}
        return [ids.get(i, f"class_{i}") for i in range(max(ids) + 1)] if ids else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


MAX_PIXELS = 40_000_000  # a 16 MB upload could otherwise decode to gigabytes


class ImageTooLarge(ValueError):
    pass


def open_image(image: Image.Image | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A PIL image as given, or encoded bytes decoded with their EXIF orientation applied
    (as ``cv2.imread``, which ultralytics uses for files, does). Encoded images larger
    than ``max_pixels`` are refused from their header, before decoding."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        with Image.open(io.BytesIO(bytes(image))) as img:
            if img.width * img.height > max_pixels:
                raise ImageTooLarge(
                    f"image of {img.width}x{img.height} pixels is larger than the {max_pixels:,} allowed"
                )
            img.load()
            return ImageOps.exif_transpose(img) or img
    raise TypeError(f"expected a PIL image or encoded image bytes, got {type(image).__name__}")


def cpu_session(model: str | Path | bytes, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session on the CPU for a model path or ONNX bytes, quiet (errors
    only); ``threads``: intra-op threads (None: ``$VISIONLOOP_ORT_THREADS``, else
    onnxruntime's default) with one inter-op thread. Shared by the detector and the
    classifier."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is None and os.environ.get("VISIONLOOP_ORT_THREADS", "").isdecimal():
        threads = int(os.environ["VISIONLOOP_ORT_THREADS"]) or None
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def _static_dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxDetector:
    """A YOLO detector on an ONNX file, run with onnxruntime on the CPU.

    ``model`` is a path or the ONNX bytes. The input size is the model's fixed input
    shape (for a dynamic model, ultralytics' ``imgsz`` metadata, else 640). Class names
    come from ``class_names`` or the ``names`` metadata ultralytics' exporter writes.
    ``conf``, ``iou`` and ``max_det`` are the defaults of ``predict``; ``threads`` sets
    onnxruntime's intra-op threads (None: onnxruntime's default). ``multi_label`` decodes
    one candidate per class above ``conf`` like ultralytics' validator (for mAP figures
    comparable with ``model.val()``, with ``conf=0.001``); leave it off to predict.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        class_names: list[str] | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        threads: int | None = None,
        multi_label: bool = False,
    ) -> None:
        self.session = cpu_session(model, threads)
        meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = meta
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_height, self.input_width = self._input_size(inp.shape, meta)
        self.end2end = meta.get("end2end", "").lower() == "true"
        names = list(class_names) if class_names is not None else parse_names(meta.get("names"))
        if names is None:
            out_shape = self.session.get_outputs()[0].shape
            channels = _static_dim(out_shape[1]) if len(out_shape) == 3 and not self.end2end else None
            names = [f"class_{i}" for i in range(channels - 4)] if channels else []
        self.class_names: list[str] = names
        self.conf = conf
        self.iou = iou
        self.max_det = max_det
        self.multi_label = multi_label

    @staticmethod
    def _input_size(shape: list[Any], meta: dict[str, str]) -> tuple[int, int]:
        if len(shape) != 4:
            raise ValueError(f"expected an NCHW image input, got shape {shape}")
        height, width = _static_dim(shape[2]), _static_dim(shape[3])
        if height and width:
            return height, width
        imgsz = ast.literal_eval(meta["imgsz"]) if "imgsz" in meta else DEFAULT_IMGSZ
        if isinstance(imgsz, int):
            return imgsz, imgsz
        return int(imgsz[0]), int(imgsz[1])

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return self.input_height, self.input_width

    def class_name(self, class_id: int) -> str:
        if 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        return f"class_{class_id}"

    def prepare(self, image: Image.Image | bytes) -> tuple[np.ndarray, Letterbox]:
        """Image (PIL, or encoded bytes) -> (float32 RGB [0, 1] NCHW (1, 3, h, w) tensor, letterbox geometry)."""
        return letterbox(open_image(image), self.input_height, self.input_width)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The model's first output for a prepared tensor: ``(1, 4 + nc, N)`` (``(1, N, 6)`` if end-to-end)."""
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(tensor, dtype=np.float32)})
        return np.asarray(outputs[0])

    def decode(self, output: np.ndarray, conf: float | None = None, iou: float | None = None) -> Arrays:
        """Raw output -> (boxes xyxy input pixels, scores, class_ids), with this detector's settings."""
        conf = self.conf if conf is None else conf
        iou = self.iou if iou is None else iou
        if self.end2end or (output.ndim == 3 and output.shape[-1] == 6 and output.shape[1] != 6):
            return decode_end2end(output, conf, self.max_det)
        return decode_yolo(output, conf, iou, self.max_det, multi_label=self.multi_label)

    def predict_arrays(
        self, image: Image.Image | bytes, conf: float | None = None, iou: float | None = None
    ) -> Arrays:
        """(boxes (n, 4) xyxy float32 in original-image pixels, scores (n,) float32, class_ids (n,) int64),
        best score first."""
        tensor, geometry = self.prepare(image)
        boxes, scores, class_ids = self.decode(self.run(tensor), conf, iou)
        return geometry.to_original(boxes), scores, class_ids

    def predict(
        self, image: Image.Image | bytes, conf: float | None = None, iou: float | None = None
    ) -> list[Detection]:
        """Detections in the original image, best score first."""
        boxes, scores, class_ids = self.predict_arrays(image, conf, iou)
        return [
            Detection(
                class_id=int(c),
                class_name=self.class_name(int(c)),
                score=float(s),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, s, c in zip(boxes, scores, class_ids, strict=True)
        ]
