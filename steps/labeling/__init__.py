"""Steps of the labeling pipeline: gather the queue, sync it to Label Studio, pull and
review the annotations, and merge the accepted labels into a new data set version."""

from steps.labeling.gather_images import gather_images
from steps.labeling.merge_labeled_images import merge_labeled_images
from steps.labeling.pull_annotations import pull_annotations
from steps.labeling.sync_label_studio import sync_label_studio

__all__ = ["gather_images", "merge_labeled_images", "pull_annotations", "sync_label_studio"]
