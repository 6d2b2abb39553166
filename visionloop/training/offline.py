"""Make ultralytics run with no network: no hub, no font download, no telemetry.

Call ``prepare_ultralytics()`` before importing ultralytics. It sets the environment
(``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL``, a private ``YOLO_CONFIG_DIR``), puts
matplotlib's bundled DejaVuSans under the names ultralytics looks for (its data set
check always wants ``Arial.ttf``), and turns off ultralytics' own MLflow and other
logger callbacks: visionloop logs to MLflow itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
CALLBACK_SETTINGS = {
    "mlflow": False,
    "wandb": False,
    "tensorboard": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "neptune": False,
    "raytune": False,
    "hub": False,
    "sync": False,
}


def ultralytics_config_dir() -> Path:
    from visionloop.config import cache_dir

    return Path(os.environ.get("YOLO_CONFIG_DIR") or cache_dir() / "ultralytics")


def prepare_ultralytics() -> Path:
    """Idempotent; returns ultralytics' settings folder."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    config_dir = ultralytics_config_dir()
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in FONT_NAMES:
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    from ultralytics import settings
    from ultralytics.utils import torch_utils

    # ultralytics trains on the CPU with cpu_count - 1 threads (one thread on a 2-core
    # machine, half the speed); VISIONLOOP_TORCH_THREADS overrides the default of all cores.
    torch_utils.NUM_THREADS = int(os.environ.get("VISIONLOOP_TORCH_THREADS") or os.cpu_count() or 1)

    wanted = {k: v for k, v in CALLBACK_SETTINGS.items() if k in settings}
    if any(settings.get(k) != v for k, v in wanted.items()):
        settings.update(wanted)
    return fonts


def abd_checkpoint() -> Path:
    """The offline default starting weights: ``ABD_model/ABD.pt`` from the PyPI package
    ``ABD-model`` (MIT), a YOLOv8n detector fine-tuned from COCO-pretrained yolov8n."""
    import ABD_model

    path = Path(ABD_model.__file__).parent / "ABD.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install ABD-model==0.3.0`")
    return path
