"""False-alarm and detection rates of the drift detector, on real metal-tags images.

The reference is the statistics of 70% of the capture groups (as a data set version's
would be); each stream is ``--images`` images drawn (seeded) from the other 30%, sent
unchanged or shifted: darker (brightness x0.5-0.7), blurred (Gaussian, radius 1.5-2.5)
or from another camera (640x480, warm colour cast). Every stream goes through the same
``visionloop.monitoring.drift.decide`` as the monitoring pipeline, with the default
``monitor`` settings (Kolmogorov-Smirnov per feature, drift below p = 0.001).

    .venv/bin/python benchmarks/drift_rates.py --streams 20 --images 40
    .venv/bin/python benchmarks/drift_rates.py --streams 20 --images 40 --with-predictions

``--with-predictions`` adds the prediction features (best score, box count, mean box
area) of a model that saw none of these images: the offline ABD checkpoint exported to
ONNX (COCO classes), run by the edge runtime's own detector at the serving thresholds
on the reference pool and on every stream, as the monitoring pipeline does with the
production model on the held-out splits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visionloop.config import MonitorSettings  # noqa: E402
from visionloop.monitoring.drift import decide  # noqa: E402
from visionloop.monitoring.reference import (  # noqa: E402
    PREDICTION_FEATURES,
    prediction_figures,
    table_from_images,
)
from visionloop.monitoring.streams import SHIFTS, metal_tag_pools, stream  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPECTED = {"darker": "brightness", "blurred": "sharpness", "other_camera": "width"}


def model_answers() -> Callable[[list[bytes]], dict[str, list[float]]]:
    """Prediction features of the ABD checkpoint's ONNX export (480 px) per image."""
    import shutil
    import tempfile

    from ultralytics import YOLO

    from edge_runtime.detector import OnnxDetector, open_image
    from visionloop.training.offline import abd_checkpoint, prepare_ultralytics

    prepare_ultralytics()
    folder = Path(tempfile.mkdtemp(prefix="drift-rates-"))
    weights = folder / "abd.pt"
    shutil.copyfile(abd_checkpoint(), weights)
    onnx = Path(YOLO(str(weights)).export(format="onnx", imgsz=480, opset=17, simplify=False))
    detector = OnnxDetector(onnx, conf=0.25, iou=0.7, threads=2)

    def answers(images: list[bytes]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {name: [] for name in PREDICTION_FEATURES}
        for data in images:
            image = open_image(data)
            found = detector.predict(image)
            sizes = [(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in found]
            best = max((d.score for d in found), default=0.0)
            for name, value in prediction_figures(best, sizes, image.width, image.height).items():
                out[name].append(value)
        return out

    return answers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "metal-tags")
    parser.add_argument("--with-predictions", action="store_true")
    parser.add_argument(
        "--prediction-method", help="stat test of the prediction features (default: the configuration's)"
    )
    args = parser.parse_args()
    settings = MonitorSettings()
    if args.prediction_method:
        settings.prediction_method = args.prediction_method
    ref, held = metal_tag_pools(args.data)
    reference = table_from_images(ref)
    answers = model_answers() if args.with_predictions else None
    if answers is not None:
        for column, values in answers(ref).items():
            reference[column] = values
    results: dict[str, dict[str, object]] = {}
    start = time.perf_counter()
    for kind in SHIFTS:
        flagged = right = 0
        features: dict[str, int] = {}
        for seed in range(args.streams):
            images = stream(held, kind, args.images, 1000 + seed)
            current = table_from_images(images)
            if answers is not None:
                for column, values in answers(images).items():
                    current[column] = values
            decision, _ = decide(reference, current, settings, "reference", {}, {})
            flagged += decision.drift
            right += EXPECTED.get(kind, "") in decision.drifted_features
            for f in decision.drifted_features:
                features[f] = features.get(f, 0) + 1
        results[kind] = {
            "streams": args.streams,
            "flagged": flagged,
            "rate": round(flagged / args.streams, 3),
            "flagged_on_expected_feature": right if kind in EXPECTED else None,
            "drifted_features": dict(sorted(features.items())),
        }
        print(f"{kind:<13} flagged {flagged:>2}/{args.streams}  features {features}", flush=True)
    print(
        json.dumps(
            {
                "reference_images": len(reference),
                "held_out_images": len(held),
                "images_per_stream": args.images,
                "settings": {
                    "method": settings.method,
                    "prediction_method": settings.prediction_method,
                    "threshold": settings.threshold,
                },
                "prediction_features": bool(args.with_predictions),
                "seconds": round(time.perf_counter() - start, 1),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
