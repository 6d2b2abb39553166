"""Step: data QA. Every candidate is accepted or quarantined with its reason."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.config.cache_policy import CachePolicy
from zenml.logger import get_logger

from materializers.artifact_blob_store import default_blob_store
from materializers.quarantine_report_materializer import QuarantineReportMaterializer
from visionloop import constants
from visionloop.config import cache_dir
from visionloop.data import qa
from visionloop.data.facts_cache import FactsCache
from visionloop.data.ingest import Ingested
from visionloop.data.sources import open_source
from visionloop.data.types import AcceptedImages, QuarantineReport

logger = get_logger(__name__)


@step(
    cache_policy=CachePolicy(file_dependencies=["visionloop/data/qa.py", "visionloop/data/blobstore.py"]),
    output_materializers={constants.QUARANTINE_REPORT: QuarantineReportMaterializer},
)
def check_images(
    listing: Ingested,
    qa_settings: dict[str, Any] | None = None,
    s3_endpoint: str | None = None,
) -> tuple[
    Annotated[AcceptedImages, constants.ACCEPTED_IMAGES],
    Annotated[QuarantineReport, constants.QUARANTINE_REPORT],
]:
    """Run the QA rules (``visionloop.data.qa.RULES``) over the candidates.

    Accepted and quarantined bytes alike are copied, content-addressed, into the
    artifact store's image store, so nothing is lost when the source is cleaned up.
    Raises if ``in != accepted + quarantined``.
    """
    source = open_source(listing.source_uri, s3_endpoint)
    blobs = default_blob_store()
    cache = FactsCache(cache_dir() / "image_facts.sqlite")
    runner = qa.QARunner(source, blobs, listing.class_names, qa.QAConfig(**(qa_settings or {})), cache)
    try:
        records, report = runner.run(listing.candidates, listing.source_uri)
    finally:
        cache.close()
    report.ignored = listing.ignored
    report.check_reconciles()
    counts = report.counts_by_rule()
    logger.info(
        "QA: %d in = %d accepted + %d quarantined %s; %d decoded, %d from cache",
        report.total,
        report.accepted,
        report.quarantined,
        counts or "",
        runner.decoded,
        report.total - runner.decoded,
    )
    for entry in report.entries[:20]:
        logger.warning("quarantined %s [%s]: %s", entry.path, entry.rule, entry.reason)
    log_metadata(
        {
            "total": report.total,
            "accepted": report.accepted,
            "quarantined": report.quarantined,
            "quarantined_by_rule": counts,
            "decoded": runner.decoded,
        }
    )
    accepted = AcceptedImages(
        source=listing.source_uri,
        label_format=listing.format,
        class_names=listing.class_names,
        blob_root=blobs.uri,
        records=records,
    )
    return accepted, report
