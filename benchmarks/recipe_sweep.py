"""Sweep plain-ultralytics training recipes on exported data sets (a GPU helps).

Used to choose the metal-tags defaults in configs/metal_tags.yaml. Each argument is
one run: comma-separated key=value pairs, e.g. ``epochs=25,batch=8,flipud=0.5``; the
special keys are ``data`` (a folder under --root holding data.yaml and other YAMLs),
``yaml`` (which YAML in it; default data.yaml), ``imgsz``, ``seed`` and ``last=1`` (score
last.pt instead of best.pt). Every other key goes to ``YOLO.train``. Each run prints one
``RESULT`` JSON line with the test and val mAP of the trained model.

    .venv/bin/python -c "...export_yolo(dataset, 'sweep/data')"   # see BENCHMARKS.md
    .venv/bin/python benchmarks/recipe_sweep.py --root sweep --device 0 epochs=25 epochs=25,flipud=0.5
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def convert(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="sweep", help="folder holding the exported data sets")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    root = Path(args.root).resolve()
    for folder in glob.glob(str(root / "*")):  # data.yaml paths are absolute: re-point them here
        for yml in glob.glob(f"{folder}/*.yaml"):
            lines = Path(yml).read_text().splitlines()
            Path(yml).write_text(
                "\n".join(f"path: {folder}" if ln.startswith("path:") else ln for ln in lines)
            )
    results = []
    for spec in args.runs:
        kw: dict[str, str] = dict(kv.split("=", 1) for kv in spec.split(","))
        data_dir = root / kw.pop("data", "data")
        yml = data_dir / kw.pop("yaml", "data.yaml")
        epochs, imgsz = int(kw.pop("epochs")), int(kw.pop("imgsz", "480"))
        seed, use_last = int(kw.pop("seed", "0")), bool(int(kw.pop("last", "0")))
        extra = {k: convert(v) for k, v in kw.items()}
        extra.setdefault("batch", 16)
        start = time.time()
        model = YOLO(str(abd_checkpoint()))
        model.train(
            data=str(yml),
            epochs=epochs,
            imgsz=imgsz,
            workers=4,
            amp=False,
            plots=False,
            device=args.device,
            project=str(root / "runs"),
            name=spec.replace(",", "_").replace("=", ""),
            seed=seed,
            verbose=False,
            exist_ok=True,
            **extra,
        )
        seconds = time.time() - start
        trainer = model.trainer
        assert trainer is not None
        trained = YOLO(str(trainer.last if use_last else trainer.best))
        test, val = (
            trained.val(
                data=str(data_dir / "data.yaml"),
                split=split,
                imgsz=imgsz,
                batch=8,
                device=args.device,
                plots=False,
                verbose=False,
            )
            for split in ("test", "val")
        )
        result = {
            "spec": spec,
            "train_s": round(seconds, 1),
            "test_map50": round(test.box.map50, 4),
            "test_map": round(test.box.map, 4),
            "val_map50": round(val.box.map50, 4),
            "val_map": round(val.box.map, 4),
        }
        print("RESULT", json.dumps(result), flush=True)
        results.append(result)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe_sweep.json").write_text(json.dumps(results, indent=2))
    os.environ.get("OUT") and Path(os.environ["OUT"], "sweep.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
