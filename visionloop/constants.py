"""Names shared by steps, pipelines, run.py and tests."""

DATA_PIPELINE = "visionloop_data"
RAW_LISTING = "raw_listing"
ACCEPTED_IMAGES = "accepted_images"
QUARANTINE_REPORT = "quarantine_report"
IMAGE_DATASET = "image_dataset"

TRAINING_PIPELINE = "visionloop_training"
EXPERIMENT_TRACKER = "visionloop-mlflow"  # every stack file registers its tracker under this name
TUNING_RESULT = "tuning_result"
MODEL_WEIGHTS = "model_weights"
ONNX_MODEL = "onnx_model"
ONNX_INT8_MODEL = "onnx_int8_model"
EVALUATION_REPORT = "evaluation_report"

DEPLOYMENT_PIPELINE = "visionloop_deployment"
PROMOTION_DECISION = "promotion_decision"
STAGING_REPORT = "staging_report"
PROMOTION_OUTCOME = "promotion_outcome"

MONITORING_PIPELINE = "visionloop_monitoring"
DRIFT_DECISION = "drift_decision"
DRIFT_REPORT = "drift_report"

LABELING_PIPELINE = "visionloop_labeling"
LABEL_QUEUE = "label_queue"
LABEL_SYNC = "label_studio_sync"
LABELING_ROUND = "labeling_round"
LABELS_FINGERPRINT = "labels_fingerprint"
LABEL_MERGE = "label_merge"
