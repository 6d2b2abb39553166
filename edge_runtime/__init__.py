"""The program that runs on the edge device: numpy, onnxruntime and Pillow only.

Never imports zenml, torch or ultralytics: this folder is what ships to a device.
"""
