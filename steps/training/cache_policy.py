"""Cache keys of the training steps include the domain code they run (not only the step
function), so a change to that code re-runs them, and only them: a change to the edge
runtime's pre- and post-processing re-runs the evaluation and quantization (which use
it), not the training."""

from zenml.config.cache_policy import CachePolicy

FIT_CODE = [
    "visionloop/training/yolo.py",
    "visionloop/training/offline.py",
    "visionloop/training/tuning.py",
    "visionloop/training/types.py",
    "visionloop/training/workspace.py",
    "visionloop/data/export.py",
]
EVALUATION_CODE = [
    *FIT_CODE,
    "visionloop/training/quantize.py",
    "visionloop/training/evaluate.py",
    "visionloop/training/detection_metrics.py",
    "edge_runtime/preprocess.py",
    "edge_runtime/detector.py",
]

FIT_CACHE = CachePolicy(file_dependencies=FIT_CODE)  # tuning, training, ONNX export
EVALUATION_CACHE = CachePolicy(file_dependencies=EVALUATION_CODE)  # quantization, evaluation
