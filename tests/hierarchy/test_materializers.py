"""Save/load round trips of the hierarchy's materializers on the session's fresh ZenML
store: a classification data set (images into the shared image store, its id checked on
load, a sample grid and a count table as visualizations) and the bundle gate's report."""

from __future__ import annotations

from pathlib import Path

from zenml import load_artifact, save_artifact
from zenml.client import Client
from zenml.io import fileio

from materializers.classification_dataset_materializer import ClassificationDatasetMaterializer
from materializers.hierarchy_report_materializers import BundleDecisionMaterializer
from tests.hierarchy.helpers import GROUPS, colour_models, manifest, tiny_cifar
from visionloop.data.blobstore import LocalBlobStore
from visionloop.hierarchy.dataset import ClassificationDataset, ingest, node_dataset
from visionloop.hierarchy.gate import bundle_checks, bundle_reasons
from visionloop.hierarchy.metrics import hierarchy_metrics
from visionloop.hierarchy.spec import BundleGate, HierarchySpec
from visionloop.hierarchy.types import BundleDecision, BundleEvaluation


def visualizations(name: str) -> dict[str, str]:
    artifact = Client().get_artifact_version(name)
    return {str(v.type.value): v.uri for v in artifact.visualizations or []}


def test_classification_dataset_round_trip(zenml_stack, tmp_path: Path) -> None:
    data = tiny_cifar(tmp_path / "src", train=3, test=1)
    spec = HierarchySpec.model_validate(
        {
            "name": "rt",
            "data": {"source": str(data)},
            "groups": {g: {"classes": c} for g, c in GROUPS.items()},
        }
    )
    leaf, _ = ingest(data, spec, LocalBlobStore(tmp_path / "outside-store"))
    parent = node_dataset(leaf, spec, "parent")
    save_artifact(parent, name="roundtrip_classes", materializer=ClassificationDatasetMaterializer)
    loaded = load_artifact("roundtrip_classes")
    assert isinstance(loaded, ClassificationDataset)
    assert loaded.version_id == parent.version_id and loaded.manifest == parent.manifest
    assert [loaded.read_bytes(r) for r in loaded.records] == [parent.read_bytes(r) for r in parent.records]
    assert loaded.blobs.uri != parent.blobs.uri  # now read from the artifact store's image store
    shown = visualizations("roundtrip_classes")
    assert set(shown) == {"image", "html"}
    page = fileio.open(shown["html"]).read()
    page = page.decode() if isinstance(page, bytes) else page
    assert "vehicle" in page and parent.short_id in page


def test_bundle_decision_round_trip_with_its_page(zenml_stack) -> None:
    bad = manifest(colour_models(), vehicle_classes=["cat", "frog"])
    e2e = hierarchy_metrics(
        ["airplane", "cat"], ["airplane", "animal"], {"airplane": "vehicle", "cat": "animal"}
    )
    checks = bundle_checks(bad, e2e, None, BundleGate(), None)
    decision = BundleDecision(
        bundle_model="toy-bundle",
        candidate_version="3",
        pins=bad.pins(),
        candidate=BundleEvaluation(
            hierarchy="toy", leaf_dataset_version_id="0" * 64, child_min_conf=0.5, end_to_end=e2e
        ),
        checks=checks,
        passed=False,
        reasons=bundle_reasons(checks, None),
    )
    save_artifact(decision, name="roundtrip_bundle_decision", materializer=BundleDecisionMaterializer)
    assert load_artifact("roundtrip_bundle_decision") == decision
    page = fileio.open(visualizations("roundtrip_bundle_decision")["html"]).read()
    page = page.decode() if isinstance(page, bytes) else page
    assert "refused" in page and "was trained for the classes" in page and "leaf top-1" in page
