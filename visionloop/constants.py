"""Names shared by steps, pipelines, run.py and tests."""

DATA_PIPELINE = "visionloop_data"
RAW_LISTING = "raw_listing"
ACCEPTED_IMAGES = "accepted_images"
QUARANTINE_REPORT = "quarantine_report"
IMAGE_DATASET = "image_dataset"
