"""Step: list a folder or S3 prefix and import its labels."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy
from zenml.logger import get_logger

from visionloop import constants
from visionloop.data import ingest
from visionloop.data.sources import open_source

logger = get_logger(__name__)

IMPORTER_FILES = [
    f"visionloop/data/importers/{name}.py"
    for name in ("__init__", "common", "coco", "ground_truth", "label_studio", "yolo")
]


@step(
    cache_policy=CachePolicy(
        file_dependencies=["visionloop/data/ingest.py", "visionloop/data/sources.py", *IMPORTER_FILES]
    )
)
def ingest_images(
    source: str,
    source_fingerprint: str,
    label_format: str = "auto",
    class_names: list[str] | None = None,
    group_pattern: str | None = None,
    group_field: str | None = None,
    s3_endpoint: str | None = None,
) -> Annotated[ingest.Ingested, constants.RAW_LISTING]:
    """Find image candidates in ``source`` and attach their labels and capture groups.

    ``source_fingerprint`` (a hash of the listing, see ``sources.fingerprint``) is part
    of the cache key: the step re-runs exactly when a file was added, removed or changed.
    """
    found = ingest.ingest(
        open_source(source, s3_endpoint), label_format, class_names, group_pattern, group_field
    )
    labeled = sum(c.labels.status == "labeled" for c in found.candidates)
    logger.info(
        "Ingested %d candidates from %s (%s labels: %d labelled, %d unlabeled; %d other files ignored)",
        len(found.candidates),
        found.source_uri,
        found.format,
        labeled,
        len(found.candidates) - labeled,
        len(found.ignored),
    )
    log_metadata(
        {
            "candidates": len(found.candidates),
            "labeled": labeled,
            "label_format": found.format,
            "class_names": found.class_names,
            "ignored_files": len(found.ignored),
            "source_fingerprint": source_fingerprint,
        }
    )
    return found
