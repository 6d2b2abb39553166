"""Steps of the training pipeline: tune, train, evaluate, export, register."""

from steps.training.evaluate_model import evaluate_model
from steps.training.export_onnx import export_onnx
from steps.training.quantize_onnx import quantize_onnx
from steps.training.register_model import register_model
from steps.training.select_params import select_params
from steps.training.train_model import train_model
from steps.training.tune_trial import tune_trial

__all__ = [
    "evaluate_model",
    "export_onnx",
    "quantize_onnx",
    "register_model",
    "select_params",
    "train_model",
    "tune_trial",
]
