"""What a serving slot can hold, by the release's manifest ``task``: a detector
(``detect``, the default: ``edge_runtime.model``), a classifier (``classify``) or a
parent/child bundle (``hierarchy``: ``edge_runtime.bundle``); and the answer the
runtime gives for the last two (detections have their own in ``runtime.py``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from PIL import Image

from edge_runtime import classifier as cls
from edge_runtime.bundle import LoadedBundle, load_bundle
from edge_runtime.channel import VerifiedVersion
from edge_runtime.classifier import LoadedClassifier, OnnxClassifier
from edge_runtime.model import LoadedModel, ModelRejected, Thresholds, load_version

log = logging.getLogger(__name__)

Served = LoadedModel | LoadedClassifier | LoadedBundle
TASKS = ("detect", "classify", "hierarchy")


def load_classifier(verified: VerifiedVersion, threads: int | None = None) -> LoadedClassifier:
    """Load and self-test a verified ``classify`` release; raises ``ModelRejected``."""
    what = f"{verified.model} version {verified.version}"
    model_file = str(verified.manifest["model_file"])
    classes = verified.manifest.get("classes")
    try:
        classifier = OnnxClassifier(
            verified.file(model_file), list(classes) if isinstance(classes, list) else None, threads
        )
    except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
        raise ModelRejected(f"{what}: {model_file} does not load in onnxruntime: {exc}") from exc
    try:
        problems = cls.run_self_test(
            classifier, verified.path, verified.manifest.get("self_test") or {}, model_file
        )
    except Exception as exc:
        raise ModelRejected(f"{what}: self-test of {model_file} crashed: {exc}") from exc
    if problems:
        raise ModelRejected(
            f"{what}: self-test of {model_file} failed, {len(problems)} problems: {problems[:3]}"
        )
    return LoadedClassifier(verified, classifier, model_file)


def load_served(verified: VerifiedVersion, variant: str = "float", threads: int | None = None) -> Served:
    """Load a verified release of any task; raises ``ModelRejected``."""
    task = str(verified.manifest.get("task", "detect"))
    if task == "detect":
        return load_version(verified, variant, threads)
    if task == "classify":
        loaded: Served = load_classifier(verified, threads)
    elif task == "hierarchy":
        loaded = load_bundle(verified, threads)
    else:
        raise ModelRejected(
            f"{verified.model} version {verified.version}: task {task!r} is not one this runtime serves "
            f"({', '.join(TASKS)})"
        )
    if variant != "float":
        loaded.note = f"{variant} asked for; {task} releases ship float models only"
    log.info("%s version %s (%s) loaded and self-tested", verified.model, verified.version, task)
    return loaded


def label_answer(
    loaded: LoadedClassifier | LoadedBundle, image: Image.Image, child_min_conf: float | None = None
) -> tuple[dict[str, Any], str | None, float]:
    """(the JSON answer's prediction fields, why the image goes back for labelling or
    None, the answer's probability) for a classifier or a bundle.

    A bundle's image goes back when it fell back to the parent, or when the probability
    of its answer is below the manifest's ``uncertain_high``; a classifier's when its top
    probability is."""
    thresholds = Thresholds.from_manifest(loaded.version.manifest)
    if isinstance(loaded, LoadedBundle):
        result = loaded.predict(image, child_min_conf)
        reason = None
        if result.fallback:
            reason = (
                f"child {result.group} below {result.child_min_conf}: "
                f"answered with the parent's group ({result.group_prob:.3f})"
            )
        elif result.prob < thresholds.uncertain_high:
            reason = f"uncertain path probability {result.prob:.3f}"
        return {"hierarchy": result.to_dict()}, reason, result.prob
    found = loaded.predict(image)
    best = found[0].prob if found else 0.0
    reason = f"uncertain top probability {best:.3f}" if best < thresholds.uncertain_high else None
    return {"classes": [c.to_dict() for c in found]}, reason, best


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
