"""Fixtures of the edge runtime tests: a release of the real ABD YOLOv8n ONNX (320 px),
a perturbed copy of that model, and an empty channel folder per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.deploy.channel_helpers import release
from tests.edge.helpers import Channel
from visionloop.deploy.channel import Release


@pytest.fixture(scope="session")
def rel(abd_onnx: Path) -> Release:
    """Version "1" of model ``tags``: the ABD model, 3 metal-tags samples with their
    expected detections, thresholds conf 0.05, uncertain band [0.05, 0.3)."""
    return release(abd_onnx, "1")


@pytest.fixture(scope="session")
def perturbed_onnx(abd_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ABD model with its first convolution's weights scaled by 0.6: a valid ONNX
    file that detects differently (a "wrong model" for self-test and shadow tests)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(abd_onnx))
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == first_conv.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(0.6), init.name))
    path = tmp_path_factory.mktemp("perturbed") / "perturbed.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    return Channel(tmp_path / "channel")
