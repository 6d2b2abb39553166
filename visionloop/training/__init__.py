"""Training, evaluation, export and quantization of YOLO models (ultralytics)."""
