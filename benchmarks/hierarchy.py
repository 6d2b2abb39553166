"""Measurement: a parent/child hierarchy against one flat classifier on cifar10-tree.

Trains, with the domain code the hierarchy pipelines' steps run (no ZenML in the loop,
so it also runs on a bare GPU machine), for each starting point in ``--weights``:

* the parent (vehicle / animal, its train images balanced per group as configured),
* one child per group (its classes only),
* the flat model: every leaf class on the same train images, with the same budget
  (``flat.epochs: auto``: as many image-epochs as parent and children together),

then exports each to ONNX and measures through the edge runtime's own code: each
node's top-1 on its own test split, the bundle end to end on the leaf test split
(top-1, group accuracy, fallback rate, hierarchical P/R/F) at several fallback
thresholds, the flat model on the same split, and CPU latency (onnxruntime, one
thread, decode included, median of ``--latency-runs``).

    .venv/bin/python benchmarks/hierarchy.py                                  # CPU, both starting points
    .venv/bin/python benchmarks/hierarchy.py --device cuda:0 --workers 8 --weights abd
    .venv/bin/python benchmarks/hierarchy.py --epochs 5 --weights abd         # a quick look

Results: a table on stdout and ``benchmarks/results/hierarchy.json`` (or ``--results``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model  # noqa: E402
from edge_runtime.classifier import OnnxClassifier  # noqa: E402
from visionloop.data.blobstore import LocalBlobStore  # noqa: E402
from visionloop.hierarchy import evaluate  # noqa: E402
from visionloop.hierarchy.dataset import export_image_folder, ingest, node_dataset, test_records  # noqa: E402
from visionloop.hierarchy.metrics import HierarchyMetrics  # noqa: E402
from visionloop.hierarchy.spec import FLAT, PARENT, HierarchySpec, load_hierarchy  # noqa: E402
from visionloop.hierarchy.types import BundleManifest, BundleNode  # noqa: E402
from visionloop.training import classify, yolo  # noqa: E402

THRESHOLDS = [0.0, 0.3, 0.5, 0.7, 0.9]


def train_node(
    spec: HierarchySpec, node: str, datasets: dict[str, Any], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    settings = spec.node_settings(node)
    overrides: dict[str, Any] = {"device": args.device, "workers": args.workers, "weights": args.weights}
    if args.epochs:
        overrides["epochs"] = args.epochs
    settings = settings.merged(overrides)
    if node == FLAT:  # the hierarchy's budget in image-epochs
        budget = sum(len(datasets[n].split("train")) * settings.epochs for n in spec.nodes)
        settings = settings.merged({"epochs": max(1, round(budget / len(datasets[FLAT].split("train"))))})
    folder = export_image_folder(datasets[node], work / node / "data")
    outcome = classify.train(folder, settings.params(), settings.weights, work / node / "runs", name=node)
    onnx = yolo.export_onnx(outcome.best, settings.imgsz, 17, work / node / "export").read_bytes()
    names = yolo.class_names_of(outcome.best)
    top1 = evaluate.score_node(onnx, names, datasets[node]).top1
    print(
        f"  {node:<10} {outcome.epochs_run:>3} epochs {outcome.seconds:7.1f} s  test top-1 {top1:.4f}",
        flush=True,
    )
    return {
        "onnx": onnx,
        "classes": names,
        "seconds": outcome.seconds,
        "epochs": outcome.epochs_run,
        "top1": top1,
        "train_images": len(datasets[node].split("train")),
    }


def latency(fn: Any, images: list[bytes], runs: int) -> float:
    for b in images[:3]:
        fn(b)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(images[i % len(images)])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def route_one(bundle: Any, data: bytes) -> Any:
    from PIL import Image

    return bundle.predict(Image.open(io.BytesIO(data)))


def figures(m: HierarchyMetrics) -> dict[str, float]:
    return m.model_dump(exclude={"leaf"})


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_hierarchy(args.config)
    work = Path(tempfile.mkdtemp(prefix="visionloop-hierarchy-bench-"))
    leaf, report = ingest(Path(spec.data.source), spec, LocalBlobStore(work / "blobs"))
    datasets = {n: node_dataset(leaf, spec, n) for n in [*spec.nodes, FLAT]}
    print(
        f"{spec.name}: {report.accepted} images {leaf.stats()['per_split']}; weights {args.weights} on {args.device}"
    )
    nodes = {n: train_node(spec, n, datasets, args, work) for n in [*spec.nodes, FLAT]}

    def entry(n: str) -> BundleNode:
        return BundleNode(
            model=n, version="bench", classes=nodes[n]["classes"], onnx_sha256="", gate_passed=True
        )

    records, images = test_records(leaf)
    truth = [r.label for r in records]
    out: dict[str, Any] = {"thresholds": {}}
    for t in sorted({*THRESHOLDS, spec.bundle.child_min_conf}):
        manifest = BundleManifest(
            hierarchy=spec.name,
            groups=spec.declared,
            parent=entry(PARENT),
            children={g: entry(g) for g in spec.groups},
            child_min_conf=t,
            leaf_dataset_version_id=leaf.version_id,
        )
        bundle = evaluate.make_bundle(manifest, {n: nodes[n]["onnx"] for n in spec.nodes})
        with_fallback, always_child = evaluate.end_to_end(
            evaluate.route_all(bundle, images), truth, spec.group_of
        )
        out["thresholds"][str(t)] = figures(with_fallback)
        if t == spec.bundle.child_min_conf:
            out["end_to_end"] = figures(with_fallback)
            out["no_fallback"] = figures(always_child)
            one_thread = evaluate.make_bundle(manifest, {n: nodes[n]["onnx"] for n in spec.nodes}, threads=1)
            out["latency_ms_bundle"] = latency(partial(route_one, one_thread), images, args.latency_runs)
    flat = evaluate.flat_metrics(nodes[FLAT]["onnx"], nodes[FLAT]["classes"], leaf, spec.group_of)
    flat_clf = OnnxClassifier(nodes[FLAT]["onnx"], nodes[FLAT]["classes"], threads=1)
    out.update(
        {
            "hierarchy": spec.name,
            "weights": args.weights,
            "describe_weights": classify.describe_weights(args.weights),
            "device": args.device,
            "cpu": cpu_model(),
            "leaf_dataset_version_id": leaf.version_id,
            "test_images": len(images),
            "child_min_conf": spec.bundle.child_min_conf,
            "nodes": {n: {k: v for k, v in d.items() if k != "onnx"} for n, d in nodes.items()},
            "hierarchy_train_seconds": round(sum(nodes[n]["seconds"] for n in spec.nodes), 1),
            "flat": figures(flat),
            "latency_ms_flat": latency(flat_clf.probs, images, args.latency_runs),
        }
    )
    return out


def table(r: dict[str, Any]) -> str:
    e, nf, f = r["end_to_end"], r["no_fallback"], r["flat"]
    lines = [
        f"| {r['weights']} | model | top-1 | group acc. | fallback | hP | hR | hF | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, d in r["nodes"].items():
        if n != FLAT:
            lines.append(
                f"| | node {n} ({d['epochs']} ep, {d['train_images']} img) | {d['top1']:.4f} | | | | | | {d['seconds']:.0f} |"
            )
    for label, m, secs in (
        (f"bundle, fallback < {r['child_min_conf']}", e, r["hierarchy_train_seconds"]),
        ("bundle, always the child", nf, r["hierarchy_train_seconds"]),
        (f"flat ({r['nodes'][FLAT]['epochs']} ep)", f, r["nodes"][FLAT]["seconds"]),
    ):
        lines.append(
            f"| | {label} | {m['top1']:.4f} | {m['group_accuracy']:.4f} | {m['fallback_rate']:.3f} | "
            f"{m['hierarchical_precision']:.4f} | {m['hierarchical_recall']:.4f} | {m['hierarchical_f']:.4f} | {secs:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cifar10_tree.yaml")
    parser.add_argument("--weights", default="abd,yolov8n-cls.yaml", help="comma-separated starting points")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="override the config's epochs (0: keep)")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--results", type=Path, default=None, help="JSON file (default benchmarks/results/)")
    args = parser.parse_args()
    all_results = []
    for weights in args.weights.split(","):
        args.weights = weights
        result = run(args)
        all_results.append(result)
        print(table(result))
        print(
            f"latency (CPU, 1 thread, median): bundle {result['latency_ms_bundle']} ms, flat {result['latency_ms_flat']} ms"
        )
        print(
            "fallback threshold sweep:",
            json.dumps(
                {
                    t: (m["top1"], m["fallback_rate"], m["hierarchical_f"])
                    for t, m in result["thresholds"].items()
                }
            ),
        )
    path = args.results or REPO / "benchmarks" / "results" / "hierarchy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(all_results, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
