"""Step: export the trained weights to a fixed-size ONNX model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.model_blob_materializer import ModelBlobMaterializer
from steps.training.cache_policy import FIT_CACHE
from visionloop import constants
from visionloop.training import yolo
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(cache_policy=FIT_CACHE, output_materializers=ModelBlobMaterializer)
def export_onnx(
    weights: ModelBlob, opset: int = 17
) -> Annotated[ModelBlob, ArtifactConfig(name=constants.ONNX_MODEL, artifact_type=ArtifactType.MODEL)]:
    """ONNX with input (1, 3, imgsz, imgsz) float32 RGB in [0, 1] and the raw YOLO
    output (1, 4 + classes, anchors); class names are in its metadata too."""
    with tempfile.TemporaryDirectory(prefix="visionloop-export-") as tmp:
        pt = Path(tmp) / weights.filename
        pt.write_bytes(weights.data)
        path = yolo.export_onnx(pt, weights.imgsz, opset, Path(tmp) / "export")
        blob = ModelBlob(
            data=path.read_bytes(),
            filename="model.onnx",
            class_names=weights.class_names,
            imgsz=weights.imgsz,
            kind="onnx",
            precision="fp32",
            opset=opset,
            metadata={"weights_sha256": weights.sha256},
        )
    logger.info("Exported ONNX opset %d, %d bytes, sha256 %s", opset, blob.size, blob.sha256[:12])
    log_metadata({"sha256": blob.sha256, "size": blob.size, "opset": opset})
    return blob
