"""The cache key of a training step includes the domain code it runs (not only the
step function), so a change to training, export or evaluation code re-runs it."""

from zenml.config.cache_policy import CachePolicy

TRAINING_CODE = [
    "visionloop/training/yolo.py",
    "visionloop/training/offline.py",
    "visionloop/training/tuning.py",
    "visionloop/training/types.py",
    "visionloop/training/workspace.py",
    "visionloop/training/quantize.py",
    "visionloop/training/evaluate.py",
    "visionloop/training/detection_metrics.py",
    "visionloop/data/export.py",
    "edge_runtime/preprocess.py",
    "edge_runtime/detector.py",
]

TRAINING_CACHE = CachePolicy(file_dependencies=TRAINING_CODE)
