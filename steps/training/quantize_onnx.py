"""Step: a static INT8 variant of the ONNX model, calibrated on train images."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import ArtifactConfig, log_metadata, step
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from materializers.model_blob_materializer import ModelBlobMaterializer
from steps.training.cache_policy import EVALUATION_CACHE
from visionloop import constants
from visionloop.data.dataset import ImageDataset
from visionloop.training.quantize import quantize_int8
from visionloop.training.types import ModelBlob

logger = get_logger(__name__)


@step(cache_policy=EVALUATION_CACHE, output_materializers=ModelBlobMaterializer)
def quantize_onnx(
    onnx_model: ModelBlob, dataset: ImageDataset, calibration_images: int = 48, seed: int = 0
) -> Annotated[ModelBlob, ArtifactConfig(name=constants.ONNX_INT8_MODEL, artifact_type=ArtifactType.MODEL)]:
    """QDQ INT8, per-channel weights, with the detection head's box decoding kept in
    float (it does not survive 8 bits). Whether it is kept is decided by the
    evaluation, on the test split."""
    with tempfile.TemporaryDirectory(prefix="visionloop-int8-") as tmp:
        work = Path(tmp)
        (work / "model.onnx").write_bytes(onnx_model.data)
        images = []
        for r in dataset.split("train"):
            path = work / "calib" / f"{r.sha256[:16]}{r.ext}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(dataset.read_bytes(r))
            images.append(path)
        result = quantize_int8(
            work / "model.onnx", work / "model.int8.onnx", images, max_images=calibration_images, seed=seed
        )
        blob = ModelBlob(
            data=result.path.read_bytes(),
            filename="model.int8.onnx",
            class_names=onnx_model.class_names,
            imgsz=onnx_model.imgsz,
            kind="onnx",
            precision="int8",
            opset=onnx_model.opset,
            metadata={
                "float_sha256": onnx_model.sha256,
                "excluded_nodes": result.excluded_nodes,
                "calibration_images": result.calibration_images,
            },
        )
    logger.info(
        "INT8: %d calibration images, %d head nodes kept float, %d -> %d bytes in %.1f s",
        result.calibration_images,
        result.excluded_nodes,
        onnx_model.size,
        blob.size,
        result.seconds,
    )
    log_metadata(
        {
            "sha256": blob.sha256,
            "size": blob.size,
            "calibration_images": result.calibration_images,
            "excluded_nodes": result.excluded_nodes,
        }
    )
    return blob
