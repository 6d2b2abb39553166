"""False-alarm and detection rates of the drift detector, on real metal-tags images.

The reference is the statistics of 70% of the capture groups (as a data set version's
would be); each stream is ``--images`` images drawn (seeded) from the other 30%, sent
unchanged or shifted: darker (brightness x0.5-0.7), blurred (Gaussian, radius 1.5-2.5)
or from another camera (640x480, warm colour cast). Every stream goes through the same
``visionloop.monitoring.drift.decide`` as the monitoring pipeline, with the default
``monitor`` settings (Kolmogorov-Smirnov per feature, drift below p = 0.001).

    .venv/bin/python benchmarks/drift_rates.py --streams 20 --images 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visionloop.config import MonitorSettings  # noqa: E402
from visionloop.monitoring.drift import decide  # noqa: E402
from visionloop.monitoring.reference import table_from_images  # noqa: E402
from visionloop.monitoring.streams import SHIFTS, metal_tag_pools, stream  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPECTED = {"darker": "brightness", "blurred": "sharpness", "other_camera": "width"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "metal-tags")
    args = parser.parse_args()
    settings = MonitorSettings()
    ref, held = metal_tag_pools(args.data)
    reference = table_from_images(ref)
    results: dict[str, dict[str, object]] = {}
    start = time.perf_counter()
    for kind in SHIFTS:
        flagged = right = 0
        features: dict[str, int] = {}
        for seed in range(args.streams):
            current = table_from_images(stream(held, kind, args.images, 1000 + seed))
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
                "settings": {"method": settings.method, "threshold": settings.threshold},
                "seconds": round(time.perf_counter() - start, 1),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
