"""Measurement: float vs static-INT8 ONNX of a metal-tags detector (accuracy and CPU latency).

Not a test: it trains a small model so that the numbers mean something. Steps 1 to 3
are cached under ``--workdir`` (reused by a re-run unless ``--fresh``):

1. data: ``ingest`` + ``QARunner.run`` + ``assign_splits`` of ``data/metal-tags`` and
   ``export_yolo`` to the ultralytics layout;
2. train: fine-tune the ABD YOLOv8n checkpoint (``--epochs`` at ``--imgsz``, batch 16,
   CPU, ``workers=0``, ``amp=False``, seed 0);
3. export the best weights to ONNX at ``--imgsz`` (static shape);
4. quantize with ``visionloop.training.quantize.quantize_int8`` on ``--calib`` training
   images (letterboxed exactly like the edge runtime): the default settings ("int8")
   and the ``--variants`` that change one option each (see ``VARIANTS``: the whole
   graph, S8S8, no reduce_range, per-tensor, quant_pre_process, other calibrations);
5. mAP50 / mAP50-95 of each ONNX on the test and the val split (28 labelled images
   each with the default seed) with ultralytics' own validator
   (``YOLO(onnx, task="detect").val(split=..., imgsz=..., batch=1)``); the mean absolute
   difference of the raw class scores from the float model's over the test images;
   latency: ``session.run`` on a ready (1, 3, imgsz, imgsz) tensor, ``--threads``
   intra-op threads, 5 warm-up calls, then ``--runs`` timed calls per model taken in 5
   round-robin rounds (median and min reported).

    .venv/bin/python benchmarks/quantize_check.py --workdir /tmp/qc      # ~12 min train on 2 cores
    .venv/bin/python benchmarks/quantize_check.py --workdir /tmp/qc --variants int8,int8-s8s8
    .venv/bin/python benchmarks/quantize_check.py --workdir /tmp/qc --latency-only --runs 100

Latency on a shared machine is noisy: compare models within one run (they take turns),
and prefer ``--latency-only`` on a quiet machine for absolute numbers.

Results: a table on stdout and ``<workdir>/quantize_check.json`` (or ``--results``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault(
    "VISIONLOOP_CACHE_DIR", str(Path(tempfile.gettempdir()) / "visionloop-quantize-check-cache")
)

# quantize_int8 options of each INT8 variant ("int8" is the module's default)
VARIANTS: dict[str, dict[str, Any]] = {
    "int8": {},
    "int8-whole-graph": {"exclude_head": False},
    "int8-s8s8": {"activations": "int8", "reduce_range": False},
    "int8-full-range": {"reduce_range": False},
    "int8-per-tensor": {"per_channel": False},
    "int8-preprocessed": {"preprocess": True},
    "int8-entropy": {"calibration_method": "Entropy"},
    "int8-percentile": {"calibration_method": "Percentile"},
}
CLASS_NAMES = ["scratch"]
GROUP_PATTERN = r"^(?P<group>.+?)-cropped-"


def export_dataset(workdir: Path) -> Path:
    """data/metal-tags -> ``<workdir>/yolo/data.yaml`` (train/val/test)."""
    from visionloop.data.blobstore import LocalBlobStore
    from visionloop.data.dataset import DatasetManifest, ImageDataset
    from visionloop.data.export import export_yolo
    from visionloop.data.ingest import ingest
    from visionloop.data.qa import QARunner
    from visionloop.data.sources import LocalSource
    from visionloop.data.split import assign_splits

    yaml_path = workdir / "yolo" / "data.yaml"
    if yaml_path.is_file():
        return yaml_path
    source = LocalSource(ROOT / "data" / "metal-tags")
    found = ingest(source, "ground-truth", CLASS_NAMES, GROUP_PATTERN)
    blobs = LocalBlobStore(workdir / "blobs")
    records, report = QARunner(source, blobs, found.class_names).run(found.candidates, found.source_uri)
    records = assign_splits(records)
    dataset = ImageDataset(DatasetManifest(class_names=found.class_names, records=records), blobs)
    counts = {s: len([r for r in dataset.split(s) if r.labeled]) for s in ("train", "val", "test")}
    print(f"data: {report.accepted} accepted of {report.total}, labelled per split {counts}")
    return export_yolo(dataset, workdir / "yolo")


def train(workdir: Path, data_yaml: Path, epochs: int, imgsz: int) -> Path:
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    best = workdir / "train" / "weights" / "best.pt"
    if best.is_file():
        return best
    prepare_ultralytics()
    from ultralytics import YOLO

    t0 = time.perf_counter()
    # YOLO(<ABD .pt>) keeps the checkpoint's weights; the 1-class head is rebuilt by the
    # trainer and every layer whose shape matches is transferred.
    YOLO(str(abd_checkpoint())).train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=16,
        workers=0,
        amp=False,
        plots=False,
        device="cpu",
        project=str(workdir),
        name="train",
        exist_ok=True,
        seed=0,
        deterministic=True,
        verbose=False,
    )
    print(f"train: {epochs} epochs in {time.perf_counter() - t0:.0f} s")
    if not best.is_file():
        raise RuntimeError(f"training wrote no {best}")
    return best


def export_onnx(weights: Path, imgsz: int, out: Path) -> Path:
    from visionloop.training.offline import prepare_ultralytics

    if out.is_file():
        return out
    prepare_ultralytics()
    from ultralytics import YOLO

    exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=False))
    shutil.copyfile(exported, out)
    return out


def evaluate(onnx_path: Path, data_yaml: Path, imgsz: int, split: str) -> dict[str, float]:
    from visionloop.training.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    metrics = YOLO(str(onnx_path), task="detect").val(
        data=str(data_yaml),
        split=split,
        imgsz=imgsz,
        batch=1,
        device="cpu",
        plots=False,
        verbose=False,
        project=str(onnx_path.parent / "val"),
        name=f"{onnx_path.stem}-{split}",
        exist_ok=True,
    )
    return {f"{split}_map50": float(metrics.box.map50), f"{split}_map50_95": float(metrics.box.map)}


def latencies_ms(
    paths: dict[str, Path], imgsz: int, runs: int, threads: int, image: Path
) -> dict[str, tuple[float, float]]:
    """(median, min) ``session.run`` time of each model on one ready tensor; the models take turns
    in 5 rounds of ``runs / 5`` calls so that a noisy moment does not hit one model only."""
    import onnxruntime as ort
    from PIL import Image

    from edge_runtime.preprocess import letterbox

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sessions = {
        k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for k, p in paths.items()
    }
    with Image.open(image) as im:
        tensor, _ = letterbox(im, imgsz, imgsz)
    feeds = {k: {s.get_inputs()[0].name: tensor} for k, s in sessions.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for k, session in sessions.items():
        for _ in range(5):
            session.run(None, feeds[k])
    rounds = 5
    for _ in range(rounds):
        for k, session in sessions.items():
            for _ in range(max(1, runs // rounds)):
                t0 = time.perf_counter()
                session.run(None, feeds[k])
                times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v) * 1000, min(v) * 1000) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "visionloop-quantize-check"
    )
    parser.add_argument("--fresh", action="store_true", help="delete the workdir first")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=480)
    parser.add_argument("--calib", type=int, default=48, help="calibration images (from train)")
    parser.add_argument("--method", default="MinMax", help="MinMax, Entropy or Percentile")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="int8,int8-whole-graph", help=", ".join(VARIANTS))
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument(
        "--latency-only", action="store_true", help="time the ONNX files already in the workdir, nothing else"
    )
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()

    workdir: Path = args.workdir.resolve()
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.latency_only:
        paths = {k: workdir / f"{k}.onnx" for k in ["float", *args.variants.split(",")]}
        image = sorted((workdir / "yolo" / "images" / "test").iterdir())[0]
        for k, (ms, best) in latencies_ms(paths, args.imgsz, args.runs, args.threads, image).items():
            print(f"{k:<24} {ms:8.2f} ms/img median {best:8.2f} min")
        return
    data_yaml = export_dataset(workdir)
    weights = train(workdir, data_yaml, args.epochs, args.imgsz)
    if args.train_only:
        return

    from visionloop.training.quantize import compare_outputs, quantize_int8

    float_onnx = export_onnx(weights, args.imgsz, workdir / "float.onnx")
    train_images = sorted((workdir / "yolo" / "images" / "train").iterdir())
    test_images = sorted((workdir / "yolo" / "images" / "test").iterdir())
    variants: dict[str, dict[str, Any]] = {"float": {"path": float_onnx}}
    for label in args.variants.split(","):
        options = {"calibration_method": args.method, "max_images": args.calib, **VARIANTS[label]}
        out = workdir / f"{label}.onnx"
        print(f"quantize: {label} {options}")
        q = quantize_int8(float_onnx, out, train_images, **options)
        variants[label] = {
            "path": out,
            "options": options,
            "excluded_nodes": q.excluded_nodes,
            "calibration_images": q.calibration_images,
            "quantize_s": round(q.seconds, 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "outputs": compare_outputs(float_onnx, out, test_images),
        }
    for v in variants.values():
        for split in ("test", "val"):
            v.update(evaluate(v["path"], data_yaml, args.imgsz, split))
        v["size_bytes"] = v["path"].stat().st_size
    paths = {k: v["path"] for k, v in variants.items()}
    for k, (ms, best) in latencies_ms(paths, args.imgsz, args.runs, args.threads, test_images[0]).items():
        variants[k].update(latency_ms=round(ms, 2), latency_min_ms=round(best, 2))

    header = f"{'model':<20} {'test mAP50':>10} {'mAP50-95':>9} {'val mAP50':>10} {'mAP50-95':>9}"
    print(f"\n{header} {'ms/img':>8} {'MB':>6} {'score diff':>10}  excluded")
    for label, v in variants.items():
        score = v.get("outputs", {}).get("score_mean_abs")
        print(
            f"{label:<20} {v['test_map50']:>10.3f} {v['test_map50_95']:>9.3f} {v['val_map50']:>10.3f} "
            f"{v['val_map50_95']:>9.3f} {v['latency_ms']:>8.2f} {v['size_bytes'] / 2**20:>6.2f} "
            f"{'-' if score is None else f'{score:.5f}':>10}  {v.get('excluded_nodes', '-')}"
        )
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "test_images": len(test_images),
        "variants": {
            k: {kk: (str(vv) if isinstance(vv, Path) else vv) for kk, vv in v.items()}
            for k, v in variants.items()
        },
    }
    out_json = args.results or workdir / "quantize_check.json"
    out_json.write_text(json.dumps(result, indent=2))
    print(f"\nresults: {out_json}")


if __name__ == "__main__":
    main()
