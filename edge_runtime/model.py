"""A verified model version loaded for serving: its detector, thresholds and variant.

``load_version`` turns a verified version folder into a ``LoadedModel``: it picks the
variant (``int8`` when asked for and shipped, else ``float``), opens an onnxruntime
session, warms it up and runs the release's self-test on the samples shipped with it.
Any problem raises ``ModelRejected`` with a message naming the version and the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from edge_runtime import selftest
from edge_runtime.channel import VerifiedVersion
from edge_runtime.detector import Detection, OnnxDetector

log = logging.getLogger(__name__)

VARIANTS = ("float", "int8")


class ModelRejected(RuntimeError):
    """A verified version could not be loaded or failed its self-test; never retried."""


@dataclass(frozen=True)
class Thresholds:
    """From the manifest: a detection needs a score above ``conf``; scores in
    ``[uncertain_low, uncertain_high)`` count as uncertain (sent back as feedback)."""

    conf: float = 0.25
    iou: float = 0.7
    uncertain_low: float = 0.25
    uncertain_high: float = 0.5

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Thresholds:
        raw = manifest.get("thresholds") or {}
        default = cls()
        return cls(
            conf=float(raw.get("conf", default.conf)),
            iou=float(raw.get("iou", default.iou)),
            uncertain_low=float(raw.get("uncertain_low", default.uncertain_low)),
            uncertain_high=float(raw.get("uncertain_high", default.uncertain_high)),
        )


class ServedVersion:
    """What every release loaded for serving has (a detector here, a classifier in
    ``edge_runtime.classifier``, a bundle in ``edge_runtime.bundle``): its verified
    version folder, when it was loaded, a note; its name, version id and the fields of
    ``describe()`` that come from the manifest."""

    version: VerifiedVersion
    loaded_at: float
    note: str

    @property
    def name(self) -> str:
        return self.version.model

    @property
    def version_id(self) -> str:
        return self.version.version

    def provenance(self) -> dict[str, Any]:
        m = self.version.manifest
        return {
            "created_at": m.get("created_at"),
            "dataset_version_id": m.get("dataset_version_id"),
            "code_commit": m.get("code_commit"),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "note": self.note,
        }


@dataclass
class LoadedModel(ServedVersion):
    """One version ready to serve. Immutable once published to the serving slot: a
    request takes a reference and finishes on it even if a swap happens meanwhile."""

    version: VerifiedVersion
    detector: OnnxDetector
    variant: str
    model_file: str
    thresholds: Thresholds
    loaded_at: float = field(default_factory=time.time)
    note: str = ""

    def predict(self, image: Image.Image) -> list[Detection]:
        return self.detector.predict(image, conf=self.thresholds.conf, iou=self.thresholds.iou)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version_id,
            "variant": self.variant,
            "model_file": self.model_file,
            "manifest_sha256": self.version.manifest_sha256,
            "classes": self.detector.class_names,
            "input_size": list(self.detector.input_size),
            "thresholds": self.thresholds.__dict__,
            **self.provenance(),
        }


def load_version(
    verified: VerifiedVersion, variant: str = "float", threads: int | None = None
) -> LoadedModel:
    """Load, warm up and self-test a verified version; raises ``ModelRejected``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    manifest = verified.manifest
    what = f"{verified.model} version {verified.version}"
    note = ""
    model_file = str(manifest["model_file"])
    if variant == "int8":
        if manifest.get("int8_file"):
            model_file = str(manifest["int8_file"])
        else:
            note = "int8 asked for but the release ships no int8_file: serving the float model"
            log.warning("%s: %s", what, note)
            variant = "float"
    thresholds = Thresholds.from_manifest(manifest)
    classes = manifest.get("classes")
    try:
        detector = OnnxDetector(
            verified.file(model_file),
            list(classes) if isinstance(classes, list) else None,
            conf=thresholds.conf,
            iou=thresholds.iou,
            threads=threads,
        )
    except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
        raise ModelRejected(f"{what}: {model_file} does not load in onnxruntime: {exc}") from exc
    self_test = manifest.get("self_test")
    if not isinstance(self_test, dict):
        raise ModelRejected(f"{what}: the manifest has no self_test section")
    started = time.perf_counter()
    try:
        problems = selftest.run_self_test(detector, verified.path, self_test, model_file)
    except Exception as exc:  # a model that loads but cannot run, or an unreadable sample
        raise ModelRejected(f"{what}: self-test of {model_file} crashed: {exc}") from exc
    if problems:
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        raise ModelRejected(f"{what}: self-test of {model_file} failed, {len(problems)} problems: {shown}")
    log.info(
        "%s: %s loaded, self-test passed on %d samples in %.0f ms",
        what,
        model_file,
        len(self_test.get("expected", {}).get(model_file, {})),
        (time.perf_counter() - started) * 1000,
    )
    return LoadedModel(verified, detector, variant, model_file, thresholds, note=note)
