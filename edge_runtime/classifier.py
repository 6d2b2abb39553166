"""Image classification with onnxruntime, prepared the way ultralytics prepares an image
for its ``-cls`` models (numpy, onnxruntime and Pillow only).

ultralytics 8.4 (``ClassificationPredictor`` with ``classify_transforms(imgsz)``, read in
``ultralytics/data/augment.py`` and ``models/yolo/classify/predict.py``):

1. the image goes to Pillow as it is (ultralytics hands the decoded array to
   ``Image.fromarray``; the resize treats each channel alike, so RGB or BGR order does
   not matter);
2. ``torchvision.transforms.Resize(imgsz)`` on a PIL image: the shorter side becomes
   ``imgsz``, the longer ``int(imgsz * long / short)``; an image that already has that
   size is left alone; otherwise ``Image.resize((w, h), BILINEAR)``, Pillow's bilinear
   filter, which antialiases when it shrinks. For a non-square input ``(h, w)`` the
   image is resized to exactly ``(h, w)``;
3. ``CenterCrop``: top ``int(round((h - crop_h) / 2))``, left likewise;
4. ``ToTensor`` (uint8 / 255, HWC RGB -> CHW) and ``Normalize(mean=0, std=1)``, which
   changes nothing.

Tensor layout: float32 RGB in [0, 1], NCHW ``(1, 3, height, width)``. An exported
ultralytics classifier ends in a softmax: its output ``(1, nc)`` holds the class
probabilities (a model without one gets a softmax here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_runtime.channel import VerifiedVersion, member_path
from edge_runtime.detector import cpu_session, open_image, parse_names
from edge_runtime.model import ServedVersion
from edge_runtime.preprocess import to_rgb

# self-test: a sample's top class must stay the same unless its two best classes are
# this close, and each recorded probability must come back within MAX_PROB_DIFF
AMBIGUOUS_MARGIN = 0.05
MAX_PROB_DIFF = 0.02


@dataclass(frozen=True)
class Classification:
    """One class and its probability."""

    class_id: int
    class_name: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"class_id": self.class_id, "class_name": self.class_name, "prob": round(self.prob, 6)}


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``size``, as torchvision's ``Resize(size)``."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def classify_tensor(image: Image.Image, height: int, width: int) -> np.ndarray:
    """PIL image -> float32 RGB [0, 1] NCHW ``(1, 3, height, width)``, as ``classify_transforms``."""
    img = to_rgb(image)
    if height == width:
        new_w, new_h = resized_size(img.width, img.height, height)
    else:
        new_w, new_h = width, height
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if new_w < width or new_h < height:  # cannot happen after the resize; guard the crop
        raise ValueError(f"image {img.size} is smaller than the crop {width}x{height}")
    top = int(round((new_h - height) / 2.0))
    left = int(round((new_w - width) / 2.0))
    pixels = np.asarray(img, dtype=np.uint8)[top : top + height, left : left + width]
    tensor = pixels.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(tensor)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return np.asarray(e / e.sum(), dtype=np.float32)


class OnnxClassifier:
    """An ultralytics ``-cls`` classifier exported to ONNX, run with onnxruntime on the CPU.

    ``model`` is a path or the ONNX bytes. Class names come from ``class_names`` or the
    ``names`` metadata ultralytics' exporter writes. ``threads``: onnxruntime's intra-op
    threads (None: its default)."""

    def __init__(
        self, model: str | Path | bytes, class_names: list[str] | None = None, threads: int | None = None
    ) -> None:
        self.session = cpu_session(model, threads)
        meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[2:]):
            raise ValueError(f"expected a fixed-size NCHW image input, got shape {shape}")
        self.input_name: str = inp.name
        self.input_height, self.input_width = int(shape[2]), int(shape[3])
        out = self.session.get_outputs()[0].shape
        self.num_outputs = int(out[-1]) if isinstance(out[-1], int) else None
        names = list(class_names) if class_names is not None else parse_names(meta.get("names"))
        self.class_names: list[str] = names if names is not None else [f"class_{i}" for i in range(out[-1])]
        if self.num_outputs is not None and self.num_outputs != len(self.class_names):
            raise ValueError(
                f"the model outputs {self.num_outputs} classes but {len(self.class_names)} names were given"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return self.input_height, self.input_width

    def prepare(self, image: Image.Image | bytes) -> np.ndarray:
        """Image (PIL, or encoded bytes) -> float32 RGB [0, 1] NCHW tensor."""
        return classify_tensor(open_image(image), self.input_height, self.input_width)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Class probabilities ``(nc,)`` float32 for a prepared tensor."""
        out = np.asarray(self.session.run(None, {self.input_name: tensor})[0], dtype=np.float32).reshape(-1)
        if out.min() < 0 or abs(float(out.sum()) - 1.0) > 1e-3:
            out = softmax(out)
        return out

    def probs(self, image: Image.Image | bytes) -> np.ndarray:
        return self.run(self.prepare(image))

    def predict(self, image: Image.Image | bytes, top: int = 5) -> list[Classification]:
        """The ``top`` classes, most probable first."""
        return top_classes(self.probs(image), self.class_names, top)


def top_classes(probs: np.ndarray, names: list[str], top: int = 5) -> list[Classification]:
    order = np.argsort(-probs, kind="stable")[:top]
    return [Classification(int(i), names[int(i)], float(probs[int(i)])) for i in order]


# --- self-test ---------------------------------------------------------------------


def expectations(classifier: OnnxClassifier, images: dict[str, bytes]) -> dict[str, list[list[float]]]:
    """Per sample name: ``[class_id, prob]`` of its two most probable classes."""
    return {
        name: [[float(c.class_id), round(c.prob, 4)] for c in classifier.predict(data, top=2)]
        for name, data in images.items()
    }


def compare(expected: list[list[float]], found: list[list[float]]) -> list[str]:
    """Problems between the recorded and the found top classes of one image."""
    if not expected or not found:
        return ["no classes recorded or found"]
    (exp_id, exp_p), (got_id, got_p) = expected[0][:2], found[0][:2]
    margin = exp_p - (expected[1][1] if len(expected) > 1 else 0.0)
    if int(exp_id) != int(got_id) and margin >= AMBIGUOUS_MARGIN:
        return [f"top class {int(got_id)} ({got_p:.3f}), expected {int(exp_id)} ({exp_p:.3f})"]
    if int(exp_id) == int(got_id) and abs(exp_p - got_p) > MAX_PROB_DIFF:
        return [f"class {int(exp_id)} probability {got_p:.3f}, expected {exp_p:.3f}"]
    return []


def run_self_test(
    classifier: OnnxClassifier, folder: Path, self_test: dict[str, Any], model_file: str
) -> list[str]:
    """The samples of a verified version folder through ``classifier``, against the manifest."""
    recorded = self_test.get("expected", {}).get(model_file)
    if not recorded:
        return [f"the manifest records no self-test samples for {model_file}"]
    problems: list[str] = []
    for name, expected in recorded.items():
        found = expectations(classifier, {name: member_path(folder, name).read_bytes()})[name]
        problems += [f"{name}: {p}" for p in compare(expected, found)]
    return problems


# --- serving a classifier release (manifest task "classify") -----------------------------


@dataclass
class LoadedClassifier(ServedVersion):
    """A verified ``classify`` release ready to serve (immutable once in the serving slot)."""

    version: VerifiedVersion
    classifier: OnnxClassifier
    model_file: str
    variant: str = "float"
    top: int = 5
    loaded_at: float = field(default_factory=time.time)
    note: str = ""

    def predict(self, image: Image.Image) -> list[Classification]:
        return self.classifier.predict(image, top=self.top)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version_id,
            "task": "classify",
            "variant": self.variant,
            "model_file": self.model_file,
            "manifest_sha256": self.version.manifest_sha256,
            "classes": self.classifier.class_names,
            "input_size": list(self.classifier.input_size),
            **self.provenance(),
        }
