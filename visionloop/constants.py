"""Names shared by steps, pipelines, run.py and tests."""

DATA_PIPELINE = "visionloop_data"
RAW_LISTING = "raw_listing"
ACCEPTED_IMAGES = "accepted_images"
QUARANTINE_REPORT = "quarantine_report"
IMAGE_DATASET = "image_dataset"

TRAINING_PIPELINE = "visionloop_training"
# steps that log to MLflow use the active stack's experiment tracker, whatever its name
# (each stack file registers its own: a local tracking store, or a tracking server)
EXPERIMENT_TRACKER = True
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

HIERARCHY_DATA_PIPELINE = "visionloop_hierarchy_data"
HIERARCHY_NODE_PIPELINE = "visionloop_hierarchy_node"
HIERARCHY_DETECTOR_PIPELINE = "visionloop_hierarchy_detector"
HIERARCHY_BUNDLE_PIPELINE = "visionloop_hierarchy_bundle"
LEAF_DATASET = "leaf_dataset"
HIERARCHY_INGEST_REPORT = "hierarchy_ingest_report"
NODE_DATASET = "node_dataset"
NODE_REPORT = "node_report"
NODE_DECISION = "node_decision"
BUNDLE_MANIFEST = "bundle_manifest"
BUNDLE_EVALUATION = "bundle_evaluation"
BUNDLE_DECISION = "bundle_decision"
BUNDLE_OUTCOME = "bundle_outcome"
