"""Cache keys of the hierarchy steps include the domain code they run, as the training
steps' do (``steps/training/cache_policy.py``)."""

from zenml.config.cache_policy import CachePolicy

DATA_CODE = ["visionloop/hierarchy/dataset.py", "visionloop/hierarchy/spec.py"]
FIT_CODE = [
    *DATA_CODE,
    "visionloop/training/classify.py",
    "visionloop/training/offline.py",
    "visionloop/training/yolo.py",
]
EVALUATION_CODE = [
    *FIT_CODE,
    "visionloop/hierarchy/evaluate.py",
    "visionloop/hierarchy/metrics.py",
    "edge_runtime/classifier.py",
]

DATA_CACHE = CachePolicy(file_dependencies=DATA_CODE)
FIT_CACHE = CachePolicy(file_dependencies=FIT_CODE)
EVALUATION_CACHE = CachePolicy(file_dependencies=EVALUATION_CODE)
