"""Steps of the data pipeline: ingest, check (QA), split into a data set version."""

from steps.data.check_images import check_images
from steps.data.ingest_images import ingest_images
from steps.data.split_dataset import split_dataset

__all__ = ["check_images", "ingest_images", "split_dataset"]
