"""What the training pipeline costs on top of the same ultralytics training in a plain script.

In one run, on a fresh ZenML store:
1. plain: the metal-tags data set version exported to the YOLO layout, then
   ``YOLO(abd).train(...)`` with the pipeline's exact settings, ``val`` on the test
   split and an ONNX export: what a user would script by hand;
2. pipeline: ``python run.py train``'s training pipeline with tuning and INT8 off (the
   same work as 1, plus ZenML, MLflow, the edge-runtime evaluation and registration);
3. re-run: the same pipeline again with nothing changed (every step but registration
   from the cache);
4. full: for reference, the full pipeline with the configured tuning trials and INT8.

    .venv/bin/python benchmarks/training_overhead.py            # demo size: 25 epochs
    .venv/bin/python benchmarks/training_overhead.py --epochs 3 # a quick look

Prints a table and writes benchmarks/results/training_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--skip-full", action="store_true", help="skip the full pipeline (tuning + INT8)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="visionloop-bench-train-"))
    os.environ["ZENML_CONFIG_PATH"] = str(work / "zenml")
    os.environ["VISIONLOOP_CACHE_DIR"] = str(work / "cache")
    from stacks.bootstrap import ensure_stack, quiet_zenml_env

    quiet_zenml_env()
    from pipelines.launch import base_params, run_data_pipeline, run_training_pipeline
    from visionloop.config import load_config
    from visionloop.training import yolo
    from visionloop.training.workspace import yolo_workspace

    ensure_stack("local")
    config = load_config(ROOT / "configs" / "metal_tags.yaml")
    config.train.epochs = args.epochs
    data = run_data_pipeline(config.data)
    t = config.train
    params = base_params(config)
    results: dict[str, object] = {
        "epochs": args.epochs,
        "cores": os.cpu_count(),
        "dataset_version_id": data.dataset.version_id,
    }

    start = time.perf_counter()
    with yolo_workspace(data.dataset, prefix="visionloop-plain-") as (data_yaml, tmp):
        outcome = yolo.train(data_yaml, params, t.weights, tmp / "runs")
        plain_metrics, _ = yolo.validate(outcome.best, data_yaml, "test", t.imgsz, tmp / "val")
        yolo.export_onnx(outcome.best, t.imgsz, config.export.opset, tmp / "export")
    results["plain_s"] = round(time.perf_counter() - start, 1)
    results["plain_test_map50"] = round(plain_metrics.map50, 4)
    results["plain_train_s"] = round(outcome.seconds, 1)

    config.tune.trials = 0
    config.export.int8 = False
    start = time.perf_counter()
    lean = run_training_pipeline(config, data.artifact_id)
    results["pipeline_s"] = round(time.perf_counter() - start, 1)
    results["pipeline_train_s"] = lean.summary()["train_seconds"]
    results["pipeline_test_map50"] = lean.summary()["test"]["map50"]

    start = time.perf_counter()
    again = run_training_pipeline(config, data.artifact_id)
    results["rerun_s"] = round(time.perf_counter() - start, 1)
    results["rerun_cached_steps"] = again.cached_steps

    if not args.skip_full:
        full_config = load_config(ROOT / "configs" / "metal_tags.yaml")
        full_config.train.epochs = args.epochs
        start = time.perf_counter()
        full = run_training_pipeline(full_config, data.artifact_id)
        results["full_pipeline_s"] = round(time.perf_counter() - start, 1)
        results["full_test"] = full.summary()["test"]

    results["overhead"] = round(float(results["pipeline_s"]) / float(results["plain_s"]) - 1, 4)  # type: ignore[arg-type]
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_overhead.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'what':<48}{'seconds':>10}")
    print(f"{'plain ultralytics script (train+val+export)':<48}{results['plain_s']:>10}")
    print(f"{'training pipeline, no tuning, no INT8':<48}{results['pipeline_s']:>10}")
    print(f"{'  overhead':<48}{results['overhead']:>10.1%}")
    print(f"{'re-run with nothing changed':<48}{results['rerun_s']:>10}")
    if "full_pipeline_s" in results:
        print(f"{'full pipeline (tuning + INT8)':<48}{results['full_pipeline_s']:>10}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
